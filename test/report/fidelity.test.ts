// Fidelity statistics against hand-worked rankings (ties included), scipy's documented outputs, and
// textbook formulas written independently of the implementation.
import t from "tap"
import { averageRanks, bestFirst, defaultK, fidelity, kendallTau, regret, spearmanRho, topKRetrieval } from "../../src/report/fidelity.ts"

const close = (t: { ok: (c: boolean, m: string) => unknown }, a: number, b: number, msg: string) => t.ok(Math.abs(a - b) < 1e-12, `${msg}: ${a} vs ${b}`)

t.test("scipy's documented examples (tau-b and average ranks with ties)", async (t) => {
  // scipy.stats.kendalltau docs: x1 = [12, 2, 1, 12, 2], x2 = [1, 4, 7, 1, 0] -> -0.47140452079103173
  // by hand: P = 2, Q = 6, T = 1 (pair 2,2 tied in x only), U = 0, the (12,12)/(1,1) pair in neither
  close(t, kendallTau([12, 2, 1, 12, 2], [1, 4, 7, 1, 0]), -0.47140452079103173, "kendalltau")
  close(t, kendallTau([12, 2, 1, 12, 2], [1, 4, 7, 1, 0]), -4 / Math.sqrt(72), "P, Q, T, U by hand")
  // scipy.stats.spearmanr docs: [1, 2, 3, 4, 5] vs [5, 6, 7, 8, 7] -> 0.82078268166812329 = 8 / sqrt(95)
  close(t, spearmanRho([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]), 0.82078268166812329, "spearmanr")
  close(t, spearmanRho([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]), 8 / Math.sqrt(95), "by hand")
})

t.test("hand-worked: ties in both rankings", async (t) => {
  // pairs: (0,1) tied in x, (1,2) tied in y, the other four concordant: 4 / sqrt(5 * 5)
  close(t, kendallTau([1, 1, 2, 3], [1, 2, 2, 3]), 0.8, "tau-b")
  t.same(averageRanks([1, 1, 2, 3]), [1.5, 1.5, 3, 4])
  t.same(averageRanks([0.3, 0.1, 0.3, 0.3, 0.2]), [4, 1, 4, 4, 2])
  // ranks [1.5,1.5,3,4] vs [1,2.5,2.5,4]: cov 3.75, both variances 4.5
  close(t, spearmanRho([1, 1, 2, 3], [1, 2, 2, 3]), 3.75 / 4.5, "rho")
  t.equal(kendallTau([1, 2, 3], [3, 2, 1]), -1)
  t.equal(spearmanRho([1, 2, 3], [30, 20, 10]), -1)
  t.equal(kendallTau([1, 2, 3], [10, 20, 30]), 1)
  t.ok(Number.isNaN(kendallTau([1, 1, 1], [1, 2, 3])), "a constant ranking orders no pair: NaN")
  t.ok(Number.isNaN(spearmanRho([1, 2, 3], [5, 5, 5])))
})

t.test("top-k retrieval and regret, hand-worked", async (t) => {
  const proxy = [0.5, 0.9, 0.1, 0.8, 0.3, 0.2, 0.4, 0.6]
  const long = [0.9, 0.8, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
  t.equal(defaultK(8), 2)
  t.equal(defaultK(13), 4)
  // long's top 2: losses 0, 1; proxy's: 1, 3
  t.equal(topKRetrieval(proxy, long), 0.5)
  t.equal(topKRetrieval(proxy, long, 4), 0.75, "long 0,1,7,6 vs proxy 1,3,7,0: 0, 1, 7 in both")
  t.equal(topKRetrieval(proxy, long, 8), 1)
  const r = regret(proxy, long)
  t.same([r.pick, r.best], [1, 0])
  close(t, r.regret, 0.1, "0.9 - 0.8")
  t.throws(() => topKRetrieval(proxy, long, 0), /1 <= k <= 8/)
})

t.test("ties in the proxy go to the loss listed first", async (t) => {
  t.same(bestFirst([0.5, 0.7, 0.5, 0.7]), [1, 3, 0, 2])
  const r = regret([0.5, 0.5, 0.1, 0.1], [0.2, 0.9, 0.3, 0.4])
  t.same([r.pick, r.best], [0, 1])
  close(t, r.regret, 0.7, "first of the tied proxy bests")
  t.equal(topKRetrieval([0.5, 0.5, 0.1, 0.1], [0.2, 0.9, 0.3, 0.4], 1), 0)
  t.equal(regret([0.1, 0.9], [0.5, 0.5]).regret, 0, "picking a loss tied with the true best costs nothing")
})

t.test("bad input names the problem", async (t) => {
  t.throws(() => kendallTau([1, 2], [1]), /different lengths: 2 vs 1/)
  t.throws(() => spearmanRho([1], [1]), /at least 2/)
  t.throws(() => fidelity([1, NaN], [1, 2]), /finite numbers, got NaN/)
})

// A seeded LCG: rankings with many ties (values 0..4) against independent textbook forms.
const stream = (seed: number) => () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31

t.test("tau-b equals the sign-product form; rho equals 1 - 6 sum d^2 / (n(n^2-1)) without ties", async (t) => {
  const next = stream(7)
  for (let trial = 0; trial < 200; trial++) {
    const n = 2 + Math.floor(next() * 14)
    const x = Array.from({ length: n }, () => Math.floor(next() * 5))
    const y = Array.from({ length: n }, () => Math.floor(next() * 5))
    let sxy = 0, sxx = 0, syy = 0
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      const a = Math.sign(x[i]! - x[j]!), b = Math.sign(y[i]! - y[j]!)
      sxy += a * b; sxx += a * a; syy += b * b
    }
    const expected = sxx === 0 || syy === 0 ? NaN : sxy / Math.sqrt(sxx * syy)
    const got = kendallTau(x, y)
    if (Number.isNaN(expected) ? !Number.isNaN(got) : Math.abs(got - expected) > 1e-12) {
      t.fail(`tau-b of ${x} vs ${y}: ${got}, sign-product form ${expected}`)
    }
    // distinct values: a permutation of 0..n-1 against another
    const p = bestFirst(Array.from({ length: n }, () => next())), q = bestFirst(Array.from({ length: n }, () => next()))
    const d2 = p.reduce((s, v, i) => s + (v - q[i]!) ** 2, 0)
    const rho = 1 - (6 * d2) / (n * (n * n - 1))
    if (Math.abs(spearmanRho(p, q) - rho) > 1e-12) t.fail(`rho of ${p} vs ${q}: ${spearmanRho(p, q)}, formula ${rho}`)
  }
  t.pass("200 random rankings agree")
})

t.test("fidelity gathers every statistic", async (t) => {
  const f = fidelity([0.1, 0.2, 0.3, 0.4, 0.5], [0.15, 0.25, 0.35, 0.45, 0.55])
  t.match(f, { n: 5, kendallTau: 1, spearman: 1, k: 2, topKRetrieval: 1, regret: 0, proxyPick: 4, longBest: 4 })
})
