/**
 * The jobs `runSearch` forks per candidate: screening its branches, training it (at a rung), or
 * awaiting the score it reuses. Each runs in its own fiber and hands its result to the driver
 * through the candidate's Deferreds; none calls the scheduler or decides anything (the ledger
 * does), so when a job finishes never changes what the run does. A result the store already holds
 * is read back instead of asking the evaluator (resume), and a fresh one is stored before use.
 */
import { Clock, Deferred, Effect } from "effect"
import type { BranchScreen } from "./evaluator.ts"
import { EngineError, type EngineRun, type Live, liveOf, type SearchError, type Trained } from "./engine-run.ts"
import { ownedBranches, type Reuse, type Screened } from "./ledger.ts"
import { WORST_SCORE } from "./scheduler.ts"

/** Times `eff` on the Effect clock (stored with each result; TestClock drives it in tests). */
const timed = <A, E, R>(eff: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const start = yield* Clock.currentTimeMillis
    const value = yield* eff
    return { value, elapsedMs: (yield* Clock.currentTimeMillis) - start }
  })

/** Runs (or reads back) the screening job for the branches `l` owns. */
const ownStage = (r: EngineRun, l: Live): Effect.Effect<Readonly<Record<string, BranchScreen>>, SearchError> =>
  Effect.gen(function* () {
    const c = l.candidate
    const mine = ownedBranches(l.planned)
    if (mine.length === 0) return {}
    let stored = yield* r.store.screenResult(c.id)
    if (stored === undefined && l.abandoned) {
      // Replaying a finished run re-proposes what it abandoned; screening it would be wasted.
      return yield* new EngineError({ reason: "replay", detail: `candidate ${c.id} was abandoned when the run finished` })
    }
    if (stored === undefined) {
      r.calls.screen++
      const { value, elapsedMs } = yield* timed(r.evaluator.screen(c, mine))
      stored = { result: value, elapsedMs }
      yield* r.store.putScreenResult(c.id, stored)
    }
    const results = stored.result.branches
    const missing = mine.filter((name) => results[name] === undefined)
    if (missing.length > 0) {
      return yield* new EngineError({
        reason: "replay",
        detail: `the screening result of candidate ${c.id} lacks branch(es) ${missing.join(", ")}`
      })
    }
    return results
  })

/** Awaits the jobs that screen `l`'s branches (its own and earlier owners'), then judges. */
export const screenStage = (r: EngineRun, l: Live): Effect.Effect<Screened, SearchError> =>
  Effect.gen(function* () {
    yield* Deferred.complete(l.owned, ownStage(r, l))
    const results: Record<string, BranchScreen> = {}
    for (const p of l.planned.plan) {
      if ("owner" in p) results[p.name] = (yield* Deferred.await(liveOf(r, p.owner).owned))[p.name]!
    }
    return r.ledger.screened(l.planned, results)
  })

/** Trains `l` at `rung` (or reads the stored result back); rung > 0 continues the rung below. */
export const trainStage = (r: EngineRun, l: Live, rung: number): Effect.Effect<Trained, SearchError> =>
  Effect.gen(function* () {
    const c = l.candidate
    const fidelity = r.fidelityOf(rung)
    let stored = rung === 0 ? yield* r.store.trainResult(c.id) : yield* r.store.rungResult(c.id, rung)
    if (stored === undefined) {
      r.calls.train++
      const { value, elapsedMs } = yield* r.trainSlots.withPermits(1)(timed(r.evaluator.train(c, fidelity)))
      stored = { result: value, elapsedMs }
      if (rung === 0) yield* r.store.putTrainResult(c.id, stored)
      else yield* r.store.putRungResult(c.id, rung, fidelity!.iterations, stored)
    }
    const t = stored.result
    const invalid = t.invalid || !Number.isFinite(t.target)
    return { score: invalid ? WORST_SCORE : t.target, invalid, reused: "no", reusedFrom: null }
  })

/** Takes the score of the earlier admitted loss `from` once its training is done (no training of its own). */
export const reuseStage = (r: EngineRun, { from, kind }: Reuse): Effect.Effect<Trained, SearchError> =>
  Effect.gen(function* () {
    const source = liveOf(r, from).trained
    if (source === undefined) throw new Error(`engine invariant: reuse source ${from} was never admitted`)
    const t = yield* Deferred.await(source)
    return { score: t.score, invalid: t.invalid, reused: kind, reusedFrom: from }
  })
