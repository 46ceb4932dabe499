/**
 * The held-out final choice, as pure bookkeeping (no I/O, no Effect; `selection-run.ts` performs it).
 *
 * A search ranks losses by one proxy training each, on the search's seed: with tens of noisy
 * scores the best of them overstates itself (winner's curse). So at the end the top `top` losses by
 * fitness and the task's handcrafted baseline are trained again from held-out seeds (a new
 * initialisation and batch order and, for tasks whose data is generated from a seed, new data),
 * and the run's answer is the finalist with the best held-out mean. Ties go to the finalist with
 * the better proxy rank. The answer is always a searched loss; whether it beats the baseline is
 * what the paired comparison (`src/report/compare.ts`) says.
 *
 * Picking the best of k finalists on the held-out seeds inflates its difference on those same
 * seeds (the winner's curse once more, smaller). So the chosen loss and the baseline are then
 * trained from the confirmation seeds, which took no part in any choice; their paired difference
 * there is the run's unbiased estimate, and the verdict (`src/report/verdict.ts`): confirmed when
 * that gain is above seed noise and the held-out seeds agree.
 *
 * The baseline is also trained once on the search's own seed and data (`split: "proxy"`): its
 * proxy score, the reference the search's scores are read against.
 */
import { type Comparison, compareRuns, type SeedRun, type Spread, spread } from "../report/compare.ts"
import type { Cell, CellResult, Plan, SelectionSettings, Subject } from "../results/selection.ts"
import { judge, type Verdict } from "../report/verdict.ts"

// The records the store keeps live below both the search and the store; re-exported for callers.
export type { Cell, CellResult, Plan, SelectionSettings, Subject } from "../results/selection.ts"

export const DEFAULT_SELECTION: SelectionSettings = { top: 5, seeds: [101, 102, 103], iterations: null, confirmSeeds: [201, 202, 203] }

/** The run's confirmation seeds (none in runs that predate them). */
export const confirmSeedsOf = (s: SelectionSettings): ReadonlyArray<number> => s.confirmSeeds ?? []

/** `101,102,103` → [101, 102, 103]; throws naming the problem. */
export const parseSeedList = (flag: string, text: string): number[] => {
  if (!/^\d+(,\d+)*$/.test(text)) throw new Error(`${flag} wants comma-separated non-negative integers, got '${text}'`)
  const seeds = text.split(",").map(Number)
  if (new Set(seeds).size !== seeds.length) throw new Error(`${flag} repeats a seed: '${text}'`)
  return seeds
}

/**
 * Problems with `s` for a search that used `searchSeeds` (its seed, and the data seed where known):
 * a held-out seed the search used would not be held out.
 */
export const selectionProblems = (s: SelectionSettings, searchSeeds: ReadonlyArray<number>): string[] => {
  const problems: string[] = []
  if (!Number.isInteger(s.top) || s.top < 0) problems.push(`select-top must be an integer ≥ 0, got ${s.top}`)
  if (s.iterations !== null && !(Number.isInteger(s.iterations) && s.iterations >= 1)) {
    problems.push(`select-iterations must be an integer ≥ 1, got ${s.iterations}`)
  }
  if (s.top > 0 && s.seeds.length === 0) problems.push("holdout-seeds is empty")
  const used = s.seeds.filter((x) => searchSeeds.includes(x))
  if (s.top > 0 && used.length > 0) {
    problems.push(`holdout-seeds ${used.join(",")} ${used.length === 1 ? "was" : "were"} used by the search (its seeds: ${[...new Set(searchSeeds)].join(",")}); held-out seeds must be new`)
  }
  const confirm = confirmSeedsOf(s)
  if (s.top > 0 && new Set(confirm).size !== confirm.length) problems.push(`confirm-seeds repeats a seed: ${confirm.join(",")}`)
  const reused = confirm.filter((x) => searchSeeds.includes(x) || s.seeds.includes(x))
  if (s.top > 0 && reused.length > 0) {
    problems.push(`confirm-seeds ${reused.join(",")} ${reused.length === 1 ? "is" : "are"} also a search or held-out seed; a confirmation seed must take no part in the choice`)
  }
  return problems
}

/** What ranking needs of a candidate row (the store's and the report's rows both have it). */
export interface Ranked {
  readonly id: number
  readonly status: string
  readonly reuseKind: string | null
  readonly score: number | null
  /** The highest rung it trained at (`--fidelity asha`, see `atHighestRung`); absent: 0. */
  readonly rung?: number
}

/** What `atHighestRung` needs of a promoted training (the store's `StoredRung`). */
export interface RungScore {
  readonly candidateId: number
  readonly rung: number
  readonly result: { readonly target: number; readonly invalid: boolean }
}

/**
 * Rows whose `score` is the one at the highest rung each candidate trained at, with that `rung`
 * (asha fidelity: a loss promoted to the full proxy is judged by its full-proxy score, not by its
 * shorter rung-0 one). An invalid (NaN/Inf) training there scores −∞, as in the search.
 */
export const atHighestRung = <T extends Ranked>(rows: ReadonlyArray<T>, rungs: ReadonlyArray<RungScore>): T[] => {
  const highest = new Map<number, RungScore>()
  for (const r of rungs) if ((highest.get(r.candidateId)?.rung ?? 0) < r.rung) highest.set(r.candidateId, r)
  return rows.map((row) => {
    const r = highest.get(row.id)
    return r === undefined ? row : { ...row, rung: r.rung, score: r.result.invalid ? -Infinity : r.result.target }
  })
}

/**
 * The best `n` distinct losses by fitness: evaluated candidates that trained themselves (a reused
 * score belongs to the loss it was copied from), finite scores only, the highest rung first (scores
 * of different proxy lengths never compete: `fidelity.ts`), then the higher score; ties keep the
 * earlier candidate first.
 */
export const rankByFitness = <T extends Ranked>(rows: ReadonlyArray<T>, n: number): T[] =>
  rows
    .filter((c) => c.status === "evaluated" && c.reuseKind === null && c.score !== null && Number.isFinite(c.score))
    .sort((a, b) => (b.rung ?? 0) - (a.rung ?? 0) || (b.score as number) - (a.score as number) || a.id - b.id)
    .slice(0, n)

/** What `pickFinalists` needs of a row beyond its fitness: its gradient-equivalence key (null: none). */
export interface Keyed extends Ranked {
  readonly equivalenceKey: string | null
}

/**
 * Proxy scores closer than this are the same training's (ins: 0.176 and 0.176; seg's mIoU of CE
 * and CE plus a constant agree to float rounding), far below the spread of different losses.
 */
export const SAME_PROXY_SCORE = 1e-3

/**
 * Whether `row` is the baseline rediscovered: it has the baseline's gradient-equivalence key AND
 * its proxy score is the baseline's on the same seed and data. The key alone compares gradients at
 * the rejection samples' initial predictions only, to two significant digits, where different
 * losses can meet (on mmpose, where the untrained heatmaps are near 0, MSE's 2(ŷ − y) and the
 * linear −2yŷ key alike, then score 0.75 and 0); a loss that also trains to the baseline's score
 * is the baseline in disguise (ins: `neg(log(mul(y, y_hat)))`, binary CE plus a constant).
 */
export const rediscoversBaseline = (row: Keyed, baselineKey: string | null, baselineProxy: number | null): boolean =>
  baselineKey !== null && baselineProxy !== null && row.equivalenceKey === baselineKey &&
  row.score !== null && Math.abs(row.score - baselineProxy) <= SAME_PROXY_SCORE

/**
 * The finalists: the best `n` losses by fitness (`rankByFitness`) that are not the baseline in
 * disguise (`isBaseline`, `rediscoversBaseline`): such a loss trains as the baseline does, so
 * holding it out would compare the baseline with itself and spend a finalist's trainings on a tie.
 * Those ranked above the last finalist are returned as `setAside`, for the report to name.
 */
export const pickFinalists = <T extends Ranked>(
  rows: ReadonlyArray<T>,
  n: number,
  isBaseline: (row: T) => boolean
): { readonly finalists: T[]; readonly setAside: T[] } => {
  const finalists: T[] = []
  const setAside: T[] = []
  for (const row of rankByFitness(rows, rows.length)) {
    if (finalists.length >= n) break
    if (isBaseline(row)) setAside.push(row)
    else finalists.push(row)
  }
  return { finalists, setAside }
}

/** What deciding from the stored trainings needs of a plan (not what was set aside, or why). */
export type Trainings = Pick<Plan, "metric" | "seeds" | "confirmSeeds" | "finalists">

export const cellKey = (c: Cell): string => `${c.subject}/${c.seed}/${c.split}`

/**
 * Every training of the selection, in the order they are started: seed by seed (the baseline,
 * then the finalists by fitness), so an interrupted selection holds whole seeds first; then the
 * baseline on the search's seed.
 */
export const planCells = (finalists: ReadonlyArray<number>, seeds: ReadonlyArray<number>, searchSeed: number): Cell[] => [
  ...seeds.flatMap((seed) => (["baseline", ...finalists] as Subject[]).map((subject) => ({ subject, seed, split: "held-out" as const }))),
  { subject: "baseline", seed: searchSeed, split: "proxy" }
]

/**
 * The confirmation's trainings, once the choice is known: seed by seed, the baseline then the
 * chosen loss (split "held-out": the seeds differ from the choice's, so the cells never collide).
 */
export const planConfirmCells = (chosen: number, confirmSeeds: ReadonlyArray<number>): Cell[] =>
  confirmSeeds.flatMap((seed) => (["baseline", chosen] as Subject[]).map((subject) => ({ subject, seed, split: "held-out" as const })))

/** Trainings the whole selection plans: finalists and baseline on every held-out seed, the confirmation, the baseline's proxy run. */
export const selectionTotal = (finalists: number, seeds: ReadonlyArray<number>, confirmSeeds: ReadonlyArray<number>): number =>
  (finalists + 1) * seeds.length + 2 * confirmSeeds.length + 1

/**
 * A run's value of `metric` for the comparison. Tasks report every metric as 0 (the worst on their
 * 0–1 scale) when training stops on NaN/Inf; a missing or non-finite value is read the same way.
 */
export const heldOutValue = (r: Pick<CellResult, "metrics">, metric: string): number => {
  const v = r.metrics[metric]
  return typeof v === "number" && Number.isFinite(v) ? v : 0
}

export interface FinalistResult {
  readonly id: number
  /** 1 = the search's best by proxy score. */
  readonly rank: number
  readonly proxyScore: number
  /** Held-out runs of this finalist against the baseline's, paired by seed. */
  readonly comparison: Comparison
}

/** The chosen loss against the baseline on the confirmation seeds. */
export interface Confirmation {
  readonly seeds: ReadonlyArray<number>
  readonly comparison: Comparison
  /** Whether the chosen loss beats the baseline on seeds it was not chosen on, and why. */
  readonly verdict: Verdict
}

export interface Decision {
  readonly metric: string
  readonly seeds: ReadonlyArray<number>
  readonly chosen: number
  /** Null when the run has no confirmation seeds. */
  readonly confirmation: Confirmation | null
  /** In fitness order. */
  readonly finalists: ReadonlyArray<FinalistResult>
  readonly baseline: Spread
  /** The baseline's score on the search's own seed and data; null until trained. */
  readonly baselineProxy: number | null
}

const seedRun = (r: CellResult, metric: string): SeedRun => ({ seed: r.seed, metrics: { [metric]: heldOutValue(r, metric) }, invalid: r.invalid })

/** How many of the plan's held-out and confirmation trainings are stored. */
export const heldOutDone = (plan: Trainings, cells: ReadonlyArray<CellResult>): number => {
  const wanted = new Set(plan.seeds.flatMap((seed) => (["baseline", ...plan.finalists.map((f) => f.id)] as Subject[]).map((subject) => cellKey({ subject, seed, split: "held-out" }))))
  const confirming = (c: CellResult) => c.split === "held-out" && plan.confirmSeeds.includes(c.seed)
  return cells.filter((c) => wanted.has(cellKey(c)) || confirming(c)).length
}

/** The runs of `subject` on every one of `seeds`, or null while one is missing. */
const runsOn = (byKey: ReadonlyMap<string, CellResult>, metric: string, subject: Subject, seeds: ReadonlyArray<number>): SeedRun[] | null => {
  const runs: SeedRun[] = []
  for (const seed of seeds) {
    const r = byKey.get(cellKey({ subject, seed, split: "held-out" }))
    if (r === undefined) return null
    runs.push(seedRun(r, metric))
  }
  return runs
}

/**
 * The choice alone (no confirmation), once every held-out training of the plan is stored; null
 * before (or with no finalist). What the confirmation's trainings are planned from.
 */
export const choose = (plan: Trainings, cells: ReadonlyArray<CellResult>): Omit<Decision, "confirmation"> | null => {
  if (plan.finalists.length === 0) return null
  const byKey = new Map(cells.map((c) => [cellKey(c), c]))
  const runsOf = (subject: Subject) => runsOn(byKey, plan.metric, subject, plan.seeds)
  const baselineRuns = runsOf("baseline")
  if (baselineRuns === null) return null
  const finalists: FinalistResult[] = []
  for (const [i, f] of plan.finalists.entries()) {
    const runs = runsOf(f.id)
    if (runs === null) return null
    finalists.push({ id: f.id, rank: i + 1, proxyScore: f.score, comparison: compareRuns(plan.metric, runs, baselineRuns) })
  }
  // Strictly better only: a tie keeps the finalist with the better proxy rank.
  let chosen = finalists[0]!
  for (const f of finalists) if (f.comparison.loss.mean > chosen.comparison.loss.mean) chosen = f
  const proxy = cells.find((c) => c.subject === "baseline" && c.split === "proxy")
  return {
    metric: plan.metric,
    seeds: plan.seeds,
    chosen: chosen.id,
    finalists,
    baseline: spread(baselineRuns.map((r) => r.metrics[plan.metric]!)),
    baselineProxy: proxy === undefined ? null : heldOutValue(proxy, plan.metric)
  }
}

/** The choice and its confirmation, once every training of both is stored; null before. */
export const decide = (plan: Trainings, cells: ReadonlyArray<CellResult>): Decision | null => {
  const choice = choose(plan, cells)
  if (choice === null) return null
  if (plan.confirmSeeds.length === 0) return { ...choice, confirmation: null }
  const byKey = new Map(cells.map((c) => [cellKey(c), c]))
  const loss = runsOn(byKey, plan.metric, choice.chosen, plan.confirmSeeds)
  const baseline = runsOn(byKey, plan.metric, "baseline", plan.confirmSeeds)
  if (loss === null || baseline === null) return null
  const comparison = compareRuns(plan.metric, loss, baseline)
  const heldOut = choice.finalists.find((f) => f.id === choice.chosen)!.comparison
  return { ...choice, confirmation: { seeds: plan.confirmSeeds, comparison, verdict: judge(comparison, heldOut.diff.mean) } }
}
