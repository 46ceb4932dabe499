/** The held-out selection: its plan and answer (table `selection`) and its trainings (table `holdout_runs`). */
import { type QueryContext, sql } from "./query.ts"
import { holdoutFromRow, selectionFromRow, stableJson, trainingColumns } from "./rows.ts"
import { StoreError } from "./StoreError.ts"
import type { StoreService } from "./types.ts"

/** The part of `StoreService` this module implements. */
type SelectionQueries = Pick<
  StoreService,
  "selection" | "startSelection" | "holdoutRuns" | "putHoldoutRun" | "completeSelection"
>

export const selectionQueries = ({ stmt }: QueryContext): SelectionQueries => {
  const selection: StoreService["selection"] = () =>
    sql("selection", () => {
      const r = stmt.selection.get() as Record<string, unknown> | undefined
      return r === undefined ? undefined : selectionFromRow(r)
    })

  const startSelection: StoreService["startSelection"] = (plan) =>
    sql("startSelection", () => {
      const row = {
        settings: stableJson(plan.settings),
        metric: plan.metric,
        finalists: JSON.stringify(plan.finalists),
        baselineKey: plan.baselineKey,
        setAside: plan.setAside.length === 0 ? null : JSON.stringify(plan.setAside)
      }
      const stored = stmt.selection.get() as Record<string, unknown> | undefined
      if (stored === undefined) {
        stmt.insertSelection.run({ ...row, createdAt: Date.now() })
        return
      }
      const same = stored["settings"] === row.settings && stored["metric"] === row.metric && stored["finalists"] === row.finalists &&
        (stored["baseline_key"] ?? null) === row.baselineKey && (stored["set_aside"] ?? null) === row.setAside
      if (!same) {
        const setAside = (v: unknown) => (v === null || v === undefined ? "" : `, set aside ${String(v)}`)
        throw new StoreError({
          reason: "diverged",
          detail: `the stored selection (${String(stored["settings"])}, ${String(stored["metric"])}, finalists ${String(stored["finalists"])}${setAside(stored["set_aside"])}) ` +
            `differs from the replayed one (${row.settings}, ${row.metric}, finalists ${row.finalists}${setAside(row.setAside)})`
        })
      }
    })

  const holdoutRuns: StoreService["holdoutRuns"] = () =>
    sql("holdoutRuns", () => (stmt.holdoutRuns.all() as Array<Record<string, unknown>>).map(holdoutFromRow))

  const putHoldoutRun: StoreService["putHoldoutRun"] = (cell, iterations, training) =>
    sql(`putHoldoutRun(${cell.subject}, seed ${cell.seed}, ${cell.split})`, () => {
      stmt.insertHoldout.run({
        candidateId: cell.subject === "baseline" ? null : cell.subject,
        seed: cell.seed,
        split: cell.split,
        iterations,
        ...trainingColumns(training)
      })
    })

  const completeSelection: StoreService["completeSelection"] = (chosenId) =>
    sql("completeSelection", () => {
      stmt.completeSelection.run(chosenId, Date.now())
    })

  return { selection, startSelection, holdoutRuns, putHoldoutRun, completeSelection }
}
