/** Promoted (asha, rung ≥ 1) trainings: table `rung_results`. */
import { type QueryContext, sql } from "./query.ts"
import { orNull, rungFromRow, trainingColumns } from "./rows.ts"
import type { StoreService } from "./types.ts"

/** The part of `StoreService` this module implements. */
type RungQueries = Pick<
  StoreService,
  "rungResult" | "putRungResult" | "rungResults"
>

export const rungQueries = ({ stmt }: QueryContext): RungQueries => {
  const rungResult: StoreService["rungResult"] = (id, rung) =>
    sql(`rungResult(${id}, ${rung})`, () => {
      const r = stmt.rung.get(id, rung) as Record<string, unknown> | undefined
      return r === undefined ? undefined : rungFromRow(r)
    })

  const putRungResult: StoreService["putRungResult"] = (id, rung, iterations, training) =>
    sql(`putRungResult(${id}, ${rung})`, () => {
      stmt.insertRung.run({
        candidateId: id,
        rung,
        iterations,
        ...trainingColumns(training),
        resumedFrom: orNull(training.result.resumedFrom)
      })
    })

  const rungResults: StoreService["rungResults"] = () =>
    sql("rungResults", () => (stmt.rungs.all() as Array<Record<string, unknown>>).map(rungFromRow))

  return { rungResult, putRungResult, rungResults }
}
