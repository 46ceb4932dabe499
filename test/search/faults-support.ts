/**
 * Shared pieces of the fault tests (`faults-*.test.ts`): real `autoloss search` processes with real
 * Python workers on a tiny seg search, read-only views of their `search.db`, and process helpers.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import Database from "better-sqlite3"
import { execa, type ResultPromise } from "execa"

/**
 * A search that spends its budget of 4 proxy trainings in ~15 s on a loaded 2-core machine (seed
 * 3 gets there within the proposal cap): 4-step proxy training on 16 images, a 30-step rejection
 * protocol at 16×16 (paper: 500 steps), one torch thread (so a re-run training gives bit-identical
 * scores, which the resume comparison relies on).
 */
export const TINY_BUDGET = 4

export const TINY_SEARCH = [
  "--task", "seg", "--seed", "3", "--budget", "4", "--population", "2", "--max-candidates", "600",
  "--option", "iterations=4", "--option", "train_images=16", "--option", "eval_images=8", "--option", "batch_size=8",
  "--option", "threads=1", "--option", "rejection.iterations=30", "--option", "rejection_size=16"
]

export type Cli = ResultPromise<{ reject: false; timeout: number }>

export const cli = (args: ReadonlyArray<string>): Cli =>
  execa("node", ["bin/autoloss.js", ...args], { reject: false, timeout: 900_000 }) // a hung-CLI guard only: the tests wait on events

export const runDir = (t: { teardown(f: () => void): unknown }, name: string): string => {
  const root = mkdtempSync(join(tmpdir(), `autoloss-${name}-`))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  return join(root, "run")
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Everything that must be equal between an interrupted-and-resumed run and an uninterrupted one. */
export interface RunSnapshot {
  readonly candidates: ReadonlyArray<Record<string, unknown>>
  readonly population: ReadonlyArray<Record<string, unknown>>
  readonly counters: Readonly<Record<string, number>>
  readonly observations: number | null
}

export interface LedgerEntry {
  readonly candidateId: number
  readonly stage: "screen" | "train"
  readonly attempt: number | null
  readonly pid: number
}

const withDb = <A>(dir: string, f: (db: Database.Database) => A): A => {
  const db = new Database(join(dir, "search.db"), { readonly: true, fileMustExist: true })
  try {
    return f(db)
  } finally {
    db.close()
  }
}

/** The deterministic part of a run's database (no timings, workers or pids). */
export const snapshot = (dir: string): RunSnapshot =>
  withDb(dir, (db) => ({
    candidates: db
      .prepare(
        `SELECT id, hash, text, parent_id, status, duplicate_of, rejection_passed, rejection_score, equivalence_key,
                admission_index, reused_from, reuse_kind, target_score, invalid, score
         FROM candidates ORDER BY id`
      )
      .all() as Array<Record<string, unknown>>,
    population: db.prepare("SELECT position, candidate_id, score FROM population ORDER BY position").all() as Array<
      Record<string, unknown>
    >,
    counters: Object.fromEntries(
      (db.prepare("SELECT name, value FROM counters").all() as Array<{ name: string; value: number }>).map((r) => [r.name, r.value])
    ),
    observations: (db.prepare("SELECT observations FROM checkpoint").get() as { observations: number } | undefined)?.observations ?? null
  }))

/** Ids of the candidates whose own screening job is stored (screen_branches), in id order. */
export const ownScreens = (dir: string): number[] =>
  withDb(dir, (db) =>
    (db.prepare("SELECT id FROM candidates WHERE screen_branches IS NOT NULL ORDER BY id").all() as Array<{ id: number }>).map((r) => r.id)
  )

export const ledger = (dir: string): LedgerEntry[] =>
  withDb(dir, (db) =>
    (db.prepare("SELECT candidate_id, stage, attempt, pid FROM evaluations ORDER BY seq").all() as Array<Record<string, unknown>>).map(
      (r) => ({ candidateId: r["candidate_id"] as number, stage: r["stage"] as "screen" | "train", attempt: r["attempt"] as number | null, pid: r["pid"] as number })
    )
  )

/** Ledger rows stored so far, or 0 while the database does not exist yet (or is being created). */
export const ledgerSize = (dir: string): number => {
  if (!existsSync(join(dir, "search.db"))) return 0
  try {
    return withDb(dir, (db) => (db.prepare("SELECT count(*) AS n FROM evaluations").get() as { n: number }).n)
  } catch {
    return 0
  }
}

/** (candidate, stage) pairs recorded more than once: a duplicated evaluation. */
export const duplicates = (entries: ReadonlyArray<LedgerEntry>): string[] => {
  const seen = new Map<string, number>()
  for (const e of entries) seen.set(`${e.stage}:${e.candidateId}`, (seen.get(`${e.stage}:${e.candidateId}`) ?? 0) + 1)
  return [...seen].filter(([, n]) => n > 1).map(([k, n]) => `${k} ×${n}`)
}

/** Python worker processes whose parent is `pid` (the pool spawns them as its own children). */
export const workerPids = async (pid: number): Promise<number[]> => {
  const r = await execa("pgrep", ["-P", String(pid), "-f", "autoloss_worker"], { reject: false })
  return r.stdout.split("\n").filter((l) => l.trim() !== "").map(Number)
}

/** Alive and not a zombie (an orphan that exited may wait for a reaper as a zombie). */
export const isAlive = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)
    return state !== "Z" && state !== "X"
  } catch {
    return false
  }
}

/** Polls `f` every `everyMs` until it is true or `withinMs` passed; returns whether it became true. */
export const eventually = async (f: () => boolean | Promise<boolean>, withinMs: number, everyMs = 100): Promise<boolean> => {
  const deadline = Date.now() + withinMs
  for (;;) {
    if (await f()) return true
    if (Date.now() > deadline) return false
    await sleep(everyMs)
  }
}

/** A seed for a test's random choices: `AUTOLOSS_FAULT_SEED` to reproduce, else fresh each run. */
export const faultSeed = (): number => {
  const fixed = process.env["AUTOLOSS_FAULT_SEED"]
  return fixed !== undefined ? Number(fixed) : Date.now() % 1_000_000
}
