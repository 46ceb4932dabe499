/**
 * Generated PyTorch modules for every golden-vector case: `python_workers/tests/fixtures/torch_export.json`.
 *
 *   npx tsx scripts/gen-torch-export-fixtures.ts          # rewrite the file
 *   npx tsx scripts/gen-torch-export-fixtures.ts --check  # exit 1 if the file differs from what would be written
 *
 * `python_workers/tests/test_torch_export.py` runs each module against the torch interpreter (values
 * and autograd gradients); `test/graph/torch-export.test.ts` regenerates the file in memory, so any
 * drift of the generator fails a test until the fixtures are rewritten (and re-checked in Python).
 */
import { readFileSync, writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { decodeLoss } from "../src/graph/wire.ts"
import { exportTorchModule } from "../src/graph/torch-export.ts"

export const FIXTURES_PATH = fileURLToPath(new URL("../python_workers/tests/fixtures/torch_export.json", import.meta.url))
const VECTORS_PATH = fileURLToPath(new URL("../protocol/vectors/graphs.json", import.meta.url))
export const CLASS_NAME = "ExportedLoss"

export interface ExportCase {
  readonly name: string
  readonly class_name: string
  /** Branch weights baked in as defaults: 1.0, 1.5, 2.0, … so weighting is exercised on multi-branch losses. */
  readonly weights: Record<string, number>
  readonly source: string
}

export const generateFixtures = (): string => {
  const vectors = JSON.parse(readFileSync(VECTORS_PATH, "utf8")) as { cases: ReadonlyArray<{ name: string; wire_b64: string }> }
  const cases: ExportCase[] = vectors.cases.map((c) => {
    const g = decodeLoss(Buffer.from(c.wire_b64, "base64"))
    const weights = Object.fromEntries(g.branches.map((b, i) => [b.name, 1 + 0.5 * i]))
    return { name: c.name, class_name: CLASS_NAME, weights, source: exportTorchModule(g, { className: CLASS_NAME, weights }) }
  })
  return JSON.stringify({ generator: "scripts/gen-torch-export-fixtures.ts", vectors: "protocol/vectors/graphs.json", cases }, null, 1) + "\n"
}

const main = (argv: ReadonlyArray<string>): number => {
  const text = generateFixtures()
  if (argv.includes("--check")) {
    const current = readFileSync(FIXTURES_PATH, "utf8")
    if (current !== text) {
      process.stderr.write(`${FIXTURES_PATH} is stale: run npx tsx scripts/gen-torch-export-fixtures.ts\n`)
      return 1
    }
    return 0
  }
  writeFileSync(FIXTURES_PATH, text)
  return 0
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = main(process.argv.slice(2))
}
