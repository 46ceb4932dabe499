/**
 * The random part of a fidelity calibration panel: the first `--want` losses of a task's seeded
 * random stream (the search's initialisation: `randomLoss` over the task's branches, `Rng(seed)`,
 * exactly what `autoloss random --seed S --branches ...` prints) that pass the static check and
 * the loss-rejection protocol (`eval-loss` jobs on the worker pool, the task's default options).
 * Kept in stream order whatever order the jobs finish in, so the same command gives the same losses.
 *
 * Run: `npx tsx bench/fidelity-panel.ts --task pose --seed 1 --want 6 [--max 300] [--workers 2]`
 * → one JSON line per passing loss on stdout: {"index", "text", "score"}; progress on stderr.
 *
 * `--per-branch` (multi-branch tasks such as det): a random loss passes only when every branch
 * does, which for four branches is too rare to sample. Instead each branch of each draw is screened
 * alone (`--option branches=<name>`, the other branches at ground truth as the protocol has them),
 * and the first `--want` passing subtrees per branch are kept, in draw order → one JSON line per
 * kept subtree: {"branch", "index", "text", "score"}. The panel composes losses from them.
 * `--branches a,b` (with `--per-branch`): screen only those branches of each draw (the panel varies
 * them and keeps the others at the baseline); the draws themselves are the same stream.
 * `--option K=V` / `--options JSON`: task options for every job (a det panel on another config:
 * `--option config=python_workers/autoloss_worker/configs/det_fcos_shapes.py`); they also decide
 * the branches drawn.
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
import { parseJobOptions } from "../src/cli/job-flags.ts"
import { runMain } from "../src/cli/runMain.ts"
import { layer, WorkerPool } from "../src/workers/WorkerPool.ts"

const { values } = parseArgs({
  options: {
    task: { type: "string" }, seed: { type: "string", default: "1" }, want: { type: "string", default: "6" },
    max: { type: "string", default: "300" }, workers: { type: "string", default: "2" },
    "per-branch": { type: "boolean", default: false }, branches: { type: "string" },
    option: { type: "string", multiple: true }, options: { type: "string" }
  }
})
if (values.task === undefined) throw new Error("--task is required")
// Checked before any worker starts (the branch names themselves need the task's workers).
if (values.branches !== undefined && !values["per-branch"]) throw new Error("--branches needs --per-branch")
const task = values.task
const want = Number(values.want), max = Number(values.max), workers = Number(values.workers)
const taskOptions = parseJobOptions(values)

type Kept = { branch?: string; index: number; text: string; score: number }

/** One screening unit: a whole drawn loss, or (per branch) one branch of it screened alone. */
interface Unit { readonly index: number; readonly graph: LossGraph; readonly branch?: string }

const program = Effect.gen(function* () {
  const pool = yield* WorkerPool
  const { branches } = yield* taskInfo({ task, metric: null, options: taskOptions })
  const rng = new Rng(Number(values.seed))
  const seen = new Set<string>()
  const kept: Array<Kept> = []
  // Per branch: what is still wanted of each branch; whole losses: one pseudo-branch "".
  const only = values.branches?.split(",").map((b) => b.trim())
  const unknown = only?.filter((b) => !branches.some((t) => t.name === b)) ?? []
  if (unknown.length > 0) throw new Error(`--branches: ${unknown.join(", ")} not among task ${task}'s branches (${branches.map((b) => b.name).join(", ")})`)
  const screened = branches.filter((b) => only === undefined || only.includes(b.name))
  const wanted = new Map(values["per-branch"] ? screened.map((b) => [b.name, want]) : [["", want]])
  const done = () => [...wanted.values()].every((n) => n === 0)
  let index = 0
  // Screen in batches of `workers`, then keep passes in draw order: deterministic under any timing.
  while (!done() && index < max) {
    const batch: Array<Unit> = []
    while (batch.length < workers && index < max) {
      const graph = randomLoss(branches, rng)
      const i = index++
      const units: Array<Unit> = values["per-branch"]
        ? graph.branches.filter((b) => (wanted.get(b.name) ?? 0) > 0).map((b) => ({ index: i, graph: { branches: [b] }, branch: b.name }))
        : [{ index: i, graph }]
      for (const u of units) {
        const hash = hashLoss(u.graph)
        if (seen.has(hash) || !staticCheck(u.graph).ok) continue
        seen.add(hash)
        batch.push(u)
      }
    }
    const results = yield* Effect.forEach(batch, (u) =>
      pool.submit("eval-loss", {
        task, metric: null, seed: 0, options: u.branch === undefined ? taskOptions : { ...taskOptions, branches: u.branch }, loss: toWire(u.graph)
      }).pipe(Effect.map((out) => decodeScreen(out, u.graph.branches.map((b) => b.name)))), { concurrency: "unbounded" })
    batch.forEach((u, j) => {
      const r = results[j]!
      const text = printLoss(u.graph)
      process.stderr.write(`#${u.index} ${r.passed ? "pass" : "reject"} ${r.score.toFixed(2)} ${text}\n`)
      const left = wanted.get(u.branch ?? "")!
      if (r.passed && left > 0) {
        wanted.set(u.branch ?? "", left - 1)
        kept.push({ ...(u.branch === undefined ? {} : { branch: u.branch }), index: u.index, text, score: r.score })
      }
    })
  }
  for (const k of kept) process.stdout.write(JSON.stringify(k) + "\n")
  process.stderr.write(`${kept.length} kept of ${index} drawn losses\n`)
}).pipe(Effect.provide(layer({ local: { devices: Array.from({ length: workers }, () => "cpu") } })))

process.exitCode = await runMain(program)
