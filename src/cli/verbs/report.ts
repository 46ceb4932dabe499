/**
 * `autoloss report DIR`: writes the run's self-contained HTML report (`DIR/report.html` unless
 * `--out`) and its TensorBoard scalars (`DIR/tb/events.out.tfevents.*`). Reads the database
 * read-only, so it is safe on a running search.
 */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { renderReportPage } from "../../report/html.ts"
import { buildReportModel, type ReportModel } from "../../report/model.ts"
import { loadRun, RunDataError } from "../../report/run-data.ts"
import { writeSearchEvents } from "../../report/tensorboard.ts"
import { defineVerb } from "../verb.ts"

export const REPORT_FILE = "report.html"

/** Writes the run's report (`DIR/report.html` unless `out`); returns its path. */
export const writeReport = (dir: string, out?: string, model: ReportModel = buildReportModel(loadRun(dir))): string => {
  const path = out ?? join(dir, REPORT_FILE)
  writeFileSync(path, renderReportPage(model))
  return path
}

export const { spec, summary, run } = defineVerb({
  name: "report",
  summary: "write DIR/report.html (plots, funnel, top losses as math) and TensorBoard scalars",
  positionals: "DIR",
  positionalNoun: "run directory",
  positionalCount: 1,
  flags: {
    out: { type: "string", value: "FILE", help: "where to write the HTML report", defaultText: `DIR/${REPORT_FILE}` },
    "no-tensorboard": { type: "boolean", default: false, help: "skip the TensorBoard event file (DIR/tb/)" }
  },
  description: "Safe on a running search (reads the database read-only).\nExit: 0 ok, 1 unreadable run, 2 usage error.",
  examples: ["autoloss report runs/seg-1", "autoloss report runs/seg-1 --out /tmp/seg.html --no-tensorboard"]
}, async ({ values, positionals }, io) => {
  const dir = positionals[0]!
  try {
    const model = buildReportModel(loadRun(dir))
    const path = writeReport(dir, values.out, model)
    io.stdout(`report      ${path}\n`)
    if (!values["no-tensorboard"]) io.stdout(`tensorboard ${writeSearchEvents(dir, model)}\n`)
    return 0
  } catch (e) {
    if (!(e instanceof RunDataError) && !(e instanceof SyntaxError)) throw e
    io.stderr(`autoloss report: ${e.message}\n`)
    return 1
  }
})
