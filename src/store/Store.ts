/**
 * The durable record of a search: one SQLite file (`DIR/search.db`, WAL mode) per run.
 *
 * Guarantees (what resume relies on):
 * - Only the engine's driver fiber writes statuses, admissions, outcomes, the population and the
 *   checkpoint; evaluation fibers only add results (`putScreenResult`, `putTrainResult`).
 * - A result is stored before the engine uses it, so a result that reached the engine survives a
 *   crash and is never asked for again.
 * - `commitOutcome` writes the candidate's outcome, the scheduler checkpoint, the population and
 *   the counters in one transaction: after a crash they describe the same moment.
 * - Rows are facts keyed by the proposal index; replaying a run rewrites them with equal values.
 * The schema is documented in `docs/store-schema.md`.
 *
 * The store is split by job: `types.ts` (the row and service types), `rows.ts` (row codecs),
 * `database.ts` (opening and migrating the file), `statements.ts` (every prepared statement), and one
 * query builder per concern (`search-queries.ts`, `evaluation-queries.ts`, `rung-queries.ts`,
 * `selection-queries.ts`), assembled here.
 */
import { join } from "node:path"
import { Context, Effect, Layer } from "effect"
import { ensureSchema, openDatabase } from "./database.ts"
import { evaluationQueries } from "./evaluation-queries.ts"
import { rungQueries } from "./rung-queries.ts"
import { DB_FILE } from "./schema.ts"
import { searchQueries } from "./search-queries.ts"
import { selectionQueries } from "./selection-queries.ts"
import { prepareStatements } from "./statements.ts"
import { StoreError } from "./StoreError.ts"
import type { StoreService } from "./types.ts"

export { holdoutFromRow, rungFromRow, selectionFromRow, stableJson } from "./rows.ts"
export type {
  CandidateRow,
  Checkpoint,
  Counters,
  LedgerRow,
  OutcomeUpdate,
  PopulationEntry,
  ProposalRow,
  StoredHoldout,
  StoredRung,
  StoredScreen,
  StoredSelection,
  StoredTrain,
  StoreService,
  VerdictUpdate
} from "./types.ts"

export class Store extends Context.Tag("@autoloss/Store")<Store, StoreService>() {}

const make = (dir: string) =>
  Effect.gen(function* () {
    const path = join(dir, DB_FILE)
    const db = yield* Effect.acquireRelease(
      Effect.try({
        try: () => openDatabase(dir),
        catch: (cause) => new StoreError({ reason: "open", detail: `${path}: ${String(cause)}`, cause })
      }),
      (db) => Effect.sync(() => db.close())
    )
    yield* Effect.try({
      try: () => ensureSchema(db, path),
      catch: (cause) =>
        cause instanceof StoreError ? cause : new StoreError({ reason: "schema", detail: `${path}: ${String(cause)}`, cause })
    })
    const queries = { db, stmt: prepareStatements(db) }
    return Store.of({
      path,
      ...searchQueries(queries),
      ...evaluationQueries(queries),
      ...rungQueries(queries),
      ...selectionQueries(queries)
    })
  })

/** The store of the run in `dir` (created if missing); the database closes with the layer's scope. */
export const layer = (dir: string): Layer.Layer<Store, StoreError> => Layer.scoped(Store, make(dir))
