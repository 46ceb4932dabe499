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
 */
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import Database from "better-sqlite3"
import { Context, Effect, Layer } from "effect"
import { type BranchScreen, type ScreenResult, summariseBranches, type TrainResult } from "../results/evaluation.ts"
import type { Cell, CellResult, Plan, SelectionSettings } from "../results/selection.ts"
import { BASE_VERSION, type CandidateStatus, DB_FILE, DDL, LEDGER_DDL, MIGRATIONS, SCHEMA_VERSION } from "./schema.ts"
import { StoreError } from "./StoreError.ts"

export interface ProposalRow {
  readonly id: number
  readonly text: string
  /** The graph's wire form (protocol v1), from which the graph is rebuilt exactly. */
  readonly wire: unknown
  readonly hash: string
  readonly parentId: number | null
  readonly how: unknown
  readonly proposedAt: number
  /** The earlier candidate with the same structural hash whose verdict this one reuses. */
  readonly duplicateOf: number | null
}

export interface StoredScreen {
  readonly result: ScreenResult
  readonly elapsedMs: number
}

export interface StoredTrain {
  readonly result: TrainResult
  readonly elapsedMs: number
}

/** One promoted training (table `rung_results`). */
export interface StoredRung extends StoredTrain {
  readonly candidateId: number
  readonly rung: number
  readonly iterations: number
}

/** The verdict of the screening stage, written when the scheduler has seen it. */
export interface VerdictUpdate {
  readonly id: number
  readonly status: Extract<CandidateStatus, "static_rejected" | "rejected" | "discarded" | "admitted">
  readonly staticBranch: string | null
  readonly staticReason: string | null
  readonly equivalenceKey: string | null
  readonly admissionIndex: number | null
  /** The protocol's verdict over the candidate's screened branches (null: none screened). */
  readonly rejection: BranchScreen | null
}

/** The final outcome of an admitted candidate. `score` is −∞ for an invalid (NaN/Inf) loss. */
export interface OutcomeUpdate {
  readonly id: number
  readonly score: number
  readonly reusedFrom: number | null
  readonly reuseKind: "duplicate" | "equivalent" | null
}

export interface Checkpoint {
  /** How many outcomes the scheduler had observed when this was taken. */
  readonly observations: number
  readonly scheduler: unknown
  readonly engine: unknown
}

export interface PopulationEntry {
  readonly candidateId: number
  readonly score: number
}

/** A candidate row as stored (JSON columns decoded). */
export interface CandidateRow {
  readonly id: number
  readonly text: string
  readonly wire: unknown
  readonly hash: string
  readonly parentId: number | null
  readonly how: unknown
  readonly status: CandidateStatus
  readonly duplicateOf: number | null
  readonly staticBranch: string | null
  readonly staticReason: string | null
  readonly rejectionPassed: boolean | null
  readonly rejectionScore: number | null
  readonly equivalenceKey: string | null
  readonly admissionIndex: number | null
  readonly reusedFrom: number | null
  readonly reuseKind: "duplicate" | "equivalent" | null
  readonly targetScore: number | null
  readonly invalid: boolean | null
  readonly score: number | null
}

export type Counters = Readonly<Record<string, number>>

/** One stored evaluation result (the `evaluations` ledger), in the order they were stored. */
export interface LedgerRow {
  readonly seq: number
  readonly candidateId: number
  readonly stage: "screen" | "train"
  readonly worker: string | null
  readonly attempt: number | null
  readonly elapsedMs: number
  /** The control-plane process that stored it (tells the runs before and after a resume apart). */
  readonly pid: number
}

/** The held-out selection's plan and, once complete, its answer (table `selection`). */
export interface StoredSelection extends Plan {
  readonly settings: SelectionSettings
  readonly chosenId: number | null
  readonly completedAt: number | null
}

/** One held-out (or baseline proxy) training (table `holdout_runs`). */
export interface StoredHoldout extends CellResult {
  readonly iterations: number | null
  readonly target: number
  readonly elapsedMs: number
  readonly workerId?: string
  readonly attempt?: number
}

export interface StoreService {
  readonly path: string
  /** Creates the run, or checks that `config` equals the stored one. `resumed`: the run existed. */
  readonly openRun: (config: unknown) => Effect.Effect<{ readonly resumed: boolean }, StoreError>
  /** Inserts a proposal; on replay checks the stored one has the same hash and returns its status. */
  readonly putProposal: (row: ProposalRow) => Effect.Effect<{ readonly stored: CandidateStatus | null }, StoreError>
  readonly screenResult: (id: number) => Effect.Effect<StoredScreen | undefined, StoreError>
  readonly putScreenResult: (id: number, stored: StoredScreen) => Effect.Effect<void, StoreError>
  readonly trainResult: (id: number) => Effect.Effect<StoredTrain | undefined, StoreError>
  readonly putTrainResult: (id: number, stored: StoredTrain) => Effect.Effect<void, StoreError>
  /** A promoted training's result (asha fidelity, rung ≥ 1). */
  readonly rungResult: (id: number, rung: number) => Effect.Effect<StoredTrain | undefined, StoreError>
  /** Stores a promoted training's result once; a second one for the same candidate and rung is an error. */
  readonly putRungResult: (id: number, rung: number, iterations: number, stored: StoredTrain) => Effect.Effect<void, StoreError>
  /** Every promoted training's result, by candidate then rung. */
  readonly rungResults: () => Effect.Effect<ReadonlyArray<StoredRung>, StoreError>
  readonly commitVerdict: (v: VerdictUpdate, counters: Counters) => Effect.Effect<void, StoreError>
  readonly commitOutcome: (
    o: OutcomeUpdate,
    checkpoint: Checkpoint,
    population: ReadonlyArray<PopulationEntry>,
    counters: Counters
  ) => Effect.Effect<void, StoreError>
  /** Marks every candidate from `fromId` on that never got a verdict as abandoned (run finished). */
  readonly markAbandoned: (fromId: number, counters: Counters) => Effect.Effect<void, StoreError>
  readonly checkpoint: () => Effect.Effect<Checkpoint | undefined, StoreError>
  readonly candidates: () => Effect.Effect<ReadonlyArray<CandidateRow>, StoreError>
  readonly population: () => Effect.Effect<ReadonlyArray<PopulationEntry>, StoreError>
  readonly counters: () => Effect.Effect<Counters, StoreError>
  /** Every evaluation result ever stored in this run, across processes. */
  readonly ledger: () => Effect.Effect<ReadonlyArray<LedgerRow>, StoreError>
  readonly selection: () => Effect.Effect<StoredSelection | undefined, StoreError>
  /** Stores the plan, or checks that it equals the stored one (else `diverged`). */
  readonly startSelection: (plan: Plan & { readonly settings: SelectionSettings }) => Effect.Effect<void, StoreError>
  readonly holdoutRuns: () => Effect.Effect<ReadonlyArray<StoredHoldout>, StoreError>
  /** Inserts one training's result; a second result for the same cell is an error (never replaced). */
  readonly putHoldoutRun: (cell: Cell, iterations: number | null, stored: StoredTrain) => Effect.Effect<void, StoreError>
  readonly completeSelection: (chosenId: number) => Effect.Effect<void, StoreError>
}

export class Store extends Context.Tag("@autoloss/Store")<Store, StoreService>() {}

/** JSON with sorted object keys, so equal configs compare equal as text. */
export const stableJson = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v
  )

const orNull = <T>(v: T | undefined): T | null => (v === undefined ? null : v)

/** JSON for number arrays that keeps NaN and ±Infinity (plain JSON would turn them into null). */
const encodeNumbers = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v))
const decodeNumbers = <T>(text: string): T =>
  JSON.parse(text, (_key, v: unknown) =>
    v === "NaN" ? NaN : v === "Infinity" ? Infinity : v === "-Infinity" ? -Infinity : v
  ) as T
const bool = (v: unknown): boolean | null => (v === null || v === undefined ? null : v === 1)

/** A `selection` row (the report reads the table with these too). */
export const selectionFromRow = (r: Record<string, unknown>): StoredSelection => ({
  settings: JSON.parse(r["settings"] as string) as SelectionSettings,
  metric: r["metric"] as string,
  seeds: (JSON.parse(r["settings"] as string) as SelectionSettings).seeds,
  finalists: decodeNumbers<Plan["finalists"]>(r["finalists"] as string),
  chosenId: r["chosen_id"] as number | null,
  completedAt: r["completed_at"] as number | null
})

/** The columns `holdout_runs` and `rung_results` share: one training's result, who ran it and when. */
const trainingColumns = ({ result, elapsedMs }: StoredTrain) => ({
  metrics: encodeNumbers(result.metrics),
  target: Number.isFinite(result.target) ? result.target : null,
  invalid: result.invalid ? 1 : 0,
  elapsedMs,
  workerId: orNull(result.workerId),
  attempt: orNull(result.attempt),
  pid: process.pid,
  recordedAt: Date.now()
})

/** A `rung_results` row (the report reads the table directly). */
export const rungFromRow = (r: Record<string, unknown>): StoredRung => ({
  candidateId: r["candidate_id"] as number,
  rung: r["rung"] as number,
  iterations: r["iterations"] as number,
  result: {
    metrics: decodeNumbers<Record<string, number>>(r["metrics"] as string),
    target: r["target"] === null ? NaN : (r["target"] as number),
    invalid: r["invalid"] === 1,
    ...(r["worker"] === null ? {} : { workerId: r["worker"] as string }),
    ...(r["attempt"] === null ? {} : { attempt: r["attempt"] as number }),
    // NULL, or absent in a version-4 database read by the report
    ...(typeof r["resumed_from"] === "number" ? { resumedFrom: r["resumed_from"] } : {})
  },
  elapsedMs: r["elapsed_ms"] as number
})

/** A `holdout_runs` row. */
export const holdoutFromRow = (r: Record<string, unknown>): StoredHoldout => ({
  subject: r["candidate_id"] === null ? "baseline" : (r["candidate_id"] as number),
  seed: r["seed"] as number,
  split: r["split"] as StoredHoldout["split"],
  iterations: r["iterations"] as number | null,
  metrics: decodeNumbers<Record<string, number>>(r["metrics"] as string),
  target: r["target"] === null ? NaN : (r["target"] as number),
  invalid: r["invalid"] === 1,
  elapsedMs: r["elapsed_ms"] as number,
  ...(r["worker"] === null ? {} : { workerId: r["worker"] as string }),
  ...(r["attempt"] === null ? {} : { attempt: r["attempt"] as number })
})

const openDatabase = (dir: string): Database.Database => {
  mkdirSync(dir, { recursive: true })
  const db = new Database(join(dir, DB_FILE))
  db.pragma("journal_mode = WAL")
  // NORMAL in WAL mode: a commit survives a process crash; only an OS crash may lose the last ones,
  // which resume then re-evaluates.
  db.pragma("synchronous = NORMAL")
  db.pragma("foreign_keys = ON")
  return db
}

const ensureSchema = (db: Database.Database, path: string): void => {
  let version = db.pragma("user_version", { simple: true }) as number
  db.transaction(() => {
    if (version === 0) {
      const tables = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number }
      if (tables.n !== 0) throw new StoreError({ reason: "schema", detail: `${path} has tables but no schema version` })
      db.exec(DDL)
      version = BASE_VERSION
    } else if (version < BASE_VERSION || version > SCHEMA_VERSION) {
      throw new StoreError({
        reason: "schema",
        detail: `${path} has schema version ${version}, this build reads ${BASE_VERSION} to ${SCHEMA_VERSION}`
      })
    }
    for (const m of MIGRATIONS) if (m.version > version) db.exec(m.ddl)
    db.pragma(`user_version = ${SCHEMA_VERSION}`)
  })()
  db.exec(LEDGER_DDL)
}

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

    /** Runs synchronous SQL as one effect; SQLite failures become `query` errors naming `what`. */
    const sql = <A>(what: string, f: () => A): Effect.Effect<A, StoreError> =>
      Effect.try({
        try: f,
        catch: (cause) =>
          cause instanceof StoreError ? cause : new StoreError({ reason: "query", detail: `${what}: ${String(cause)}`, cause })
      })

    const stmt = {
      run: db.prepare("SELECT config FROM run WHERE id = 1"),
      insertRun: db.prepare("INSERT INTO run (id, schema_version, config, created_at) VALUES (1, ?, ?, ?)"),
      proposalHash: db.prepare("SELECT hash, status FROM candidates WHERE id = ?"),
      insertProposal: db.prepare(
        `INSERT INTO candidates (id, text, wire, hash, parent_id, how, status, proposed_at, duplicate_of)
         VALUES (@id, @text, @wire, @hash, @parentId, @how, 'proposed', @proposedAt, @duplicateOf)`
      ),
      screen: db.prepare(
        `SELECT screen_branches, screen_ms, screen_worker, screen_attempt
         FROM candidates WHERE id = ? AND screen_branches IS NOT NULL`
      ),
      putScreen: db.prepare(
        `UPDATE candidates SET rejection_passed = @passed, rejection_score = @score, rejection_invalid = @invalid,
           grad_norms = @gradNorms, fingerprint = @fingerprint, screen_branches = @branches, screen_ms = @elapsedMs,
           screen_worker = @workerId, screen_attempt = @attempt,
           status = CASE WHEN status = 'proposed' THEN 'screened' ELSE status END
         WHERE id = @id`
      ),
      train: db.prepare(
        `SELECT proxy_metrics, target_score, invalid, train_ms, train_worker, train_attempt
         FROM candidates WHERE id = ? AND proxy_metrics IS NOT NULL`
      ),
      putTrain: db.prepare(
        `UPDATE candidates SET proxy_metrics = @metrics, target_score = @target, invalid = @invalid,
           train_ms = @elapsedMs, train_worker = @workerId, train_attempt = @attempt,
           status = CASE WHEN status = 'admitted' THEN 'trained' ELSE status END
         WHERE id = @id`
      ),
      verdict: db.prepare(
        `UPDATE candidates SET status = @status, static_branch = @staticBranch, static_reason = @staticReason,
           equivalence_key = @equivalenceKey, admission_index = @admissionIndex,
           rejection_passed = COALESCE(@passed, rejection_passed), rejection_score = COALESCE(@score, rejection_score),
           rejection_invalid = COALESCE(@invalid, rejection_invalid), grad_norms = COALESCE(@gradNorms, grad_norms),
           fingerprint = COALESCE(@fingerprint, fingerprint)
         WHERE id = @id`
      ),
      outcome: db.prepare(
        `UPDATE candidates SET status = 'evaluated', score = @score, reused_from = @reusedFrom, reuse_kind = @reuseKind
         WHERE id = @id`
      ),
      abandon: db.prepare(
        "UPDATE candidates SET status = 'abandoned' WHERE id >= ? AND status IN ('proposed', 'screened')"
      ),
      checkpoint: db.prepare("SELECT observations, scheduler, engine FROM checkpoint WHERE id = 1"),
      putCheckpoint: db.prepare(
        `INSERT INTO checkpoint (id, observations, scheduler, engine, written_at) VALUES (1, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET observations = excluded.observations, scheduler = excluded.scheduler,
           engine = excluded.engine, written_at = excluded.written_at`
      ),
      clearPopulation: db.prepare("DELETE FROM population"),
      insertPopulation: db.prepare("INSERT INTO population (position, candidate_id, score) VALUES (?, ?, ?)"),
      population: db.prepare("SELECT candidate_id, score FROM population ORDER BY position"),
      putCounter: db.prepare(
        "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value"
      ),
      counters: db.prepare("SELECT name, value FROM counters ORDER BY name"),
      candidates: db.prepare("SELECT * FROM candidates ORDER BY id"),
      appendLedger: db.prepare(
        `INSERT INTO evaluations (candidate_id, stage, worker, attempt, elapsed_ms, pid, recorded_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`
      ),
      ledger: db.prepare("SELECT * FROM evaluations ORDER BY seq"),
      selection: db.prepare("SELECT * FROM selection WHERE id = 1"),
      insertSelection: db.prepare(
        "INSERT INTO selection (id, settings, metric, finalists, created_at) VALUES (1, @settings, @metric, @finalists, @createdAt)"
      ),
      completeSelection: db.prepare("UPDATE selection SET chosen_id = ?, completed_at = ? WHERE id = 1"),
      holdoutRuns: db.prepare("SELECT * FROM holdout_runs ORDER BY seq"),
      rung: db.prepare("SELECT * FROM rung_results WHERE candidate_id = ? AND rung = ?"),
      rungs: db.prepare("SELECT * FROM rung_results ORDER BY candidate_id, rung"),
      insertRung: db.prepare(
        `INSERT INTO rung_results (candidate_id, rung, iterations, metrics, target, invalid, elapsed_ms, worker, attempt, pid, recorded_at, resumed_from)
         VALUES (@candidateId, @rung, @iterations, @metrics, @target, @invalid, @elapsedMs, @workerId, @attempt, @pid, @recordedAt, @resumedFrom)`
      ),
      insertHoldout: db.prepare(
        `INSERT INTO holdout_runs (candidate_id, seed, split, iterations, metrics, target, invalid, elapsed_ms, worker, attempt, pid, recorded_at)
         VALUES (@candidateId, @seed, @split, @iterations, @metrics, @target, @invalid, @elapsedMs, @workerId, @attempt, @pid, @recordedAt)`
      )
    }

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

    /** The worker and attempt columns of a stage, present only when recorded. */
    const provenance = (r: Record<string, unknown>, stage: "screen" | "train") => ({
      ...(r[`${stage}_worker`] === null ? {} : { workerId: r[`${stage}_worker`] as string }),
      ...(r[`${stage}_attempt`] === null ? {} : { attempt: r[`${stage}_attempt`] as number })
    })

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
      sql("candidates", () =>
        (stmt.candidates.all() as Array<Record<string, unknown>>).map((r) => ({
          id: r["id"] as number,
          text: r["text"] as string,
          wire: JSON.parse(r["wire"] as string) as unknown,
          hash: r["hash"] as string,
          parentId: r["parent_id"] as number | null,
          how: JSON.parse(r["how"] as string) as unknown,
          status: r["status"] as CandidateStatus,
          duplicateOf: r["duplicate_of"] as number | null,
          staticBranch: r["static_branch"] as string | null,
          staticReason: r["static_reason"] as string | null,
          rejectionPassed: bool(r["rejection_passed"]),
          rejectionScore: r["rejection_score"] as number | null,
          equivalenceKey: r["equivalence_key"] as string | null,
          admissionIndex: r["admission_index"] as number | null,
          reusedFrom: r["reused_from"] as number | null,
          reuseKind: r["reuse_kind"] as "duplicate" | "equivalent" | null,
          targetScore: r["target_score"] as number | null,
          invalid: bool(r["invalid"]),
          score: r["score"] as number | null
        }))
      )

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

    const ledger: StoreService["ledger"] = () =>
      sql("ledger", () =>
        (stmt.ledger.all() as Array<Record<string, unknown>>).map((r) => ({
          seq: r["seq"] as number,
          candidateId: r["candidate_id"] as number,
          stage: r["stage"] as "screen" | "train",
          worker: r["worker"] as string | null,
          attempt: r["attempt"] as number | null,
          elapsedMs: r["elapsed_ms"] as number,
          pid: r["pid"] as number
        }))
      )

    const selection: StoreService["selection"] = () =>
      sql("selection", () => {
        const r = stmt.selection.get() as Record<string, unknown> | undefined
        return r === undefined ? undefined : selectionFromRow(r)
      })

    const startSelection: StoreService["startSelection"] = (plan) =>
      sql("startSelection", () => {
        const row = { settings: stableJson(plan.settings), metric: plan.metric, finalists: JSON.stringify(plan.finalists) }
        const stored = stmt.selection.get() as Record<string, unknown> | undefined
        if (stored === undefined) {
          stmt.insertSelection.run({ ...row, createdAt: Date.now() })
          return
        }
        const same = stored["settings"] === row.settings && stored["metric"] === row.metric && stored["finalists"] === row.finalists
        if (!same) {
          throw new StoreError({
            reason: "diverged",
            detail: `the stored selection (${String(stored["settings"])}, ${String(stored["metric"])}, finalists ${String(stored["finalists"])}) ` +
              `differs from the replayed one (${row.settings}, ${row.metric}, finalists ${row.finalists})`
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

    const completeSelection: StoreService["completeSelection"] = (chosenId) =>
      sql("completeSelection", () => {
        stmt.completeSelection.run(chosenId, Date.now())
      })

    return Store.of({
      path,
      openRun,
      putProposal,
      screenResult,
      putScreenResult,
      trainResult,
      putTrainResult,
      commitVerdict,
      commitOutcome,
      markAbandoned,
      checkpoint,
      candidates,
      population,
      counters,
      ledger,
      selection,
      startSelection,
      holdoutRuns,
      rungResult,
      putRungResult,
      rungResults,
      putHoldoutRun,
      completeSelection
    })
  })

/** The store of the run in `dir` (created if missing); the database closes with the layer's scope. */
export const layer = (dir: string): Layer.Layer<Store, StoreError> => Layer.scoped(Store, make(dir))
