/**
 * Regenerates `protocol/schemas/*.json` from the TypeBox messages in `src/protocol/`.
 * Run: `npx tsx scripts/gen-schemas.ts` (then commit the files; a test fails while they differ).
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { schemaFiles } from "../src/protocol/schemaFiles.ts"

const dir = join(dirname(fileURLToPath(import.meta.url)), "..", "protocol", "schemas")
mkdirSync(dir, { recursive: true })
const files = schemaFiles()
for (const stale of readdirSync(dir)) if (stale.endsWith(".json") && !(stale in files)) rmSync(join(dir, stale))
for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text)
process.stdout.write(`wrote ${Object.keys(files).length} files to ${dir}\n`)
