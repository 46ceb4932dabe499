/** Evaluation results (screening and full proxy training) and the `evaluations` ledger every stored result is appended to. */
import { type BranchScreen, type ScreenResult, summariseBranches, type TrainResult } from "../results/evaluation.ts"
import { type QueryContext, sql } from "./query.ts"
import { decodeNumbers, encodeNumbers, ledgerFromRow, orNull, provenance } from "./rows.ts"
import type { StoreService } from "./types.ts"

/** The part of `StoreService` this module implements. */
type EvaluationQueries = Pick<
  StoreService,
  "screenResult" | "putScreenResult" | "trainResult" | "putTrainResult" | "ledger"
>

export const evaluationQueries = ({ db, stmt }: QueryContext): EvaluationQueries => {
  const screenResult: StoreService["screenResult"] = (id) =>
    sql(`screenResult(${id})`, () => {
      const r = stmt.screen.get(id) as Record<string, unknown> | undefined
      if (r === undefined) return undefined
      const branches = decodeNumbers<Record<string, BranchScreen>>(r["screen_branches"] as string)
      const result: ScreenResult = {
        ...summariseBranches(Object.values(branches)),
        branches,
        ...provenance(r, "screen")
      }
      return { result, elapsedMs: r["screen_ms"] as number }
    })

  const putScreenResult: StoreService["putScreenResult"] = (id, { result, elapsedMs }) =>
    sql(`putScreenResult(${id})`, () =>
      db.transaction(() => {
        stmt.appendLedger.run(id, "screen", orNull(result.workerId), orNull(result.attempt), elapsedMs, process.pid, Date.now())
        stmt.putScreen.run({
          id,
          passed: result.passed ? 1 : 0,
          score: result.score,
          invalid: result.invalid ? 1 : 0,
          gradNorms: encodeNumbers(result.gradNorms),
          fingerprint: encodeNumbers(result.fingerprint),
          branches: encodeNumbers(result.branches),
          elapsedMs,
          workerId: orNull(result.workerId),
          attempt: orNull(result.attempt)
        })
      })()
    )

  const trainResult: StoreService["trainResult"] = (id) =>
    sql(`trainResult(${id})`, () => {
      const r = stmt.train.get(id) as Record<string, unknown> | undefined
      if (r === undefined) return undefined
      const result: TrainResult = {
        metrics: decodeNumbers<Record<string, number>>(r["proxy_metrics"] as string),
        target: r["target_score"] === null ? NaN : (r["target_score"] as number),
        invalid: r["invalid"] === 1,
        ...provenance(r, "train")
      }
      return { result, elapsedMs: r["train_ms"] as number }
    })

  const putTrainResult: StoreService["putTrainResult"] = (id, { result, elapsedMs }) =>
    sql(`putTrainResult(${id})`, () =>
      db.transaction(() => {
        stmt.appendLedger.run(id, "train", orNull(result.workerId), orNull(result.attempt), elapsedMs, process.pid, Date.now())
        stmt.putTrain.run({
          id,
          metrics: encodeNumbers(result.metrics),
          target: result.target,
          invalid: result.invalid ? 1 : 0,
          elapsedMs,
          workerId: orNull(result.workerId),
          attempt: orNull(result.attempt)
        })
      })()
    )

  const ledger: StoreService["ledger"] = () =>
    sql("ledger", () => (stmt.ledger.all() as Array<Record<string, unknown>>).map(ledgerFromRow))

  return { screenResult, putScreenResult, trainResult, putTrainResult, ledger }
}
