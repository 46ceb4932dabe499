/**
 * The paper's search (AutoLoss-Zero §3.2, regularized evolution):
 * - initialise the population with K = 20 random losses, each of which must pass rejection;
 * - each step: sample T = 5% of the population at random (tournament), the best by proxy score is
 *   the parent; produce offspring of that parent until one passes rejection; evaluate it; append;
 * - keep only the most recent P = 2500 (aging, enforced by `AgingPopulation`).
 *
 * Choices where the paper leaves room:
 * - Tournament size T = max(1, ⌊n·5/100⌋) for a population of n, computed in integers: 1 for the
 *   initial 20, 125 for 2500, and never 0. The T members are drawn without replacement (a random
 *   5% subset); ties on score go to the one drawn first.
 * - "Until one passes" under concurrency: each tournament opens a *slot*; every proposal belongs to
 *   the slot that was open when it was made. The engine may screen several offspring of a slot at
 *   once; `admit` takes the first one that passes in proposal order, and later passers of a filled
 *   slot are discarded. With one candidate in flight this is exactly the sequential algorithm.
 * - Evolution starts once all K initial losses have been evaluated (`propose` returns WAIT until
 *   then). Invalid losses join the population with the worst score, like any evaluated loss.
 * - Multi-branch losses (paper App. A.2: "initialisation/mutation and rejection run per branch"):
 *   each branch is redrawn on its own until it passes. A branch that passed in an earlier proposal
 *   of the same slot is kept in the slot's later proposals, and only the failing branches are drawn
 *   again (offspring: `branchOffspring` of the parent's branch; initial losses: a fresh random
 *   tree). Initial losses take kept branches from per-branch queues, oldest first. With one branch
 *   this is exactly the loop above (a rejected one-branch loss has no branch to keep).
 * - `NaiveEvolution` is the same loop with rejection, equivalence and duplicate reuse switched off
 *   (the paper's "naive evolution" ablation): every offspring is trained.
 */
import { Rng } from "../graph/rng.ts"
import { type BranchChange, branchOffspring } from "../graph/mutate.ts"
import { randomTree } from "../graph/random.ts"
import type { Branch, LossGraph } from "../graph/types.ts"
import { validateLoss } from "../graph/validate.ts"
import { fromWire, toWire } from "../graph/wire.ts"
import { AgingPopulation } from "./population.ts"
import {
  type BranchSpec,
  FULL_PIPELINE,
  type Outcome,
  type PopulationEntry,
  type ProposeContext,
  type Proposal,
  type Scheduler,
  SchedulerStateError,
  type ScreenedEvent,
  type SearchFlags,
  WAIT,
  type Wait,
  passes,
  scoreFromJson,
  scoreToJson
} from "./scheduler.ts"

export interface AgingEvolutionOptions {
  /** K: random losses that must pass rejection before evolution starts. */
  readonly initialPopulation?: number
  /** P: the population keeps the most recent P evaluated losses. */
  readonly populationSize?: number
  /** T as a percentage of the current population size. */
  readonly tournamentPercent?: number
}

export const PAPER_EVOLUTION = { initialPopulation: 20, populationSize: 2500, tournamentPercent: 5 } as const

/** max(1, ⌊n·percent/100⌋) with exact integer arithmetic (0.05·60 is 3.0000000000000004 in floats). */
export const tournamentSize = (n: number, percent: number): number => Math.max(1, Math.floor((n * percent) / 100))

interface Member {
  readonly id: number
  readonly graph: LossGraph
  readonly score: number
}

/** A branch that passed rejection, with how it was made from the parent's branch. */
interface KeptBranch {
  readonly branch: Branch
  readonly change: BranchChange
}

/** A tournament's winner and the offspring proposals made from it. */
interface Slot {
  readonly index: number
  readonly parent: Member
  filled: boolean
  /** Branch name → a passing offspring branch seen in this slot, reused by its later proposals. */
  readonly kept: Map<string, KeptBranch>
}

/** What `admit` needs to know of a proposal. */
interface Pending {
  readonly slot: number
  /** Per-branch changes (offspring); empty for initial losses. */
  readonly how: ReadonlyArray<BranchChange>
}

const branchToJson = (b: Branch): unknown => toWire({ branches: [b] })
const branchFromJson = (w: unknown): Branch => fromWire(w).branches[0]!

/** Slot number of the proposals made while initialising. */
const INIT_SLOT = -1

export class AgingEvolution implements Scheduler {
  readonly name: string = "aging-evolution"
  readonly flags: SearchFlags = FULL_PIPELINE
  readonly initialPopulation: number
  readonly tournamentPercent: number
  private rng: Rng
  private pop: AgingPopulation<Member>
  private initAdmitted = 0
  private slotsOpened = 0
  private current: Slot | undefined
  /** Proposals awaiting `admit`: id → slot they were made for. */
  private slotOf = new Map<number, Pending>()
  /** Initialisation: branch name → passing random branches not yet used in a proposal, oldest first. */
  private initKept = new Map<string, Branch[]>()

  constructor(
    readonly branches: BranchSpec,
    rng: Rng,
    options: AgingEvolutionOptions = {}
  ) {
    const o = { ...PAPER_EVOLUTION, ...options }
    if (!Number.isInteger(o.initialPopulation) || o.initialPopulation < 1) {
      throw new RangeError(`initialPopulation must be an integer ≥ 1, got ${o.initialPopulation}`)
    }
    if (o.populationSize < o.initialPopulation) {
      throw new RangeError(`populationSize (${o.populationSize}) must be ≥ initialPopulation (${o.initialPopulation})`)
    }
    if (!(o.tournamentPercent > 0 && o.tournamentPercent <= 100)) {
      throw new RangeError(`tournamentPercent must be in (0, 100], got ${o.tournamentPercent}`)
    }
    this.rng = rng
    this.initialPopulation = o.initialPopulation
    this.tournamentPercent = o.tournamentPercent
    this.pop = new AgingPopulation(o.populationSize)
  }

  propose(ctx: ProposeContext): Proposal | Wait {
    if (this.initAdmitted < this.initialPopulation) {
      this.slotOf.set(ctx.id, { slot: INIT_SLOT, how: [] })
      const branches = this.branches.map(({ name, kind }) =>
        this.initKept.get(name)?.shift() ?? { name, kind, root: randomTree(kind, this.rng) }
      )
      return { graph: { branches }, provenance: { parentId: null, how: "random" } }
    }
    if (this.pop.size < this.initialPopulation) return WAIT
    if (this.current === undefined || this.current.filled) {
      this.initKept.clear()
      this.current = { index: this.slotsOpened++, parent: this.tournament(), filled: false, kept: new Map() }
    }
    const current = this.current
    validateLoss(current.parent.graph)
    const made = current.parent.graph.branches.map((b) => current.kept.get(b.name) ?? branchOffspring(b, this.rng))
    const how = made.map((m) => m.change)
    this.slotOf.set(ctx.id, { slot: current.index, how })
    return { graph: { branches: made.map((m) => m.branch) }, provenance: { parentId: current.parent.id, how } }
  }

  admit(event: ScreenedEvent): boolean {
    const pending = this.slotOf.get(event.id)
    if (pending === undefined) throw new SchedulerStateError(`admit: candidate ${event.id} was not proposed by this scheduler`)
    this.slotOf.delete(event.id)
    const slot = pending.slot
    if (!passes(event.verdict)) {
      this.keepPassingBranches(event, pending)
      return false
    }
    if (slot === INIT_SLOT) {
      if (this.initAdmitted >= this.initialPopulation) return false
      this.initAdmitted++
      return true
    }
    const current = this.current
    if (current === undefined || current.index !== slot || current.filled) return false
    current.filled = true
    return true
  }

  /** Remembers the branches of a rejected proposal that passed on their own, for its slot's next proposals. */
  private keepPassingBranches(event: ScreenedEvent, pending: Pending): void {
    const verdict = event.verdict
    if (verdict.kind === "unscreened" || event.graph.branches.length < 2) return
    event.graph.branches.forEach((b, i) => {
      if (verdict.branches[b.name]?.kind !== "passed") return
      if (pending.slot === INIT_SLOT) {
        if (this.initAdmitted >= this.initialPopulation) return
        const queue = this.initKept.get(b.name) ?? []
        queue.push(b)
        this.initKept.set(b.name, queue)
        return
      }
      const current = this.current
      if (current === undefined || current.index !== pending.slot || current.filled || current.kept.has(b.name)) return
      const change = pending.how[i]
      if (change !== undefined) current.kept.set(b.name, { branch: b, change })
    })
  }

  observe(outcome: Outcome): void {
    this.pop.push({ id: outcome.id, graph: outcome.graph, score: outcome.score })
  }

  population(): ReadonlyArray<PopulationEntry> {
    return this.pop.members().map((m) => ({ candidateId: m.id, score: m.score }))
  }

  /** The best of a random T-subset (partial Fisher–Yates over member indices). */
  private tournament(): Member {
    const members = this.pop.members()
    const t = tournamentSize(members.length, this.tournamentPercent)
    const order = members.map((_, i) => i)
    let best: Member | undefined
    for (let k = 0; k < t; k++) {
      const j = k + this.rng.int(order.length - k)
      const pick = order[j]!
      order[j] = order[k]!
      order[k] = pick
      const m = members[pick]!
      if (best === undefined || m.score > best.score) best = m
    }
    return best!
  }

  snapshot(): unknown {
    const member = (m: Member) => ({ id: m.id, graph: toWire(m.graph), score: scoreToJson(m.score) })
    return {
      scheduler: this.name,
      rng: this.rng.getState(),
      initAdmitted: this.initAdmitted,
      slotsOpened: this.slotsOpened,
      current: this.current === undefined
        ? null
        : {
          index: this.current.index,
          parent: member(this.current.parent),
          filled: this.current.filled,
          kept: [...this.current.kept.entries()].map(([name, k]) => [name, { branch: branchToJson(k.branch), change: k.change }])
        },
      slotOf: [...this.slotOf.entries()],
      initKept: [...this.initKept.entries()].map(([name, queue]) => [name, queue.map(branchToJson)]),
      population: { capacity: this.pop.capacity, members: this.pop.members().map(member) }
    }
  }

  restore(state: unknown): void {
    const s = state as Record<string, any>
    const where = `${this.name} snapshot`
    if (typeof s !== "object" || s === null || s["scheduler"] !== this.name) {
      throw new SchedulerStateError(`${where}: not a snapshot of ${this.name} (scheduler: ${JSON.stringify(s?.["scheduler"])})`)
    }
    const member = (m: any, at: string): Member => {
      if (typeof m?.id !== "number") throw new SchedulerStateError(`${where}: ${at}.id must be a number`)
      return { id: m.id, graph: fromWire(m.graph), score: scoreFromJson(m.score, `${where}: ${at}.score`) }
    }
    const capacity = s["population"]?.capacity
    if (capacity !== this.pop.capacity) {
      throw new SchedulerStateError(`${where}: population capacity ${capacity} differs from this scheduler's ${this.pop.capacity}`)
    }
    const pop = new AgingPopulation<Member>(capacity)
    ;(s["population"].members as unknown[]).forEach((m, i) => pop.push(member(m, `population.members[${i}]`)))
    this.rng = Rng.fromState(s["rng"])
    this.pop = pop
    this.initAdmitted = s["initAdmitted"]
    this.slotsOpened = s["slotsOpened"]
    this.current = s["current"] === null
      ? undefined
      : {
        index: s["current"].index,
        parent: member(s["current"].parent, "current.parent"),
        filled: s["current"].filled,
        kept: new Map(
          (s["current"].kept as Array<[string, any]>).map(([name, k]) => [name, { branch: branchFromJson(k.branch), change: k.change }])
        )
      }
    this.slotOf = new Map(s["slotOf"] as Array<[number, Pending]>)
    this.initKept = new Map((s["initKept"] as Array<[string, unknown[]]>).map(([name, q]) => [name, q.map(branchFromJson)]))
  }
}

/** The ablation baseline: the same evolution, every offspring trained (no rejection, no reuse). */
export class NaiveEvolution extends AgingEvolution {
  override readonly name: string = "naive-evolution"
  override readonly flags: SearchFlags = { needsRejection: false, useEquivalence: false, reuseDuplicates: false }
}
