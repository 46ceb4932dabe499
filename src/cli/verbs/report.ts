/**
 * `autoloss report DIR [--out FILE] [--no-tensorboard]`: writes the run's self-contained HTML report
 * (`DIR/report.html` unless `--out`) and its TensorBoard scalars (`DIR/tb/events.out.tfevents.*`).
 * Reads the database read-only, so it is safe on a running search. Exit 0 ok, 1 unreadable run, 2 usage.
 */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { renderReportPage } from "../../report/html.ts"
import { buildReportModel, type ReportModel } from "../../report/model.ts"
import { loadRun, RunDataError } from "../../report/run-data.ts"
import { writeSearchEvents } from "../../report/tensorboard.ts"

export const summary = "write DIR/report.html (plots, funnel, top losses as math) and TensorBoard scalars"

const USAGE = "usage: autoloss report DIR [--out FILE] [--no-tensorboard]"

export const REPORT_FILE = "report.html"

/** Writes the run's report (`DIR/report.html` unless `out`); returns its path. */
export const writeReport = (dir: string, out?: string, model: ReportModel = buildReportModel(loadRun(dir))): string => {
  const path = out ?? join(dir, REPORT_FILE)
  writeFileSync(path, renderReportPage(model))
  return path
}

export const run = async (argv: ReadonlyArray<string>): Promise<number> => {
  let dir: string
  let out: string | undefined
  let tensorboard: boolean
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: true,
      options: { out: { type: "string" }, "no-tensorboard": { type: "boolean", default: false } }
    })
    if (positionals.length !== 1) throw new Error(`want exactly one run directory, got ${positionals.length}`)
    dir = positionals[0]!
    out = values.out
    tensorboard = !values["no-tensorboard"]
  } catch (e) {
    process.stderr.write(`autoloss report: ${(e as Error).message}\n${USAGE}\n`)
    return 2
  }
  try {
    const model = buildReportModel(loadRun(dir))
    const path = writeReport(dir, out, model)
    process.stdout.write(`report      ${path}\n`)
    if (tensorboard) process.stdout.write(`tensorboard ${writeSearchEvents(dir, model)}\n`)
    return 0
  } catch (e) {
    if (!(e instanceof RunDataError) && !(e instanceof SyntaxError)) throw e
    process.stderr.write(`autoloss report: ${e.message}\n`)
    return 1
  }
}
