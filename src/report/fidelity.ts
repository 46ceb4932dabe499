/**
 * How faithfully a proxy ranks losses: the panel's proxy scores against its long-training scores.
 * Every score is "higher is better" (the tasks' metrics are mIoU, AP, accuracy). Pure: no I/O.
 *
 * Ties are handled as scipy.stats does: Kendall's τ-b (ties in either ranking shrink the
 * denominator), Spearman's ρ on average ranks. Where an ordering must pick among tied scores (the
 * top k, the proxy's pick), the loss listed first in the panel wins: deterministic, and it is the
 * order the panel file states, so nobody can tune it after seeing the scores.
 */

/**
 * Kendall's τ-b = (P − Q) / √((P + Q + T)(P + Q + U)): P concordant pairs, Q discordant, T tied in
 * x only, U tied in y only (a pair tied in both counts in neither). NaN when either ranking is
 * constant (no pair orders it), as scipy returns. O(n²): panels are tens of losses.
 */
export const kendallTau = (x: ReadonlyArray<number>, y: ReadonlyArray<number>): number => {
  sameLength(x, y)
  let p = 0, q = 0, t = 0, u = 0
  for (let i = 0; i < x.length; i++) {
    for (let j = i + 1; j < x.length; j++) {
      const dx = Math.sign(x[i]! - x[j]!), dy = Math.sign(y[i]! - y[j]!)
      if (dx === 0 && dy === 0) continue
      if (dx === 0) t++
      else if (dy === 0) u++
      else if (dx === dy) p++
      else q++
    }
  }
  const denominator = Math.sqrt((p + q + t) * (p + q + u))
  return denominator === 0 ? NaN : (p - q) / denominator
}

/** 1-based ranks, ascending; tied values share the mean of the ranks they span. */
export const averageRanks = (v: ReadonlyArray<number>): number[] => {
  const order = v.map((_, i) => i).sort((a, b) => v[a]! - v[b]!)
  const ranks = new Array<number>(v.length)
  for (let start = 0; start < order.length;) {
    let end = start
    while (end + 1 < order.length && v[order[end + 1]!] === v[order[start]!]) end++
    const rank = (start + end) / 2 + 1
    for (let k = start; k <= end; k++) ranks[order[k]!] = rank
    start = end + 1
  }
  return ranks
}

/** Spearman's ρ: Pearson's correlation of the average ranks. NaN when either is constant. */
export const spearmanRho = (x: ReadonlyArray<number>, y: ReadonlyArray<number>): number => {
  sameLength(x, y)
  return pearson(averageRanks(x), averageRanks(y))
}

const pearson = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): number => {
  const ma = mean(a), mb = mean(b)
  let sab = 0, saa = 0, sbb = 0
  for (let i = 0; i < a.length; i++) {
    sab += (a[i]! - ma) * (b[i]! - mb)
    saa += (a[i]! - ma) ** 2
    sbb += (b[i]! - mb) ** 2
  }
  return saa === 0 || sbb === 0 ? NaN : sab / Math.sqrt(saa * sbb)
}

const mean = (v: ReadonlyArray<number>): number => v.reduce((s, x) => s + x, 0) / v.length

/** Panel indices by score, best first; equal scores keep panel order (the earlier loss first). */
export const bestFirst = (scores: ReadonlyArray<number>): number[] =>
  scores.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b)

/** The default k of top-k retrieval: a quarter of the panel, rounded up. */
export const defaultK = (n: number): number => Math.ceil(n / 4)

/**
 * Of the k best losses by the long score, the fraction the proxy also puts in its top k
 * (both top-k lists cut by `bestFirst`, so ties at the cut go to the earlier loss).
 */
export const topKRetrieval = (proxy: ReadonlyArray<number>, long: ReadonlyArray<number>, k = defaultK(proxy.length)): number => {
  sameLength(proxy, long)
  if (!Number.isInteger(k) || k < 1 || k > proxy.length) throw new Error(`top-k wants 1 <= k <= ${proxy.length}, got ${k}`)
  const proxyTop = new Set(bestFirst(proxy).slice(0, k))
  return bestFirst(long).slice(0, k).filter((i) => proxyTop.has(i)).length / k
}

/**
 * What trusting the proxy costs: the best long score in the panel minus the long score of the loss
 * the proxy ranks first (the first in panel order among proxy ties). 0 when the proxy picks a
 * loss as good as the true best.
 */
export const regret = (proxy: ReadonlyArray<number>, long: ReadonlyArray<number>): { readonly regret: number; readonly pick: number; readonly best: number } => {
  sameLength(proxy, long)
  const pick = bestFirst(proxy)[0]!
  const best = bestFirst(long)[0]!
  return { regret: long[best]! - long[pick]!, pick, best }
}

export interface Fidelity {
  readonly n: number
  readonly kendallTau: number
  readonly spearman: number
  readonly k: number
  readonly topKRetrieval: number
  readonly regret: number
  /** Panel index of the proxy's pick and of the loss best after long training. */
  readonly proxyPick: number
  readonly longBest: number
}

/** Every statistic over a panel's mean proxy and long scores (same order: one entry per loss). */
export const fidelity = (proxy: ReadonlyArray<number>, long: ReadonlyArray<number>, k = defaultK(proxy.length)): Fidelity => {
  const r = regret(proxy, long)
  return {
    n: proxy.length,
    kendallTau: kendallTau(proxy, long),
    spearman: spearmanRho(proxy, long),
    k,
    topKRetrieval: topKRetrieval(proxy, long, k),
    regret: r.regret,
    proxyPick: r.pick,
    longBest: r.best
  }
}

const sameLength = (x: ReadonlyArray<number>, y: ReadonlyArray<number>): void => {
  if (x.length !== y.length) throw new Error(`rankings of different lengths: ${x.length} vs ${y.length}`)
  if (x.length < 2) throw new Error(`a ranking needs at least 2 losses, got ${x.length}`)
  const bad = [...x, ...y].find((v) => !Number.isFinite(v))
  if (bad !== undefined) throw new Error(`scores must be finite numbers, got ${bad}`)
}
