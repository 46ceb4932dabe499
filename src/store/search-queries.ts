/** The search's own record: the run, proposals, verdicts and outcomes, and the scheduler's checkpoint, population and counters. */
import { type QueryContext, sql } from "./query.ts"
import { candidateFromRow, encodeNumbers, stableJson } from "./rows.ts"
import { type CandidateStatus, SCHEMA_VERSION } from "./schema.ts"
import { StoreError } from "./StoreError.ts"
import type { Counters, StoreService } from "./types.ts"

/** The part of `StoreService` this module implements. */
type SearchQueries = Pick<
  StoreService,
  "openRun" | "putProposal" | "commitVerdict" | "commitOutcome" | "markAbandoned" | "checkpoint" | "candidates" | "population" | "counters"
>

export const searchQueries = ({ db, stmt }: QueryContext): SearchQueries => {
  const writeCounters = (counters: Counters): void => {
    for (const [name, value] of Object.entries(counters)) stmt.putCounter.run(name, value)
  }

  const openRun: StoreService["openRun"] = (config) =>
    sql("openRun", () => {
      const text = stableJson(config)
      const row = stmt.run.get() as { config: string } | undefined
      if (row === undefined) {
        stmt.insertRun.run(SCHEMA_VERSION, text, Date.now())
        return { resumed: false }
      }
      if (row.config !== text) {
        throw new StoreError({ reason: "config", detail: `stored ${row.config}, given ${text}` })
      }
      return { resumed: true }
    })

  const putProposal: StoreService["putProposal"] = (row) =>
    sql(`putProposal(${row.id})`, () => {
      const stored = stmt.proposalHash.get(row.id) as { hash: string; status: CandidateStatus } | undefined
      if (stored !== undefined) {
        if (stored.hash !== row.hash) {
          throw new StoreError({
            reason: "diverged",
            detail: `candidate ${row.id} was stored with hash ${stored.hash}, replay proposed ${row.hash} (${row.text})`
          })
        }
        return { stored: stored.status }
      }
      stmt.insertProposal.run({ ...row, wire: JSON.stringify(row.wire), how: JSON.stringify(row.how) })
      return { stored: null }
    })

  const commitVerdict: StoreService["commitVerdict"] = (v, counters) =>
    sql(`commitVerdict(${v.id})`, () =>
      db.transaction(() => {
        const r = v.rejection
        stmt.verdict.run({
          id: v.id,
          status: v.status,
          staticBranch: v.staticBranch,
          staticReason: v.staticReason,
          equivalenceKey: v.equivalenceKey,
          admissionIndex: v.admissionIndex,
          passed: r === null ? null : r.passed ? 1 : 0,
          score: r === null ? null : r.score,
          invalid: r === null ? null : r.invalid ? 1 : 0,
          gradNorms: r === null ? null : encodeNumbers(r.gradNorms),
          fingerprint: r === null ? null : encodeNumbers(r.fingerprint)
        })
        writeCounters(counters)
      })()
    )

  const commitOutcome: StoreService["commitOutcome"] = (o, checkpoint, population, counters) =>
    sql(`commitOutcome(${o.id})`, () =>
      db.transaction(() => {
        stmt.outcome.run(o)
        stmt.putCheckpoint.run(
          checkpoint.observations,
          JSON.stringify(checkpoint.scheduler),
          JSON.stringify(checkpoint.engine),
          Date.now()
        )
        stmt.clearPopulation.run()
        population.forEach((p, position) => stmt.insertPopulation.run(position, p.candidateId, p.score))
        writeCounters(counters)
      })()
    )

  const markAbandoned: StoreService["markAbandoned"] = (fromId, counters) =>
    sql("markAbandoned", () =>
      db.transaction(() => {
        stmt.abandon.run(fromId)
        writeCounters(counters)
      })()
    )

  const checkpoint: StoreService["checkpoint"] = () =>
    sql("checkpoint", () => {
      const r = stmt.checkpoint.get() as { observations: number; scheduler: string; engine: string } | undefined
      return r === undefined
        ? undefined
        : { observations: r.observations, scheduler: JSON.parse(r.scheduler) as unknown, engine: JSON.parse(r.engine) as unknown }
    })

  const candidates: StoreService["candidates"] = () =>
    sql("candidates", () => (stmt.candidates.all() as Array<Record<string, unknown>>).map(candidateFromRow))

  const population: StoreService["population"] = () =>
    sql("population", () =>
      (stmt.population.all() as Array<{ candidate_id: number; score: number | null }>).map((r) => ({
        candidateId: r.candidate_id,
        score: r.score ?? -Infinity
      }))
    )

  const counters: StoreService["counters"] = () =>
    sql("counters", () =>
      Object.fromEntries((stmt.counters.all() as Array<{ name: string; value: number }>).map((r) => [r.name, r.value]))
    )

  return { openRun, putProposal, commitVerdict, commitOutcome, markAbandoned, checkpoint, candidates, population, counters }
}
