/** Every prepared SQL statement of the store, by table (the schema is in `schema.ts`). */
import type Database from "better-sqlite3"

/** Prepares the store's statements on an open database whose schema is current (`ensureSchema`). */
export const prepareStatements = (db: Database.Database) => ({
  // `run`: the run's configuration, written once.
  run: db.prepare("SELECT config FROM run WHERE id = 1"),
  insertRun: db.prepare("INSERT INTO run (id, schema_version, config, created_at) VALUES (1, ?, ?, ?)"),

  // `candidates`: one row per proposal, updated as it moves through the stages.
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
  candidates: db.prepare("SELECT * FROM candidates ORDER BY id"),

  // `checkpoint`, `population`, `counters`: the scheduler's state, rewritten with each outcome.
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

  // `evaluations`: the append-only ledger of stored results.
  appendLedger: db.prepare(
    `INSERT INTO evaluations (candidate_id, stage, worker, attempt, elapsed_ms, pid, recorded_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)`
  ),
  ledger: db.prepare("SELECT * FROM evaluations ORDER BY seq"),

  // `selection`, `holdout_runs`: the held-out selection.
  selection: db.prepare("SELECT * FROM selection WHERE id = 1"),
  insertSelection: db.prepare(
    "INSERT INTO selection (id, settings, metric, finalists, baseline_key, set_aside, created_at) VALUES (1, @settings, @metric, @finalists, @baselineKey, @setAside, @createdAt)"
  ),
  completeSelection: db.prepare("UPDATE selection SET chosen_id = ?, completed_at = ? WHERE id = 1"),
  holdoutRuns: db.prepare("SELECT * FROM holdout_runs ORDER BY seq"),
  insertHoldout: db.prepare(
    `INSERT INTO holdout_runs (candidate_id, seed, split, iterations, metrics, target, invalid, elapsed_ms, worker, attempt, pid, recorded_at)
     VALUES (@candidateId, @seed, @split, @iterations, @metrics, @target, @invalid, @elapsedMs, @workerId, @attempt, @pid, @recordedAt)`
  ),

  // `rung_results`: promoted (asha) trainings.
  rung: db.prepare("SELECT * FROM rung_results WHERE candidate_id = ? AND rung = ?"),
  rungs: db.prepare("SELECT * FROM rung_results ORDER BY candidate_id, rung"),
  insertRung: db.prepare(
    `INSERT INTO rung_results (candidate_id, rung, iterations, metrics, target, invalid, elapsed_ms, worker, attempt, pid, recorded_at, resumed_from)
     VALUES (@candidateId, @rung, @iterations, @metrics, @target, @invalid, @elapsedMs, @workerId, @attempt, @pid, @recordedAt, @resumedFrom)`
  )
})

export type Statements = ReturnType<typeof prepareStatements>
