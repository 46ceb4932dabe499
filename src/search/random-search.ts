/**
 * Random search: every proposal is a fresh random loss (depth D = 3 per branch), and every one that
 * passes screening is evaluated. The baseline evolution has to beat.
 */
import { Rng } from "../graph/rng.ts"
import { randomLoss } from "../graph/random.ts"
import {
  type BranchSpec,
  FULL_PIPELINE,
  type Outcome,
  type PopulationEntry,
  type Proposal,
  type Scheduler,
  SchedulerStateError,
  type ScreenedEvent,
  type SearchFlags,
  passes,
  scoreFromJson,
  scoreToJson
} from "./scheduler.ts"

export class RandomSearch implements Scheduler {
  readonly name = "random-search"
  readonly flags: SearchFlags = FULL_PIPELINE
  private best: PopulationEntry | undefined

  constructor(
    readonly branches: BranchSpec,
    private rng: Rng
  ) {}

  propose(): Proposal {
    return { graph: randomLoss(this.branches, this.rng), provenance: { parentId: null, how: "random" } }
  }

  admit(event: ScreenedEvent): boolean {
    return passes(event.verdict)
  }

  observe(outcome: Outcome): void {
    if (this.best === undefined || outcome.score > this.best.score) this.best = { candidateId: outcome.id, score: outcome.score }
  }

  /** Random search keeps no population; this is the best loss so far. */
  population(): ReadonlyArray<PopulationEntry> {
    return this.best === undefined ? [] : [this.best]
  }

  snapshot(): unknown {
    return {
      scheduler: this.name,
      rng: this.rng.getState(),
      best: this.best === undefined ? null : { candidateId: this.best.candidateId, score: scoreToJson(this.best.score) }
    }
  }

  restore(state: unknown): void {
    const s = state as { scheduler?: unknown; rng?: unknown; best?: { candidateId: number; score: unknown } | null }
    if (s?.scheduler !== this.name || typeof s.rng !== "string") {
      throw new SchedulerStateError(`random-search snapshot: not a snapshot of random-search`)
    }
    this.rng = Rng.fromState(s.rng)
    this.best = s.best == null ? undefined : { candidateId: s.best.candidateId, score: scoreFromJson(s.best.score, "random-search snapshot: best.score") }
  }
}
