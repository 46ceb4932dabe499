/**
 * The engine's only view of the workers: screen branches of a candidate (the loss-rejection protocol) and train
 * it (the proxy task). The real implementation wraps the worker pool; tests use a fake that is a
 * pure function of the candidate. Both must be idempotent per candidate: after a crash the engine
 * asks again for every candidate whose result had not been stored yet.
 */
import { Context, Data, type Effect } from "effect"
import type { LossGraph } from "../graph/types.ts"
import type { ScreenResult, TrainResult } from "../results/evaluation.ts"
import type { RungFidelity } from "./fidelity.ts"

// The result types live below both the search and the store; re-exported for the engine's callers.
export { type BranchScreen, type ScreenResult, summariseBranches, type TrainResult } from "../results/evaluation.ts"

/** A candidate as the evaluator sees it: `id` is the engine's proposal index, stable across resumes. */
export interface Candidate {
  readonly id: number
  readonly graph: LossGraph
  /** Structural hash (canonical form), the same for every copy of the loss. */
  readonly hash: string
  /** The loss in the text syntax, for logs. */
  readonly text: string
}

/** A job that could not produce a result at all (worker lost for good, bad payload): ends the run. */
export class EvaluatorError extends Data.TaggedError("EvaluatorError")<{
  readonly reason: "screen" | "train"
  readonly candidateId: number
  readonly detail: string
  readonly cause?: unknown
}> {
  override get message(): string {
    switch (this.reason) {
      case "screen":
        return `screening candidate ${this.candidateId} failed: ${this.detail}`
      case "train":
        return `training candidate ${this.candidateId} failed: ${this.detail}`
    }
  }
}

export interface EvaluatorService {
  /** Runs the rejection protocol on `branches` of the candidate (each with the others at ground truth). */
  readonly screen: (candidate: Candidate, branches: ReadonlyArray<string>) => Effect.Effect<ScreenResult, EvaluatorError>
  /**
   * Trains the candidate on the proxy task; `fidelity` (asha) stops after `iterations` of the full
   * schedule of `of`, continuing the rung below where the worker can. Absent: the full proxy.
   */
  readonly train: (candidate: Candidate, fidelity?: RungFidelity) => Effect.Effect<TrainResult, EvaluatorError>
}

export class Evaluator extends Context.Tag("@autoloss/Evaluator")<Evaluator, EvaluatorService>() {}

/**
 * A training outside the search, for the held-out final choice (`selection-run.ts`): a finalist or
 * the task's handcrafted baseline, from `seed`. `split: "held-out"` trains on held-out data where
 * the task generates its data from a seed (the same number seeds it); `"proxy"` keeps the search's
 * data. `iterations` null: the proxy's own.
 */
export interface HeldOutJob {
  readonly subject: { readonly kind: "baseline" } | { readonly kind: "loss"; readonly candidate: Candidate }
  readonly seed: number
  readonly split: "held-out" | "proxy"
  readonly iterations: number | null
}

export class HeldOutError extends Data.TaggedError("HeldOutError")<{
  readonly job: HeldOutJob
  readonly detail: string
  readonly cause?: unknown
}> {
  override get message(): string {
    const j = this.job
    const who = j.subject.kind === "baseline" ? "the baseline" : `candidate ${j.subject.candidate.id}`
    return `training ${who} on ${j.split === "proxy" ? "the search's" : "held-out"} seed ${j.seed} failed: ${this.detail}`
  }
}

export interface HeldOutTrainerService {
  readonly train: (job: HeldOutJob) => Effect.Effect<TrainResult, HeldOutError>
}

export class HeldOutTrainer extends Context.Tag("@autoloss/HeldOutTrainer")<HeldOutTrainer, HeldOutTrainerService>() {}
