/**
 * The search database's schema, version `SCHEMA_VERSION` (kept in `PRAGMA user_version`).
 * `docs/store-schema.md` documents every table and column; change both together and bump the
 * version. `DDL` creates a version-`BASE_VERSION` database; each later version is one additive
 * step of `MIGRATIONS`, applied in order to new databases and to older runs when they are opened
 * for writing (adding tables never rewrites a run's history). Older than `BASE_VERSION`: refused.
 */

/** 2: per-branch screening (`screen_branches`); the rejection columns hold the candidate's verdict. */
export const BASE_VERSION = 2

/** The database file inside a run directory. */
export const DB_FILE = "search.db"

export const CANDIDATE_STATUSES = [
  "proposed",
  "screened",
  "static_rejected",
  "rejected",
  "discarded",
  "admitted",
  "trained",
  "evaluated",
  "abandoned"
] as const
export type CandidateStatus = (typeof CANDIDATE_STATUSES)[number]

const statusList = CANDIDATE_STATUSES.map((s) => `'${s}'`).join(", ")

export const DDL = `
CREATE TABLE run (
  id             INTEGER PRIMARY KEY CHECK (id = 1),
  schema_version INTEGER NOT NULL,
  config         TEXT    NOT NULL,
  created_at     REAL    NOT NULL
);

CREATE TABLE candidates (
  id               INTEGER PRIMARY KEY,
  text             TEXT    NOT NULL,
  wire             TEXT    NOT NULL,
  hash             TEXT    NOT NULL,
  parent_id        INTEGER REFERENCES candidates(id),
  how              TEXT    NOT NULL,
  status           TEXT    NOT NULL CHECK (status IN (${statusList})),
  proposed_at      REAL    NOT NULL,
  duplicate_of     INTEGER REFERENCES candidates(id),
  static_branch    TEXT,
  static_reason    TEXT,
  rejection_passed INTEGER,
  rejection_score  REAL,
  rejection_invalid INTEGER,
  grad_norms       TEXT,
  fingerprint      TEXT,
  screen_branches  TEXT,
  equivalence_key  TEXT,
  screen_ms        REAL,
  screen_worker    TEXT,
  screen_attempt   INTEGER,
  admission_index  INTEGER UNIQUE,
  reused_from      INTEGER REFERENCES candidates(id),
  reuse_kind       TEXT CHECK (reuse_kind IN ('duplicate', 'equivalent')),
  proxy_metrics    TEXT,
  target_score     REAL,
  invalid          INTEGER,
  train_ms         REAL,
  train_worker     TEXT,
  train_attempt    INTEGER,
  score            REAL
);
CREATE INDEX candidates_hash ON candidates(hash);
CREATE INDEX candidates_key ON candidates(equivalence_key);
CREATE INDEX candidates_status ON candidates(status);

CREATE TABLE population (
  position     INTEGER PRIMARY KEY,
  candidate_id INTEGER NOT NULL REFERENCES candidates(id),
  score        REAL
);

CREATE TABLE checkpoint (
  id           INTEGER PRIMARY KEY CHECK (id = 1),
  observations INTEGER NOT NULL,
  scheduler    TEXT    NOT NULL,
  engine       TEXT    NOT NULL,
  written_at   REAL    NOT NULL
);

CREATE TABLE counters (
  name  TEXT    PRIMARY KEY,
  value INTEGER NOT NULL
);
`

/**
 * The evaluation ledger (added within version 1, additively): one row appended
 * per evaluation result stored, in the same transaction as the result. The candidate columns are
 * overwritten on a second write; the ledger is what proves "no duplicated evaluation" across a
 * kill and a resume. Created on every open, so a version-1 database from before it gains it
 * (empty for the results written before).
 */
export const LEDGER_DDL = `
CREATE TABLE IF NOT EXISTS evaluations (
  seq          INTEGER PRIMARY KEY,
  candidate_id INTEGER NOT NULL REFERENCES candidates(id),
  stage        TEXT    NOT NULL CHECK (stage IN ('screen', 'train')),
  worker       TEXT,
  attempt      INTEGER,
  elapsed_ms   REAL    NOT NULL,
  pid          INTEGER NOT NULL,
  recorded_at  REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS evaluations_candidate ON evaluations(candidate_id, stage);
`

/** One training's result and who ran it: the columns `holdout_runs` (v3) and `rung_results` (v4) share. */
const TRAINING_RESULT_COLUMNS = `  metrics      TEXT    NOT NULL,
  target       REAL,
  invalid      INTEGER NOT NULL,
  elapsed_ms   REAL    NOT NULL,
  worker       TEXT,
  attempt      INTEGER,
  pid          INTEGER NOT NULL,
  recorded_at  REAL    NOT NULL`

/**
 * Version 3: the held-out final choice (`src/search/selection.ts`). `selection` holds the plan (the
 * finalists by fitness, the held-out seeds) and, once every training is stored, the chosen loss;
 * `holdout_runs` one row per training of a finalist or of the task's baseline (NULL candidate) on a
 * held-out seed, plus the baseline on the search's own seed and data (`split = 'proxy'`). Rows are
 * inserted once, never replaced: the table is its own evaluation ledger.
 */
const SELECTION_DDL = `
CREATE TABLE selection (
  id           INTEGER PRIMARY KEY CHECK (id = 1),
  settings     TEXT    NOT NULL,
  metric       TEXT    NOT NULL,
  finalists    TEXT    NOT NULL,
  chosen_id    INTEGER REFERENCES candidates(id),
  created_at   REAL    NOT NULL,
  completed_at REAL
);

CREATE TABLE holdout_runs (
  seq          INTEGER PRIMARY KEY,
  candidate_id INTEGER REFERENCES candidates(id),
  seed         INTEGER NOT NULL,
  split        TEXT    NOT NULL CHECK (split IN ('held-out', 'proxy')),
  iterations   INTEGER,
${TRAINING_RESULT_COLUMNS}
);
CREATE UNIQUE INDEX holdout_runs_cell ON holdout_runs(IFNULL(candidate_id, -1), seed, split);
`

/**
 * Version 4: multi-fidelity searches (`src/search/fidelity.ts`). One row per promoted training
 * (rung ≥ 1; rung 0 is the candidate's own training, in `candidates`), inserted once when the
 * result arrives and never replaced: a stored rung result is never trained again on resume.
 */
const RUNGS_DDL = `
CREATE TABLE rung_results (
  candidate_id INTEGER NOT NULL REFERENCES candidates(id),
  rung         INTEGER NOT NULL CHECK (rung >= 1),
  iterations   INTEGER NOT NULL,
${TRAINING_RESULT_COLUMNS},
  PRIMARY KEY (candidate_id, rung)
);
`

/**
 * Version 5: which step a promoted training continued from (`resumed_from`, NULL: it trained from
 * step 0), so a run shows where continuation saved training and where a task started over.
 */
const RUNG_RESUMED_DDL = `
ALTER TABLE rung_results ADD COLUMN resumed_from INTEGER;
`

/**
 * Version 6: the baseline's gradient-equivalence key (`baseline_key`, NULL: not computed, as in
 * selections made before it) and the candidates set aside as gradient-equivalent to the baseline
 * (`set_aside`, JSON `[{id, score}]` in fitness order; NULL: none) — `src/search/selection.ts`.
 */
const SELECTION_BASELINE_DDL = `
ALTER TABLE selection ADD COLUMN baseline_key TEXT;
ALTER TABLE selection ADD COLUMN set_aside TEXT;
`

/** Additive steps from `BASE_VERSION` on; `version` is the schema version after the step. */
export const MIGRATIONS: ReadonlyArray<{ readonly version: number; readonly ddl: string }> = [
  { version: 3, ddl: SELECTION_DDL },
  { version: 4, ddl: RUNGS_DDL },
  { version: 5, ddl: RUNG_RESUMED_DDL },
  { version: 6, ddl: SELECTION_BASELINE_DDL }
]

export const SCHEMA_VERSION = MIGRATIONS.reduce((v, m) => Math.max(v, m.version), BASE_VERSION)
