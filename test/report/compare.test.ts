import t from "tap"
import { compareRuns, formatComparison, pairedTestLine, spread } from "../../src/report/compare.ts"

const run = (seed: number, miou: number, invalid = false) => ({ seed, metrics: { miou, gacc: 0.9 }, invalid })

t.test("spread: mean and sample standard deviation, by hand", async (t) => {
  const s = spread([0.2, 0.4, 0.9])
  t.equal(s.mean, 0.5)
  // deviations −0.3, −0.1, 0.4 → squares 0.09 + 0.01 + 0.16 = 0.26; / 2 = 0.13
  t.ok(Math.abs(s.sd - Math.sqrt(0.13)) < 1e-15)
  t.equal(spread([0.7]).sd, 0, "one value has no spread")
  t.throws(() => spread([]), /no values/)
})

t.test("runs are paired by seed, whatever their order", async (t) => {
  const c = compareRuns("miou", [run(1, 0.30), run(2, 0.26), run(3, 0.25)], [run(3, 0.25), run(1, 0.25), run(2, 0.27)])
  t.same(c.seeds, [1, 2, 3])
  t.same(c.against.values, [0.25, 0.27, 0.25])
  t.ok(Math.abs(c.diff.values[0]! - 0.05) < 1e-12 && Math.abs(c.diff.values[1]! + 0.01) < 1e-12 && c.diff.values[2] === 0)
  t.same([c.wins, c.ties, c.losses], [1, 1, 1])
  t.ok(Math.abs(c.diff.mean - 0.04 / 3) < 1e-12)
})

t.test("mismatched seeds and missing metrics are named", async (t) => {
  t.throws(() => compareRuns("miou", [run(1, 0.3)], [run(2, 0.3)]), /different seeds: 1 vs 2/)
  t.throws(() => compareRuns("miou", [run(1, 0.3), run(2, 0.3)], [run(1, 0.3)]), /different seeds/)
  t.throws(() => compareRuns("bf1", [run(1, 0.3)], [run(1, 0.3)]), /loss run with seed 1 has no metric 'bf1' \(it has miou, gacc\)/)
})

t.test("the table shows each seed, mean, sd and the win count", async (t) => {
  const c = compareRuns("miou", [run(1, 0.303), run(2, 0.265)], [run(1, 0.257), run(2, 0.249)])
  const text = formatComparison(c, "exp(sqrt(neg(log(mul(y, y_hat)))))", "baseline")
  t.match(text, /^miou on 2 seed\(s\)/)
  t.match(text, /\n1 +0\.3030 +0\.2570 +\+0\.0460\n/)
  t.match(text, /\n2 +0\.2650 +0\.2490 +\+0\.0160\n/)
  t.match(text, /\nmean +0\.2840 +0\.2530 +\+0\.0310\n/)
  // sd of the diffs 0.046 and 0.016: |0.03| / √2 = 0.0212
  t.match(text, /\nsd +0\.0269 +0\.0057 +0\.0212\n/)
  t.match(text, /loss better on 2 of 2 seeds \(0 tie\(s\), 0 worse\)\n/)
  // t = 0.031 / (0.0212 / √2) = 2.07 < 6.314 (1 df)
  t.match(text, /\nPaired t = 2\.07 < 6\.314 \(one-sided 5 %, 1 df\): the gain is within seed noise; compare on more seeds\.$/)
})

t.test("the paired test line: beyond noise, not ahead, one seed", async (t) => {
  // diffs +0.05, +0.04, +0.06: mean 0.05, sd 0.01, t = 0.05 / (0.01 / √3) = 8.66 ≥ 2.92 (2 df)
  const ahead = compareRuns("miou", [run(1, 0.35), run(2, 0.34), run(3, 0.36)], [run(1, 0.3), run(2, 0.3), run(3, 0.3)])
  t.equal(pairedTestLine(ahead), "Paired t = 8.66 ≥ 2.92 (one-sided 5 %, 2 df): the gain is beyond seed noise.")
  const behind = compareRuns("miou", [run(1, 0.2), run(2, 0.3)], [run(1, 0.3), run(2, 0.3)])
  t.equal(pairedTestLine(behind), "The loss is not better on the mean: no gain to test.")
  t.equal(pairedTestLine(compareRuns("miou", [run(1, 0.4)], [run(1, 0.3)])), "One seed cannot tell a gain from seed noise: compare on more seeds.")
})
