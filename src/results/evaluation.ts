/**
 * What evaluating a candidate yields: the rejection protocol's verdict per branch and its summary,
 * and the proxy training's metrics. Below both the search (which produces them through an
 * `Evaluator`) and the store (which records and replays them), so neither imports the other for them.
 */

/** Outcome of the rejection protocol (paper §3.2) for one branch, on the B fixed rejection samples. */
export interface BranchScreen {
  /** g(L; ξ) ≥ η (η = 0.6) and no NaN/Inf during the optimisation. */
  readonly passed: boolean
  /** g(L; ξ): mean metric improvement of the optimised predictions. */
  readonly score: number
  /** ‖∂L/∂ŷ_b‖₂ per sample. */
  readonly gradNorms: ReadonlyArray<number>
  /** Gradient projected on fixed random unit directions, one row (4 numbers) per sample. */
  readonly fingerprint: ReadonlyArray<ReadonlyArray<number>>
  /** The loss or its gradient became NaN/Inf. */
  readonly invalid: boolean
}

/**
 * Outcome of one screening job: the protocol run on each requested branch (paper App. A.2: a
 * branch is checked with the other branches' predictions at their ground truth, so its verdict
 * does not depend on the other branches), and their summary (`summariseBranches`).
 */
export interface ScreenResult extends BranchScreen {
  readonly branches: Readonly<Record<string, BranchScreen>>
  readonly workerId?: string
  readonly attempt?: number
}

/**
 * One verdict for several branches, in the order given: passes iff every branch passes; score is
 * the worst branch's g; norms and fingerprint rows are concatenated branch-major (what the
 * equivalence key of a multi-branch loss is built from). The worker's `summarise` does the same.
 */
export const summariseBranches = (branches: ReadonlyArray<BranchScreen>): BranchScreen => ({
  passed: branches.every((b) => b.passed),
  score: branches.reduce((m, b) => Math.min(m, b.score), Infinity),
  gradNorms: branches.flatMap((b) => b.gradNorms),
  fingerprint: branches.flatMap((b) => b.fingerprint),
  invalid: branches.some((b) => b.invalid)
})

/** Outcome of the proxy training. */
export interface TrainResult {
  /** Every metric the task reports, 0–1 scale. */
  readonly metrics: Readonly<Record<string, number>>
  /** The metric the search maximises. */
  readonly target: number
  /** Training stopped because the loss became NaN/Inf; `target` is then meaningless. */
  readonly invalid: boolean
  readonly workerId?: string
  readonly attempt?: number
  /**
   * The step this training continued from (a higher asha rung picking up the rung below's cached
   * state); absent when it trained from step 0 (rung 0, or no cached state on that worker).
   */
  readonly resumedFrom?: number
}
