/**
 * The durable record of a fidelity measurement: `DIR/fidelity.db` (SQLite, WAL, its own file so
 * the search database's schema is untouched). One row per finished training cell
 * (loss, seed, iterations), written the moment the training returns, so an interrupted
 * measurement resumes by training only the cells that have no row. The recipe every cell shares
 * (task, metric, task options other than `iterations`) is stored once and checked on reopen:
 * cells trained under another recipe would not be comparable.
 */
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import Database from "better-sqlite3"
import { stableJson } from "../store/Store.ts"

export const FIDELITY_DB_FILE = "fidelity.db"
/** Bumped when the tables change; an older file is refused rather than migrated. */
export const FIDELITY_SCHEMA_VERSION = 1

const DDL = `
CREATE TABLE recipe (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  recipe     TEXT    NOT NULL,
  created_at REAL    NOT NULL
);
CREATE TABLE cells (
  loss_hash   TEXT    NOT NULL,
  loss_text   TEXT    NOT NULL,
  seed        INTEGER NOT NULL,
  iterations  INTEGER NOT NULL,
  metrics     TEXT    NOT NULL,
  invalid     INTEGER NOT NULL,
  elapsed_ms  REAL    NOT NULL,
  pid         INTEGER NOT NULL,
  recorded_at REAL    NOT NULL,
  PRIMARY KEY (loss_hash, seed, iterations)
);
`

export interface Cell {
  readonly lossHash: string
  readonly seed: number
  readonly iterations: number
}

export interface CellResult extends Cell {
  readonly lossText: string
  /** Every metric the task reported; an invalid (non-finite) training reports 0s. */
  readonly metrics: Readonly<Record<string, number>>
  readonly invalid: boolean
  readonly elapsedMs: number
  /** The process that trained it: tells a resumed run's cells from the first run's. */
  readonly pid: number
  readonly recordedAt: number
}

export const cellKey = (c: Cell): string => `${c.lossHash}/${c.seed}/${c.iterations}`

export class FidelityStoreError extends Error {}

export interface FidelityStore {
  readonly path: string
  /** Every stored cell, keyed by `cellKey`. */
  readonly cells: () => Map<string, CellResult>
  /** Stores a finished cell; a second write of the same cell is an error (nothing trains twice). */
  readonly put: (r: CellResult) => void
  readonly close: () => void
}

type Row = {
  loss_hash: string; loss_text: string; seed: number; iterations: number; metrics: string
  invalid: number; elapsed_ms: number; pid: number; recorded_at: number
}

/** Opens (creating) `dir/fidelity.db` and checks `recipe` against the stored one. */
export const openFidelityStore = (dir: string, recipe: unknown): FidelityStore => {
  const path = join(dir, FIDELITY_DB_FILE)
  let db: Database.Database
  try {
    mkdirSync(dir, { recursive: true })
    db = new Database(path)
    db.pragma("journal_mode = WAL")
    db.pragma("synchronous = NORMAL")
  } catch (e) {
    throw new FidelityStoreError(`cannot open ${path}: ${(e as Error).message}`)
  }
  try {
    const version = db.pragma("user_version", { simple: true }) as number
    if (version === 0) {
      const tables = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number }
      if (tables.n !== 0) throw new FidelityStoreError(`${path} has tables but no schema version: not a fidelity database`)
      db.transaction(() => {
        db.exec(DDL)
        db.pragma(`user_version = ${FIDELITY_SCHEMA_VERSION}`)
        db.prepare("INSERT INTO recipe (id, recipe, created_at) VALUES (1, ?, ?)").run(stableJson(recipe), Date.now())
      })()
    } else if (version !== FIDELITY_SCHEMA_VERSION) {
      throw new FidelityStoreError(`${path} has schema version ${version}, this build reads ${FIDELITY_SCHEMA_VERSION}`)
    } else {
      const stored = (db.prepare("SELECT recipe FROM recipe WHERE id = 1").get() as { recipe: string }).recipe
      if (stored !== stableJson(recipe)) {
        throw new FidelityStoreError(`${path} was measured with another recipe: stored ${stored}, asked ${stableJson(recipe)} (use another --out)`)
      }
    }
  } catch (e) {
    db.close()
    if (e instanceof FidelityStoreError) throw e
    throw new FidelityStoreError(`${path}: ${(e as Error).message}`)
  }
  const insert = db.prepare(
    `INSERT INTO cells (loss_hash, loss_text, seed, iterations, metrics, invalid, elapsed_ms, pid, recorded_at)
     VALUES (@lossHash, @lossText, @seed, @iterations, @metrics, @invalid, @elapsedMs, @pid, @recordedAt)`
  )
  const select = db.prepare("SELECT * FROM cells ORDER BY recorded_at")
  return {
    path,
    cells: () => new Map((select.all() as Row[]).map((r) => {
      const c: CellResult = {
        lossHash: r.loss_hash, lossText: r.loss_text, seed: r.seed, iterations: r.iterations,
        // JSON turns NaN into null; a missing metric value reads back as NaN
        metrics: Object.fromEntries(Object.entries(JSON.parse(r.metrics) as Record<string, number | null>).map(([k, v]) => [k, v ?? NaN])),
        invalid: r.invalid === 1, elapsedMs: r.elapsed_ms, pid: r.pid, recordedAt: r.recorded_at
      }
      return [cellKey(c), c]
    })),
    put: (r) => {
      try {
        insert.run({ ...r, metrics: JSON.stringify(r.metrics), invalid: r.invalid ? 1 : 0 })
      } catch (e) {
        throw new FidelityStoreError(`storing cell ${cellKey(r)} in ${path}: ${(e as Error).message}`)
      }
    },
    close: () => db.close()
  }
}
