/**
 * Screening inside the real search, batched and not: the same short seg search (same seed, same
 * workers) run with `--screen-batch 1` (one `eval-loss` job per candidate, the search before
 * batching) and with `--screen-batch N` (up to N candidates per `eval-losses` job), one after the
 * other on the same machine, through the CLI as a user runs it.
 *
 * Per variant: wall seconds; candidates screened by the protocol (the `evaluations` ledger's
 * screen rows) and trained; worker time per job kind from the workers' own job log
 * (`AUTOLOSS_JOB_LOG`: seconds in each handler); screened candidates per minute per worker (wall)
 * and per worker-minute spent screening; the fraction of worker time (workers × wall) spent
 * screening, training, and neither (idle, start-up, messaging). Both runs must store the same
 * candidates, verdicts and scores (`identical`: the batched engine's verdicts do not depend on the
 * batch), which the bench checks column by column.
 *
 * Run: `npx tsx bench/screening.ts` (or `make bench-screening`) → `bench/results/screening.json`.
 * Flags: --budget N (8), --population K (4), --workers N (2), --seed S (0), --batch N (16),
 * --option KEY=VALUE (task options, repeatable; default iterations=100 keeps it short), --out FILE,
 * --keep DIR (keep the run directories there).
 */
import { execFileSync, spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { cpus, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import Database from "better-sqlite3"

const ROOT = fileURLToPath(new URL("..", import.meta.url))

const { values } = parseArgs({
  options: {
    budget: { type: "string", default: "8" },
    population: { type: "string", default: "4" },
    workers: { type: "string", default: "2" },
    seed: { type: "string", default: "0" },
    batch: { type: "string", default: "16" },
    option: { type: "string", multiple: true, default: ["iterations=100"] },
    out: { type: "string", default: join(ROOT, "bench", "results", "screening.json") },
    keep: { type: "string" }
  }
})

const workers = Number(values.workers)
const load = () => loadavg().map((x) => Number(x.toFixed(2)))

interface JobLine {
  readonly kind: string
  readonly s: number
  readonly losses: number
}

/** The columns that say what the search found; timings and worker names are left out. */
const FOUND = [
  "id", "text", "hash", "parent_id", "how", "status", "duplicate_of", "static_branch", "static_reason",
  "rejection_passed", "rejection_score", "rejection_invalid", "grad_norms", "fingerprint", "screen_branches",
  "equivalence_key", "admission_index", "reused_from", "reuse_kind", "proxy_metrics", "target_score", "invalid", "score"
]

const readRun = (dir: string) => {
  const db = new Database(join(dir, "search.db"), { readonly: true })
  try {
    const rows = db.prepare(`SELECT ${FOUND.join(", ")} FROM candidates ORDER BY id`).all() as Array<Record<string, unknown>>
    const count = (stage: string) => (db.prepare("SELECT COUNT(*) AS n FROM evaluations WHERE stage = ?").get(stage) as { n: number }).n
    return { rows, screened: count("screen"), trained: count("train") }
  } finally {
    db.close()
  }
}

const runVariant = (base: string, batch: number) => {
  const dir = join(base, `batch-${batch}`)
  const log = join(base, `jobs-${batch}.jsonl`)
  const args = [
    join(ROOT, "bin", "autoloss.js"), "search", "--task", "seg", "--budget", values.budget!, "--population", values.population!,
    "--seed", values.seed!, "--workers", values.workers!, "--select-top", "0", "--screen-batch", String(batch), "--out", dir, "--json",
    ...values.option!.flatMap((o) => ["--option", o])
  ]
  const loadBefore = load()
  const started = Date.now()
  const child = spawnSync(process.execPath, args, {
    cwd: ROOT, env: { ...process.env, AUTOLOSS_JOB_LOG: log }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 1 << 26
  })
  const wallS = (Date.now() - started) / 1000
  if (child.status !== 0) throw new Error(`search with --screen-batch ${batch} exited ${child.status}: ${child.stderr.slice(-2000)}`)
  const jobs: JobLine[] = existsSync(log)
    ? readFileSync(log, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l) as JobLine)
    : []
  const seconds = (kinds: ReadonlyArray<string>) => jobs.filter((j) => kinds.includes(j.kind)).reduce((a, j) => a + j.s, 0)
  const screenS = seconds(["eval-loss", "eval-losses"])
  const trainS = seconds(["train-loss"])
  const screenJobs = jobs.filter((j) => j.kind === "eval-loss" || j.kind === "eval-losses")
  const run = readRun(dir)
  const workerS = workers * wallS
  return {
    variant: {
      screen_batch: batch,
      wall_s: Number(wallS.toFixed(1)),
      load_before: loadBefore,
      load_after: load(),
      screened: run.screened,
      trained: run.trained,
      screen_jobs: screenJobs.length,
      mean_losses_per_screen_job: Number((screenJobs.reduce((a, j) => a + j.losses, 0) / Math.max(1, screenJobs.length)).toFixed(2)),
      worker_s: { screening: Number(screenS.toFixed(1)), training: Number(trainS.toFixed(1)), total: Number(workerS.toFixed(1)) },
      fraction_of_worker_time: {
        screening: Number((screenS / workerS).toFixed(3)),
        training: Number((trainS / workerS).toFixed(3)),
        other: Number((1 - (screenS + trainS) / workerS).toFixed(3))
      },
      screened_per_min_per_worker: Number((run.screened / (wallS / 60) / workers).toFixed(1)),
      screened_per_worker_min_screening: Number((run.screened / Math.max(1e-9, screenS / 60)).toFixed(1))
    },
    rows: run.rows
  }
}

const base = values.keep ?? mkdtempSync(join(tmpdir(), "autoloss-bench-screening-"))
mkdirSync(base, { recursive: true })
try {
  const batch = Number(values.batch)
  const off = runVariant(base, 1)
  const on = runVariant(base, batch)
  const differing = off.rows.flatMap((row, i) => {
    const other = on.rows[i]
    const cols = FOUND.filter((c) => JSON.stringify(row[c]) !== JSON.stringify(other?.[c]))
    return cols.length === 0 ? [] : [{ id: row["id"], columns: cols }]
  })
  const report = {
    bench: "screening inside the real search (seg), --screen-batch 1 vs " + batch,
    command: `npx tsx bench/screening.ts ${process.argv.slice(2).join(" ")}`.trim(),
    search: { task: "seg", budget: Number(values.budget), population: Number(values.population), seed: Number(values.seed), workers, options: values.option },
    machine: `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, node ${process.version}`,
    uptime: execFileSync("uptime", { encoding: "utf8" }).trim(),
    variants: [off.variant, on.variant],
    speedup: {
      wall: Number((off.variant.wall_s / on.variant.wall_s).toFixed(2)),
      screening_worker_time: Number((off.variant.worker_s.screening / Math.max(1e-9, on.variant.worker_s.screening)).toFixed(2))
    },
    identical: differing.length === 0 && off.rows.length === on.rows.length,
    candidates: off.rows.length,
    differing: differing.slice(0, 20)
  }
  mkdirSync(join(values.out!, ".."), { recursive: true })
  writeFileSync(values.out!, JSON.stringify(report, null, 2) + "\n")
  process.stdout.write(JSON.stringify(report, null, 2) + "\n")
  if (!report.identical) process.exitCode = 1
} finally {
  if (values.keep === undefined) rmSync(base, { recursive: true, force: true })
}
