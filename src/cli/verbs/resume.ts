/**
 * `autoloss resume DIR [--workers N | --devices LIST] [--connect tcp://HOST:PORT] [--json]`: continues a
 * search that was stopped or killed, from its `run.json` and `search.db`, and its held-out final
 * choice. Completed evaluations and held-out trainings are served from the store, in-flight ones
 * are redone once (see `src/search/engine.ts`, `src/search/selection-run.ts`).
 */
import { parseArgs } from "node:util"
import { runMain } from "../../workers/runMain.ts"
import { readRunFile, searchProgram } from "../../search/search-run.ts"
import { makeSink } from "../progress.ts"
import { printSummary } from "../summary.ts"

export const summary = "continue a stopped or killed search from its run directory"

const USAGE = "usage: autoloss resume DIR [--workers N | --devices cpu,cuda:0,...] [--connect tcp://HOST:PORT] [--json]"

export const run = async (argv: ReadonlyArray<string>): Promise<number> => {
  let dir: string
  let devices: string[]
  let endpoint: string | undefined
  let json = false
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: true,
      options: { workers: { type: "string" }, devices: { type: "string" }, connect: { type: "string" }, json: { type: "boolean", default: false } }
    })
    if (positionals.length !== 1) throw new Error("give exactly one run directory")
    dir = positionals[0]!
    json = values.json
    readRunFile(dir)
    endpoint = values.connect
    if (values.workers !== undefined && !/^\d+$/.test(values.workers)) throw new Error(`--workers wants an integer, got '${values.workers}'`)
    devices = values.devices !== undefined
      ? values.devices.split(",").map((d) => d.trim())
      : Array.from({ length: Number(values.workers ?? 2) }, () => "cpu")
  } catch (e) {
    process.stderr.write(`autoloss resume: ${(e as Error).message}\n${USAGE}\n`)
    return 2
  }
  const config = readRunFile(dir)
  const code = await runMain(searchProgram(dir, config, { devices, endpoint }, makeSink(process.stderr)))
  if (code === 0) await printSummary(dir, { json })
  return code
}
