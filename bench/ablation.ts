/**
 * Search-efficiency ablation (AutoLoss-Zero Fig. 4 / Table 7) on the embedded seg task. Four
 * variants of the same aging evolution, same seed, same wall-time (or proxy-evaluation) budget:
 *
 *   naive         no rejection, no equivalence, training runs through NaN/Inf (`stop_on_invalid=false`)
 *   +rejection    static check + loss-rejection protocol before training
 *   +equivalence  + gradient-equivalence (and identical-loss) reuse of proxy scores
 *   +invalid-stop + proxy training stops at the first NaN/Inf: the full AutoLoss-Zero search
 *
 * Per variant: proxy evaluations (trainings finished), candidates explored (judged: rejected
 * statically or by the protocol, or admitted and given a proxy score), wall seconds, candidates explored
 * per hour, best and best-5 mean proxy score, and the best-5 curve vs evaluations and vs wall time.
 * An invalid loss scores 0 (the worst metric; the engine keeps −∞) in best / best-5.
 *
 * Run: `npx tsx bench/ablation.ts` (defaults fit ~12 min on 2 CPU cores) → `bench/results/ablation.json`.
 * Scale up: `--wall-s 1800 --population 20 --option iterations=300 --option train_images=512`
 * (the task's defaults), or `--budget N` to stop every variant after N proxy evaluations instead.
 * Flags: --wall-s S, --budget N, --population K, --tournament PCT, --workers N, --seed S,
 * --metric M, --variants naive,rejection,equivalence,invalid-stop, --option KEY=VALUE (task
 * options, repeatable), --out FILE, --keep DIR (keep the run directories there).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { cpus, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { Duration, Effect, Layer } from "effect"
import { Rng } from "../src/graph/rng.ts"
import { AgingEvolution, type AgingEvolutionOptions } from "../src/search/aging-evolution.ts"
import { runSearch } from "../src/search/engine.ts"
import { layer as poolEvaluatorLayer } from "../src/search/pool-evaluator.ts"
import { parseOptionPairs } from "../src/search/run-config.ts"
import type { BranchSpec, Outcome, ScreenedEvent, SearchFlags } from "../src/search/scheduler.ts"
import { taskInfo } from "../src/search/search-run.ts"
import { layer as storeLayer, Store } from "../src/store/Store.ts"
import { WorkerPool, layer as poolLayer } from "../src/workers/WorkerPool.ts"

// ---- the variants ----

interface Variant {
  readonly name: string
  readonly label: string
  readonly flags: SearchFlags
  readonly stopOnInvalid: boolean
}

const VARIANTS: ReadonlyArray<Variant> = [
  { name: "naive", label: "naive evolution", flags: { needsRejection: false, useEquivalence: false, reuseDuplicates: false }, stopOnInvalid: false },
  { name: "rejection", label: "+ loss rejection", flags: { needsRejection: true, useEquivalence: false, reuseDuplicates: false }, stopOnInvalid: false },
  { name: "equivalence", label: "+ gradient equivalence", flags: { needsRejection: true, useEquivalence: true, reuseDuplicates: true }, stopOnInvalid: false },
  { name: "invalid-stop", label: "+ stop on invalid loss", flags: { needsRejection: true, useEquivalence: true, reuseDuplicates: true }, stopOnInvalid: true }
]

// ---- pure bookkeeping: what the curves are made of ----

interface CurvePoint {
  /** Proxy trainings finished (and observed) so far. */
  readonly evaluations: number
  readonly wallS: number
  /** Candidates judged so far: rejected (statically or by the protocol) or admitted. */
  readonly explored: number
  readonly best: number
  /** Mean of the 5 best scores; null until 5 candidates have a score. */
  readonly best5: number | null
}

/** Scores as the ablation reports them: an invalid loss (−∞ in the engine) is the worst metric, 0. */
const reportedScore = (score: number): number => (Number.isFinite(score) ? score : 0)

/** Tracks the best 5 scores, the counts and the curve; `observe` adds one curve point per outcome. */
class Trace {
  explored = 0
  evaluations = 0
  private readonly top: number[] = []
  readonly curve: CurvePoint[] = []

  judged(): void {
    this.explored++
  }

  observe(score: number, reused: Outcome["reused"], wallS: number): void {
    if (reused === "no") this.evaluations++
    const s = reportedScore(score)
    this.top.push(s)
    this.top.sort((a, b) => b - a)
    if (this.top.length > 5) this.top.pop()
    this.curve.push({ evaluations: this.evaluations, wallS, explored: this.explored, best: this.best()!, best5: this.best5() })
  }

  best(): number | null {
    return this.top[0] ?? null
  }

  best5(): number | null {
    return this.top.length < 5 ? null : this.top.reduce((a, b) => a + b, 0) / 5
  }
}

/** The paper's evolution with the variant's engine stages, recording into a `Trace`. */
class AblationEvolution extends AgingEvolution {
  override readonly name: string
  override readonly flags: SearchFlags

  constructor(
    variant: Variant,
    branches: BranchSpec,
    rng: Rng,
    options: AgingEvolutionOptions,
    private readonly trace: Trace,
    private readonly clockS: () => number
  ) {
    super(branches, rng, options)
    this.name = `ablation-${variant.name}`
    this.flags = variant.flags
  }

  override admit(event: ScreenedEvent): boolean {
    const admitted = super.admit(event)
    // Judged: rejected, or admitted (trained or given an equivalent's score). Passers of an
    // already filled tournament slot are dropped unjudged (surplus of concurrent screening).
    const kind = event.verdict.kind
    if (admitted || kind === "rejected" || kind === "static_rejected") this.trace.judged()
    return admitted
  }

  override observe(outcome: Outcome): void {
    super.observe(outcome)
    this.trace.observe(outcome.score, outcome.reused, this.clockS())
  }
}

// ---- one variant, end to end ----

interface Settings {
  readonly wallS: number
  readonly budget: number
  readonly population: number
  readonly tournament: number
  readonly workers: number
  readonly seed: number
  readonly metric: string | null
  readonly options: Readonly<Record<string, unknown>>
}

interface VariantResult {
  readonly variant: string
  readonly label: string
  readonly evaluations: number
  readonly explored: number
  readonly wallS: number
  readonly exploredPerHour: number
  readonly evaluationsPerHour: number
  readonly best: number | null
  readonly best5: number | null
  readonly stoppedBy: "wall" | "budget"
  readonly counters: Readonly<Record<string, number>>
  readonly curve: ReadonlyArray<CurvePoint>
}

const runVariant = (variant: Variant, s: Settings, dir: string) => {
  const options = { ...s.options, stop_on_invalid: variant.stopOnInvalid }
  const job = { task: "seg", metric: s.metric, seed: s.seed, options }
  const program = Effect.gen(function* () {
    const pool = yield* WorkerPool
    yield* pool.awaitWorkers(s.workers, "train-loss")
    const { branches } = yield* taskInfo({ task: "seg", metric: s.metric, options })
    const trace = new Trace()
    const started = performance.now()
    const clockS = () => (performance.now() - started) / 1000
    const scheduler = new AblationEvolution(
      variant, branches, new Rng(s.seed),
      { initialPopulation: s.population, populationSize: 2500, tournamentPercent: s.tournament },
      trace, clockS
    )
    const search = runSearch(scheduler, {
      config: { budget: s.budget, screenWindow: Math.max(8, 2 * s.workers), trainConcurrency: s.workers, trainLag: s.workers },
      run: { bench: "ablation", variant: variant.name, ...job }
    })
    const finished = yield* Effect.timeoutOption(search, Duration.seconds(s.wallS))
    const wallS = clockS()
    const counters = yield* (yield* Store).counters()
    return {
      variant: variant.name,
      label: variant.label,
      evaluations: trace.evaluations,
      explored: trace.explored,
      wallS: round(wallS, 1),
      exploredPerHour: Math.round((trace.explored / wallS) * 3600),
      evaluationsPerHour: Math.round((trace.evaluations / wallS) * 3600),
      best: trace.best(),
      best5: trace.best5(),
      stoppedBy: finished._tag === "None" ? "wall" : "budget",
      counters,
      curve: trace.curve.map((p) => ({ ...p, wallS: round(p.wallS, 2) }))
    } satisfies VariantResult
  })
  const pool = poolLayer({ endpoint: "ipc", runDir: dir, local: { devices: Array.from({ length: s.workers }, () => "cpu"), threads: 1, stderr: "ignore" } })
  const evaluator = poolEvaluatorLayer(job)
  return Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(Layer.mergeAll(Layer.provideMerge(evaluator, pool), storeLayer(dir)))))
}

// ---- report ----

const round = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits
const fmt = (x: number | null): string => (x === null ? "-" : x.toFixed(4))

const table = (results: ReadonlyArray<VariantResult>): string => {
  const base = results.find((r) => r.variant === "naive")?.exploredPerHour
  const rows = results.map((r) => [
    r.label, String(r.evaluations), String(r.explored), r.wallS.toFixed(0), String(r.exploredPerHour),
    base ? `${(r.exploredPerHour / base).toFixed(1)}×` : "-", fmt(r.best), fmt(r.best5)
  ])
  const head = ["variant", "proxy evals", "explored", "wall s", "explored/h", "speed-up", "best", "best-5"]
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => "| " + cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |"
  return [line(head), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...rows.map(line)].join("\n")
}

// ---- main ----

const main = async () => {
  const { values } = parseArgs({
    strict: true,
    options: {
      "wall-s": { type: "string" }, budget: { type: "string" }, population: { type: "string" }, tournament: { type: "string" },
      workers: { type: "string" }, seed: { type: "string" }, metric: { type: "string" }, variants: { type: "string" },
      option: { type: "string", multiple: true }, out: { type: "string" }, keep: { type: "string" }
    }
  })
  const num = (v: string | undefined, fallback: number) => (v === undefined ? fallback : Number(v))
  // Defaults: 4 × 150 s of search plus worker start-up ≈ 12 min on 2 cores; a proxy training of
  // 100 steps on 256 images takes ~3 s there (the task default, 300 steps on 512, ~10 s).
  const settings: Settings = {
    wallS: num(values["wall-s"], 150),
    budget: num(values.budget, 1_000_000),
    population: num(values.population, 10),
    tournament: num(values.tournament, 5),
    workers: num(values.workers, 2),
    seed: num(values.seed, 0),
    metric: values.metric ?? null,
    options: { iterations: 100, train_images: 256, eval_images: 64, threads: 1, ...parseOptionPairs(values.option ?? []) }
  }
  const chosen = values.variants === undefined ? VARIANTS : values.variants.split(",").map((name) => {
    const v = VARIANTS.find((x) => x.name === name.trim())
    if (v === undefined) throw new Error(`unknown variant '${name}' (known: ${VARIANTS.map((x) => x.name).join(", ")})`)
    return v
  })
  const results: VariantResult[] = []
  for (const variant of chosen) {
    const dir = values.keep !== undefined ? join(values.keep, variant.name) : mkdtempSync(join(tmpdir(), `autoloss-ablation-${variant.name}-`))
    mkdirSync(dir, { recursive: true })
    process.stderr.write(`ablation: ${variant.label} (${dir}) ...\n`)
    const r = await runVariant(variant, settings, dir)
    process.stderr.write(`  ${r.evaluations} proxy evaluations, ${r.explored} explored in ${r.wallS} s, best-5 ${fmt(r.best5)}\n`)
    results.push(r)
    if (values.keep === undefined) rmSync(dir, { recursive: true, force: true })
  }
  const out = values.out ?? fileURLToPath(new URL("./results/ablation.json", import.meta.url))
  mkdirSync(join(out, ".."), { recursive: true })
  const report = {
    bench: "search-efficiency ablation (AutoLoss-Zero Fig. 4 / Table 7), seg task",
    machine: `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, load ${loadavg().map((x) => x.toFixed(1)).join("/")}, node ${process.version}`,
    settings,
    variants: results
  }
  writeFileSync(out, JSON.stringify(report, null, 2) + "\n")
  process.stdout.write(table(results) + "\n")
}

await main()
