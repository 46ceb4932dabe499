/**
 * Budget-allocation bench (issue: spend the search budget where it matters): for each task, each
 * fidelity variant and each search seed, runs `autoloss search` with the same budget in full-proxy
 * equivalents, the same workers and the same held-out final choice, and writes
 * `bench/results/allocation-<task>.json` and a table (`.md`): per run the losses explored (distinct
 * losses that got a proxy score), the full-proxy equivalents spent, the chosen loss, its held-out
 * score per held-out seed beside the baseline's, and the wall time.
 *
 * Equal cost: both variants get the same `--budget` (full-proxy equivalents: iterations trained /
 * the full proxy's iterations; for `--fidelity full` that is the trainings started) and the same
 * workers; their wall times are reported so a cheaper-per-equivalent variant shows.
 *
 * Run: `make bench-allocation` (seg) or
 * `npx tsx bench/allocation.ts --task seg [--seeds 0,1,2] [--variants full,asha] [--budget N]
 *  [--population N] [--workers N] [--out-dir DIR] [-- extra search flags...]`.
 * Every run directory (default `runs/bench-allocation/<task>-<variant>-<seed>`) is kept: rerunning
 * resumes an interrupted run instead of starting it again (`autoloss resume` semantics).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { cpus, loadavg } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import Database from "better-sqlite3"
import { execa } from "execa"
import { kendallTau } from "../src/report/fidelity.ts"

const { values, positionals } = parseArgs({
  options: {
    task: { type: "string", default: "seg" },
    seeds: { type: "string", default: "0,1,2" },
    variants: { type: "string", default: "full,asha" },
    budget: { type: "string" },
    population: { type: "string" },
    workers: { type: "string", default: "2" },
    "out-dir": { type: "string" },
    // names the results file and the run directories (default: the task), so a variant of the bench
    // (e.g. `-- --option pretrained=true`) does not overwrite or resume the default one
    name: { type: "string" }
  },
  allowPositionals: true
})
const task = values.task!
const name = values.name ?? task
// The `make search` defaults (Makefile), so the bench measures the product's default search.
const DEFAULTS: Record<string, { budget: number; population: number }> = {
  seg: { budget: 60, population: 12 },
  det: { budget: 10, population: 4 },
  ins: { budget: 10, population: 4 }
}
const budget = Number(values.budget ?? DEFAULTS[task]?.budget ?? 20)
const population = Number(values.population ?? DEFAULTS[task]?.population ?? 8)
const seeds = values.seeds!.split(",").map(Number)
// a variant may hold commas itself (asha:eta=4,min=1/4): split only before a variant's name
const variants = values.variants!.split(/,(?=full|asha)/)
const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const baseDir = values["out-dir"] ?? join(root, "runs", "bench-allocation")

interface RunRow {
  readonly variant: string
  readonly seed: number
  readonly explored: number
  readonly fullProxyEquivalents: number | null
  /** asha: trainings promoted to a higher rung, and those that continued from the cached lower-rung state */
  readonly promoted: number
  readonly continued: number
  readonly chosen: string | null
  readonly chosenHeldOut: ReadonlyArray<number> | null
  readonly baselineHeldOut: ReadonlyArray<number> | null
  readonly diffMean: number | null
  readonly wins: number | null
  /** The chosen loss against the baseline on the confirmation seeds (unbiased; null: the run had none). */
  readonly confirmation: { readonly seeds: ReadonlyArray<number>; readonly chosen: ReadonlyArray<number>; readonly baseline: ReadonlyArray<number>; readonly diffMean: number; readonly wins: number } | null
  readonly verdict: string | null
  readonly wall_s: number
  readonly load1: { readonly min: number; readonly max: number }
}

/** `read` on the run's database, opened read-only and closed again. */
const withRunDb = <T>(dir: string, read: (db: Database.Database) => T): T => {
  const db = new Database(join(dir, "search.db"), { readonly: true })
  try {
    return read(db)
  } finally {
    db.close()
  }
}

/** Distinct losses the run gave a proxy score of its own (trained, not reused from an identical or equivalent one). */
const explored = (dir: string): number =>
  withRunDb(dir, (db) => (db.prepare("SELECT COUNT(DISTINCT hash) AS n FROM candidates WHERE score IS NOT NULL AND reused_from IS NULL").get() as { n: number }).n)

/** Promoted trainings (asha rungs above 0) and how many of them continued from the rung below's cached state. */
const promotions = (dir: string): { promoted: number; continued: number } =>
  withRunDb(dir, (db) => db.prepare("SELECT COUNT(*) AS promoted, COUNT(resumed_from) AS continued FROM rung_results").get() as { promoted: number; continued: number })

/**
 * How well an asha run's lowest rung ranked its losses against the full proxy, inside the real
 * search: each loss the asha run trained at rung 0 (its candidate score) paired with its full-proxy
 * score, from the asha run's own top rung (promoted losses) or from the full-fidelity run of the same
 * search seed (same training seed and data, so the same score) where that run trained the same loss.
 * A training stopped on NaN/Inf (score −∞, target NULL) counts as metric 0, as the fidelity panel
 * records it (`src/fidelity/store.ts`): it ranks below every loss that trained.
 */
interface RungFidelity { readonly seed: number; readonly variant: string; readonly n: number; readonly kendallTau: number | null; readonly pairs: ReadonlyArray<{ readonly loss: string; readonly rung0: number; readonly full: number }> }
function rungFidelity(ashaDir: string, fullDir: string | null): Omit<RungFidelity, "seed" | "variant"> {
  const read = <T>(dir: string, sql: string): T[] => withRunDb(dir, (db) => db.prepare(sql).all() as T[])
  const metric = (score: number | null): number => (score !== null && Number.isFinite(score) ? score : 0)
  const rung0 = read<{ hash: string; text: string; score: number }>(ashaDir,
    "SELECT hash, text, score FROM candidates WHERE score IS NOT NULL AND reused_from IS NULL ORDER BY id")
  const full = new Map<string, number>()
  if (fullDir !== null) {
    for (const r of read<{ hash: string; score: number }>(fullDir, "SELECT hash, score FROM candidates WHERE score IS NOT NULL AND reused_from IS NULL")) full.set(r.hash, metric(r.score))
  }
  for (const r of read<{ hash: string; target: number | null }>(ashaDir, `SELECT c.hash, r.target FROM rung_results r JOIN candidates c ON c.id = r.candidate_id
      WHERE r.iterations = (SELECT MAX(iterations) FROM rung_results)`)) {
    full.set(r.hash, metric(r.target))
  }
  const seen = new Set<string>()
  const pairs = rung0.flatMap((r) => {
    const f = full.get(r.hash)
    if (f === undefined || seen.has(r.hash)) return []
    seen.add(r.hash)
    return [{ loss: r.text, rung0: metric(r.score), full: f }]
  })
  const tau = pairs.length >= 2 ? kendallTau(pairs.map((p) => p.rung0), pairs.map((p) => p.full)) : NaN
  return { n: pairs.length, kendallTau: Number.isNaN(tau) ? null : tau, pairs }
}

/**
 * Wall time of a run across invocations, kept in its directory (`bench-wall.json`), so a resumed or
 * re-read run reports the time it took, not only the last invocation's. A run interrupted before this
 * file existed starts from the span its database records (first creation to last recorded result),
 * which matches the bench's own clock to about 10 s on uninterrupted runs.
 */
interface WallRecord { wall_s: number; load1: { min: number; max: number }; invocations: number; from_db_span_s?: number }
const wallFile = (dir: string) => join(dir, "bench-wall.json")
function recordedSpan(dir: string): number {
  return withRunDb(dir, (db) => (db.prepare(`SELECT (MAX(t) - (SELECT created_at FROM run)) / 1000.0 AS s FROM
      (SELECT recorded_at AS t FROM evaluations UNION ALL SELECT recorded_at FROM holdout_runs)`).get() as { s: number | null }).s ?? 0)
}
/** The run finished: its selection is stored as complete (a `--select-top 0` run never counts, so re-reading it adds its few seconds). */
function finished(dir: string): boolean {
  if (!existsSync(join(dir, "search.db"))) return false
  const row = withRunDb(dir, (db) => db.prepare("SELECT completed_at AS c FROM selection").get() as { c: number | null } | undefined)
  return row?.c !== undefined && row.c !== null
}
function priorWall(dir: string): WallRecord | null {
  if (existsSync(wallFile(dir))) return JSON.parse(readFileSync(wallFile(dir), "utf8")) as WallRecord
  if (!existsSync(join(dir, "search.db"))) return null
  const span = recordedSpan(dir)
  return { wall_s: span, load1: { min: Number.POSITIVE_INFINITY, max: Number.NEGATIVE_INFINITY }, invocations: 0, from_db_span_s: span }
}

const rows: RunRow[] = []
const rungFidelities: RungFidelity[] = []
const runDir = (variant: string, seed: number) => join(baseDir, `${name}-${variant.replace(/[^A-Za-z0-9.]+/g, "-")}-${seed}`)
const mean = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0) / xs.length
/** The mean, or null for a variant with no finished run yet (a bench cut short). */
const meanOrNull = (xs: ReadonlyArray<number>) => (xs.length > 0 ? mean(xs) : null)

function writeResults(): void {
  const perVariant = variants.map((variant) => {
    const mine = rows.filter((r) => r.variant === variant)
    const held = mine.flatMap((r) => (r.chosenHeldOut === null ? [] : [mean(r.chosenHeldOut)]))
    const base = mine.flatMap((r) => (r.baselineHeldOut === null ? [] : [mean(r.baselineHeldOut)]))
    return {
      variant,
      explored_mean: meanOrNull(mine.map((r) => r.explored)),
      chosen_heldout_mean: meanOrNull(held),
      baseline_heldout_mean: meanOrNull(base),
      confirmation_diff_mean: meanOrNull(mine.flatMap((r) => (r.confirmation === null ? [] : [r.confirmation.diffMean]))),
      wall_s_mean: meanOrNull(mine.map((r) => r.wall_s))
    }
  })
  const out = {
    bench: "allocation", task, budget, population, workers: Number(values.workers), seeds, variants,
    runs: rows, per_variant: perVariant, rung_fidelity: rungFidelities,
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "cpu", node: process.version },
    command: `npx tsx bench/allocation.ts --task ${task} --seeds ${seeds.join(",")} --variants ${variants.join(",")} --budget ${budget} --population ${population} --workers ${values.workers}${values.name ? ` --name ${name}` : ""}${positionals.length > 0 ? ` -- ${positionals.join(" ")}` : ""}`,
    written_at: new Date().toISOString()
  }
  const fmt = (x: number | null, d = 3) => (x === null ? "–" : x.toFixed(d))
  const table = [
    `# Budget allocation on ${task}: budget ${budget} full-proxy equivalents, population ${population}, ${values.workers} workers`,
    "",
    "| variant | search seed | explored losses | full-proxy equiv. | promoted (continued) | chosen loss | held-out (chosen) | held-out (baseline) | mean diff | wins | confirmation diff (wins) | verdict | wall (s) | load1 |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ...rows.map((r) =>
      `| ${r.variant} | ${r.seed} | ${r.explored} | ${fmt(r.fullProxyEquivalents, 2)} | ${r.promoted} (${r.continued}) | \`${r.chosen ?? "–"}\` | ${r.chosenHeldOut?.map((v) => v.toFixed(3)).join(", ") ?? "–"} | ${r.baselineHeldOut?.map((v) => v.toFixed(3)).join(", ") ?? "–"} | ${fmt(r.diffMean)} | ${r.wins ?? "–"} | ${r.confirmation === null ? "–" : `${fmt(r.confirmation.diffMean)} (${r.confirmation.wins}/${r.confirmation.seeds.length})`} | ${r.verdict ?? "–"} | ${r.wall_s.toFixed(0)} | ${r.load1.min.toFixed(1)}–${r.load1.max.toFixed(1)} |`),
    "",
    "| variant | explored (mean) | chosen held-out (mean) | baseline held-out (mean) | confirmation diff (mean) | wall (s, mean) |",
    "|---|---|---|---|---|---|",
    ...perVariant.map((v) => `| ${v.variant} | ${fmt(v.explored_mean, 1)} | ${fmt(v.chosen_heldout_mean)} | ${fmt(v.baseline_heldout_mean)} | ${fmt(v.confirmation_diff_mean)} | ${fmt(v.wall_s_mean, 0)} |`),
    "",
    ...(rungFidelities.length === 0 ? [] : [
      "Lowest rung against the full proxy inside the searches (each loss an asha run trained at rung 0 with its full-proxy score from that run's top rung or the full run of the same seed):",
      "",
      "| variant | search seed | losses paired | Kendall τ-b |",
      "|---|---|---|---|",
      ...rungFidelities.map((f) => `| ${f.variant} | ${f.seed} | ${f.n} | ${fmt(f.kendallTau)} |`),
      ""
    ]),
    `Command: \`${out.command}\``,
    ""
  ].join("\n")
  const file = join(root, "bench", "results", `allocation-${name}`)
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(`${file}.json`, JSON.stringify(out, null, 2) + "\n")
  writeFileSync(`${file}.md`, table)
  process.stdout.write(table)
}

// Seed-major, and the results rewritten after every run: a bench cut short still reports full and
// asha on the same seeds.
for (const seed of seeds) {
  for (const variant of variants) {
    const dir = runDir(variant, seed)
    const resume = existsSync(join(dir, "search.db"))
    const prior = priorWall(dir)
    // re-reading a finished run adds neither time nor load samples to it
    const reread = prior !== null && finished(dir)
    const args = resume
      ? ["resume", dir, "--json"]
      : ["search", "--task", task, "--seed", String(seed), "--budget", String(budget), "--population", String(population),
         "--workers", values.workers!, "--fidelity", variant, "--out", dir, "--json", ...positionals]
    const load = [loadavg()[0]!]
    const sampler = setInterval(() => load.push(loadavg()[0]!), 30_000)
    const started = Date.now()
    process.stderr.write(`bench/allocation: ${task} ${variant} seed ${seed}: autoloss ${args.join(" ")}\n`)
    const r = await execa("node", [join(root, "bin/autoloss.js"), ...args], { reject: false, stderr: "inherit" })
    clearInterval(sampler)
    if (r.exitCode !== 0) {
      process.stderr.write(`bench/allocation: the run exited ${r.exitCode}; rerun the bench to resume it (${dir})\n`)
      process.exit(r.exitCode ?? 1)
    }
    const summary = JSON.parse(r.stdout) as {
      counters: Record<string, number>
      selection: null | {
        chosen: { loss: string; heldOut: { values: number[] }; vsBaseline: { mean: number; wins: number } }
        baseline: { heldOut: { values: number[] } }
        confirmation: null | { seeds: number[]; chosen: { values: number[] }; baseline: { values: number[] }; vsBaseline: { mean: number; wins: number } }
        verdict: string
      }
    }
    const wall: WallRecord = reread ? prior : {
      wall_s: (prior?.wall_s ?? 0) + (Date.now() - started) / 1000,
      load1: { min: Math.min(prior?.load1.min ?? Infinity, ...load), max: Math.max(prior?.load1.max ?? -Infinity, ...load) },
      invocations: (prior?.invocations ?? 0) + 1,
      ...(prior?.from_db_span_s !== undefined ? { from_db_span_s: prior.from_db_span_s } : {})
    }
    writeFileSync(wallFile(dir), JSON.stringify(wall, null, 2) + "\n")
    const c = summary.counters
    const s = summary.selection
    rows.push({
      variant, seed,
      explored: explored(dir),
      ...promotions(dir),
      // asha stores the budget spent in units of 1/unitsPerFull of a full proxy; full: trainings started
      fullProxyEquivalents: c["spentUnits"] !== undefined && c["unitsPerFull"] !== undefined ? c["spentUnits"] / c["unitsPerFull"] : c["trained"] ?? null,
      chosen: s?.chosen.loss ?? null,
      chosenHeldOut: s?.chosen.heldOut.values ?? null,
      baselineHeldOut: s?.baseline.heldOut.values ?? null,
      diffMean: s?.chosen.vsBaseline.mean ?? null,
      wins: s?.chosen.vsBaseline.wins ?? null,
      confirmation: s?.confirmation == null ? null : {
        seeds: s.confirmation.seeds, chosen: s.confirmation.chosen.values, baseline: s.confirmation.baseline.values,
        diffMean: s.confirmation.vsBaseline.mean, wins: s.confirmation.vsBaseline.wins
      },
      verdict: s?.verdict ?? null,
      // summed over the invocations that ran it (a finished run re-read adds only its read time)
      wall_s: wall.wall_s,
      load1: wall.load1
    })
    if (variant.startsWith("asha")) {
      const fullDir = variants.includes("full") && existsSync(join(runDir("full", seed), "search.db")) ? runDir("full", seed) : null
      rungFidelities.push({ seed, variant, ...rungFidelity(dir, fullDir) })
    }
    writeResults()
  }
}

