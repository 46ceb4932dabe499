/**
 * What the held-out final selection records: its settings, the trainings it plans (cells) and their
 * results. Below both the search (`search/selection.ts` decides from them) and the store (which
 * keeps them), so the store does not import the search.
 */

export interface SelectionSettings {
  /** Finalists: the best losses by fitness; 0 skips the selection. */
  readonly top: number
  /** Held-out seeds, each used for initialisation, batch order and (where the task has it) data. */
  readonly seeds: ReadonlyArray<number>
  /** Training iterations of each held-out run; null: the task's (or the run's) full proxy. */
  readonly iterations: number | null
  /**
   * Confirmation seeds: after the choice, the chosen loss and the baseline are trained once more
   * from each of these, which played no part in choosing it, so their paired difference is not
   * inflated by picking the best of the finalists on the held-out seeds. Empty: no confirmation.
   * Absent in runs made before it existed (read as empty).
   */
  readonly confirmSeeds?: ReadonlyArray<number>
}

/** A finalist's candidate id, or the task's handcrafted baseline. */
export type Subject = number | "baseline"

export interface Cell {
  readonly subject: Subject
  readonly seed: number
  readonly split: "held-out" | "proxy"
}

export interface CellResult extends Cell {
  readonly metrics: Readonly<Record<string, number>>
  readonly invalid: boolean
}

export interface Plan {
  readonly metric: string
  readonly seeds: ReadonlyArray<number>
  /** `SelectionSettings.confirmSeeds`, empty when none. */
  readonly confirmSeeds: ReadonlyArray<number>
  /** Candidate ids in fitness order, with their proxy scores. */
  readonly finalists: ReadonlyArray<{ readonly id: number; readonly score: number }>
  /**
   * The baseline's gradient-equivalence key on the search's rejection samples; null: not computed
   * (no equivalence keys in the run, a task without a baseline graph, or a selection made before).
   */
  readonly baselineKey: string | null
  /**
   * Candidates that ranked above the last finalist but were left out as gradient-equivalent to the
   * baseline (the baseline rediscovered), in fitness order with their proxy scores.
   */
  readonly setAside: ReadonlyArray<{ readonly id: number; readonly score: number }>
}
