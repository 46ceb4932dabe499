/**
 * Runs (or resumes) one search in a run directory: the worker pool, the pool-backed evaluator, the
 * SQLite store and the engine, wired as Effect layers, plus a progress reporter. `autoloss search`
 * and `autoloss resume` are thin shells around `searchProgram`.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Data, Duration, Effect, Layer, Schedule } from "effect"
import { Rng } from "../graph/rng.ts"
import type { LossGraph } from "../graph/types.ts"
import { fromWire } from "../graph/wire.ts"
import { layer as storeLayer, Store } from "../store/Store.ts"
import { WorkerPool, layer as poolLayer, type PoolConfig } from "../workers/WorkerPool.ts"
import { AgingEvolution, NaiveEvolution } from "./aging-evolution.ts"
import { baselineKey } from "./baseline-key.ts"
import { runSearch, type SearchResult } from "./engine.ts"
import { heldOutLayer, layer as poolEvaluatorLayer } from "./pool-evaluator.ts"
import { RandomSearch } from "./random-search.ts"
import { fidelityOf, kindByName, RUN_FILE, type RunConfig, selectionOf } from "./run-config.ts"
import { confirmSeedsOf, selectionProblems, selectionTotal } from "./selection.ts"
import { runSelection, type SelectionOutcome } from "./selection-run.ts"

export { RUN_FILE }
import type { BranchSpec, Scheduler } from "./scheduler.ts"

export interface WorkerSetup {
  /** Local workers to spawn, one per device ("cpu", "cuda:0", ...); may be empty with `endpoint`. */
  readonly devices: ReadonlyArray<string>
  /** tcp://HOST:PORT to accept remote workers (CURVE keys in the run directory); default ipc. */
  readonly endpoint?: string
  readonly threads?: number
}

export type ProgressSink = (line: ProgressLine) => void

export interface ProgressLine {
  readonly elapsedS: number
  readonly counters: Readonly<Record<string, number>>
  readonly budget: number
  readonly best: { readonly id: number; readonly score: number; readonly text: string } | null
  /** Held-out trainings stored, and planned (an estimate until the finalists are known); null: no selection. */
  readonly selection: { readonly done: number; readonly total: number } | null
  readonly done: boolean
}

export const writeRunFile = (dir: string, config: RunConfig): void => {
  mkdirSync(dir, { recursive: true })
  const path = join(dir, RUN_FILE)
  if (existsSync(path)) {
    const stored = readFileSync(path, "utf8")
    if (stored !== JSON.stringify(config, null, 2) + "\n") {
      throw new Error(`${path} holds a different run; resume it with 'autoloss resume ${dir}' or choose another --out`)
    }
    return
  }
  writeFileSync(path, JSON.stringify(config, null, 2) + "\n")
}

export const readRunFile = (dir: string): RunConfig => {
  const path = join(dir, RUN_FILE)
  if (!existsSync(path)) throw new Error(`${path} not found: not a search run directory`)
  return JSON.parse(readFileSync(path, "utf8")) as RunConfig
}

const makeScheduler = (config: RunConfig, branches: BranchSpec): Scheduler => {
  const rng = new Rng(config.seed)
  const evolution = {
    initialPopulation: config.initialPopulation,
    populationSize: config.populationSize,
    tournamentPercent: config.tournamentPercent
  }
  switch (config.scheduler) {
    case "aging":
      return new AgingEvolution(branches, rng, evolution)
    case "naive":
      return new NaiveEvolution(branches, rng, evolution)
    case "random":
      return new RandomSearch(branches, rng)
  }
}

export interface TaskInfo {
  readonly branches: BranchSpec
  /** The metric the search maximises (the task's default when none was given). */
  readonly metric: string
  /** The `data_seed` option the task's data is generated from; null: its data has no seed option. */
  readonly dataSeed: number | null
  /** The proxy's training iterations (with the run's options); null: the task does not say. */
  readonly iterations: number | null
  /** The task's handcrafted baseline over the searched branches; null: the task sent none the graph reads. */
  readonly baseline: LossGraph | null
}

/** The task-info's `baseline` as a graph; null when absent or not a loss this build reads (an older worker, a custom task). */
const baselineGraph = (wire: unknown): LossGraph | null => {
  if (wire === undefined || wire === null) return null
  try {
    return fromWire(wire)
  } catch {
    return null
  }
}

/** Asks a worker what the task is (branches with kinds, metric, data seed), so no task table lives in TS. */
export const taskInfo = (config: Pick<RunConfig, "task" | "metric" | "options">) =>
  Effect.gen(function* () {
    const pool = yield* WorkerPool
    const info = yield* pool.submit("task-info", { task: config.task, metric: config.metric, options: config.options })
    const branches = info["branches"]
    if (!Array.isArray(branches) || branches.length === 0) {
      return yield* Effect.dieMessage(`task-info for '${config.task}' returned no branches`)
    }
    const dataSeed = info["dataSeed"]
    const iterations = info["iterations"]
    return {
      branches: branches.map((b: { name: string; kind: string }) => ({ name: b.name, kind: kindByName(b.kind) })),
      metric: String(info["metric"]),
      dataSeed: typeof dataSeed === "number" ? dataSeed : null,
      iterations: typeof iterations === "number" ? iterations : null,
      baseline: baselineGraph(info["baseline"])
    } satisfies TaskInfo
  })

/** A held-out seed the search uses too, found once the task says which data seed it uses. */
export class SelectionSeedError extends Data.TaggedError("SelectionSeedError")<{ readonly detail: string }> {
  override get message(): string {
    return `${this.detail} (choose others with --holdout-seeds)`
  }
}

const reportProgress = (config: RunConfig, sink: ProgressSink, started: number, done: boolean) =>
  Effect.gen(function* () {
    const store = yield* Store
    const counters = yield* store.counters()
    const population = yield* store.population()
    let best: ProgressLine["best"] = null
    for (const p of population) if (best === null || p.score > best.score) best = { id: p.candidateId, score: p.score, text: "" }
    if (best !== null) {
      const id = best.id
      const row = (yield* store.candidates()).find((c) => c.id === id)
      best = { ...best, text: row?.text ?? "" }
    }
    const settings = selectionOf(config)
    const plan = yield* store.selection()
    const finalists = plan?.finalists.length ?? settings.top
    const selection = settings.top === 0
      ? null
      : { done: (yield* store.holdoutRuns()).length, total: selectionTotal(finalists, settings.seeds, confirmSeedsOf(settings)) }
    sink({ elapsedS: (Date.now() - started) / 1000, counters, budget: config.budget, best, selection, done })
  })

export const searchProgram = (dir: string, config: RunConfig, workers: WorkerSetup, sink: ProgressSink) => {
  const pool: PoolConfig = {
    endpoint: workers.endpoint ?? "ipc",
    runDir: dir,
    local: { devices: workers.devices, threads: workers.threads ?? 1 }
  }
  const program = Effect.gen(function* () {
    const started = Date.now()
    const poolService = yield* WorkerPool
    yield* poolService.awaitWorkers(1, "eval-loss")
    const info = yield* taskInfo(config)
    const selection = selectionOf(config)
    // Checked before searching: a clash found after an hour of search would waste it.
    const clash = selectionProblems(selection, [config.seed, ...(info.dataSeed === null ? [] : [info.dataSeed])])
    if (clash.length > 0) return yield* new SelectionSeedError({ detail: clash.join("; ") })
    const scheduler = makeScheduler(config, info.branches)
    // Progress every 2 s from the store (the single source of truth), off the engine's fiber.
    yield* reportProgress(config, sink, started, false).pipe(
      Effect.catchAll(() => Effect.void),
      Effect.repeat(Schedule.spaced(Duration.seconds(2))),
      Effect.forkScoped
    )
    const result: SearchResult = yield* runSearch(scheduler, {
      config: {
        budget: config.budget,
        screenWindow: config.screenWindow,
        trainConcurrency: config.trainConcurrency,
        trainLag: config.trainConcurrency,
        equivalence: config.equivalence,
        maxCandidates: config.maxCandidates,
        fidelity: fidelityOf(config),
        proxyIterations: info.iterations
      },
      run: config
    })
    // The baseline's equivalence key, once: a resumed selection keeps the one it stored (null in
    // selections made before the key existed), so its finalists are replayed unchanged.
    const stored = selection.top === 0 ? undefined : yield* (yield* Store).selection()
    const key = selection.top === 0
      ? null
      : stored !== undefined
      ? stored.baselineKey
      : yield* baselineKey(info.baseline, info.branches.map((b) => b.name), scheduler.flags, config.equivalence)
    // The held-out choice: every worker trains, the search's training limit no longer applies.
    const selected: SelectionOutcome = yield* runSelection(selection, {
      metric: info.metric,
      searchSeed: config.seed,
      concurrency: Math.max(config.trainConcurrency, workers.devices.length),
      baselineKey: key
    }).pipe(Effect.provide(heldOutLayer(job, info.dataSeed !== null)))
    yield* reportProgress(config, sink, started, true)
    return { search: result, selection: selected }
  })
  const job = { task: config.task, metric: config.metric, seed: config.seed, options: config.options }
  const evaluator = poolEvaluatorLayer(config.screenBatch === undefined ? job : { ...job, screenBatch: config.screenBatch })
  const services = Layer.mergeAll(Layer.provideMerge(evaluator, poolLayer(pool)), storeLayer(dir))
  return Effect.scoped(program).pipe(Effect.provide(services))
}

