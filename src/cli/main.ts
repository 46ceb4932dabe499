/**
 * `autoloss <verb> [args]`: each verb lives in its own module `./verbs/<verb>.ts` exporting
 * `run(argv: string[]): Promise<number>` (the exit code) and a one-line `summary`.
 * Verbs are loaded on demand so that `autoloss parse` never pays for ZeroMQ or SQLite.
 */
import { readdirSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { dirname, join } from "node:path"

export interface Verb {
  readonly summary: string
  readonly run: (argv: ReadonlyArray<string>) => Promise<number>
}

const verbsDir = join(dirname(fileURLToPath(import.meta.url)), "verbs")

const verbNames = (): string[] =>
  readdirSync(verbsDir)
    .filter((f) => f.endsWith(".ts") && !f.startsWith("_"))
    .map((f) => f.slice(0, -3))
    .sort()

const usage = async (): Promise<string> => {
  const lines = ["usage: autoloss <verb> [options]", "", "verbs:"]
  for (const name of verbNames()) {
    const verb = (await import(join(verbsDir, `${name}.ts`))) as Verb
    lines.push(`  ${name.padEnd(12)} ${verb.summary}`)
  }
  return lines.join("\n")
}

const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  const [name, ...rest] = argv
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write((await usage()) + "\n")
    return name === undefined ? 2 : 0
  }
  if (!verbNames().includes(name)) {
    process.stderr.write(`autoloss: unknown verb '${name}'\n\n${await usage()}\n`)
    return 2
  }
  const verb = (await import(join(verbsDir, `${name}.ts`))) as Verb
  return verb.run(rest)
}

process.exitCode = await main(process.argv.slice(2))
