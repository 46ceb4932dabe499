/**
 * The search loop: propose → structural-duplicate cache → static check → screen (rejection
 * protocol) → equivalence lookup → proxy training → observe, until the budget of proxy evaluations
 * is spent. Many screens and several trainings run concurrently, yet every decision is a function
 * of the seed and the results alone:
 *
 * - One driver fiber makes every scheduler call. Verdicts are delivered in proposal order, outcomes
 *   in admission order, and *when* they are delivered is fixed by counts, never by timing: before
 *   each `propose` the driver delivers verdicts until fewer than `screenWindow` proposals await
 *   theirs, then outcomes until at most `trainLag` admitted candidates await theirs (waiting for
 *   the results if need be). A `WAIT` from the scheduler delivers the next verdict (or, with none
 *   pending, the next outcome). A result that arrives early just waits for its turn.
 * - Reuse decisions are made at admission, in admission order: an admitted loss identical (same
 *   canonical hash) to, or gradient-equivalent with, an earlier admitted one takes that one's score
 *   (awaiting it if it is still training) and spends no budget.
 * - Screening is per branch (paper App. A.2: each branch is checked with the other branches at
 *   ground truth, so a branch's verdict does not depend on the others). A branch's verdict is
 *   computed once per run: the first proposal (in proposal order) containing a branch owns its
 *   screening job, later proposals with the same branch (same name and canonical form) wait for
 *   that result. Every branch of a candidate is screened even when one is statically rejected, so
 *   the scheduler learns which branches to keep and which to redraw.
 * - The budget counts proxy trainings started; once spent, no verdict is delivered anymore, the
 *   running trainings are awaited and observed, and unscreened proposals are marked abandoned.
 *
 * Durability and resume: every proposal and every result is stored before it is used, and each
 * outcome commits with the scheduler checkpoint in one transaction (`Store`). Resume re-runs the
 * same deterministic loop from the start with the same seed, serving every result the store
 * already holds instead of asking the evaluator: nothing completed is evaluated twice, a candidate
 * that was in flight at the kill is evaluated once more, and the stored checkpoint is compared
 * with the replayed one when the replay passes it (a mismatch means the code or the seed changed).
 * Replay costs only proposal generation (fast next to any screening).
 *
 * Every decision above (branch owners, reuse, counters, cursors, the verdict records, the best
 * outcome) is made by the pure `EngineLedger` (`ledger.ts`, unit-tested without fibers); this file
 * keeps the fibers, Deferreds, and the store, evaluator and scheduler calls.
 */
import { Clock, Data, Deferred, Effect, type Scope } from "effect"
import { hashLoss } from "../graph/canonical.ts"
import { printLoss } from "../graph/syntax.ts"
import type { LossGraph } from "../graph/types.ts"
import { toWire } from "../graph/wire.ts"
import { type Checkpoint, type Counters, Store, stableJson } from "../store/Store.ts"
import { StoreError } from "../store/StoreError.ts"
import { DEFAULT_EQUIVALENCE_MODE, type EquivalenceMode } from "./equivalence.ts"
import { type BranchScreen, type Candidate, Evaluator, type EvaluatorError } from "./evaluator.ts"
import { FULL_FIDELITY, type Fidelity, fidelityProblem, ladderOf, type RungFidelity, rungIterations } from "./fidelity.ts"
import { type Best, EngineLedger, type Job, type LadderState, ownedBranches, type Planned, type Reuse, type Screened, type SearchCounters } from "./ledger.ts"
import { type Outcome, type Scheduler, WAIT, WORST_SCORE } from "./scheduler.ts"
import { DEPENDENCE_ROLES, type DependenceRoles } from "./static-check.ts"

export interface EngineConfig {
  /**
   * Full-proxy equivalents after which the search stops (with full fidelity: proxy trainings
   * started); the paper uses 500.
   */
  readonly budget: number
  /** Proposals that may await their verdict at once: the screening concurrency. */
  readonly screenWindow: number
  /** Trainings that may run at once. */
  readonly trainConcurrency: number
  /** Admitted candidates that may await their outcome when the next proposal is made. */
  readonly trainLag: number
  readonly equivalence: EquivalenceMode
  /** Stop proposing after this many candidates (a safety net for schedulers that never pass); null: none. */
  readonly maxCandidates: number | null
  /** Full proxy for every admitted loss (default), or successive halving over proxy iterations (`fidelity.ts`). */
  readonly fidelity?: Fidelity
  /** The task's full proxy iterations (I_full): needed by asha fidelity, unused otherwise. */
  readonly proxyIterations?: number | null
}

export const DEFAULT_ENGINE_CONFIG: EngineConfig = {
  budget: 500,
  screenWindow: 32,
  trainConcurrency: 4,
  trainLag: 4,
  equivalence: DEFAULT_EQUIVALENCE_MODE,
  maxCandidates: null
}

export class EngineError extends Data.TaggedError("EngineError")<{
  readonly reason: "config" | "deadlock" | "scheduler" | "replay"
  readonly detail: string
  readonly cause?: unknown
}> {
  override get message(): string {
    switch (this.reason) {
      case "config":
        return `bad engine configuration: ${this.detail}`
      case "deadlock":
        return `the scheduler waits but nothing is in flight: ${this.detail}`
      case "scheduler":
        return `the scheduler failed: ${this.detail}`
      case "replay":
        return `replay needs what the stored run never computed: ${this.detail}`
    }
  }
}

export type SearchError = EngineError | EvaluatorError | StoreError

export type { SearchCounters } from "./ledger.ts"

export interface SearchResult {
  readonly counters: SearchCounters
  readonly best: Best | null
  /** The rung ladder with asha fidelity (absent with full). */
  readonly ladder?: LadderState
  /** Whether the store already held this run (a resume). */
  readonly resumed: boolean
  /** Evaluator calls made by this process (the rest were served from the store). */
  readonly evaluatorCalls: { readonly screen: number; readonly train: number }
}

export interface SearchOptions {
  readonly config?: Partial<EngineConfig>
  /** Stored with the run and compared on resume: everything that shapes the run (task, seed, options). */
  readonly run?: unknown
  readonly roles?: Readonly<Record<string, DependenceRoles>>
}

interface Trained {
  readonly score: number
  readonly invalid: boolean
  readonly reused: Outcome["reused"]
  readonly reusedFrom: number | null
}

interface Live {
  readonly candidate: Candidate
  readonly planned: Planned
  /** The stored run finished without needing this verdict; replaying it must not need it either. */
  readonly abandoned: boolean
  /** The branch verdicts of this candidate's own screening job (branches it owns). */
  readonly owned: Deferred.Deferred<Readonly<Record<string, BranchScreen>>, SearchError>
  readonly screened: Deferred.Deferred<Screened, SearchError>
  /** Its rung-0 (with full fidelity: its only) training, or the score it reuses. */
  trained?: Deferred.Deferred<Trained, SearchError>
  /** Promoted trainings by rung (asha fidelity). */
  readonly promoted: Map<number, Deferred.Deferred<Trained, SearchError>>
}

const checkConfig = (c: EngineConfig): Effect.Effect<EngineConfig, EngineError> => {
  const positive = (name: keyof EngineConfig) => {
    const v = c[name]
    return typeof v === "number" && Number.isInteger(v) && v >= 1 ? undefined : `${name} must be an integer ≥ 1, got ${String(v)}`
  }
  const problems = [positive("budget"), positive("screenWindow"), positive("trainConcurrency"), positive("trainLag")]
  if (c.maxCandidates !== null) problems.push(positive("maxCandidates"))
  problems.push(fidelityConfigProblem(c))
  const problem = problems.find((p) => p !== undefined)
  return problem === undefined ? Effect.succeed(c) : Effect.fail(new EngineError({ reason: "config", detail: problem }))
}

const fidelityConfigProblem = (c: EngineConfig): string | undefined => {
  const f = c.fidelity ?? FULL_FIDELITY
  if (f.kind === "full") return fidelityProblem(f)
  const problem = fidelityProblem(f)
  if (problem !== undefined) return problem
  const full = c.proxyIterations
  if (full === undefined || full === null || !Number.isInteger(full) || full < 1) {
    return `fidelity asha needs the task's proxy iterations (the task reports none; got ${String(full)})`
  }
  try {
    rungIterations(ladderOf(f), full)
  } catch (e) {
    return (e as Error).message
  }
  return undefined
}

/** What the store keeps of the engine's configuration: without the fidelity when it is full (as runs before fidelities). */
const storedEngineConfig = (c: EngineConfig): unknown => {
  if ((c.fidelity ?? FULL_FIDELITY).kind !== "full") return c
  const { fidelity: _f, proxyIterations: _i, ...rest } = c
  return rest
}

/** Calls into user code: a throw becomes a typed `scheduler` error instead of a defect. */
const call = <A>(what: string, f: () => A): Effect.Effect<A, EngineError> =>
  Effect.try({ try: f, catch: (cause) => new EngineError({ reason: "scheduler", detail: `${what}: ${String(cause)}`, cause }) })

/**
 * Runs (or resumes) the search of `scheduler` in the store provided as `Store`, evaluating through
 * `Evaluator`. Interrupting the returned effect interrupts every job; run it again to resume.
 */
export const runSearch = (
  scheduler: Scheduler,
  options: SearchOptions = {}
): Effect.Effect<SearchResult, SearchError, Store | Evaluator> =>
  Effect.gen(function* () {
    const config = yield* checkConfig({ ...DEFAULT_ENGINE_CONFIG, ...options.config })
    const store = yield* Store
    const evaluator = yield* Evaluator
    const { resumed } = yield* store.openRun({ scheduler: scheduler.name, flags: scheduler.flags, engine: storedEngineConfig(config), run: options.run ?? null })
    const prior = yield* store.checkpoint()
    const trainSlots = yield* Effect.makeSemaphore(config.trainConcurrency)
    const ledger = new EngineLedger(scheduler.flags, {
      budget: config.budget,
      equivalence: config.equivalence,
      roles: options.roles ?? DEPENDENCE_ROLES,
      fidelity: config.fidelity ?? FULL_FIDELITY
    })
    /** Iterations per rung (asha); null: every training is the full proxy, as the task defines it. */
    const iterations = ledger.ladder.top === 0 ? null : rungIterations(ledger.ladder, config.proxyIterations!)
    const fidelityOf = (rung: number): RungFidelity | undefined =>
      iterations === null ? undefined : { rung, iterations: iterations[rung]!, of: iterations[iterations.length - 1]! }
    const calls = { screen: 0, train: 0 }
    const live = new Map<number, Live>()

    const liveOf = (id: number): Live => {
      const l = live.get(id)
      if (l === undefined) throw new Error(`engine invariant: candidate ${id} is not live`)
      return l
    }
    const timed = <A, E, R>(eff: Effect.Effect<A, E, R>) =>
      Effect.gen(function* () {
        const start = yield* Clock.currentTimeMillis
        const value = yield* eff
        return { value, elapsedMs: (yield* Clock.currentTimeMillis) - start }
      })
    const storedCounters = (): Counters => ledger.storedCounters()

    // ---- stages run in their own fibers; results go through the candidate's Deferreds ----

    /** Runs (or reads back) the screening job for the branches `l` owns. */
    const ownStage = (l: Live): Effect.Effect<Readonly<Record<string, BranchScreen>>, SearchError> =>
      Effect.gen(function* () {
        const c = l.candidate
        const mine = ownedBranches(l.planned)
        if (mine.length === 0) return {}
        let stored = yield* store.screenResult(c.id)
        if (stored === undefined && l.abandoned) {
          // Replaying a finished run re-proposes what it abandoned; screening it would be wasted.
          return yield* new EngineError({ reason: "replay", detail: `candidate ${c.id} was abandoned when the run finished` })
        }
        if (stored === undefined) {
          calls.screen++
          const { value, elapsedMs } = yield* timed(evaluator.screen(c, mine))
          stored = { result: value, elapsedMs }
          yield* store.putScreenResult(c.id, stored)
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
    const screenStage = (l: Live): Effect.Effect<Screened, SearchError> =>
      Effect.gen(function* () {
        yield* Deferred.complete(l.owned, ownStage(l))
        const results: Record<string, BranchScreen> = {}
        for (const p of l.planned.plan) {
          if ("owner" in p) results[p.name] = (yield* Deferred.await(liveOf(p.owner).owned))[p.name]!
        }
        return ledger.screened(l.planned, results)
      })

    /** Trains `l` at `rung` (or reads the stored result back); rung > 0 continues the rung below. */
    const trainStage = (l: Live, rung: number): Effect.Effect<Trained, SearchError> =>
      Effect.gen(function* () {
        const c = l.candidate
        const fidelity = fidelityOf(rung)
        let stored = rung === 0 ? yield* store.trainResult(c.id) : yield* store.rungResult(c.id, rung)
        if (stored === undefined) {
          calls.train++
          const { value, elapsedMs } = yield* trainSlots.withPermits(1)(timed(evaluator.train(c, fidelity)))
          stored = { result: value, elapsedMs }
          if (rung === 0) yield* store.putTrainResult(c.id, stored)
          else yield* store.putRungResult(c.id, rung, fidelity!.iterations, stored)
        }
        const r = stored.result
        const invalid = r.invalid || !Number.isFinite(r.target)
        return { score: invalid ? WORST_SCORE : r.target, invalid, reused: "no", reusedFrom: null }
      })

    const reuseStage = ({ from, kind }: Reuse): Effect.Effect<Trained, SearchError> =>
      Effect.gen(function* () {
        const source = liveOf(from).trained
        if (source === undefined) throw new Error(`engine invariant: reuse source ${from} was never admitted`)
        const t = yield* Deferred.await(source)
        return { score: t.score, invalid: t.invalid, reused: kind, reusedFrom: from }
      })

    // ---- the driver: the only place that calls the scheduler or commits decisions ----

    const propose = (scope: Scope.Scope) =>
      Effect.gen(function* () {
        const id = ledger.nextId
        const p = yield* call(`propose(${id})`, () => scheduler.propose({ id }))
        if (p === WAIT) return false
        const graph: LossGraph = p.graph
        const candidate: Candidate = { id, graph, hash: hashLoss(graph), text: printLoss(graph) }
        const planned = ledger.propose(graph, candidate.hash)
        const { stored } = yield* store.putProposal({
          id,
          text: candidate.text,
          wire: toWire(graph),
          hash: candidate.hash,
          parentId: p.provenance.parentId,
          how: p.provenance.how,
          proposedAt: yield* Clock.currentTimeMillis,
          duplicateOf: planned.duplicateOf
        })
        const l: Live = {
          candidate,
          planned,
          abandoned: stored === "abandoned",
          owned: yield* Deferred.make<Readonly<Record<string, BranchScreen>>, SearchError>(),
          screened: yield* Deferred.make<Screened, SearchError>(),
          promoted: new Map()
        }
        live.set(id, l)
        yield* Effect.forkIn(Deferred.complete(l.screened, screenStage(l)), scope)
        return true
      })

    const deliverVerdict = (scope: Scope.Scope) =>
      Effect.gen(function* () {
        const l = liveOf(ledger.nextVerdictId())
        const c = l.candidate
        const s = yield* Deferred.await(l.screened)
        const admitted = yield* call(`admit(${c.id})`, () => scheduler.admit({ id: c.id, graph: c.graph, verdict: s.verdict }))
        const d = ledger.deliverVerdict(s, admitted)
        if (!d.ok) return yield* new EngineError({ reason: "scheduler", detail: d.detail })
        yield* store.commitVerdict(d.update, storedCounters())
        if (d.admitted) {
          const trained = yield* Deferred.make<Trained, SearchError>()
          l.trained = trained
          yield* Effect.forkIn(Deferred.complete(trained, d.reuse === null ? trainStage(l, 0) : reuseStage(d.reuse)), scope)
        }
      })

    const startPromotion = (job: Job, scope: Scope.Scope) =>
      Effect.gen(function* () {
        const l = liveOf(job.id)
        const trained = yield* Deferred.make<Trained, SearchError>()
        l.promoted.set(job.rung, trained)
        yield* Effect.forkIn(Deferred.complete(trained, trainStage(l, job.rung)), scope)
      })

    /** Delivers the next training job: an admission's outcome (observed, committed with the checkpoint) or a promotion's result. */
    const deliverOutcome = (scope: Scope.Scope) =>
      Effect.gen(function* () {
        const job = ledger.nextOutcome()
        const l = liveOf(job.id)
        const c = l.candidate
        const trained = job.rung === 0 ? l.trained : l.promoted.get(job.rung)
        if (trained === undefined) throw new Error(`engine invariant: candidate ${c.id} has no training at rung ${job.rung}`)
        const t = yield* Deferred.await(trained)
        if (job.rung === 0) {
          yield* call(`observe(${c.id})`, () =>
            scheduler.observe({ id: c.id, graph: c.graph, score: t.score, invalid: t.invalid, reused: t.reused })
          )
        }
        const { promotions } = ledger.deliverOutcome({ score: t.score, invalid: t.invalid, reused: t.reused !== "no" }, c.text)
        for (const p of promotions) yield* startPromotion(p, scope)
        if (job.rung > 0) return
        const checkpoint: Checkpoint = { observations: ledger.counters.observed, scheduler: scheduler.snapshot(), engine: ledger.engineState() }
        if (prior !== undefined && prior.observations === checkpoint.observations) {
          if (stableJson(prior.scheduler) !== stableJson(checkpoint.scheduler)) {
            return yield* new StoreError({
              reason: "diverged",
              detail: `the scheduler state after ${checkpoint.observations} outcomes differs from the stored checkpoint`
            })
          }
        }
        yield* store.commitOutcome(
          { id: c.id, score: t.score, reusedFrom: t.reusedFrom, reuseKind: t.reused === "no" ? null : t.reused },
          checkpoint,
          scheduler.population(),
          storedCounters()
        )
      })

    const loop = (scope: Scope.Scope) =>
      Effect.gen(function* () {
        for (;;) {
          while (ledger.screensPending() >= config.screenWindow && !ledger.budgetSpent()) yield* deliverVerdict(scope)
          if (ledger.budgetSpent()) break
          while (ledger.outcomesPending() > config.trainLag) yield* deliverOutcome(scope)
          if (config.maxCandidates !== null && ledger.nextId >= config.maxCandidates) break
          if (yield* propose(scope)) continue
          if (ledger.screensPending() > 0) yield* deliverVerdict(scope)
          else if (ledger.outcomesPending() > 0) yield* deliverOutcome(scope)
          else {
            return yield* new EngineError({
              reason: "deadlock",
              detail: `${scheduler.name} returned WAIT at proposal ${ledger.nextId} with no verdict or outcome pending`
            })
          }
        }
        // Budget spent or proposals capped: finish what was admitted; unneeded verdicts are dropped.
        while (ledger.screensPending() > 0 && !ledger.budgetSpent()) yield* deliverVerdict(scope)
        while (ledger.outcomesPending() > 0) yield* deliverOutcome(scope)
      })

    yield* Effect.scoped(Effect.flatMap(Effect.scope, loop))
    yield* store.markAbandoned(ledger.nextVerdictId(), storedCounters())
    const ladder = ledger.ladderState()
    return {
      counters: { ...ledger.counters },
      best: ledger.best,
      ...(ladder === null ? {} : { ladder }),
      resumed,
      evaluatorCalls: { ...calls }
    } satisfies SearchResult
  })
