/**
 * Reads a run directory for reporting: `run.json` and `search.db`, the database opened read-only
 * (WAL lets a reader see consistent snapshots while the search keeps writing). Only plain rows come
 * out; `model.ts` turns them into the report.
 *
 * It reads the columns the engine's `Store` does not hand out (proposal time, job durations and
 * workers, proxy metrics), so it queries SQLite directly, checking the schema version first.
 */
import { RUN_FILE } from "../search/run-config.ts"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import Database from "better-sqlite3"
import { BASE_VERSION, type CandidateStatus, DB_FILE, SCHEMA_VERSION } from "../store/schema.ts"
import { holdoutFromRow, rungFromRow, selectionFromRow, type StoredHoldout, type StoredRung, type StoredSelection } from "../store/Store.ts"
import type { CandidateIdentity } from "../store/types.ts"
import type { RunConfig } from "../search/run-config.ts"

export interface CandidateRecord extends CandidateIdentity {
  readonly status: CandidateStatus
  /** Wall clock (ms since the epoch) when the engine proposed it. */
  readonly proposedAt: number
  readonly duplicateOf: number | null
  readonly staticBranch: string | null
  readonly staticReason: string | null
  readonly rejectionPassed: boolean | null
  readonly rejectionScore: number | null
  readonly rejectionInvalid: boolean | null
  /** ‖∂L/∂ŷ‖₂ per rejection sample, branch-major; null: not screened. */
  readonly gradNorms: ReadonlyArray<number> | null
  readonly equivalenceKey: string | null
  readonly screenMs: number | null
  readonly screenWorker: string | null
  readonly admissionIndex: number | null
  readonly reusedFrom: number | null
  readonly reuseKind: "duplicate" | "equivalent" | null
  readonly proxyMetrics: Readonly<Record<string, number>> | null
  readonly targetScore: number | null
  readonly invalid: boolean | null
  readonly trainMs: number | null
  readonly trainWorker: string | null
  /** The score the scheduler observed; −∞ for invalid losses (SQLite stores it as -Inf). */
  readonly score: number | null
  /** Set by `atHighestRung` (asha fidelity): the rung `score` comes from. */
  readonly rung?: number
}

export interface RunData {
  readonly dir: string
  /** `run.json`, when the directory has one (a store built by tests or other tools may not). */
  readonly config: RunConfig | null
  /** Ms since the epoch when the run was created. */
  readonly createdAt: number
  readonly candidates: ReadonlyArray<CandidateRecord>
  readonly counters: Readonly<Record<string, number>>
  /** When the latest outcome was committed (ms since the epoch); null before the first. */
  readonly lastOutcomeAt: number | null
  /** The held-out final choice: its plan and the trainings stored so far; null: none (yet). */
  readonly selection: { readonly plan: StoredSelection; readonly runs: ReadonlyArray<StoredHoldout> } | null
  /** Promoted trainings (`--fidelity asha`), by candidate then rung; empty for full fidelity. */
  readonly rungs: ReadonlyArray<StoredRung>
}

export { RUN_FILE }

export class RunDataError extends Error {
  override readonly name = "RunDataError"
}

/** Numbers JSON cannot hold are stored as strings by the Store (`"NaN"`, `"Infinity"`). */
const decodeNumbers = (text: string): unknown =>
  JSON.parse(text, (_key, v: unknown) =>
    v === "NaN" ? NaN : v === "Infinity" ? Infinity : v === "-Infinity" ? -Infinity : v
  )

const bool = (v: unknown): boolean | null => (v === null || v === undefined ? null : v === 1)
const num = (v: unknown): number | null => (typeof v === "number" ? v : null)
const str = (v: unknown): string | null => (typeof v === "string" ? v : null)

export const candidateFromRow = (r: Record<string, unknown>): CandidateRecord => ({
  id: r["id"] as number,
  text: r["text"] as string,
  wire: JSON.parse(r["wire"] as string) as unknown,
  hash: r["hash"] as string,
  parentId: num(r["parent_id"]),
  how: JSON.parse(r["how"] as string) as unknown,
  status: r["status"] as CandidateStatus,
  proposedAt: r["proposed_at"] as number,
  duplicateOf: num(r["duplicate_of"]),
  staticBranch: str(r["static_branch"]),
  staticReason: str(r["static_reason"]),
  rejectionPassed: bool(r["rejection_passed"]),
  rejectionScore: num(r["rejection_score"]),
  rejectionInvalid: bool(r["rejection_invalid"]),
  gradNorms: r["grad_norms"] === null || r["grad_norms"] === undefined ? null : (decodeNumbers(r["grad_norms"] as string) as number[]),
  equivalenceKey: str(r["equivalence_key"]),
  screenMs: num(r["screen_ms"]),
  screenWorker: str(r["screen_worker"]),
  admissionIndex: num(r["admission_index"]),
  reusedFrom: num(r["reused_from"]),
  reuseKind: r["reuse_kind"] as CandidateRecord["reuseKind"],
  proxyMetrics: r["proxy_metrics"] === null ? null : (decodeNumbers(r["proxy_metrics"] as string) as Record<string, number>),
  targetScore: num(r["target_score"]),
  invalid: bool(r["invalid"]),
  trainMs: num(r["train_ms"]),
  trainWorker: str(r["train_worker"]),
  score: num(r["score"])
})

/**
 * Opens `DIR/search.db` read-only; the caller closes it. Reads every version this build can
 * migrate (a read-only reader cannot migrate: tables of later steps read as empty when absent).
 */
export const openRunDatabase = (dir: string): Database.Database => {
  const path = join(dir, DB_FILE)
  if (!existsSync(path)) throw new RunDataError(`${path} not found: not a search run directory`)
  const db = new Database(path, { readonly: true, fileMustExist: true })
  const version = db.pragma("user_version", { simple: true }) as number
  if (version < BASE_VERSION || version > SCHEMA_VERSION) {
    db.close()
    throw new RunDataError(`${path} has schema version ${version}, this build reads ${BASE_VERSION} to ${SCHEMA_VERSION}`)
  }
  return db
}

const hasTable = (db: Database.Database, name: string): boolean =>
  db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined

const readConfig = (dir: string): RunConfig | null => {
  const path = join(dir, RUN_FILE)
  return existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as RunConfig) : null
}

/** One consistent snapshot (a single read transaction) of the run in `dir`. */
export const readRun = (dir: string, db: Database.Database): RunData => {
  const read = db.transaction(() => {
    const run = db.prepare("SELECT created_at FROM run WHERE id = 1").get() as { created_at: number } | undefined
    const rows = db.prepare("SELECT * FROM candidates ORDER BY id").all() as Array<Record<string, unknown>>
    const counters = db.prepare("SELECT name, value FROM counters").all() as Array<{ name: string; value: number }>
    const checkpoint = db.prepare("SELECT written_at FROM checkpoint WHERE id = 1").get() as { written_at: number } | undefined
    const plan = hasTable(db, "selection")
      ? (db.prepare("SELECT * FROM selection WHERE id = 1").get() as Record<string, unknown> | undefined)
      : undefined
    const runs = plan === undefined ? [] : (db.prepare("SELECT * FROM holdout_runs ORDER BY seq").all() as Array<Record<string, unknown>>)
    const rungs = hasTable(db, "rung_results")
      ? (db.prepare("SELECT * FROM rung_results ORDER BY candidate_id, rung").all() as Array<Record<string, unknown>>)
      : []
    return { run, rows, counters, checkpoint, plan, runs, rungs }
  })
  const { run, rows, counters, checkpoint, plan, runs, rungs } = read()
  if (run === undefined) throw new RunDataError(`${join(dir, DB_FILE)} has no run row yet (the search has not started)`)
  return {
    dir,
    config: readConfig(dir),
    createdAt: run.created_at,
    candidates: rows.map(candidateFromRow),
    counters: Object.fromEntries(counters.map((c) => [c.name, c.value])),
    lastOutcomeAt: checkpoint?.written_at ?? null,
    selection: plan === undefined ? null : { plan: selectionFromRow(plan), runs: runs.map(holdoutFromRow) },
    rungs: rungs.map(rungFromRow)
  }
}

/** Opens, reads one snapshot and closes. */
export const loadRun = (dir: string): RunData => {
  const db = openRunDatabase(dir)
  try {
    return readRun(dir, db)
  } finally {
    db.close()
  }
}
