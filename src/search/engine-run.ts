/**
 * What the fibers of one `runSearch` share: the services, the pure `EngineLedger`, and the live
 * candidates whose Deferreds carry results from the job fibers (`engine-stages.ts`) to the driver
 * (`engine.ts`). Kept apart so both sides can name it without importing each other.
 */
import { Data, type Deferred, type Effect } from "effect"
import type { Checkpoint, StoreService } from "../store/Store.ts"
import type { StoreError } from "../store/StoreError.ts"
import type { EngineConfig } from "./engine.ts"
import type { BranchScreen, Candidate, EvaluatorError, EvaluatorService } from "./evaluator.ts"
import type { RungFidelity } from "./fidelity.ts"
import type { EngineLedger, Planned, Screened } from "./ledger.ts"
import type { Outcome, Scheduler } from "./scheduler.ts"

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

/** A training's result as the driver observes it (its own, or the score it reuses). */
export interface Trained {
  readonly score: number
  readonly invalid: boolean
  readonly reused: Outcome["reused"]
  readonly reusedFrom: number | null
}

export interface Live {
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

export interface EngineRun {
  readonly config: EngineConfig
  readonly scheduler: Scheduler
  readonly store: StoreService
  readonly evaluator: EvaluatorService
  readonly ledger: EngineLedger
  /** The checkpoint the store held when the run opened (a resume replays up to it and compares). */
  readonly prior: Checkpoint | undefined
  /** Bounds the trainings running at once (`trainConcurrency`). */
  readonly trainSlots: Effect.Semaphore
  /** The fidelity of a training at `rung`; undefined: the full proxy, as the task defines it. */
  readonly fidelityOf: (rung: number) => RungFidelity | undefined
  /** Proposals by id, from proposal until the run ends. */
  readonly live: Map<number, Live>
  /** Evaluator calls made by this process (the rest were served from the store). */
  readonly calls: { screen: number; train: number }
}

export const liveOf = (r: EngineRun, id: number): Live => {
  const l = r.live.get(id)
  if (l === undefined) throw new Error(`engine invariant: candidate ${id} is not live`)
  return l
}
