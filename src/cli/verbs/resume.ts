/**
 * `autoloss resume DIR`: continues a search that was stopped or killed, from its `run.json` and
 * `search.db`, and its held-out final choice. Completed evaluations and held-out trainings are
 * served from the store, in-flight ones are redone once (see `src/search/engine.ts`,
 * `src/search/selection-run.ts`).
 */
import { runReported } from "../pool-job.ts"
import { readRunFile, searchProgram } from "../../search/search-run.ts"
import { UsageError } from "../args.ts"
import { CONNECT_FLAG, parseConnect, parseWorkerDevices, WORKER_FLAGS } from "../job-flags.ts"
import { makeSink } from "../progress.ts"
import { printSummary } from "../summary.ts"
import { defineVerb } from "../verb.ts"

export const { spec, summary, run } = defineVerb({
  name: "resume",
  summary: "continue a stopped or killed search from its run directory",
  positionals: "DIR",
  positionalNoun: "run directory",
  positionalCount: 1,
  flags: {
    ...WORKER_FLAGS,
    ...CONNECT_FLAG,
    json: { type: "boolean", default: false, help: "print the end-of-run summary as JSON (also when stdout is not a terminal)" }
  },
  description: `
Reads DIR/run.json and DIR/search.db: completed evaluations are served from the store, in-flight
ones are redone once. The workers may differ from the first run's.
Exit: 0 done, 1 failed, 2 usage error (incl. DIR not a run directory); 130/143 after SIGINT/SIGTERM.`,
  examples: ["autoloss resume runs/seg-1", "autoloss resume runs/det-1 --devices cuda:0,cuda:1,cuda:2,cuda:3"]
}, async ({ values, positionals }, io) => {
  const dir = positionals[0]!
  let config
  try {
    config = readRunFile(dir)
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
  const endpoint = parseConnect(values.connect)
  const devices = parseWorkerDevices(values, 2, endpoint !== undefined)
  const code = await runReported("resume", searchProgram(dir, config, { devices, endpoint }, makeSink(process.stderr)), io)
  if (code === 0) await printSummary(dir, { json: values.json })
  return code
})
