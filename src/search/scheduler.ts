/**
 * A scheduler decides which loss to try next and learns from the outcomes; the engine does the
 * rest (checks, workers, storage, concurrency). Write your own by implementing `Scheduler`; see
 * `AgingEvolution` (the paper's search) and `examples/custom-scheduler.ts` (a small hill climber).
 *
 * Calls, and when the engine makes them (one fiber, never concurrently):
 * - `propose(ctx)`: when the engine has room for another candidate. Return a proposal, or `WAIT`
 *   when you cannot decide before more outcomes arrive (the engine then delivers the next pending
 *   verdict or outcome and asks again).
 * - `admit(event)`: once per proposal, in proposal order, with its screening verdict (static
 *   rejection, rejected by the protocol, passed, or `unscreened` when `flags.needsRejection` is
 *   false) and each branch's own verdict. Return true to spend a proxy evaluation on it (or reuse
 *   an equivalent one's score).
 * - `observe(outcome)`: once per admitted candidate, in admission order, with its proxy score.
 *
 * Determinism: the engine fixes the interleaving of these calls as a function of the outcomes only
 * (never of timing), so a scheduler whose randomness all comes from its injected `Rng` makes the
 * same proposals for the same seed and the same stream of outcomes. `snapshot()` must capture
 * everything that influences future calls (including the Rng state) as plain JSON, and
 * `restore(snapshot())` must continue identically.
 */
import type { BranchChange } from "../graph/mutate.ts"
import type { BranchKind, LossGraph } from "../graph/types.ts"

/** How a proposal was made: from scratch (`parentId` null) or as an offspring of an earlier candidate. */
export interface Provenance {
  readonly parentId: number | null
  /** "random", the per-branch changes of `offspring`, or a label of your own. */
  readonly how: string | ReadonlyArray<BranchChange>
}

export interface Proposal {
  readonly graph: LossGraph
  readonly provenance: Provenance
}

/** Returned by `propose` to ask for more outcomes first. */
export const WAIT = "wait" as const
export type Wait = typeof WAIT

export interface ProposeContext {
  /** The id the proposal will get (proposal index, from 0). */
  readonly id: number
}

/** What screening said of one branch (multi-branch losses are checked branch by branch). */
export type BranchVerdict =
  | { readonly kind: "static_rejected"; readonly reason: string }
  | { readonly kind: "rejected"; readonly score: number; readonly invalid: boolean }
  | { readonly kind: "passed"; readonly score: number }

/**
 * A candidate's verdict: it passes iff every branch passes. `branches` holds every branch's own
 * verdict, so a scheduler can keep the branches that passed and redraw only the others (paper,
 * App. A.2: initialisation, mutation and rejection run per branch). `static_rejected` names the
 * first hopeless branch; the other branches were still screened.
 */
export type ScreenVerdict =
  | {
    readonly kind: "static_rejected"
    readonly branch: string
    readonly reason: string
    readonly branches: Readonly<Record<string, BranchVerdict>>
  }
  | {
    readonly kind: "rejected"
    readonly score: number
    readonly invalid: boolean
    readonly branches: Readonly<Record<string, BranchVerdict>>
  }
  | { readonly kind: "passed"; readonly score: number; readonly branches: Readonly<Record<string, BranchVerdict>> }
  | { readonly kind: "unscreened" }

export interface ScreenedEvent {
  readonly id: number
  readonly graph: LossGraph
  readonly verdict: ScreenVerdict
}

/** The final result of an admitted candidate. */
export interface Outcome {
  readonly id: number
  readonly graph: LossGraph
  /** The proxy target metric; `WORST_SCORE` for an invalid (NaN/Inf) loss. */
  readonly score: number
  readonly invalid: boolean
  /** Where the score came from: a proxy training, or an earlier identical/equivalent candidate. */
  readonly reused: "no" | "duplicate" | "equivalent"
}

/** Invalid losses count as evaluated with the worst possible score (paper: training stops on NaN/Inf). */
export const WORST_SCORE = -Infinity

/** Which engine stages run for this scheduler; the naive-evolution ablation turns them off. */
export interface SearchFlags {
  /** Static check + loss-rejection protocol before training. */
  readonly needsRejection: boolean
  /** Reuse the proxy score of an earlier gradient-equivalent loss instead of training. */
  readonly useEquivalence: boolean
  /** Reuse the verdict and score of an earlier structurally identical loss (same canonical hash). */
  readonly reuseDuplicates: boolean
}

export const FULL_PIPELINE: SearchFlags = { needsRejection: true, useEquivalence: true, reuseDuplicates: true }

export interface PopulationEntry {
  readonly candidateId: number
  readonly score: number
}

export interface Scheduler {
  readonly name: string
  readonly flags: SearchFlags
  propose(ctx: ProposeContext): Proposal | Wait
  admit(event: ScreenedEvent): boolean
  observe(outcome: Outcome): void
  /** The current population (oldest first) when the scheduler has one, for the store and reports. */
  population(): ReadonlyArray<PopulationEntry>
  snapshot(): unknown
  restore(state: unknown): void
}

/** What every built-in needs to generate losses: the task's branches in order, with their kinds. */
export type BranchSpec = ReadonlyArray<{ readonly name: string; readonly kind: BranchKind }>

export class SchedulerStateError extends Error {
  override readonly name = "SchedulerStateError"
}

export const passes = (v: ScreenVerdict): boolean => v.kind === "passed" || v.kind === "unscreened"

/** Scores in JSON: −∞ (invalid) has no JSON form, it is written as null. */
export const scoreToJson = (s: number): number | null => (Number.isFinite(s) ? s : null)
export const scoreFromJson = (s: unknown, where: string): number => {
  if (s === null) return WORST_SCORE
  if (typeof s !== "number") throw new SchedulerStateError(`${where}: score must be a number or null, got ${JSON.stringify(s)}`)
  return s
}
