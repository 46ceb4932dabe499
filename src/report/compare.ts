/**
 * A searched loss against a reference loss on held-out seeds. The search picks its best loss by the
 * proxy score of one training run (seed of the run), so that score is biased upward by the
 * selection; training both losses again from other seeds and comparing seed by seed (paired: the
 * same seed gives both the same initialisation and data order) says whether the gain is real.
 * Pure: no I/O.
 */
import { pairedT } from "./verdict.ts"

export interface SeedRun {
  readonly seed: number
  readonly metrics: Readonly<Record<string, number>>
  /** Training stopped at a non-finite loss; its metrics are 0. */
  readonly invalid: boolean
}

export interface Spread {
  readonly values: ReadonlyArray<number>
  readonly mean: number
  /** Sample standard deviation (n − 1); 0 for one value. */
  readonly sd: number
}

export interface Comparison {
  readonly metric: string
  readonly seeds: ReadonlyArray<number>
  readonly loss: Spread
  readonly against: Spread
  /** loss − against, seed by seed. */
  readonly diff: Spread
  readonly wins: number
  readonly ties: number
  readonly losses: number
}

export const spread = (values: ReadonlyArray<number>): Spread => {
  if (values.length === 0) throw new Error("spread of no values")
  const mean = values.reduce((a, b) => a + b, 0) / values.length
  const sd = values.length < 2 ? 0 : Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1))
  return { values, mean, sd }
}

const metricOf = (run: SeedRun, metric: string, side: string): number => {
  const v = run.metrics[metric]
  if (typeof v !== "number" || Number.isNaN(v)) {
    throw new Error(`${side} run with seed ${run.seed} has no metric '${metric}' (it has ${Object.keys(run.metrics).join(", ") || "none"})`)
  }
  return v
}

/** Pairs the runs by seed (both sides must hold the same seeds) and compares `metric`. */
export const compareRuns = (metric: string, loss: ReadonlyArray<SeedRun>, against: ReadonlyArray<SeedRun>): Comparison => {
  const seeds = loss.map((r) => r.seed)
  const bySeed = new Map(against.map((r) => [r.seed, r]))
  if (against.length !== loss.length || seeds.some((s) => !bySeed.has(s))) {
    throw new Error(`the two sides were trained on different seeds: ${seeds.join(",")} vs ${against.map((r) => r.seed).join(",")}`)
  }
  const a = loss.map((r) => metricOf(r, metric, "loss"))
  const b = loss.map((r) => metricOf(bySeed.get(r.seed)!, metric, "reference"))
  const d = a.map((v, i) => v - b[i]!)
  return {
    metric, seeds,
    loss: spread(a), against: spread(b), diff: spread(d),
    wins: d.filter((x) => x > 0).length, ties: d.filter((x) => x === 0).length, losses: d.filter((x) => x < 0).length
  }
}

const f4 = (x: number): string => x.toFixed(4)
const signed = (x: number): string => (x >= 0 ? "+" : "") + x.toFixed(4)

/**
 * What the paired one-sided t-test (`pairedT`, the rule the search's verdict uses) says of the
 * loss's gain over the reference, as one sentence.
 */
export const pairedTestLine = (c: Comparison): string => {
  if (!(c.diff.mean > 0)) return "The loss is not better on the mean: no gain to test."
  const test = pairedT(c)
  if (test === null) return "One seed cannot tell a gain from seed noise: compare on more seeds."
  const tText = Number.isFinite(test.t) ? test.t.toFixed(2) : "∞"
  return test.t >= test.critical
    ? `Paired t = ${tText} ≥ ${test.critical} (one-sided 5 %, ${c.seeds.length - 1} df): the gain is beyond seed noise.`
    : `Paired t = ${tText} < ${test.critical} (one-sided 5 %, ${c.seeds.length - 1} df): the gain is within seed noise; compare on more seeds.`
}

/** A plain-text table: one row per seed, then mean ± sd and the win count. */
export const formatComparison = (c: Comparison, lossText: string, againstText: string): string => {
  const rows = [`seed  ${"loss".padStart(8)}  ${"reference".padStart(9)}  ${"diff".padStart(8)}`]
  c.seeds.forEach((seed, i) => {
    rows.push(`${String(seed).padEnd(4)}  ${f4(c.loss.values[i]!).padStart(8)}  ${f4(c.against.values[i]!).padStart(9)}  ${signed(c.diff.values[i]!).padStart(8)}`)
  })
  rows.push(`mean  ${f4(c.loss.mean).padStart(8)}  ${f4(c.against.mean).padStart(9)}  ${signed(c.diff.mean).padStart(8)}`)
  rows.push(`sd    ${f4(c.loss.sd).padStart(8)}  ${f4(c.against.sd).padStart(9)}  ${f4(c.diff.sd).padStart(8)}`)
  return [
    `${c.metric} on ${c.seeds.length} seed(s)`,
    `  loss:      ${lossText}`,
    `  reference: ${againstText}`,
    ...rows,
    `loss better on ${c.wins} of ${c.seeds.length} seeds (${c.ties} tie(s), ${c.losses} worse)`,
    pairedTestLine(c)
  ].join("\n")
}
