/**
 * Confirms the losses an allocation bench chose (`bench/results/allocation-<name>.json`) on seeds
 * that took no part in any choice: each run's chosen loss and the task's baseline are trained from
 * the confirmation seeds with `autoloss compare --new-data` (the payload the search's own
 * confirmation sends, so this repeats what a search with `--confirm-seeds` does). For runs made
 * before the search had its confirmation; the held-out difference those runs report is the best of
 * their finalists on the same seeds, so it overstates the answer.
 *
 * Run: `npx tsx bench/confirm_allocation.ts --name seg-pretrained [--seeds 201,202,203] [--workers 2]
 *  [-- extra compare flags, e.g. --option pretrained=true]` → `allocation-<name>-confirmation.{json,md}`.
 * Rows already in that file are kept, not trained again (rerunning resumes).
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { loadavg } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { execa } from "execa"
import { compareRuns } from "../src/report/compare.ts"
import { judge } from "../src/report/verdict.ts"

const { values, positionals } = parseArgs({
  options: {
    name: { type: "string" },
    seeds: { type: "string", default: "201,202,203" },
    workers: { type: "string", default: "2" }
  },
  allowPositionals: true
})
if (values.name === undefined) throw new Error("--name is required (the allocation results' name, e.g. seg-pretrained)")
const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const source = join(root, "bench", "results", `allocation-${values.name}.json`)
const target = join(root, "bench", "results", `allocation-${values.name}-confirmation`)
const allocation = JSON.parse(readFileSync(source, "utf8")) as { task: string; runs: Array<{ variant: string; seed: number; chosen: string | null; diffMean: number | null }> }

interface Row {
  readonly variant: string
  readonly seed: number
  readonly loss: string
  /** The difference the allocation run reported on its own held-out seeds (best of its finalists). */
  readonly selectionDiff: number | null
  readonly chosen: ReadonlyArray<number>
  readonly baseline: ReadonlyArray<number>
  readonly diffMean: number
  readonly wins: number
  readonly wall_s: number
  readonly load1: { readonly min: number; readonly max: number }
}

const previous: Row[] = existsSync(`${target}.json`) ? (JSON.parse(readFileSync(`${target}.json`, "utf8")) as { rows: Row[] }).rows : []
const rows: Row[] = []
const mean = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0) / xs.length
/** A training stopped on NaN/Inf scores 0, the worst, as in the search's selection (`heldOutValue`). */
const score = (metrics: Record<string, number>, metric: string) => (Number.isFinite(metrics[metric]) ? metrics[metric]! : 0)
const command = `npx tsx bench/confirm_allocation.ts --name ${values.name} --seeds ${values.seeds} --workers ${values.workers}${positionals.length > 0 ? ` -- ${positionals.join(" ")}` : ""}`

/** The search's own verdict rule (`src/report/verdict.ts`) on a row. */
const verdictOf = (r: Row) => {
  const seedRuns = (values: ReadonlyArray<number>) => values.map((v, i) => ({ seed: i, metrics: { score: v }, invalid: false }))
  return judge(compareRuns("score", seedRuns(r.chosen), seedRuns(r.baseline)), r.selectionDiff)
}

function write(): void {
  const variants = [...new Set(rows.map((r) => r.variant))]
  const perVariant = variants.map((variant) => {
    const mine = rows.filter((r) => r.variant === variant)
    return {
      variant,
      runs: mine.length,
      selection_diff_mean: mean(mine.flatMap((r) => (r.selectionDiff === null ? [] : [r.selectionDiff]))),
      confirmation_diff_mean: mean(mine.map((r) => r.diffMean)),
      confirmed: mine.filter((r) => verdictOf(r).kind === "confirmed").length
    }
  })
  writeFileSync(`${target}.json`, JSON.stringify({ bench: "confirm-allocation", task: allocation.task, seeds: values.seeds, rows, per_variant: perVariant, command, written_at: new Date().toISOString() }, null, 2) + "\n")
  const f = (x: number) => (x >= 0 ? "+" : "") + x.toFixed(3)
  writeFileSync(`${target}.md`, [
    `# Confirmation of the losses chosen in allocation-${values.name} (${allocation.task}), seeds ${values.seeds}`,
    "",
    "| variant | search seed | chosen loss | chosen | baseline | diff on its held-out seeds (chosen there) | diff on the confirmation seeds | wins | verdict |",
    "|---|---|---|---|---|---|---|---|---|",
    ...rows.map((r) => `| ${r.variant} | ${r.seed} | \`${r.loss}\` | ${r.chosen.map((v) => v.toFixed(3)).join(", ")} | ${r.baseline.map((v) => v.toFixed(3)).join(", ")} | ` +
      `${r.selectionDiff === null ? "–" : f(r.selectionDiff)} | ${f(r.diffMean)} | ${r.wins}/${r.chosen.length} | ${verdictOf(r).kind} |`),
    "",
    "| variant | runs | diff on held-out seeds (mean) | diff on confirmation seeds (mean) | confirmed |",
    "|---|---|---|---|---|",
    ...perVariant.map((v) => `| ${v.variant} | ${v.runs} | ${f(v.selection_diff_mean)} | ${f(v.confirmation_diff_mean)} | ${v.confirmed}/${v.runs} |`),
    "",
    `Command: \`${command}\``,
    ""
  ].join("\n"))
}

for (const run of allocation.runs) {
  if (run.chosen === null) continue
  const done = previous.find((r) => r.variant === run.variant && r.seed === run.seed && r.loss === run.chosen)
  if (done !== undefined) {
    rows.push(done)
    continue
  }
  const load = [loadavg()[0]!]
  const sampler = setInterval(() => load.push(loadavg()[0]!), 30_000)
  const started = Date.now()
  process.stderr.write(`bench/confirm_allocation: ${run.variant} seed ${run.seed}: ${run.chosen}\n`)
  const r = await execa("node", [join(root, "bin/autoloss.js"), "compare", "--task", allocation.task, "--loss", run.chosen, "--seeds", values.seeds!,
    "--new-data", "--workers", values.workers!, "--json", ...positionals], { reject: false, stderr: "inherit" })
  clearInterval(sampler)
  if (r.exitCode !== 0) {
    process.stderr.write(`bench/confirm_allocation: compare exited ${r.exitCode}\n`)
    process.exit(r.exitCode ?? 1)
  }
  const out = JSON.parse(r.stdout) as { metric: string; runs: { loss: Array<{ metrics: Record<string, number> }>; reference: Array<{ metrics: Record<string, number> }> }; diff: { mean: number }; wins: number }
  rows.push({
    variant: run.variant, seed: run.seed, loss: run.chosen, selectionDiff: run.diffMean,
    chosen: out.runs.loss.map((x) => score(x.metrics, out.metric)),
    baseline: out.runs.reference.map((x) => score(x.metrics, out.metric)),
    diffMean: out.diff.mean, wins: out.wins,
    wall_s: (Date.now() - started) / 1000,
    load1: { min: Math.min(...load), max: Math.max(...load) }
  })
  write()
}
write()
process.stdout.write(readFileSync(`${target}.md`, "utf8"))
