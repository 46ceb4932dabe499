/**
 * The task's handcrafted baseline screened as a candidate is, for its gradient-equivalence key: the
 * held-out selection sets aside losses with the same key, the baseline rediscovered
 * (`selection.ts` `pickFinalists`).
 */
import { Effect } from "effect"
import { hashLoss } from "../graph/canonical.ts"
import { printLoss } from "../graph/syntax.ts"
import type { LossGraph } from "../graph/types.ts"
import { type EquivalenceMode, equivalenceKey } from "./equivalence.ts"
import { type Candidate, Evaluator, summariseBranches } from "./evaluator.ts"
import type { SearchFlags } from "./scheduler.ts"

/** The id the baseline's screening job carries (never a proposal's: those count from 0). */
export const BASELINE_SCREEN_ID = -1

/**
 * The baseline's key over `branches` (the searched ones, in the task's order), computed as a
 * candidate's is: every branch screened on the run's rejection samples, the branch results
 * summarised in that order. Null when the run keys no losses (`flags`), the task sent no baseline
 * or one over other branches, or its screening failed: then nothing is set aside, which is what
 * selections did before the key existed.
 */
export const baselineKey = (
  baseline: LossGraph | null,
  branches: ReadonlyArray<string>,
  flags: SearchFlags,
  mode: EquivalenceMode
): Effect.Effect<string | null, never, Evaluator> =>
  Effect.gen(function* () {
    if (baseline === null || !flags.needsRejection || !flags.useEquivalence) return null
    const names = baseline.branches.map((b) => b.name)
    if (names.join("\u0000") !== branches.join("\u0000")) return null
    const evaluator = yield* Evaluator
    const candidate: Candidate = { id: BASELINE_SCREEN_ID, graph: baseline, hash: hashLoss(baseline), text: printLoss(baseline) }
    const screened = yield* evaluator.screen(candidate, names)
    return equivalenceKey(summariseBranches(names.map((n) => screened.branches[n]!)), mode)
  }).pipe(Effect.catchTag("EvaluatorError", () => Effect.succeed(null)))
