/** The verbs: one module per verb in `./verbs/`, loaded on demand (`autoloss parse` never pays for ZeroMQ or SQLite). */
import { readdirSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { dirname, join } from "node:path"
import type { Verb } from "./verb.ts"

export const verbsDir = join(dirname(fileURLToPath(import.meta.url)), "verbs")

export const verbNames = (): string[] =>
  readdirSync(verbsDir)
    .filter((f) => f.endsWith(".ts") && !f.startsWith("_"))
    .map((f) => f.slice(0, -3))
    .sort()

/** A verb module exports `spec`, `summary` and `run` (see `defineVerb`); `spec` may be missing in a verb not yet declared. */
export type VerbModule = Partial<Pick<Verb, "spec">> & Pick<Verb, "summary" | "run">

export const loadVerb = async (name: string): Promise<VerbModule> => (await import(join(verbsDir, `${name}.ts`))) as VerbModule
