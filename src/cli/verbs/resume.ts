/**
 * `autoloss resume DIR [--workers N | --devices LIST] [--connect tcp://HOST:PORT]`: continues a
 * search that was stopped or killed, from its `run.json` and `search.db`. Completed evaluations are
 * served from the store, in-flight ones are redone once (see `src/search/engine.ts`).
 */
import { parseArgs } from "node:util"
import { Effect } from "effect"
import { layer as storeLayer, Store } from "../../store/Store.ts"
import { runMain } from "../../workers/runMain.ts"
import { readRunFile, searchProgram } from "../../search/search-run.ts"
import { makeSink } from "../progress.ts"

export const summary = "continue a stopped or killed search from its run directory"

const USAGE = "usage: autoloss resume DIR [--workers N | --devices cpu,cuda:0,...] [--connect tcp://HOST:PORT]"

/** Prints the best loss with its metrics (stdout) from the run's database. */
export const printSummary = async (dir: string): Promise<void> => {
  const program = Effect.gen(function* () {
    const store = yield* Store
    const rows = yield* store.candidates()
    const counters = yield* store.counters()
    const trained = rows.filter((r) => r.score !== null && Number.isFinite(r.score))
    trained.sort((a, b) => (b.score ?? 0) - (a.score ?? 0) || a.id - b.id)
    const best = trained[0]
    const train = best === undefined ? undefined : yield* store.trainResult(best.reusedFrom ?? best.id)
    // one entry per distinct loss: copies and equivalent reuses carry their source's score
    const distinct = trained.filter((r, i) => trained.findIndex((o) => o.hash === r.hash) === i)
    return { best, metrics: train?.result.metrics ?? null, counters, top: distinct.slice(0, 5) }
  })
  const { best, metrics, counters, top } = await Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(storeLayer(dir))))
  const out = {
    best: best === undefined ? null : { id: best.id, loss: best.text, score: best.score, metrics },
    top5: top.map((r) => ({ id: r.id, loss: r.text, score: r.score })),
    counters
  }
  process.stdout.write(JSON.stringify(out, null, 2) + "\n")
}

export const run = async (argv: ReadonlyArray<string>): Promise<number> => {
  let dir: string
  let devices: string[]
  let endpoint: string | undefined
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: true,
      options: { workers: { type: "string" }, devices: { type: "string" }, connect: { type: "string" } }
    })
    if (positionals.length !== 1) throw new Error("give exactly one run directory")
    dir = positionals[0]!
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
  if (code === 0) await printSummary(dir)
  return code
}
