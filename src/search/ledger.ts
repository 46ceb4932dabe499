/**
 * The engine's deterministic bookkeeping, as a pure object (no Effect, no I/O, no clock): which
 * job screens which branch, whether an admitted loss trains or reuses an earlier one's score, the
 * counters, the cursors of verdict and outcome delivery, the verdict record the store keeps, and
 * the best outcome so far. `runSearch` (`engine.ts`) keeps the fibers, Deferreds, store, evaluator
 * and scheduler calls, and asks the ledger for every decision, so a decision depends only on the
 * sequence of calls made here (proposal order, verdict order, outcome order), never on timing.
 *
 * The calls, in the order the engine makes them for one candidate:
 * - `propose(graph, hash)`: a new proposal gets the next id, is marked a structural duplicate of
 *   the first proposal with its hash, and gets its screening plan: per branch, a static reason, or
 *   the candidate whose job screens it (the first proposal containing that branch, by name and
 *   canonical form, when duplicates are reused; itself otherwise).
 * - `screened(plan, results)`: once the branch results of a plan are known, the candidate's
 *   verdict, equivalence key and protocol summary (pure; may be called in any order).
 * - `deliverVerdict(screened, admitted)`: in proposal order, with the scheduler's admission; counts
 *   the verdict, decides reuse (an identical admitted loss first, then a gradient-equivalent one;
 *   the first admitted loss of a hash or key is the source) and returns the store's verdict record.
 * - `deliverOutcome(result, text)`: in the order training jobs were created (admissions, and with
 *   asha fidelity promotions too, `fidelity.ts`); counts it, tracks the best, and returns the
 *   promotions it triggers, whose jobs the engine starts.
 *
 * With full fidelity (the default) there are no promotions and every record equals the one the
 * engine kept before fidelities existed (checkpoints of older runs compare equal).
 */
import { hashBranch } from "../graph/canonical.ts"
import type { LossGraph } from "../graph/types.ts"
import type { VerdictUpdate } from "../store/Store.ts"
import { type EquivalenceMode, equivalenceKey } from "./equivalence.ts"
import { type BranchScreen, summariseBranches } from "./evaluator.ts"
import { FULL_FIDELITY, type Fidelity, type Ladder, ladderOf, rungCost, RungTable } from "./fidelity.ts"
import type { BranchVerdict, SearchFlags, ScreenVerdict } from "./scheduler.ts"
import { type DependenceRoles, staticBranchReason } from "./static-check.ts"

/** Deterministic bookkeeping (equal between an interrupted-and-resumed run and an uninterrupted one). */
export interface SearchCounters {
  proposed: number
  staticRejected: number
  /** Verdicts copied from an earlier identical loss (no screening job). */
  duplicateVerdicts: number
  /** Verdicts that came from the rejection protocol. */
  screened: number
  /** Branch verdicts computed by a screening job of the candidate itself... */
  branchesScreened: number
  /** ...or taken from an earlier candidate with the same branch (no job). */
  branchesReused: number
  rejected: number
  passed: number
  admitted: number
  discarded: number
  /** Proxy trainings started: what the budget counts. */
  trained: number
  duplicateReuses: number
  equivalentReuses: number
  invalid: number
  observed: number
}

// The key order is part of the stored checkpoint's JSON: append, never reorder.
const zeroCounters = (): SearchCounters => ({
  proposed: 0,
  staticRejected: 0,
  duplicateVerdicts: 0,
  screened: 0,
  branchesScreened: 0,
  branchesReused: 0,
  rejected: 0,
  passed: 0,
  admitted: 0,
  discarded: 0,
  trained: 0,
  duplicateReuses: 0,
  equivalentReuses: 0,
  invalid: 0,
  observed: 0
})

export interface Best {
  readonly id: number
  readonly score: number
  readonly text: string
}

/** How one branch of a proposal gets its verdict: statically, or from the job of `owner`. */
export type BranchPlan =
  | { readonly name: string; readonly staticReason: string }
  | { readonly name: string; readonly owner: number }

export interface Planned {
  readonly id: number
  /** The earlier proposal with the same structural hash, whose verdict this one reuses. */
  readonly duplicateOf: number | null
  /** Empty when the scheduler needs no rejection. */
  readonly plan: ReadonlyArray<BranchPlan>
}

/** A candidate's screening outcome, before the scheduler has seen it. */
export interface Screened {
  readonly verdict: ScreenVerdict
  readonly key: string | null
  /** The protocol's verdict over the screened (not statically rejected) branches, for the store. */
  readonly summary: BranchScreen | null
}

export type Reuse = { readonly from: number; readonly kind: "duplicate" | "equivalent" }

export type Delivered =
  | { readonly ok: true; readonly id: number; readonly update: VerdictUpdate; readonly admitted: boolean; readonly reuse: Reuse | null }
  | { readonly ok: false; readonly id: number; readonly detail: string }

export interface LedgerConfig {
  /** Full-proxy equivalents (with full fidelity: proxy trainings started). */
  readonly budget: number
  readonly equivalence: EquivalenceMode
  readonly roles: Readonly<Record<string, DependenceRoles>>
  /** Default: full. */
  readonly fidelity?: Fidelity
}

/** A training result as the ledger needs it (reused: the score was copied, no training of its own). */
export interface TrainedScore {
  readonly score: number
  readonly invalid: boolean
  readonly reused: boolean
}

/** A training job to deliver: an admission (rung 0) or a promotion (rung ≥ 1). */
export interface Job {
  readonly id: number
  readonly rung: number
}

/** The ladder's bookkeeping (asha only), in the checkpoint and the counters. */
export interface LadderState {
  /** Budget spent, in units of 1/`unitsPerFull` of a full proxy training. */
  readonly spentUnits: number
  readonly unitsPerFull: number
  /** Trainings started per rung (rung 0: admissions that train; higher: promotions). */
  readonly trainedPerRung: ReadonlyArray<number>
  /** Results delivered per rung: [id, score] in delivery order (invalid: score null). */
  readonly results: ReadonlyArray<ReadonlyArray<readonly [number, number | null]>>
  /** The rung of `best`. */
  readonly bestRung: number
}

/** The branches of `planned` whose screening job is its own. */
export const ownedBranches = (planned: Planned): string[] =>
  planned.plan.flatMap((p) => ("owner" in p && p.owner === planned.id ? [p.name] : []))

interface Record_ {
  readonly hash: string
  readonly planned: Planned
}

export class EngineLedger {
  readonly counters: SearchCounters = zeroCounters()
  private nextId_ = 0
  private screenCursor = 0
  private trainCursor = 0
  private best_: Best | null = null
  private bestRung = 0
  private readonly records = new Map<number, Record_>()
  private readonly firstByHash = new Map<string, number>()
  /** `name/hash` of a branch → the candidate whose job screens it. */
  private readonly branchOwner = new Map<string, number>()
  private readonly firstAdmittedByHash = new Map<string, number>()
  private readonly firstAdmittedByKey = new Map<string, number>()
  /** Training jobs in creation order: admissions (rung 0) and promotions; `trainCursor` walks it. */
  private readonly jobs: Job[] = []
  private admittedCount = 0
  readonly ladder: Ladder
  /** Null with full fidelity. */
  private readonly rungs: RungTable | null
  private spentUnits = 0
  private readonly trainedPerRung: number[]

  constructor(private readonly flags: SearchFlags, private readonly config: LedgerConfig) {
    const fidelity = config.fidelity ?? FULL_FIDELITY
    this.ladder = ladderOf(fidelity)
    this.rungs = fidelity.kind === "asha" ? new RungTable(this.ladder) : null
    this.trainedPerRung = this.ladder.fractions.map(() => 0)
  }

  /** The id the next proposal gets (proposal index, from 0). */
  get nextId(): number {
    return this.nextId_
  }

  get best(): Best | null {
    return this.best_
  }

  /** Budget: no rung-0 training fits anymore (full fidelity: `budget` trainings started). Once spent, no verdict is delivered anymore. */
  budgetSpent(): boolean {
    return !this.fits(0)
  }

  private fits(rung: number): boolean {
    return this.spentUnits + rungCost(this.ladder, rung) <= this.config.budget * this.ladder.unitsPerFull
  }

  private startTraining(job: Job): void {
    this.spentUnits += rungCost(this.ladder, job.rung)
    this.trainedPerRung[job.rung]!++
    this.jobs.push(job)
  }

  /** Proposals awaiting their verdict. */
  screensPending(): number {
    return this.nextId_ - this.screenCursor
  }

  /** Training jobs (admissions, promotions) awaiting delivery. */
  outcomesPending(): number {
    return this.jobs.length - this.trainCursor
  }

  /** The next proposal whose verdict is delivered (the first that has none yet). */
  nextVerdictId(): number {
    return this.screenCursor
  }

  /** The training job delivered next: an admitted candidate's (rung 0) or a promotion. */
  nextOutcome(): Job {
    const job = this.jobs[this.trainCursor]
    if (job === undefined) throw new Error("engine ledger: no outcome is pending")
    return job
  }

  /** Registers the next proposal and plans its screening. */
  propose(graph: LossGraph, hash: string): Planned {
    const id = this.nextId_
    const duplicateOf = this.firstByHash.get(hash) ?? null
    if (duplicateOf === null) this.firstByHash.set(hash, id)
    const plan: BranchPlan[] = []
    if (this.flags.needsRejection) {
      for (const b of graph.branches) {
        const staticReason = staticBranchReason(b, this.config.roles)
        if (staticReason !== undefined) {
          plan.push({ name: b.name, staticReason })
          continue
        }
        const key = `${b.name}/${hashBranch(b)}`
        const owner = this.flags.reuseDuplicates ? (this.branchOwner.get(key) ?? id) : id
        if (owner === id) this.branchOwner.set(key, id)
        plan.push({ name: b.name, owner })
      }
    }
    const planned: Planned = { id, duplicateOf, plan }
    this.records.set(id, { hash, planned })
    this.nextId_++
    this.counters.proposed++
    return planned
  }

  /**
   * The verdict of `planned` from its branches' protocol results (`results[name]` for every branch
   * that has an owner). The first statically rejected branch names a static rejection.
   */
  screened(planned: Planned, results: Readonly<Record<string, BranchScreen>>): Screened {
    if (!this.flags.needsRejection) return { verdict: { kind: "unscreened" }, key: null, summary: null }
    const branches: Record<string, BranchVerdict> = {}
    const screened: BranchScreen[] = []
    for (const p of planned.plan) {
      if ("staticReason" in p) {
        branches[p.name] = { kind: "static_rejected", reason: p.staticReason }
        continue
      }
      const r = results[p.name]
      if (r === undefined) throw new Error(`engine ledger: no result for branch '${p.name}' of candidate ${planned.id}`)
      screened.push(r)
      branches[p.name] = r.passed && !r.invalid ? { kind: "passed", score: r.score } : { kind: "rejected", score: r.score, invalid: r.invalid }
    }
    const summary = screened.length > 0 ? summariseBranches(screened) : null
    const firstStatic = planned.plan.find((p) => "staticReason" in p)
    if (firstStatic !== undefined && "staticReason" in firstStatic) {
      const reason = `branch '${firstStatic.name}' ${firstStatic.staticReason}`
      return { verdict: { kind: "static_rejected", branch: firstStatic.name, reason, branches }, key: null, summary }
    }
    const r = summary!
    if (!r.passed || r.invalid) return { verdict: { kind: "rejected", score: r.score, invalid: r.invalid, branches }, key: null, summary }
    const key = this.flags.useEquivalence ? equivalenceKey(r, this.config.equivalence) : null
    return { verdict: { kind: "passed", score: r.score, branches }, key, summary }
  }

  /**
   * Delivers the verdict of the next proposal (`nextVerdictId()`) with the scheduler's decision:
   * counts it, decides reuse, and returns the record to store. A scheduler that admits a rejected
   * candidate gets `ok: false` (the run ends).
   */
  deliverVerdict(s: Screened, admitted: boolean): Delivered {
    const id = this.screenCursor
    const record = this.records.get(id)
    if (record === undefined) throw new Error(`engine ledger: candidate ${id} was never proposed`)
    const { planned, hash } = record
    const c = this.counters
    const v = s.verdict
    for (const p of planned.plan) {
      if ("owner" in p) {
        if (p.owner === id) c.branchesScreened++
        else c.branchesReused++
      }
    }
    switch (v.kind) {
      case "static_rejected":
        c.staticRejected++
        break
      case "rejected":
      case "passed":
        if (this.flags.reuseDuplicates && planned.duplicateOf !== null) c.duplicateVerdicts++
        else c.screened++
        if (v.kind === "rejected") c.rejected++
        else c.passed++
        break
      case "unscreened":
        break
    }
    if (admitted && (v.kind === "static_rejected" || v.kind === "rejected")) {
      return { ok: false, id, detail: `admit(${id}) admitted a ${v.kind} candidate` }
    }
    let reuse: Reuse | null = null
    if (admitted) {
      c.admitted++
      const byHash = this.flags.reuseDuplicates ? this.firstAdmittedByHash.get(hash) : undefined
      const byKey = s.key !== null ? this.firstAdmittedByKey.get(s.key) : undefined
      if (byHash !== undefined) {
        reuse = { from: byHash, kind: "duplicate" }
        c.duplicateReuses++
      } else if (byKey !== undefined) {
        reuse = { from: byKey, kind: "equivalent" }
        c.equivalentReuses++
      } else {
        c.trained++
      }
      if (reuse === null) this.startTraining({ id, rung: 0 })
      else this.jobs.push({ id, rung: 0 })
      if (!this.firstAdmittedByHash.has(hash)) this.firstAdmittedByHash.set(hash, id)
      if (s.key !== null && !this.firstAdmittedByKey.has(s.key)) this.firstAdmittedByKey.set(s.key, id)
    } else if (v.kind === "passed" || v.kind === "unscreened") {
      c.discarded++
    }
    const update: VerdictUpdate = {
      id,
      status: v.kind === "static_rejected" ? "static_rejected" : v.kind === "rejected" ? "rejected" : admitted ? "admitted" : "discarded",
      staticBranch: v.kind === "static_rejected" ? v.branch : null,
      staticReason: v.kind === "static_rejected" ? v.reason : null,
      equivalenceKey: s.key,
      admissionIndex: admitted ? this.admittedCount : null,
      rejection: s.summary
    }
    this.screenCursor++
    if (admitted) this.admittedCount++
    this.records.delete(id)
    return { ok: true, id, update, admitted, reuse }
  }

  /**
   * Delivers the result of `nextOutcome()`: a rung-0 result is the candidate's outcome (observed by
   * the scheduler); with asha fidelity every trained result is recorded at its rung and may promote
   * candidates, returned as new jobs (already counted and charged) for the engine to start.
   */
  deliverOutcome(t: TrainedScore, text: string): { readonly job: Job; readonly promotions: ReadonlyArray<Job> } {
    const job = this.nextOutcome()
    const { id, rung } = job
    this.trainCursor++
    if (rung === 0) {
      this.counters.observed++
      if (t.invalid) this.counters.invalid++
    }
    const best = this.best_
    // Highest rung first, then the higher score; a tie keeps the earlier best.
    if (best === null || rung > this.bestRung || (rung === this.bestRung && t.score > best.score)) {
      this.best_ = { id, score: t.score, text }
      this.bestRung = rung
    }
    const promotions: Job[] = []
    if (this.rungs !== null && !t.reused) {
      for (const candidate of this.rungs.record(rung, { id, score: t.score, invalid: t.invalid })) {
        if (!this.fits(rung + 1)) continue
        this.rungs.markPromoted(rung, candidate)
        const promotion = { id: candidate, rung: rung + 1 }
        this.startTraining(promotion)
        promotions.push(promotion)
      }
    }
    return { job, promotions }
  }

  /** The ladder (asha fidelity; null with full). */
  ladderState(): LadderState | null {
    if (this.rungs === null) return null
    return {
      spentUnits: this.spentUnits,
      unitsPerFull: this.ladder.unitsPerFull,
      trainedPerRung: [...this.trainedPerRung],
      results: this.rungs.entries().map((at) => at.map((e) => [e.id, e.invalid ? null : e.score] as const)),
      bestRung: this.bestRung
    }
  }

  /** The counters as stored: the search's, plus per-rung trainings and the budget spent with asha. */
  storedCounters(): Record<string, number> {
    const l = this.ladderState()
    if (l === null) return { ...this.counters }
    const perRung = Object.fromEntries(l.trainedPerRung.map((n, r) => [`trainedRung${r}`, n]))
    return { ...this.counters, ...perRung, promoted: l.trainedPerRung.slice(1).reduce((a, b) => a + b, 0), spentUnits: l.spentUnits, unitsPerFull: l.unitsPerFull }
  }

  /** The engine's part of the checkpoint (its JSON is compared on resume: keep keys and order). */
  engineState(): { nextId: number; screenCursor: number; trainCursor: number; counters: SearchCounters; best: Best | null; ladder?: LadderState } {
    const state = { nextId: this.nextId_, screenCursor: this.screenCursor, trainCursor: this.trainCursor, counters: { ...this.counters }, best: this.best_ }
    const ladder = this.ladderState()
    return ladder === null ? state : { ...state, ladder }
  }
}
