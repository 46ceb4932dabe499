/**
 * `autoloss resume DIR`: continues a search that was stopped or killed, from its `run.json` and
 * `search.db`. Completed evaluations are served from the store, in-flight ones are redone once
 * (see `src/search/engine.ts`).
 */
import { Effect } from "effect"
import { layer as storeLayer, Store } from "../../store/Store.ts"
import { runReported } from "../pool-job.ts"
import { readRunFile, searchProgram } from "../../search/search-run.ts"
import { UsageError } from "../args.ts"
import { CONNECT_FLAG, parseConnect, parseWorkerDevices, WORKER_FLAGS } from "../job-flags.ts"
import { makeSink } from "../progress.ts"
import { defineVerb } from "../verb.ts"

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

export const { spec, summary, run } = defineVerb({
  name: "resume",
  summary: "continue a stopped or killed search from its run directory",
  positionals: "DIR",
  positionalNoun: "run directory",
  positionalCount: 1,
  flags: { ...WORKER_FLAGS, ...CONNECT_FLAG },
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
  if (code === 0) await printSummary(dir)
  return code
})
