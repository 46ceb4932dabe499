/** What the store's query builders share: the open database, its prepared statements, and `sql`. */
import type Database from "better-sqlite3"
import { Effect } from "effect"
import type { Statements } from "./statements.ts"
import { StoreError } from "./StoreError.ts"

export interface QueryContext {
  readonly db: Database.Database
  readonly stmt: Statements
}

/** Runs synchronous SQL as one effect; SQLite failures become `query` errors naming `what`. */
export const sql = <A>(what: string, f: () => A): Effect.Effect<A, StoreError> =>
  Effect.try({
    try: f,
    catch: (cause) =>
      cause instanceof StoreError ? cause : new StoreError({ reason: "query", detail: `${what}: ${String(cause)}`, cause })
  })
