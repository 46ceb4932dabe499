import { Data } from "effect"

/**
 * Every failure of the search database. `reason`:
 * - `open`: the file cannot be opened or configured (path, permissions, WAL);
 * - `schema`: the database has another schema version or is not a search database;
 * - `config`: resuming with a run configuration that differs from the stored one;
 * - `diverged`: a replayed proposal differs from the stored one (code or seed changed under a run);
 * - `query`: a statement failed (constraint, I/O, corrupt JSON in a column).
 */
export class StoreError extends Data.TaggedError("StoreError")<{
  readonly reason: "open" | "schema" | "config" | "diverged" | "query"
  readonly detail: string
  readonly cause?: unknown
}> {
  override get message(): string {
    switch (this.reason) {
      case "open":
        return `cannot open the search database: ${this.detail}`
      case "schema":
        return `incompatible search database: ${this.detail}`
      case "config":
        return `run configuration differs from the stored run: ${this.detail}`
      case "diverged":
        return `resume diverged from the stored run: ${this.detail}`
      case "query":
        return `search database query failed: ${this.detail}`
    }
  }
}
