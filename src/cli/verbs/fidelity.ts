/**
 * `autoloss fidelity --task T [--metric M] [--panel FILE] [--seeds 1,2] [--long-factor 5]
 *   [--iterations N] [--options JSON] [--workers N] [--out DIR] [--json]`: how faithfully the task's
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
import { defaultPanelPath, loadPanel, type Panel, PanelError } from "../../fidelity/panel.ts"
import { FidelityStoreError, openFidelityStore } from "../../fidelity/store.ts"
import { renderFidelityPage } from "../../report/fidelity-page.ts"
import { runMain } from "../../workers/runMain.ts"
import { WorkerPool } from "../../workers/WorkerPool.ts"
import { parseFlags, UsageError, withUsage } from "../args.ts"
import { localPool, parsePositiveInt, parseSeeds, parseTaskOptions, trainOnPool } from "../pool-training.ts"

export const summary = "measure how well a task's proxy ranks a panel of losses against longer training (Kendall τ, top-k, regret)"

const USAGE = "usage: autoloss fidelity --task T [--metric M] [--panel FILE] [--seeds 1,2] [--long-factor 5] [--iterations N]\n" +
  "         [--options JSON] [--workers N] [--out DIR] [--json]"

const HELP = `${USAGE}

Trains every loss of the panel at the proxy budget (the task's iterations, or --iterations) and at
--long-factor times as many iterations, from each seed, and compares the two rankings.
  --task T          seg, pose (the native pose task), det, ins, mmpose, mmseg
  --panel FILE      the losses (default: the task's shipped panel, src/fidelity/panels/T.json)
  --options JSON    task options shared by every training (iterations is set per budget)
  --out DIR         run directory (default runs/fidelity-T-<time>); rerun with the same DIR to resume
  --json            print the summary as JSON (also written to DIR/fidelity.json)
Statistics: Kendall τ-b and Spearman ρ between the proxy-mean and long-mean rankings; top-k retrieval
(k = ⌈panel/4⌉: of the k best by the long score, the fraction the proxy also ranks top k); regret
(best long score minus the long score of the proxy's best). Ties go to the loss listed first.`

interface Parsed {
  readonly task: string
  readonly metric: string | null
  readonly panel: Panel
  readonly seeds: ReadonlyArray<number>
  readonly longFactor: number
  readonly iterations: number | undefined
  readonly options: Readonly<Record<string, unknown>>
  readonly workers: number
  readonly out: string
  readonly json: boolean
}

const stamp = (): string => new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15)

const parse = (argv: ReadonlyArray<string>): Parsed | "help" => {
  const { values, positionals } = parseFlags({
    args: [...argv],
    strict: true,
    allowPositionals: true,
    options: {
      task: { type: "string" }, metric: { type: "string" }, panel: { type: "string" }, seeds: { type: "string", default: "1,2" },
      "long-factor": { type: "string", default: "5" }, iterations: { type: "string" }, options: { type: "string" },
      workers: { type: "string", default: "2" }, out: { type: "string" }, json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false }
    }
  })
  if (values.help) return "help"
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`)
  if (values.task === undefined) throw new UsageError("--task is required")
  const options = parseTaskOptions(values.options)
  if ("iterations" in options) throw new UsageError("--options sets iterations per budget itself: use --iterations for the proxy's")
  const longFactor = parsePositiveInt("--long-factor", values["long-factor"])
  if (longFactor < 2) throw new UsageError("--long-factor must be at least 2 (the long run must be longer than the proxy)")
  let panel: Panel
  try {
    panel = loadPanel(values.panel ?? defaultPanelPath(values.task), values.task)
  } catch (e) {
    if (e instanceof PanelError) throw new UsageError(`--panel: ${e.message}`)
    throw e
  }
  return {
    task: values.task, metric: values.metric ?? null, panel, seeds: parseSeeds(values.seeds), longFactor,
    iterations: values.iterations === undefined ? undefined : parsePositiveInt("--iterations", values.iterations),
    options, workers: parsePositiveInt("--workers", values.workers),
    out: values.out ?? join("runs", `fidelity-${values.task}-${stamp()}`), json: values.json
  }
}

const say = (line: string) => Effect.sync(() => process.stderr.write(`autoloss fidelity: ${line}\n`))

const program = (p: Parsed) => Effect.gen(function* () {
  const pool = yield* WorkerPool
  const info = yield* pool.submit("task-info", { task: p.task, metric: p.metric, options: p.options })
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
    trainOnPool({
      task: p.task, metric, options: { ...p.options, iterations: cell.iterations }, seed: cell.seed, loss: cell.loss.graph,
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
  process.stdout.write(p.json ? JSON.stringify(json, null, 2) + "\n" : formatSummary(s) + `\n(written: ${join(p.out, "fidelity.json")}, ${join(p.out, "fidelity.html")})\n`)
}).pipe(Effect.scoped, Effect.provide(localPool(p.workers)))

export const run = (argv: ReadonlyArray<string>): Promise<number> => withUsage("fidelity", USAGE, async () => {
  const parsed = parse(argv)
  if (parsed === "help") {
    process.stdout.write(HELP + "\n")
    return 0
  }
  let failed = false
  const code = await runMain(program(parsed).pipe(
    Effect.catchAll((e) => Effect.sync(() => {
      failed = true
      process.stderr.write(`autoloss fidelity: ${e instanceof FidelityStoreError ? e.message : (e as Error).message}\n`)
    }))
  ))
  return failed ? 1 : code
})
