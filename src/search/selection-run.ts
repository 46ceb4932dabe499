/**
 * Performs the held-out final choice (`selection.ts`) after a search, in its store: picks the
 * finalists from the stored outcomes (first training the baseline's proxy run when a loss shares
 * its equivalence key, to set the baseline rediscovered aside), stores the plan, trains every cell the store does not hold
 * yet and stores each result as it arrives, chooses, trains the chosen loss and the baseline from
 * the confirmation seeds the same way, then stores the choice.
 *
 * Resume: the finalists are a function of the finished search's rows, so a rerun recomputes the
 * same plan (checked against the stored one); a stored cell is never trained again, a cell in
 * flight at a kill is trained once more. `top: 0` (or a search with no finite score) stores nothing.
 */
import { Clock, Effect } from "effect"
import { fromWire } from "../graph/wire.ts"
import { Store } from "../store/Store.ts"
import type { StoreError } from "../store/StoreError.ts"
import { type HeldOutError, type HeldOutJob, HeldOutTrainer } from "./evaluator.ts"
import {
  atHighestRung, type Cell, cellKey, choose, confirmSeedsOf, type Decision, decide, heldOutValue, pickFinalists, type Plan, planCells, planConfirmCells, rankByFitness, rediscoversBaseline,
  type SelectionSettings
} from "./selection.ts"

export interface SelectionOptions {
  /** The metric the search maximised (the task's resolved target metric). */
  readonly metric: string
  /** The search's seed: the baseline's proxy run uses it. */
  readonly searchSeed: number
  /** Trainings that may run at once. */
  readonly concurrency: number
  /**
   * The baseline's gradient-equivalence key (`baseline-key.ts`): a loss with it that also trains to
   * the baseline's proxy score is set aside, not held out. Null: none is. A resumed selection must
   * pass the key it stored.
   */
  readonly baselineKey: string | null
}

export interface SelectionOutcome {
  /** Null when nothing was selected (`top: 0`, or no loss had a finite score). */
  readonly decision: Decision | null
  /** Trainings this process ran (the others were read from the store). */
  readonly trainings: number
}

export const runSelection = (
  settings: SelectionSettings,
  options: SelectionOptions
): Effect.Effect<SelectionOutcome, StoreError | HeldOutError, Store | HeldOutTrainer> =>
  Effect.gen(function* () {
    if (settings.top === 0) return { decision: null, trainings: 0 }
    const store = yield* Store
    const trainer = yield* HeldOutTrainer
    const rows = atHighestRung(yield* store.candidates(), yield* store.rungResults())
    const byId = new Map(rows.map((r) => [r.id, r]))
    let trainings = 0
    // Trains the cells the store does not hold yet, storing each as it arrives.
    const trainAll = (cells: ReadonlyArray<Cell>) =>
      Effect.gen(function* () {
        const stored = new Set((yield* store.holdoutRuns()).map(cellKey))
        yield* Effect.forEach(
          cells.filter((c) => !stored.has(cellKey(c))),
          (cell) =>
            Effect.gen(function* () {
              const row = cell.subject === "baseline" ? undefined : byId.get(cell.subject)
              const subject: HeldOutJob["subject"] = row === undefined
                ? { kind: "baseline" }
                : { kind: "loss", candidate: { id: row.id, graph: fromWire(row.wire), hash: row.hash, text: row.text } }
              // The baseline's proxy reference is the search's own training recipe, at full length.
              const iterations = cell.split === "proxy" ? null : settings.iterations
              const start = yield* Clock.currentTimeMillis
              trainings++
              const result = yield* trainer.train({ subject, seed: cell.seed, split: cell.split, iterations })
              const elapsedMs = (yield* Clock.currentTimeMillis) - start
              yield* store.putHoldoutRun(cell, iterations, { result, elapsedMs })
            }),
          { concurrency: options.concurrency, discard: true }
        )
      })
    // A loss with the baseline's key is set aside only if it also trains to the baseline's proxy
    // score (`rediscoversBaseline`): then the baseline's proxy run, planned anyway, goes first.
    const key = options.baselineKey
    let baselineProxy: number | null = null
    if (key !== null && rankByFitness(rows, rows.length).some((r) => r.equivalenceKey === key)) {
      const proxyCell: Cell = { subject: "baseline", seed: options.searchSeed, split: "proxy" }
      yield* trainAll([proxyCell])
      const proxy = (yield* store.holdoutRuns()).find((c) => cellKey(c) === cellKey(proxyCell))
      baselineProxy = proxy === undefined || proxy.invalid ? null : heldOutValue(proxy, options.metric)
    }
    const picked = pickFinalists(rows, settings.top, (r) => rediscoversBaseline(r, key, baselineProxy))
    // Every scored loss the baseline rediscovered: they are held out after all, and tie with it.
    const { finalists, setAside } = picked.finalists.length > 0 ? picked : { finalists: rankByFitness(rows, settings.top), setAside: [] }
    if (finalists.length === 0) return { decision: null, trainings }
    const scored = (r: { readonly id: number; readonly score: number | null }) => ({ id: r.id, score: r.score as number })
    const plan: Plan = {
      metric: options.metric, seeds: settings.seeds, confirmSeeds: confirmSeedsOf(settings),
      finalists: finalists.map(scored), baselineKey: key, setAside: setAside.map(scored)
    }
    yield* store.startSelection({ ...plan, settings })
    yield* trainAll(planCells(plan.finalists.map((f) => f.id), plan.seeds, options.searchSeed))
    const choice = choose(plan, yield* store.holdoutRuns())
    if (choice === null) return yield* Effect.dieMessage("selection invariant: every planned training is stored but no choice")
    yield* trainAll(planConfirmCells(choice.chosen, plan.confirmSeeds))
    const decision = decide(plan, yield* store.holdoutRuns())
    if (decision === null) return yield* Effect.dieMessage("selection invariant: every planned training is stored but no decision")
    yield* store.completeSelection(decision.chosen)
    return { decision, trainings }
  })
