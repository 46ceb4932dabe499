/**
 * `autoloss fidelity --task T [--metric M] [--panel FILE] [--seeds 1,2] [--long-factor 5]
 *   [--iterations N] [--option K=V] [--workers N] [--out DIR] [--json]`: how faithfully the task's
 * proxy ranks losses. Trains every loss of a calibration panel at the proxy budget and at
 * long-factor × its iterations (same recipe otherwise: only the task option `iterations` differs),
 * from each seed, on local workers, and reports per loss the proxy and long scores (mean ± sd) and
 * over the panel Kendall τ, Spearman ρ, top-k retrieval and the regret of the proxy's pick
 * (`src/report/fidelity.ts`). Every finished training is stored in `DIR/fidelity.db` at once: run the
 * same command again after an interruption and only the missing trainings run. Writes
 * `DIR/fidelity.json` and `DIR/fidelity.html`. Exit: 0 done, 1 a training or the store failed,
 * 2 usage error.
 */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, Either } from "effect"
import { formatSummary, missingCells, planCells, summarise, summaryJson } from "../../fidelity/measure.ts"
import { branchMismatch, defaultPanelPath, loadPanel, type Panel, PanelError } from "../../fidelity/panel.ts"
import { openFidelityStore } from "../../fidelity/store.ts"
import { toWire } from "../../graph/wire.ts"
import { renderFidelityPage } from "../../report/fidelity-page.ts"
import { decodeTrain } from "../../search/pool-evaluator.ts"
import { mergeOptions } from "../../search/run-config.ts"
import type { WorkerPoolService } from "../../workers/WorkerPool.ts"
import { UsageError } from "../args.ts"
import { OPTION_FLAGS, parseJobOptions, parseSeedsFlag, parseWorkerDevices, WORKER_FLAGS } from "../job-flags.ts"
import { runWithPool } from "../pool-job.ts"
import { TASK_FLAG, TASK_JOB_FLAGS } from "../task-job.ts"
import { defineVerb, type VerbOutput } from "../verb.ts"

interface Parsed {
  readonly task: string
  readonly metric: string | null
  readonly panel: Panel
  readonly seeds: ReadonlyArray<number>
  readonly longFactor: number
  readonly iterations: number | undefined
  readonly options: Readonly<Record<string, unknown>>
  readonly out: string
  readonly json: boolean
}

const stamp = (): string => new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15)

const positiveInt = (flag: string, text: string): number => {
  if (!/^[1-9]\d*$/.test(text)) throw new UsageError(`${flag} wants a positive integer, got '${text}'`)
  return Number(text)
}

const panelFor = (file: string | undefined, task: string): Panel => {
  try {
    return loadPanel(file ?? defaultPanelPath(task), task)
  } catch (e) {
    if (e instanceof PanelError) throw new UsageError(`--panel: ${e.message}`)
    throw e
  }
}

/** One proxy training on the pool (`train-loss`, or `baseline` for the panel's baseline entry). */
const train = (pool: WorkerPoolService, job: {
  readonly task: string; readonly metric: string; readonly options: Readonly<Record<string, unknown>>
  readonly seed: number; readonly cell: ReturnType<typeof planCells>[number]; readonly timeoutMs: number
}) => {
  const base = { task: job.task, metric: job.metric, options: job.options, seed: job.seed }
  return pool.submit("train-loss", { ...base, loss: toWire(job.cell.loss.graph) }, { timeoutMs: job.timeoutMs }).pipe(
    Effect.map((out) => {
      const r = decodeTrain(out)
      const elapsed = out["elapsedMs"]
      return { metrics: r.metrics, invalid: r.invalid, elapsedMs: typeof elapsed === "number" ? elapsed : NaN }
    })
  )
}

const program = (p: Parsed, io: VerbOutput) => (pool: WorkerPoolService) => Effect.gen(function* () {
  const say = (line: string) => Effect.sync(() => io.stderr(`autoloss fidelity: ${line}\n`))
  const info = yield* pool.submit("task-info", { task: p.task, metric: p.metric, options: p.options })
  const mismatch = branchMismatch(p.panel, info["branches"] as ReadonlyArray<{ name: string; kind: string }>)
  if (mismatch !== null) return yield* Effect.fail(new Error(mismatch))
  const metric = String(info["metric"])
  const proxyIterations = p.iterations ?? Number(info["iterations"])
  if (!Number.isInteger(proxyIterations) || proxyIterations < 1) {
    return yield* Effect.fail(new Error(`task '${p.task}' reports no proxy iterations: pass --iterations`))
  }
  const longIterations = proxyIterations * p.longFactor
  const store = yield* Effect.acquireRelease(
    Effect.try({ try: () => openFidelityStore(p.out, { task: p.task, metric, options: p.options }), catch: (e) => e as Error }),
    (s) => Effect.sync(() => s.close())
  )
  const cells = planCells(p.panel, p.seeds, proxyIterations, longIterations)
  const todo = missingCells(cells, store.cells())
  yield* say(`${p.panel.losses.length} losses × ${p.seeds.length} seed(s) × {${proxyIterations}, ${longIterations}} iterations: ` +
    `${cells.length - todo.length} of ${cells.length} trainings already stored in ${store.path}, ${todo.length} to train`)
  let done = 0
  const results = yield* Effect.forEach(todo, (cell) =>
    train(pool, {
      task: p.task, metric, options: { ...p.options, iterations: cell.iterations }, seed: cell.seed, cell,
      // a long training takes long-factor times the proxy's time; the pool's default would cut it
      timeoutMs: 3_600_000 * (cell.budget === "long" ? p.longFactor : 1)
    }).pipe(
      Effect.tap((r) => Effect.sync(() => {
        store.put({ ...cell, lossText: cell.loss.text, metrics: r.metrics, invalid: r.invalid, elapsedMs: r.elapsedMs, pid: process.pid, recordedAt: Date.now() })
        done++
      })),
      Effect.tap((r) => say(`[${done}/${todo.length}] ${cell.loss.name} seed ${cell.seed} ${cell.budget} (${cell.iterations} it): ` +
        `${metric} ${r.metrics[metric]?.toFixed(4)}${r.invalid ? " (stopped: non-finite loss)" : ""} in ${(r.elapsedMs / 1000).toFixed(1)} s`)),
      Effect.mapError((e) => new Error(`${cell.loss.name} seed ${cell.seed} ${cell.budget}: ${e.message}`)),
      Effect.either
    ), { concurrency: "unbounded" })
  // One failed training does not cost the others: every finished one is stored before we stop.
  const failures = results.filter(Either.isLeft).map((e) => e.left.message)
  if (failures.length > 0) {
    return yield* Effect.fail(new Error(`${failures.length} training(s) failed (the others are stored; rerun to retry):\n  ${failures.join("\n  ")}`))
  }
  const s = summarise(p.panel, p.seeds, metric, proxyIterations, longIterations, store.cells())
  const json = { ...summaryJson(p.task, s), panel_file: p.panel.path, long_factor: p.longFactor, options: p.options, trained_now: todo.length, out: p.out }
  writeFileSync(join(p.out, "fidelity.json"), JSON.stringify(json, null, 2) + "\n")
  writeFileSync(join(p.out, "fidelity.html"), renderFidelityPage(p.task, s))
  io.stdout(p.json ? JSON.stringify(json, null, 2) + "\n" : formatSummary(s) + `\n(written: ${join(p.out, "fidelity.json")}, ${join(p.out, "fidelity.html")})\n`)
}).pipe(Effect.scoped)

export const { spec, summary, run } = defineVerb({
  name: "fidelity",
  summary: "measure how well a task's proxy ranks a panel of losses against longer training (Kendall τ, top-k, regret)",
  flags: {
    ...TASK_FLAG,
    metric: TASK_JOB_FLAGS.metric,
    panel: { type: "string", value: "FILE", help: "the calibration panel (JSON: {task, losses: [{name, origin, loss}], options?}; its options, e.g. the det config it was drawn for, go under --option's)", defaultText: "the task's shipped panel, src/fidelity/panels/T.json" },
    seeds: { type: "string", default: "1,2", value: "S,S,...", help: "seeds every loss is trained from at both budgets" },
    "long-factor": { type: "string", default: "5", value: "F", help: "the long budget is F times the proxy's iterations (F ≥ 2)" },
    iterations: { type: "string", value: "N", help: "the proxy's iterations", defaultText: "the task's (or --option iterations is refused: set it here)" },
    ...WORKER_FLAGS,
    ...OPTION_FLAGS,
    out: { type: "string", value: "DIR", help: "run directory; rerun with the same DIR to resume", defaultText: "runs/fidelity-T-<time>" },
    json: { type: "boolean", default: false, help: "print the summary as JSON (also written to DIR/fidelity.json)" }
  },
  description: `
Trains every loss of the panel at the proxy budget (the task's iterations, or --iterations) and at
--long-factor times as many iterations, from each seed, on local workers, and compares the two
rankings: Kendall τ-b and Spearman ρ between the proxy-mean and long-mean rankings; top-k retrieval
(k = ⌈panel/4⌉: of the k best by the long score, the fraction the proxy also ranks top k); regret
(best long score minus the long score of the proxy's best). Ties go to the loss listed first.
A panel whose losses do not carry the task's branches (a det panel for another config) is refused
before anything trains, naming the loss and both branch lists. Every finished training is stored in
DIR/fidelity.db at once: rerun after an interruption and only the missing trainings run. Writes DIR/fidelity.json and DIR/fidelity.html.
Exit: 0 done, 1 a training or the store failed, 2 usage error.`,
  examples: [
    "autoloss fidelity --task seg --seeds 1 --long-factor 3 --workers 2 --out runs/fid-seg",
    "autoloss fidelity --task pose --panel my-panel.json --iterations 100 --option threads=1 --json",
    "autoloss fidelity --task det --panel src/fidelity/panels/det-fcos.json --seeds 1,2"
  ]
}, async ({ values }, io) => {
  const cliOptions = parseJobOptions(values)
  if ("iterations" in cliOptions) throw new UsageError("--option/--options set iterations per budget themselves: use --iterations for the proxy's")
  const panel = panelFor(values.panel, values.task)
  const options = mergeOptions(panel.options, cliOptions)  // the panel's (its config) under the command line's, key by key
  const longFactor = positiveInt("--long-factor", values["long-factor"])
  if (longFactor < 2) throw new UsageError("--long-factor must be at least 2 (the long run must be longer than the proxy)")
  const parsed: Parsed = {
    task: values.task, metric: values.metric ?? null, panel, seeds: parseSeedsFlag("--seeds", values.seeds), longFactor,
    iterations: values.iterations === undefined ? undefined : positiveInt("--iterations", values.iterations),
    options, out: values.out ?? join("runs", `fidelity-${values.task}-${stamp()}`), json: values.json
  }
  return runWithPool("fidelity", parseWorkerDevices(values, 2), program(parsed, io), io)
})
