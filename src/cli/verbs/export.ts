/**
 * `autoloss export DIR --format torch [--out FILE] [--candidate ID] [--class-name NAME] [--weight BRANCH=W ...]`:
 * writes the best loss of the run (or candidate ID) as a standalone PyTorch `nn.Module` file that
 * needs only torch (`src/graph/torch-export.ts`). Default output `DIR/found_loss.py`. The mmdet,
 * mmpose and mmseg formats are planned and answer "not yet supported". Exit 0 ok, 1 nothing to
 * export / unreadable run, 2 usage or unsupported format.
 */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { exportTorchModule, TorchExportError } from "../../graph/torch-export.ts"
import { fromWire } from "../../graph/wire.ts"
import { topLosses } from "../../report/model.ts"
import { loadRun, RunDataError } from "../../report/run-data.ts"

export const summary = "export the best loss of a run as a standalone PyTorch module (--format torch)"

const USAGE =
  "usage: autoloss export DIR --format torch [--out FILE] [--candidate ID] [--class-name NAME] [--weight BRANCH=W ...]"

export const FORMATS = ["torch"] as const
/** Formats people ask for that need the MMLab adapters first. */
export const PLANNED_FORMATS = ["mmdet", "mmpose", "mmseg"] as const
export const DEFAULT_EXPORT_FILE = "found_loss.py"

class UsageError extends Error {}

const parseWeights = (pairs: ReadonlyArray<string>): Record<string, number> => {
  const weights: Record<string, number> = {}
  for (const pair of pairs) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.+)$/.exec(pair)
    const w = m === null ? NaN : Number(m[2])
    if (m === null || !Number.isFinite(w)) throw new UsageError(`--weight wants BRANCH=NUMBER, got '${pair}'`)
    weights[m[1]!] = w
  }
  return weights
}

export const run = async (argv: ReadonlyArray<string>): Promise<number> => {
  let dir: string
  let out: string
  let candidateId: number | undefined
  let className: string
  let weights: Record<string, number>
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: true,
      options: {
        format: { type: "string" },
        out: { type: "string" },
        candidate: { type: "string" },
        "class-name": { type: "string", default: "FoundLoss" },
        weight: { type: "string", multiple: true }
      }
    })
    if (positionals.length !== 1) throw new UsageError(`want exactly one run directory, got ${positionals.length}`)
    dir = positionals[0]!
    const format = values.format
    if (format === undefined) throw new UsageError("--format is required (torch)")
    if ((PLANNED_FORMATS as ReadonlyArray<string>).includes(format)) {
      throw new UsageError(`--format ${format} is not yet supported (supported now: ${FORMATS.join(", ")}); export --format torch and wrap it`)
    }
    if (!(FORMATS as ReadonlyArray<string>).includes(format)) {
      throw new UsageError(`unknown --format '${format}' (supported: ${FORMATS.join(", ")}; planned: ${PLANNED_FORMATS.join(", ")})`)
    }
    out = values.out ?? join(dir, DEFAULT_EXPORT_FILE)
    if (values.candidate !== undefined) {
      if (!/^\d+$/.test(values.candidate)) throw new UsageError(`--candidate wants a candidate id, got '${values.candidate}'`)
      candidateId = Number(values.candidate)
    }
    className = values["class-name"]
    weights = parseWeights(values.weight ?? [])
  } catch (e) {
    process.stderr.write(`autoloss export: ${(e as Error).message}\n${USAGE}\n`)
    return 2
  }
  try {
    const { candidates } = loadRun(dir)
    const chosen = candidateId === undefined ? topLosses(candidates, 1)[0]?.candidate : candidates.find((c) => c.id === candidateId)
    if (chosen === undefined) {
      throw new RunDataError(candidateId === undefined ? `${dir}: no loss has a finite score yet, nothing to export` : `${dir} has no candidate ${candidateId}`)
    }
    const graph = fromWire(chosen.wire)
    if (graph.branches.length > 1 && Object.keys(weights).length === 0) {
      process.stderr.write("autoloss export: note: every branch weight is 1.0; give the task's weights with --weight BRANCH=W\n")
    }
    writeFileSync(out, exportTorchModule(graph, { className, weights }))
    process.stdout.write(`exported candidate ${chosen.id} (score ${chosen.score}) as ${className} to ${out}\n`)
    return 0
  } catch (e) {
    if (!(e instanceof RunDataError || e instanceof TorchExportError)) throw e
    process.stderr.write(`autoloss export: ${e.message}\n`)
    return 1
  }
}
