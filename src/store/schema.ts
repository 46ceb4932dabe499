/**
 * The search database's schema, version `SCHEMA_VERSION` (kept in `PRAGMA user_version`).
 * `docs/store-schema.md` documents every table and column; change both together and bump the
 * version: an older database is refused (no silent migration of a run's history).
 */

/** 2: per-branch screening (`screen_branches`); the rejection columns hold the candidate's verdict. */
export const SCHEMA_VERSION = 2

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
