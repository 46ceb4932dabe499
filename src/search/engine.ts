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
 * outcome) is made by the pure `EngineLedger` (`ledger.ts`, unit-tested without fibers). The jobs
 * forked per candidate (screen, train, reuse) are in `engine-stages.ts`, the state the fibers share
 * in `engine-run.ts`; this file keeps the driver, the only place that calls the scheduler or
 * commits decisions.
 */
import { Clock, Deferred, Effect, type Scope } from "effect"
import { hashLoss } from "../graph/canonical.ts"
import { printLoss } from "../graph/syntax.ts"
import type { LossGraph } from "../graph/types.ts"
import { toWire } from "../graph/wire.ts"
import { type Checkpoint, Store, stableJson } from "../store/Store.ts"
import { StoreError } from "../store/StoreError.ts"
import { EngineError, type EngineRun, type Live, liveOf, type SearchError, type Trained } from "./engine-run.ts"
import { reuseStage, screenStage, trainStage } from "./engine-stages.ts"
import { DEFAULT_EQUIVALENCE_MODE, type EquivalenceMode } from "./equivalence.ts"
import { type BranchScreen, type Candidate, Evaluator } from "./evaluator.ts"
import { FULL_FIDELITY, type Fidelity, fidelityProblem, ladderOf, rungIterations } from "./fidelity.ts"
import { type Best, EngineLedger, type Job, type LadderState, type Screened, type SearchCounters } from "./ledger.ts"
import { type Scheduler, WAIT } from "./scheduler.ts"
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

export { EngineError, type SearchError } from "./engine-run.ts"
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

// ---- the driver: the only place that calls the scheduler or commits decisions ----

/** Asks the scheduler for the next proposal, stores it, and forks its screening; false: the scheduler waits. */
const propose = (r: EngineRun, scope: Scope.Scope): Effect.Effect<boolean, SearchError> =>
  Effect.gen(function* () {
    const id = r.ledger.nextId
    const p = yield* call(`propose(${id})`, () => r.scheduler.propose({ id }))
    if (p === WAIT) return false
    const graph: LossGraph = p.graph
    const candidate: Candidate = { id, graph, hash: hashLoss(graph), text: printLoss(graph) }
    const planned = r.ledger.propose(graph, candidate.hash)
    const { stored } = yield* r.store.putProposal({
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
    r.live.set(id, l)
    yield* Effect.forkIn(Deferred.complete(l.screened, screenStage(r, l)), scope)
    return true
  })

/** Delivers the next verdict (proposal order) to the scheduler, commits it, and forks the admitted one's training or reuse. */
const deliverVerdict = (r: EngineRun, scope: Scope.Scope): Effect.Effect<void, SearchError> =>
  Effect.gen(function* () {
    const l = liveOf(r, r.ledger.nextVerdictId())
    const c = l.candidate
    const s = yield* Deferred.await(l.screened)
    const admitted = yield* call(`admit(${c.id})`, () => r.scheduler.admit({ id: c.id, graph: c.graph, verdict: s.verdict }))
    const d = r.ledger.deliverVerdict(s, admitted)
    if (!d.ok) return yield* new EngineError({ reason: "scheduler", detail: d.detail })
    yield* r.store.commitVerdict(d.update, r.ledger.storedCounters())
    if (d.admitted) {
      const trained = yield* Deferred.make<Trained, SearchError>()
      l.trained = trained
      yield* Effect.forkIn(Deferred.complete(trained, d.reuse === null ? trainStage(r, l, 0) : reuseStage(r, d.reuse)), scope)
    }
  })

/** Forks the training of a promotion the ledger decided (asha), into the candidate's `promoted`. */
const startPromotion = (r: EngineRun, job: Job, scope: Scope.Scope): Effect.Effect<void> =>
  Effect.gen(function* () {
    const l = liveOf(r, job.id)
    const trained = yield* Deferred.make<Trained, SearchError>()
    l.promoted.set(job.rung, trained)
    yield* Effect.forkIn(Deferred.complete(trained, trainStage(r, l, job.rung)), scope)
  })

/** The Deferred of `l`'s training at `rung` (its admission's at rung 0, a promotion's above). */
const trainingOf = (l: Live, rung: number): Deferred.Deferred<Trained, SearchError> => {
  const trained = rung === 0 ? l.trained : l.promoted.get(rung)
  if (trained === undefined) throw new Error(`engine invariant: candidate ${l.candidate.id} has no training at rung ${rung}`)
  return trained
}

/** Delivers the next training job: an admission's outcome (observed, committed with the checkpoint) or a promotion's result. */
const deliverOutcome = (r: EngineRun, scope: Scope.Scope): Effect.Effect<void, SearchError> =>
  Effect.gen(function* () {
    const job = r.ledger.nextOutcome()
    const l = liveOf(r, job.id)
    const c = l.candidate
    const t = yield* Deferred.await(trainingOf(l, job.rung))
    if (job.rung === 0) {
      yield* call(`observe(${c.id})`, () =>
        r.scheduler.observe({ id: c.id, graph: c.graph, score: t.score, invalid: t.invalid, reused: t.reused })
      )
    }
    const { promotions } = r.ledger.deliverOutcome({ score: t.score, invalid: t.invalid, reused: t.reused !== "no" }, c.text)
    for (const p of promotions) yield* startPromotion(r, p, scope)
    if (job.rung === 0) yield* commitOutcome(r, c, t)
  })

/**
 * A resume replays the run from the start: when it reaches the stored checkpoint, the scheduler
 * must be where it was then, or the code or the seed changed.
 */
const replayDivergence = (prior: Checkpoint | undefined, checkpoint: Checkpoint): StoreError | undefined => {
  if (prior === undefined || prior.observations !== checkpoint.observations) return undefined
  if (stableJson(prior.scheduler) === stableJson(checkpoint.scheduler)) return undefined
  return new StoreError({
    reason: "diverged",
    detail: `the scheduler state after ${checkpoint.observations} outcomes differs from the stored checkpoint`
  })
}

/** Commits an observed outcome with the scheduler checkpoint, in one transaction (what resume restarts from). */
const commitOutcome = (r: EngineRun, c: Candidate, t: Trained): Effect.Effect<void, StoreError> =>
  Effect.gen(function* () {
    const checkpoint: Checkpoint = { observations: r.ledger.counters.observed, scheduler: r.scheduler.snapshot(), engine: r.ledger.engineState() }
    const diverged = replayDivergence(r.prior, checkpoint)
    if (diverged !== undefined) return yield* diverged
    yield* r.store.commitOutcome(
      { id: c.id, score: t.score, reusedFrom: t.reusedFrom, reuseKind: t.reused === "no" ? null : t.reused },
      checkpoint,
      r.scheduler.population(),
      r.ledger.storedCounters()
    )
  })

/** The delivery schedule (see the header): counts, never timing, decide when verdicts and outcomes are delivered. */
const loop = (r: EngineRun, scope: Scope.Scope): Effect.Effect<void, SearchError> =>
  Effect.gen(function* () {
    const { config, ledger } = r
    for (;;) {
      while (ledger.screensPending() >= config.screenWindow && !ledger.budgetSpent()) yield* deliverVerdict(r, scope)
      if (ledger.budgetSpent()) break
      while (ledger.outcomesPending() > config.trainLag) yield* deliverOutcome(r, scope)
      if (config.maxCandidates !== null && ledger.nextId >= config.maxCandidates) break
      if (yield* propose(r, scope)) continue
      if (ledger.screensPending() > 0) yield* deliverVerdict(r, scope)
      else if (ledger.outcomesPending() > 0) yield* deliverOutcome(r, scope)
      else {
        return yield* new EngineError({
          reason: "deadlock",
          detail: `${r.scheduler.name} returned WAIT at proposal ${ledger.nextId} with no verdict or outcome pending`
        })
      }
    }
    // Budget spent or proposals capped: finish what was admitted; unneeded verdicts are dropped.
    while (ledger.screensPending() > 0 && !ledger.budgetSpent()) yield* deliverVerdict(r, scope)
    while (ledger.outcomesPending() > 0) yield* deliverOutcome(r, scope)
  })

// ---- setup ----

/** The fidelity of each rung's trainings with asha; undefined at every rung with full fidelity (the task's own proxy). */
const rungFidelities = (ledger: EngineLedger, proxyIterations: number | null | undefined): EngineRun["fidelityOf"] => {
  const iterations = ledger.ladder.top === 0 ? null : rungIterations(ledger.ladder, proxyIterations!)
  return (rung) => iterations === null ? undefined : { rung, iterations: iterations[rung]!, of: iterations[iterations.length - 1]! }
}

/** Opens (or reopens, to resume) the run in the store and builds the state its fibers share. */
const startRun = (
  scheduler: Scheduler,
  options: SearchOptions,
  config: EngineConfig
): Effect.Effect<{ readonly run: EngineRun; readonly resumed: boolean }, StoreError, Store | Evaluator> =>
  Effect.gen(function* () {
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
    const fidelityOf = rungFidelities(ledger, config.proxyIterations)
    const run: EngineRun = { config, scheduler, store, evaluator, ledger, prior, trainSlots, fidelityOf, live: new Map(), calls: { screen: 0, train: 0 } }
    return { run, resumed }
  })

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
    const { run, resumed } = yield* startRun(scheduler, options, config)
    yield* Effect.scoped(Effect.flatMap(Effect.scope, (scope) => loop(run, scope)))
    yield* run.store.markAbandoned(run.ledger.nextVerdictId(), run.ledger.storedCounters())
    const ladder = run.ledger.ladderState()
    return {
      counters: { ...run.ledger.counters },
      best: run.ledger.best,
      ...(ladder === null ? {} : { ladder }),
      resumed,
      evaluatorCalls: { ...run.calls }
    } satisfies SearchResult
  })
