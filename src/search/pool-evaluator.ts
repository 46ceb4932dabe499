/**
 * The real `Evaluator`: screening and proxy training become `eval-losses` / `train-loss` jobs on
 * the worker pool (see `python_workers/autoloss_worker/task_jobs.py` for the payload and result).
 * Screening requests are micro-batched (`screen-batcher.ts`): up to `screenBatch` candidates per
 * `eval-losses` job, at most one batch out per worker; `screenBatch: 1` sends one `eval-loss` job
 * per candidate instead. A verdict does not depend on its batch. The rejection samples are drawn
 * from `seed`, so every candidate of a run is checked on the same B samples, as the paper requires.
 */
import { Either, Effect, Layer } from "effect"
import { toWire } from "../graph/wire.ts"
import { type TracedResult, WorkerPool, type WorkerPoolService } from "../workers/WorkerPool.ts"
import type { RungFidelity } from "./fidelity.ts"
import {
  type BranchScreen,
  type Candidate,
  Evaluator,
  EvaluatorError,
  HeldOutError,
  type HeldOutJob,
  HeldOutTrainer,
  type ScreenResult,
  type TrainResult
} from "./evaluator.ts"
import { makeBatcher } from "./screen-batcher.ts"

export interface TaskJobConfig {
  readonly task: string
  /** null: the task's default metric. */
  readonly metric: string | null
  readonly seed: number
  /** Task options (`SegOptions`/`PoseOptions` fields) and, under `rejection`, protocol constants. */
  readonly options?: Readonly<Record<string, unknown>>
  /** Per-attempt timeouts (ms). */
  readonly screenTimeoutMs?: number
  readonly trainTimeoutMs?: number
  /** Candidates per screening job at most (default `DEFAULT_SCREEN_BATCH`); 1: one `eval-loss` job each. */
  readonly screenBatch?: number
}

export const DEFAULT_SCREEN_BATCH = 16

type Json = Readonly<Record<string, unknown>>

const finiteOrNaN = (v: unknown): number => (typeof v === "number" ? v : Number.NaN)

const field = <T>(out: Json, name: string, check: (v: unknown) => v is T, what: string): T => {
  const v = out[name]
  if (!check(v)) throw new Error(`result field '${name}' must be ${what}, got ${JSON.stringify(v)}`)
  return v
}
/** An optional field: absent or null reads as undefined; anything else must pass `check`. */
const optionalField = <T>(out: Json, name: string, check: (v: unknown) => v is T, what: string): T | undefined =>
  out[name] === undefined || out[name] === null ? undefined : field(out, name, check, `null or ${what}`)
const isBool = (v: unknown): v is boolean => typeof v === "boolean"
const isNum = (v: unknown): v is number => typeof v === "number"
const isArray = (v: unknown): v is ReadonlyArray<unknown> => Array.isArray(v)
const isRecord = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v)
const isStep = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0

const decodeBranch = (out: Json, where: string): BranchScreen => ({
  passed: field(out, "passed", isBool, `a boolean (${where})`),
  score: field(out, "score", isNum, `a number (${where})`),
  invalid: field(out, "invalid", isBool, `a boolean (${where})`),
  gradNorms: field(out, "gradNorms", isArray, `an array (${where})`).map(finiteOrNaN),
  fingerprint: field(out, "fingerprint", isArray, `an array of rows (${where})`).map((row, i) => {
    if (!Array.isArray(row)) throw new Error(`result field 'fingerprint[${i}]' must be an array (${where})`)
    return row.map(finiteOrNaN)
  })
})

/**
 * Decodes an `eval-loss` result for the requested `branches`; throws naming the bad field. The
 * worker's whole-loss fields already combine exactly the requested branches (`rejection.combine`),
 * so they are read as they are.
 */
export const decodeScreen = (out: Json, requested: ReadonlyArray<string>): ScreenResult => {
  const perBranch = field(out, "branches", isRecord, "a map of branch results")
  const branches: Record<string, BranchScreen> = {}
  for (const name of requested) {
    const r = perBranch[name]
    if (!isRecord(r)) throw new Error(`result field 'branches.${name}' is missing (asked for ${requested.join(", ")})`)
    branches[name] = decodeBranch(r, `branch ${name}`)
  }
  return { ...decodeBranch(out, "the whole loss"), branches }
}

/** Decodes a `train-loss` result; throws naming the bad field. */
export const decodeTrain = (out: Json): TrainResult => {
  const metrics = field(out, "metrics", isRecord, "a map of metric values")
  const clean: Record<string, number> = {}
  for (const [k, v] of Object.entries(metrics)) clean[k] = finiteOrNaN(v)
  const resumedFrom = optionalField(out, "resumedFrom", isStep, "a step number")
  return {
    metrics: clean,
    target: finiteOrNaN(out["target"]),
    invalid: field(out, "invalid", isBool, "a boolean"),
    ...(resumedFrom === undefined ? {} : { resumedFrom })
  }
}

const payloadFor = (job: TaskJobConfig, candidate: Candidate, branches?: ReadonlyArray<string>) => ({
  task: job.task,
  metric: job.metric,
  seed: job.seed,
  loss: toWire(candidate.graph),
  options: job.options ?? {},
  ...(branches === undefined ? {} : { branches })
})

/**
 * The payload of a search training. With asha every rung carries `stop_at` (its iterations of the
 * task's full schedule), the top rung too: the worker then continues from the state it cached at
 * the rung below (every shipped task) instead of training the full proxy from step 0 again; the
 * result equals a training without fidelity (`test_train_state.py`). Full fidelity sends none.
 */
export const trainPayload = (job: TaskJobConfig, candidate: Candidate, fidelity?: RungFidelity) => ({
  ...payloadFor(job, candidate),
  ...(fidelity === undefined ? {} : { fidelity: { stop_at: fidelity.iterations } })
})

const run = <A>(
  reason: "screen" | "train",
  candidate: Candidate,
  submitted: Effect.Effect<TracedResult, { readonly message: string }>,
  decode: (out: Json) => A
): Effect.Effect<A & { readonly workerId: string; readonly attempt: number }, EvaluatorError> =>
  submitted.pipe(
    Effect.mapError((e) => new EvaluatorError({ reason, candidateId: candidate.id, detail: e.message, cause: e })),
    Effect.flatMap((out) =>
      Effect.try({
        try: () => ({ ...decode(out.payload), workerId: out.workerId, attempt: out.attempt }),
        catch: (e) => new EvaluatorError({ reason, candidateId: candidate.id, detail: String(e), cause: e })
      })
    )
  )

interface ScreenRequest {
  readonly candidate: Candidate
  readonly branches: ReadonlyArray<string>
}

/** The `eval-losses` payload of a batch: the run's context once, then each loss and its branches. */
export const batchPayload = (job: TaskJobConfig, batch: ReadonlyArray<ScreenRequest>) => ({
  task: job.task,
  metric: job.metric,
  seed: job.seed,
  options: job.options ?? {},
  losses: batch.map((r) => ({ loss: toWire(r.candidate.graph), branches: r.branches }))
})

/**
 * An `eval-losses` result as one outcome per request, in order: a decoded verdict, or the
 * `EvaluatorError` naming that candidate (the worker's per-entry error, or a bad field).
 */
export const decodeScreens = (
  out: TracedResult,
  batch: ReadonlyArray<ScreenRequest>
): ReadonlyArray<Either.Either<ScreenResult, EvaluatorError>> => {
  const fail = (r: ScreenRequest, detail: string, cause?: unknown) =>
    Either.left(new EvaluatorError({ reason: "screen", candidateId: r.candidate.id, detail, cause }))
  const results = out.payload["results"]
  if (!Array.isArray(results) || results.length !== batch.length) {
    const got = Array.isArray(results) ? `${results.length} results` : JSON.stringify(results)
    return batch.map((r) => fail(r, `result field 'results' must hold ${batch.length} entries, got ${got}`))
  }
  return batch.map((r, i) => {
    const entry: unknown = results[i]
    if (isRecord(entry) && typeof entry["error"] === "string") return fail(r, entry["error"])
    try {
      if (!isRecord(entry)) throw new Error(`result entry ${i} must be a map, got ${JSON.stringify(entry)}`)
      return Either.right({ ...decodeScreen(entry, r.branches), workerId: out.workerId, attempt: out.attempt })
    } catch (e) {
      return fail(r, String(e), e)
    }
  })
}

/**
 * `Evaluator.screen` through the micro-batcher: `eval-losses` jobs of up to `maxBatch` candidates,
 * at most one batch per registered worker out at once (a worker busy training holds a batch
 * in the pool's queue, where later requests cannot join it; the rest accumulate here). A batch
 * job that fails (after the pool's retries) fails each of its candidates with the job's error.
 */
export const batchedScreen = (pool: WorkerPoolService, job: TaskJobConfig, maxBatch: number) =>
  Effect.map(
    makeBatcher<ScreenRequest, ScreenResult, EvaluatorError>({
      maxBatch,
      maxInFlight: Effect.map(pool.stats, (s) => s.workers),
      submit: (batch) =>
        pool.submitTraced("eval-losses", batchPayload(job, batch), { timeoutMs: (job.screenTimeoutMs ?? 120_000) * batch.length }).pipe(
          Effect.map((out) => decodeScreens(out, batch)),
          Effect.catchAll((e) =>
            Effect.succeed(batch.map((r) =>
              Either.left(new EvaluatorError({ reason: "screen", candidateId: r.candidate.id, detail: e.message, cause: e }))
            ))
          )
        ),
      lost: (r, why) => new EvaluatorError({ reason: "screen", candidateId: r.candidate.id, detail: why })
    }),
    (batcher) => (candidate: Candidate, branches: ReadonlyArray<string>) => batcher.run({ candidate, branches })
  )

/**
 * The payload of a held-out training: `seed` initialises the network and orders the batches; on the
 * held-out split it also replaces the task's `data_seed` when the task has one (`dataSeeded`, from
 * task-info), so the data is new too; `iterations` overrides the proxy's length.
 */
export const heldOutPayload = (job: TaskJobConfig, h: HeldOutJob, dataSeeded: boolean) => ({
  task: job.task,
  metric: job.metric,
  seed: h.seed,
  options: seededOptions(job.options ?? {}, h.seed, { iterations: h.iterations, newData: dataSeeded && h.split === "held-out" }),
  ...(h.subject.kind === "loss" ? { loss: toWire(h.subject.candidate.graph) } : {})
})

/**
 * A training's task options on one seed: `iterations` (when not null) overrides the proxy's length;
 * with `newData` the task's `data_seed` becomes the seed, so the data is new too. Shared by the
 * held-out runs and `compare --new-data`, which must send the same payload.
 */
export const seededOptions = (
  options: Readonly<Record<string, unknown>>,
  seed: number,
  how: { readonly iterations: number | null; readonly newData: boolean }
): Record<string, unknown> => ({
  ...options,
  ...(how.iterations === null ? {} : { iterations: how.iterations }),
  ...(how.newData ? { data_seed: seed } : {})
})

/** Held-out trainings as `train-loss` / `baseline` jobs on the pool. */
export const heldOutLayer = (job: TaskJobConfig, dataSeeded: boolean): Layer.Layer<HeldOutTrainer, never, WorkerPool> =>
  Layer.effect(
    HeldOutTrainer,
    Effect.gen(function* () {
      const pool = yield* WorkerPool
      return HeldOutTrainer.of({
        train: (h) =>
          pool.submitTraced(h.subject.kind === "loss" ? "train-loss" : "baseline", heldOutPayload(job, h, dataSeeded), {
            timeoutMs: job.trainTimeoutMs ?? 1_800_000
          }).pipe(
            Effect.mapError((e) => new HeldOutError({ job: h, detail: e.message, cause: e })),
            Effect.flatMap((out) =>
              Effect.try({
                try: () => ({ ...decodeTrain(out.payload), workerId: out.workerId, attempt: out.attempt }),
                catch: (e) => new HeldOutError({ job: h, detail: String(e), cause: e })
              })
            )
          )
      })
    })
  )

export const layer = (job: TaskJobConfig): Layer.Layer<Evaluator, never, WorkerPool> =>
  Layer.scoped(
    Evaluator,
    Effect.gen(function* () {
      const pool = yield* WorkerPool
      const screenBatch = job.screenBatch ?? DEFAULT_SCREEN_BATCH
      const batched = screenBatch > 1 ? yield* batchedScreen(pool, job, screenBatch) : null
      return Evaluator.of({
        screen: (candidate, branches) =>
          batched !== null
            ? batched(candidate, branches)
            : run(
              "screen",
              candidate,
              pool.submitTraced("eval-loss", payloadFor(job, candidate, branches), { timeoutMs: job.screenTimeoutMs ?? 120_000 }),
              (out) => decodeScreen(out, branches)
            ),
        train: (candidate, fidelity) =>
          run(
            "train",
            candidate,
            pool.submitTraced("train-loss", trainPayload(job, candidate, fidelity), { timeoutMs: job.trainTimeoutMs ?? 1_800_000 }),
            decodeTrain
          )
      })
    })
  )
