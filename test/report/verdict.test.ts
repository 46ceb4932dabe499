import t from "tap"
import { compareRuns, type SeedRun } from "../../src/report/compare.ts"
import { judge, tCritical95 } from "../../src/report/verdict.ts"

const runs = (values: ReadonlyArray<number>): SeedRun[] => values.map((v, i) => ({ seed: 201 + i, metrics: { map: v }, invalid: false }))
const comparison = (loss: ReadonlyArray<number>, baseline: ReadonlyArray<number>) => compareRuns("map", runs(loss), runs(baseline))

t.test("critical values: Student's t at 95 % from a printed table", async (t) => {
  // Standard one-sided 5 % table values (e.g. any statistics textbook's t table).
  t.equal(tCritical95(1), 6.314)
  t.equal(tCritical95(2), 2.92)
  t.equal(tCritical95(4), 2.132)
  t.equal(tCritical95(10), 1.812)
  t.equal(tCritical95(30), 1.697)
  t.equal(tCritical95(200), 1.697, "beyond 30 df: the 30-df value, slightly conservative (the normal's is 1.645)")
  t.throws(() => tCritical95(0), /degrees of freedom must be an integer ≥ 1, got 0/)
})

t.test("the det search of seed 0 (stop 23): +0.022 on the confirmation seeds, −0.024 on its held-out ones", async (t) => {
  // Confirmation 0.228/0.222/0.203 vs 0.195/0.205/0.187: diffs .033/.017/.016, mean .022, sd .00954,
  // t = .022 / (.00954 / √3) = 3.99 ≥ 2.92: significant alone, but the held-out seeds disagree.
  const c = comparison([0.228, 0.222, 0.203], [0.195, 0.205, 0.187])
  const v = judge(c, -0.024)
  t.equal(v.kind, "inconclusive")
  t.ok(Math.abs(v.t! - 3.9944) < 1e-3, `t ${v.t}`)
  t.equal(v.critical, 2.92)
  t.match(v.reason, /\+0\.0220 on the confirmation seeds \(better on 3 of 3, paired t = 3\.99\) but -0\.0240 on the held-out seeds it was chosen on: the two disagree/)
  t.equal(judge(c, 0.01).kind, "confirmed", "the same confirmation with the held-out seeds agreeing")
})

t.test("the det search of seed 1 (stop 23): +0.006 ± 0.030 is within noise", async (t) => {
  // Diffs +0.033, +0.019, −0.027 (invented, near its mean +0.006 and sd 0.030): mean 0.008333,
  // sd 0.031387, t = 0.008333 / (0.031387 / √3) = 0.46 < 2.92.
  const c = comparison([0.233, 0.219, 0.173], [0.2, 0.2, 0.2])
  const v = judge(c, 0.003)
  t.equal(v.kind, "inconclusive")
  t.ok(Math.abs(v.t! - 0.45986) < 1e-3, `t ${v.t}`)
  t.match(v.reason, /within seed noise: paired t = 0\.46, below 2\.92 \(one-sided 5 %, 2 df\)/)
})

t.test("not ahead on the mean, one seed, equal diffs", async (t) => {
  t.equal(judge(comparison([0.2, 0.3], [0.25, 0.25]), 0.1).kind, "not-confirmed", "mean 0 is not a gain")
  t.equal(judge(comparison([0.2, 0.2], [0.25, 0.21]), 0.1).kind, "not-confirmed")
  const one = judge(comparison([0.3], [0.2]), 0.1)
  t.equal(one.kind, "inconclusive")
  t.match(one.reason, /one confirmation seed, which cannot tell a gain from seed noise/)
  // every seed ahead by exactly the same amount (binary-exact values): sd 0, t infinite
  const same = judge(comparison([0.75, 0.5, 0.25], [0.5, 0.25, 0]), 0.05)
  t.equal(same.kind, "confirmed")
  t.equal(same.t, Infinity)
  t.match(same.reason, /paired t = ∞ ≥ 2\.92/)
  t.equal(judge(comparison([0.75, 0.5, 0.25], [0.5, 0.25, 0]), 0).kind, "inconclusive", "held-out tie: not ahead there")
})

t.test("chosen by proxy score alone (no held-out comparison): the confirmation decides alone", async (t) => {
  const v = judge(comparison([0.75, 0.5, 0.25], [0.5, 0.25, 0]), null)
  t.equal(v.kind, "confirmed")
  t.notMatch(v.reason, /held-out/)
  t.equal(judge(comparison([0.233, 0.219, 0.173], [0.2, 0.2, 0.2]), null).kind, "inconclusive")
})
