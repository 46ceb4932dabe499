/**
 * The real `Evaluator`: screening and proxy training become `eval-loss` / `train-loss` jobs on the
 * worker pool (see `python_workers/autoloss_worker/task_jobs.py` for the payload and result). The
 * rejection samples are drawn from `seed`, so every candidate of a run is checked on the same B
 * samples, as the paper requires.
 */
import { Effect, Layer } from "effect"
import { toWire } from "../graph/wire.ts"
import { type TracedResult, WorkerPool } from "../workers/WorkerPool.ts"
import { type Candidate, Evaluator, EvaluatorError, type ScreenResult, type TrainResult } from "./evaluator.ts"

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
}

type Json = Readonly<Record<string, unknown>>

const finiteOrNaN = (v: unknown): number => (typeof v === "number" ? v : Number.NaN)

const field = <T>(out: Json, name: string, check: (v: unknown) => v is T, what: string): T => {
  const v = out[name]
  if (!check(v)) throw new Error(`result field '${name}' must be ${what}, got ${JSON.stringify(v)}`)
  return v
}
const isBool = (v: unknown): v is boolean => typeof v === "boolean"
const isNum = (v: unknown): v is number => typeof v === "number"
const isArray = (v: unknown): v is ReadonlyArray<unknown> => Array.isArray(v)
const isRecord = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v)

/** Decodes an `eval-loss` result; throws naming the bad field. */
export const decodeScreen = (out: Json): ScreenResult => ({
  passed: field(out, "passed", isBool, "a boolean"),
  score: field(out, "score", isNum, "a number"),
  invalid: field(out, "invalid", isBool, "a boolean"),
  gradNorms: field(out, "gradNorms", isArray, "an array").map(finiteOrNaN),
  fingerprint: field(out, "fingerprint", isArray, "an array of rows").map((row, i) => {
    if (!Array.isArray(row)) throw new Error(`result field 'fingerprint[${i}]' must be an array`)
    return row.map(finiteOrNaN)
  })
})

/** Decodes a `train-loss` result; throws naming the bad field. */
export const decodeTrain = (out: Json): TrainResult => {
  const metrics = field(out, "metrics", isRecord, "a map of metric values")
  const clean: Record<string, number> = {}
  for (const [k, v] of Object.entries(metrics)) clean[k] = finiteOrNaN(v)
  return {
    metrics: clean,
    target: finiteOrNaN(out["target"]),
    invalid: field(out, "invalid", isBool, "a boolean")
  }
}

const payloadFor = (job: TaskJobConfig, candidate: Candidate) => ({
  task: job.task,
  metric: job.metric,
  seed: job.seed,
  loss: toWire(candidate.graph),
  options: job.options ?? {}
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

export const layer = (job: TaskJobConfig): Layer.Layer<Evaluator, never, WorkerPool> =>
  Layer.effect(
    Evaluator,
    Effect.gen(function* () {
      const pool = yield* WorkerPool
      return Evaluator.of({
        screen: (candidate) =>
          run(
            "screen",
            candidate,
            pool.submitTraced("eval-loss", payloadFor(job, candidate), { timeoutMs: job.screenTimeoutMs ?? 120_000 }),
            decodeScreen
          ),
        train: (candidate) =>
          run(
            "train",
            candidate,
            pool.submitTraced("train-loss", payloadFor(job, candidate), { timeoutMs: job.trainTimeoutMs ?? 1_800_000 }),
            decodeTrain
          )
      })
    })
  )
