/**
 * Does the search's answer really beat the handcrafted baseline? The verdict a search ends with.
 * Pure: no I/O.
 *
 * Read on the confirmation seeds, which took no part in any choice: their paired difference is the
 * run's unbiased estimate of the gain. A positive mean alone is not enough: with three seeds and a
 * true gain of zero the mean is positive half of the time (the det search of seed 0 was "confirmed"
 * at +0.022 while its six fresh seeds together gave −0.001). So:
 * - `not-confirmed`: the confirmation mean is not above 0;
 * - `confirmed`: it is above 0, a one-sided paired t-test on the confirmation seeds rejects "no
 *   gain" at 5 %, and the answer is also ahead of the baseline on the held-out seeds it was chosen on
 *   (those are biased in its favour, so trailing there is evidence against a gain);
 * - `inconclusive`: above 0, but within seed noise (or one seed, which cannot tell) or the held-out
 *   seeds disagree. More confirmation seeds (`--confirm-seeds`) or `autoloss compare` can settle it.
 */
import type { Comparison } from "./compare.ts"

export type VerdictKind = "confirmed" | "inconclusive" | "not-confirmed"

export interface Verdict {
  readonly kind: VerdictKind
  /** One sentence saying why, with the numbers. */
  readonly reason: string
  /** Paired t statistic of the confirmation differences (null with one seed; Infinity when they are all equal and positive). */
  readonly t: number | null
  /** The one-sided 5 % critical value it was held against (null with one seed). */
  readonly critical: number | null
}

// Student's t, 95th percentile, for 1..30 degrees of freedom (scipy.stats.t.ppf(0.95, df), 3 d.p.).
const T95: ReadonlyArray<number> = [
  6.314, 2.92, 2.353, 2.132, 2.015, 1.943, 1.895, 1.86, 1.833, 1.812, 1.796, 1.782, 1.771, 1.761, 1.753,
  1.746, 1.74, 1.734, 1.729, 1.725, 1.721, 1.717, 1.714, 1.711, 1.708, 1.706, 1.703, 1.701, 1.699, 1.697
]

/** The one-sided 5 % critical value of Student's t; beyond 30 df the 30-df value (slightly conservative). */
export const tCritical95 = (df: number): number => {
  if (!Number.isInteger(df) || df < 1) throw new Error(`degrees of freedom must be an integer ≥ 1, got ${df}`)
  return T95[Math.min(df, T95.length) - 1]!
}

/**
 * What to do with an answer that is not confirmed, for the summary and the report alike (plain text;
 * `code` in backticks).
 */
export const VERDICT_ADVICE: Readonly<Record<Exclude<VerdictKind, "confirmed">, string>> = {
  inconclusive: "train both on more seeds (`--confirm-seeds`, or `autoloss compare`) before trusting the gain",
  "not-confirmed": "keep the handcrafted baseline, or search longer or with a more faithful proxy"
}

/**
 * The sentence naming the losses set aside as the baseline rediscovered (`selection.ts`
 * `pickFinalists`), for the summary and the report alike; null when none was.
 */
export const setAsideNote = (setAside: ReadonlyArray<{ readonly id: number; readonly score: number }>): string | null =>
  setAside.length === 0
    ? null
    : `${setAside.length === 1 ? "Candidate" : "Candidates"} ${setAside.map((s) => `${s.id} (proxy ${s.score.toFixed(4)})`).join(", ")} ` +
      `ranked among the finalists but ${setAside.length === 1 ? "was" : "were"} set aside: gradient-equivalent to the baseline on the ` +
      `rejection samples and trained to its proxy score, the baseline rediscovered rather than a new loss`

/**
 * The one-sided paired t-test of "the loss beats the reference" over the comparison's seeds: the t
 * statistic of the differences (Infinity when they are all equal and the mean is positive) and the
 * 5 % critical value for n − 1 degrees of freedom; null with one seed. Gain beyond seed noise when
 * t ≥ critical.
 */
export const pairedT = (c: Comparison): { readonly t: number; readonly critical: number } | null => {
  const n = c.seeds.length
  if (n < 2) return null
  const { mean, sd } = c.diff
  return { t: sd === 0 ? (mean > 0 ? Infinity : mean < 0 ? -Infinity : 0) : mean / (sd / Math.sqrt(n)), critical: tCritical95(n - 1) }
}

const signed = (x: number): string => (x >= 0 ? "+" : "") + x.toFixed(4)

/**
 * The verdict on `confirmation` (chosen loss vs baseline on the confirmation seeds), given the
 * chosen loss's mean difference on the held-out seeds it was chosen on (null: it was chosen by its
 * proxy score alone, and the confirmation decides alone).
 */
export const judge = (confirmation: Comparison, heldOutDiffMean: number | null): Verdict => {
  const n = confirmation.seeds.length
  const { mean, sd } = confirmation.diff
  const better = `better on ${confirmation.wins} of ${n}`
  if (!(mean > 0)) {
    return { kind: "not-confirmed", reason: `on the confirmation seeds the answer does not beat the baseline (${signed(mean)} on the mean, ${better})`, t: null, critical: null }
  }
  const test = pairedT(confirmation)
  if (test === null) {
    return { kind: "inconclusive", reason: `${signed(mean)} on one confirmation seed, which cannot tell a gain from seed noise`, t: null, critical: null }
  }
  const { t, critical } = test
  const tText = `paired t = ${Number.isFinite(t) ? t.toFixed(2) : "∞"}`
  if (t < critical) {
    return {
      kind: "inconclusive", t, critical,
      reason: `${signed(mean)} ± ${sd.toFixed(4)} on the confirmation seeds (${better}) is within seed noise: ${tText}, below ${critical} (one-sided 5 %, ${n - 1} df)`
    }
  }
  if (heldOutDiffMean !== null && !(heldOutDiffMean > 0)) {
    return {
      kind: "inconclusive", t, critical,
      reason: `${signed(mean)} on the confirmation seeds (${better}, ${tText}) but ${signed(heldOutDiffMean)} on the held-out seeds it was chosen on: the two disagree`
    }
  }
  return {
    kind: "confirmed", t, critical,
    reason: `the answer beats the baseline by ${signed(mean)} on seeds it was not chosen on (${better}; ${tText} ≥ ${critical}, one-sided 5 %)` +
      (heldOutDiffMean === null ? "" : ` and on its held-out seeds (${signed(heldOutDiffMean)})`)
  }
}
