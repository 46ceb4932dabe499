import t from "tap"
import {
  type CellResult,
  choose,
  decide,
  heldOutDone,
  heldOutValue,
  parseSeedList,
  pickFinalists,
  rediscoversBaseline,
  SAME_PROXY_SCORE,
  planCells,
  planConfirmCells,
  atHighestRung,
  type Ranked,
  rankByFitness,
  selectionProblems,
  selectionTotal
} from "../../src/search/selection.ts"

const row = (id: number, score: number | null, extra: { status?: string; reuseKind?: string | null } = {}): Ranked =>
  ({ id, score, status: extra.status ?? "evaluated", reuseKind: extra.reuseKind ?? null })

t.test("finalists: own finite scores only, best first, ties to the earlier candidate", async (t) => {
  const rows = [
    row(0, 0.3), row(1, 0.5, { reuseKind: "equivalent" }), row(2, 0.4), row(3, -Infinity), row(4, 0.4),
    row(5, 0.9, { status: "trained" }), row(6, null), row(7, 0.35)
  ]
  t.same(rankByFitness(rows, 3).map((r) => r.id), [2, 4, 7])
  t.same(rankByFitness(rows, 10).map((r) => r.id), [2, 4, 7, 0])
})

t.test("finalists: the baseline rediscovered is set aside when it ranks above the last finalist, and only then", async (t) => {
  const keyed = (id: number, score: number | null, equivalenceKey: string | null, extra: { reuseKind?: string | null } = {}) =>
    ({ ...row(id, score, extra), equivalenceKey })
  const rows = [
    keyed(0, 0.9, "B"), keyed(1, 0.8, "x"), keyed(2, 0.95, "B", { reuseKind: "equivalent" }), keyed(3, 0.7, null),
    keyed(4, 0.75, "B"), keyed(5, 0.6, "y"), keyed(6, 0.5, "B")
  ]
  const ids = (p: { finalists: ReadonlyArray<{ id: number }>; setAside: ReadonlyArray<{ id: number }> }) =>
    [p.finalists.map((r) => r.id), p.setAside.map((r) => r.id)]
  const isB = (r: { equivalenceKey: string | null }) => r.equivalenceKey === "B"
  // 2 reused its score (not a finalist either way); 6 ranks below the last finalist: not listed
  t.same(ids(pickFinalists(rows, 3, isB)), [[1, 3, 5], [0, 4]])
  t.same(ids(pickFinalists(rows, 1, isB)), [[1], [0]])
  t.same(ids(pickFinalists(rows, 3, () => false)), [[0, 1, 4], []], "nothing is the baseline: the plain ranking")
  t.same(ids(pickFinalists(rows, 0, isB)), [[], []])
  t.same(ids(pickFinalists(rows.filter(isB), 2, isB)), [[], [0, 4, 6]], "only the baseline: no finalist")
})

t.test("the baseline rediscovered: its key and its proxy score, both", async (t) => {
  const r = (score: number | null, equivalenceKey: string | null) => ({ ...row(1, score), equivalenceKey })
  t.ok(rediscoversBaseline(r(0.176, "B"), "B", 0.176), "ins: BCE plus a constant")
  t.ok(rediscoversBaseline(r(0.3005, "B"), "B", 0.3), `within ${SAME_PROXY_SCORE}`)
  t.notOk(rediscoversBaseline(r(0, "B"), "B", 0.752), "mmpose: the key met MSE's at the untrained heatmaps, the training did not")
  t.notOk(rediscoversBaseline(r(0.302, "B"), "B", 0.3), "a loss near the baseline that trains better is kept")
  t.notOk(rediscoversBaseline(r(0.176, "C"), "B", 0.176), "the same score by chance, other gradients")
  t.notOk(rediscoversBaseline(r(0.176, null), "B", 0.176))
  t.notOk(rediscoversBaseline(r(0.176, "B"), null, 0.176), "no key")
  t.notOk(rediscoversBaseline(r(0.176, "B"), "B", null), "no baseline proxy score")
  t.notOk(rediscoversBaseline(r(null, "B"), "B", 0.176))
})

t.test("asha: a loss is ranked at the highest rung it reached, higher rungs first, an invalid longer run drops out", async (t) => {
  const rows = [row(0, 0.9), row(1, 0.5), row(2, 0.6), row(3, 0.7), row(4, 0.2)]
  const promoted = (candidateId: number, rung: number, target: number, invalid = false) => ({ candidateId, rung, result: { target, invalid } })
  const rungs = [promoted(1, 1, 0.55), promoted(1, 2, 0.58), promoted(2, 1, 0.8), promoted(3, 1, 0.65), promoted(3, 2, NaN, true)]
  const ranked = atHighestRung(rows, rungs)
  t.same(ranked.map((r) => [r.id, r.rung ?? 0, r.score]), [[0, 0, 0.9], [1, 2, 0.58], [2, 1, 0.8], [3, 2, -Infinity], [4, 0, 0.2]])
  // 1 (rung 2) beats 2 (rung 1, higher score) beats 0 (rung 0, highest score); 3 diverged on the full proxy.
  t.same(rankByFitness(ranked, 10).map((r) => r.id), [1, 2, 0, 4])
  t.same(atHighestRung(rows, []), rows, "full fidelity: rows unchanged")
})

t.test("flags: seed lists and held-out seeds the search used", async (t) => {
  t.same(parseSeedList("--holdout-seeds", "101,102,7"), [101, 102, 7])
  t.throws(() => parseSeedList("--holdout-seeds", "101,x"), /--holdout-seeds wants comma-separated non-negative integers, got '101,x'/)
  t.throws(() => parseSeedList("--holdout-seeds", "1,1"), /repeats a seed/)
  const ok = { top: 5, seeds: [101, 102], iterations: null }
  t.same(selectionProblems(ok, [0]), [])
  t.match(selectionProblems({ ...ok, seeds: [0, 102] }, [0, 0]).join(), /holdout-seeds 0 was used by the search \(its seeds: 0\)/)
  t.match(selectionProblems({ ...ok, seeds: [3, 7] }, [3, 7]).join(), /holdout-seeds 3,7 were used/)
  t.same(selectionProblems({ ...ok, top: 0, seeds: [0] }, [0]), [], "no selection: the seeds do not matter")
  t.match(selectionProblems({ ...ok, iterations: 0 }, [0]).join(), /select-iterations must be an integer ≥ 1/)
  t.same(selectionProblems({ ...ok, confirmSeeds: [201, 202] }, [0]), [])
  t.match(selectionProblems({ ...ok, confirmSeeds: [201, 102] }, [0]).join(), /confirm-seeds 102 is also a search or held-out seed/)
  t.match(selectionProblems({ ...ok, confirmSeeds: [0, 7] }, [0, 7]).join(), /confirm-seeds 0,7 are also a search or held-out seed/)
  t.match(selectionProblems({ ...ok, confirmSeeds: [201, 201] }, [0]).join(), /confirm-seeds repeats a seed: 201,201/)
})

t.test("cells: seed by seed, baseline first, then the baseline on the search's seed", async (t) => {
  t.same(planCells([4, 2], [101, 102], 0), [
    { subject: "baseline", seed: 101, split: "held-out" }, { subject: 4, seed: 101, split: "held-out" }, { subject: 2, seed: 101, split: "held-out" },
    { subject: "baseline", seed: 102, split: "held-out" }, { subject: 4, seed: 102, split: "held-out" }, { subject: 2, seed: 102, split: "held-out" },
    { subject: "baseline", seed: 0, split: "proxy" }
  ])
})

t.test("confirmation cells: seed by seed, the baseline then the chosen loss; the total counts them", async (t) => {
  t.same(planConfirmCells(7, [201, 202]), [
    { subject: "baseline", seed: 201, split: "held-out" }, { subject: 7, seed: 201, split: "held-out" },
    { subject: "baseline", seed: 202, split: "held-out" }, { subject: 7, seed: 202, split: "held-out" }
  ])
  t.same(planConfirmCells(7, []), [])
  // 3 finalists + baseline on 2 seeds, 2 × 3 confirmation trainings, the baseline's proxy run
  t.equal(selectionTotal(3, [101, 102], [201, 202, 203]), 8 + 6 + 1)
  t.equal(selectionTotal(3, [101, 102], []), 9)
})

const cell = (subject: number | "baseline", seed: number, miou: number, invalid = false): CellResult =>
  ({ subject, seed, split: "held-out", metrics: { miou }, invalid })

t.test("decision: best held-out mean, paired differences against the baseline, worked by hand", async (t) => {
  const plan = { metric: "miou", seeds: [101, 102], confirmSeeds: [], finalists: [{ id: 4, score: 0.30 }, { id: 2, score: 0.28 }] }
  const cells = [
    cell("baseline", 101, 0.25), cell("baseline", 102, 0.27),
    cell(4, 101, 0.24), cell(4, 102, 0.26),
    cell(2, 101, 0.28), cell(2, 102, 0.26)
  ]
  t.equal(decide(plan, cells.slice(0, 5)), null, "undecided until every held-out training is stored")
  t.equal(heldOutDone(plan, cells.slice(0, 5)), 5)
  const d = decide(plan, cells)!
  t.equal(d.chosen, 2, "0.27 held out beats 0.25 although its proxy score is lower")
  const two = d.finalists[1]!.comparison
  // diffs +0.03, −0.01: mean 0.01, sd |0.04|/√2
  t.ok(Math.abs(two.diff.mean - 0.01) < 1e-12 && Math.abs(two.diff.sd - 0.04 / Math.SQRT2) < 1e-12)
  t.same([two.wins, two.ties, two.losses], [1, 0, 1])
  t.ok(Math.abs(d.baseline.mean - 0.26) < 1e-12)
  t.equal(d.baselineProxy, null, "no proxy run of the baseline yet")
  const withProxy = decide(plan, [...cells, { subject: "baseline", seed: 0, split: "proxy", metrics: { miou: 0.2634 }, invalid: false }])!
  t.equal(withProxy.baselineProxy, 0.2634)
})

t.test("decision: a tie goes to the better proxy rank; a NaN training counts as 0", async (t) => {
  const plan = { metric: "miou", seeds: [101], confirmSeeds: [], finalists: [{ id: 9, score: 0.3 }, { id: 3, score: 0.2 }, { id: 5, score: 0.1 }] }
  const cells = [cell("baseline", 101, 0.2), cell(9, 101, 0.25), cell(3, 101, 0.25), cell(5, 101, NaN, true)]
  const d = decide(plan, cells)!
  t.equal(d.chosen, 9)
  t.equal(d.finalists[2]!.comparison.loss.mean, 0)
  t.equal(heldOutValue({ metrics: {} }, "miou"), 0)
})

t.test("confirmation: the chosen loss against the baseline on seeds that took no part in the choice, worked by hand", async (t) => {
  const plan = { metric: "miou", seeds: [101, 102], confirmSeeds: [201, 202], finalists: [{ id: 4, score: 0.30 }, { id: 2, score: 0.28 }] }
  const chosenOn = [
    cell("baseline", 101, 0.25), cell("baseline", 102, 0.27),
    cell(4, 101, 0.24), cell(4, 102, 0.26),
    cell(2, 101, 0.28), cell(2, 102, 0.26)
  ]
  t.equal(choose(plan, chosenOn)?.chosen, 2, "the choice is known before the confirmation")
  t.equal(decide(plan, chosenOn), null, "undecided until the confirmation is stored")
  const confirm = [cell("baseline", 201, 0.30), cell(2, 201, 0.28), cell("baseline", 202, 0.20), cell(2, 202, 0.25)]
  t.equal(decide(plan, [...chosenOn, ...confirm.slice(0, 3)]), null)
  t.equal(heldOutDone(plan, [...chosenOn, ...confirm.slice(0, 3)]), 9, "confirmation trainings count as done")
  const d = decide(plan, [...chosenOn, ...confirm])!
  t.equal(d.chosen, 2)
  const k = d.confirmation!
  t.same(k.seeds, [201, 202])
  // diffs −0.02, +0.05: mean +0.015, sd |0.07|/√2; the choice's own comparison is unchanged
  t.ok(Math.abs(k.comparison.diff.mean - 0.015) < 1e-12 && Math.abs(k.comparison.diff.sd - 0.07 / Math.SQRT2) < 1e-12)
  t.same([k.comparison.wins, k.comparison.losses], [1, 1])
  // ahead on the mean, but t = 0.015 / (0.0495 / √2) = 0.43 is far below 6.314 (1 df): within noise
  t.equal(k.verdict.kind, "inconclusive")
  t.match(k.verdict.reason, /within seed noise: paired t = 0\.43, below 6\.314 \(one-sided 5 %, 1 df\)/)
  t.ok(Math.abs(d.finalists[1]!.comparison.diff.mean - 0.01) < 1e-12)
  // the chosen loss loses on both confirmation seeds: not confirmed, though it won the choice
  const worse = [cell("baseline", 201, 0.30), cell(2, 201, 0.28), cell("baseline", 202, 0.27), cell(2, 202, 0.25)]
  const n = decide(plan, [...chosenOn, ...worse])!.confirmation!
  t.equal(n.verdict.kind, "not-confirmed")
  t.ok(Math.abs(n.comparison.diff.mean + 0.02) < 1e-12)
  // a tie is not a confirmation
  const tie = [cell("baseline", 201, 0.3), cell(2, 201, 0.3), cell("baseline", 202, 0.2), cell(2, 202, 0.2)]
  t.equal(decide(plan, [...chosenOn, ...tie])!.confirmation!.verdict.kind, "not-confirmed")
  // +0.03 and +0.04: t = 0.035 / (0.00707 / √2) = 7.0 ≥ 6.314, and ahead on the held-out seeds (+0.01)
  const better = [cell("baseline", 201, 0.20), cell(2, 201, 0.23), cell("baseline", 202, 0.20), cell(2, 202, 0.24)]
  const y = decide(plan, [...chosenOn, ...better])!.confirmation!
  t.equal(y.verdict.kind, "confirmed")
  t.ok(Math.abs(y.verdict.t! - 7) < 1e-9)
  t.equal(decide({ ...plan, confirmSeeds: [] }, chosenOn)!.confirmation, null, "no confirmation seeds: no confirmation")
})
