/**
 * The random part of a fidelity calibration panel: the first `--want` losses of a task's seeded
 * random stream (the search's initialisation: `randomLoss` over the task's branches, `Rng(seed)`,
 * exactly what `autoloss random --seed S --branches ...` prints) that pass the static check and
 * the loss-rejection protocol (`eval-loss` jobs on the worker pool, the task's default options).
 * Kept in stream order whatever order the jobs finish in, so the same command gives the same losses.
 *
 * Run: `npx tsx bench/fidelity-panel.ts --task pose --seed 1 --want 6 [--max 300] [--workers 2]`
 * → one JSON line per passing loss on stdout: {"index", "text", "score"}; progress on stderr.
 */
import { parseArgs } from "node:util"
import { Effect } from "effect"
import { hashLoss } from "../src/graph/canonical.ts"
import { randomLoss } from "../src/graph/random.ts"
import { Rng } from "../src/graph/rng.ts"
import { printLoss } from "../src/graph/syntax.ts"
import type { LossGraph } from "../src/graph/types.ts"
import { toWire } from "../src/graph/wire.ts"
import { decodeScreen } from "../src/search/pool-evaluator.ts"
import { taskInfo } from "../src/search/search-run.ts"
import { staticCheck } from "../src/search/static-check.ts"
import { runMain } from "../src/cli/runMain.ts"
import { layer, WorkerPool } from "../src/workers/WorkerPool.ts"

const { values } = parseArgs({
  options: {
    task: { type: "string" }, seed: { type: "string", default: "1" }, want: { type: "string", default: "6" },
    max: { type: "string", default: "300" }, workers: { type: "string", default: "2" }
  }
})
if (values.task === undefined) throw new Error("--task is required")
const task = values.task
const want = Number(values.want), max = Number(values.max), workers = Number(values.workers)

const program = Effect.gen(function* () {
  const pool = yield* WorkerPool
  const { branches } = yield* taskInfo({ task, metric: null, options: {} })
  const rng = new Rng(Number(values.seed))
  const seen = new Set<string>()
  const kept: Array<{ index: number; text: string; score: number }> = []
  let index = 0
  // Screen in batches of `workers`, then keep passes in draw order: deterministic under any timing.
  while (kept.length < want && index < max) {
    const batch: Array<{ index: number; graph: LossGraph }> = []
    while (batch.length < workers && index < max) {
      const graph = randomLoss(branches, rng)
      const i = index++
      const hash = hashLoss(graph)
      if (seen.has(hash) || !staticCheck(graph).ok) continue
      seen.add(hash)
      batch.push({ index: i, graph })
    }
    const results = yield* Effect.forEach(batch, (c) =>
      pool.submit("eval-loss", { task, metric: null, seed: 0, options: {}, loss: toWire(c.graph) }).pipe(
        Effect.map((out) => decodeScreen(out, branches.map((b) => b.name)))
      ), { concurrency: "unbounded" })
    batch.forEach((c, j) => {
      const r = results[j]!
      process.stderr.write(`#${c.index} ${r.passed ? "pass" : "reject"} ${r.score.toFixed(2)} ${printLoss(c.graph)}\n`)
      if (r.passed && kept.length < want) kept.push({ index: c.index, text: printLoss(c.graph), score: r.score })
    })
  }
  for (const k of kept) process.stdout.write(JSON.stringify(k) + "\n")
  process.stderr.write(`${kept.length} of ${index} drawn losses kept\n`)
}).pipe(Effect.provide(layer({ local: { devices: Array.from({ length: workers }, () => "cpu") } })))

process.exitCode = await runMain(program)
