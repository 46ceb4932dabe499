/**
 * What the verbs that proxy-train losses on local workers share (`compare`, `fidelity`): their
 * flags' checks and one training job on the pool.
 */
import { Effect } from "effect"
import { GraphSyntaxError, parseLoss } from "../graph/syntax.ts"
import type { LossGraph } from "../graph/types.ts"
import { GraphValidationError, validateLoss } from "../graph/validate.ts"
import { toWire } from "../graph/wire.ts"
import type { SeedRun } from "../report/compare.ts"
import { decodeTrain } from "../search/pool-evaluator.ts"
import { layer, WorkerPool } from "../workers/WorkerPool.ts"
import { pointAt, UsageError } from "./args.ts"

/** A loss expression from a flag, parsed and validated; a bad one is a usage error naming its column. */
export const parseExpression = (flag: string, text: string): LossGraph => {
  try {
    const g = parseLoss(text)
    validateLoss(g)
    return g
  } catch (e) {
    if (e instanceof GraphSyntaxError) {
      throw new UsageError(`${flag}: ${e.message}${pointAt(text, e.column)}`)
    }
    if (e instanceof GraphValidationError) throw new UsageError(`${flag}: ${e.message}`)
    throw e
  }
}

/** `--seeds 1,2,3`: distinct non-negative integers. */
export const parseSeeds = (text: string): number[] => {
  if (!/^\d+(,\d+)*$/.test(text)) throw new UsageError(`--seeds wants comma-separated non-negative integers, got '${text}'`)
  const seeds = text.split(",").map(Number)
  if (new Set(seeds).size !== seeds.length) throw new UsageError(`--seeds repeats a seed: '${text}'`)
  return seeds
}

export const parsePositiveInt = (flag: string, text: string): number => {
  if (!/^[1-9]\d*$/.test(text)) throw new UsageError(`${flag} wants a positive integer, got '${text}'`)
  return Number(text)
}

/** `--options JSON`: a JSON object of task options ({} when absent). */
export const parseTaskOptions = (text: string | undefined): Record<string, unknown> => {
  if (text === undefined) return {}
  let options: unknown
  try {
    options = JSON.parse(text)
  } catch (e) {
    throw new UsageError(`--options is not JSON: ${(e as Error).message}`)
  }
  if (typeof options !== "object" || options === null || Array.isArray(options)) throw new UsageError("--options must be a JSON object")
  return options as Record<string, unknown>
}

/** A pool of `workers` local CPU workers. */
export const localPool = (workers: number) => layer({ local: { devices: Array.from({ length: workers }, () => "cpu") } })

export interface TrainingJob {
  readonly task: string
  readonly metric: string | null
  readonly options: Readonly<Record<string, unknown>>
  readonly seed: number
  /** Absent: the task's hand-designed baseline. */
  readonly loss?: LossGraph
  readonly timeoutMs?: number
}

export interface TrainingRun extends SeedRun {
  /** The worker's own training time (not the time queued). */
  readonly elapsedMs: number
}

/** One proxy training on the pool (`train-loss`, or `baseline` without a loss). */
export const trainOnPool = (job: TrainingJob) => Effect.gen(function* () {
  const pool = yield* WorkerPool
  const base = { task: job.task, metric: job.metric, options: job.options, seed: job.seed }
  const submitOptions = job.timeoutMs === undefined ? {} : { timeoutMs: job.timeoutMs }
  const out = job.loss === undefined
    ? yield* pool.submit("baseline", base, submitOptions)
    : yield* pool.submit("train-loss", { ...base, loss: toWire(job.loss) }, submitOptions)
  const r = decodeTrain(out)
  const elapsed = out["elapsedMs"]
  return { seed: job.seed, metrics: r.metrics, invalid: r.invalid, elapsedMs: typeof elapsed === "number" ? elapsed : NaN } satisfies TrainingRun
})
