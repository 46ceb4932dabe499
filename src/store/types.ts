/** The store's row, update and service types (see `Store.ts` for the guarantees behind them). */
import type { Effect } from "effect"
import type { BranchScreen, ScreenResult, TrainResult } from "../results/evaluation.ts"
import type { Cell, CellResult, Plan, SelectionSettings } from "../results/selection.ts"
import type { CandidateStatus } from "./schema.ts"
import type { StoreError } from "./StoreError.ts"

/** What names a candidate and where it came from: every row about one carries these. */
export interface CandidateIdentity {
  readonly id: number
  readonly text: string
  /** The graph's wire form (protocol v1), from which the graph is rebuilt exactly. */
  readonly wire: unknown
  readonly hash: string
  readonly parentId: number | null
  /** `"random"` or the per-branch changes of `offspring` (see `src/graph/mutate.ts`). */
  readonly how: unknown
}

export interface ProposalRow extends CandidateIdentity {
  readonly proposedAt: number
  /** The earlier candidate with the same structural hash whose verdict this one reuses. */
  readonly duplicateOf: number | null
}

export interface StoredScreen {
  readonly result: ScreenResult
  readonly elapsedMs: number
}

export interface StoredTrain {
  readonly result: TrainResult
  readonly elapsedMs: number
}

/** One promoted training (table `rung_results`). */
export interface StoredRung extends StoredTrain {
  readonly candidateId: number
  readonly rung: number
  readonly iterations: number
}

/** The verdict of the screening stage, written when the scheduler has seen it. */
export interface VerdictUpdate {
  readonly id: number
  readonly status: Extract<CandidateStatus, "static_rejected" | "rejected" | "discarded" | "admitted">
  readonly staticBranch: string | null
  readonly staticReason: string | null
  readonly equivalenceKey: string | null
  readonly admissionIndex: number | null
  /** The protocol's verdict over the candidate's screened branches (null: none screened). */
  readonly rejection: BranchScreen | null
}

/** The final outcome of an admitted candidate. `score` is −∞ for an invalid (NaN/Inf) loss. */
export interface OutcomeUpdate {
  readonly id: number
  readonly score: number
  readonly reusedFrom: number | null
  readonly reuseKind: "duplicate" | "equivalent" | null
}

export interface Checkpoint {
  /** How many outcomes the scheduler had observed when this was taken. */
  readonly observations: number
  readonly scheduler: unknown
  readonly engine: unknown
}

export interface PopulationEntry {
  readonly candidateId: number
  readonly score: number
}

/** A candidate row as stored (JSON columns decoded). */
export interface CandidateRow extends CandidateIdentity {
  readonly status: CandidateStatus
  readonly duplicateOf: number | null
  readonly staticBranch: string | null
  readonly staticReason: string | null
  readonly rejectionPassed: boolean | null
  readonly rejectionScore: number | null
  readonly equivalenceKey: string | null
  readonly admissionIndex: number | null
  readonly reusedFrom: number | null
  readonly reuseKind: "duplicate" | "equivalent" | null
  readonly targetScore: number | null
  readonly invalid: boolean | null
  readonly score: number | null
}

export type Counters = Readonly<Record<string, number>>

/** One stored evaluation result (the `evaluations` ledger), in the order they were stored. */
export interface LedgerRow {
  readonly seq: number
  readonly candidateId: number
  readonly stage: "screen" | "train"
  readonly worker: string | null
  readonly attempt: number | null
  readonly elapsedMs: number
  /** The control-plane process that stored it (tells the runs before and after a resume apart). */
  readonly pid: number
}

/** The held-out selection's plan and, once complete, its answer (table `selection`). */
export interface StoredSelection extends Plan {
  readonly settings: SelectionSettings
  readonly chosenId: number | null
  readonly completedAt: number | null
}

/** One held-out (or baseline proxy) training (table `holdout_runs`). */
export interface StoredHoldout extends CellResult {
  readonly iterations: number | null
  readonly target: number
  readonly elapsedMs: number
  readonly workerId?: string
  readonly attempt?: number
}

export interface StoreService {
  readonly path: string
  /** Creates the run, or checks that `config` equals the stored one. `resumed`: the run existed. */
  readonly openRun: (config: unknown) => Effect.Effect<{ readonly resumed: boolean }, StoreError>
  /** Inserts a proposal; on replay checks the stored one has the same hash and returns its status. */
  readonly putProposal: (row: ProposalRow) => Effect.Effect<{ readonly stored: CandidateStatus | null }, StoreError>
  readonly screenResult: (id: number) => Effect.Effect<StoredScreen | undefined, StoreError>
  readonly putScreenResult: (id: number, stored: StoredScreen) => Effect.Effect<void, StoreError>
  readonly trainResult: (id: number) => Effect.Effect<StoredTrain | undefined, StoreError>
  readonly putTrainResult: (id: number, stored: StoredTrain) => Effect.Effect<void, StoreError>
  /** A promoted training's result (asha fidelity, rung ≥ 1). */
  readonly rungResult: (id: number, rung: number) => Effect.Effect<StoredTrain | undefined, StoreError>
  /** Stores a promoted training's result once; a second one for the same candidate and rung is an error. */
  readonly putRungResult: (id: number, rung: number, iterations: number, stored: StoredTrain) => Effect.Effect<void, StoreError>
  /** Every promoted training's result, by candidate then rung. */
  readonly rungResults: () => Effect.Effect<ReadonlyArray<StoredRung>, StoreError>
  readonly commitVerdict: (v: VerdictUpdate, counters: Counters) => Effect.Effect<void, StoreError>
  readonly commitOutcome: (
    o: OutcomeUpdate,
    checkpoint: Checkpoint,
    population: ReadonlyArray<PopulationEntry>,
    counters: Counters
  ) => Effect.Effect<void, StoreError>
  /** Marks every candidate from `fromId` on that never got a verdict as abandoned (run finished). */
  readonly markAbandoned: (fromId: number, counters: Counters) => Effect.Effect<void, StoreError>
  readonly checkpoint: () => Effect.Effect<Checkpoint | undefined, StoreError>
  readonly candidates: () => Effect.Effect<ReadonlyArray<CandidateRow>, StoreError>
  readonly population: () => Effect.Effect<ReadonlyArray<PopulationEntry>, StoreError>
  readonly counters: () => Effect.Effect<Counters, StoreError>
  /** Every evaluation result ever stored in this run, across processes. */
  readonly ledger: () => Effect.Effect<ReadonlyArray<LedgerRow>, StoreError>
  readonly selection: () => Effect.Effect<StoredSelection | undefined, StoreError>
  /** Stores the plan, or checks that it equals the stored one (else `diverged`). */
  readonly startSelection: (plan: Plan & { readonly settings: SelectionSettings }) => Effect.Effect<void, StoreError>
  readonly holdoutRuns: () => Effect.Effect<ReadonlyArray<StoredHoldout>, StoreError>
  /** Inserts one training's result; a second result for the same cell is an error (never replaced). */
  readonly putHoldoutRun: (cell: Cell, iterations: number | null, stored: StoredTrain) => Effect.Effect<void, StoreError>
  readonly completeSelection: (chosenId: number) => Effect.Effect<void, StoreError>
}
