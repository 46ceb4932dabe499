import t from "tap"
import { Effect, Layer } from "effect"
import { formatSummary, loadSummary, type Summary } from "../../src/cli/summary.ts"
import { makeFakeEvaluator } from "../search/fake-evaluator.ts"
import { runSelection } from "../../src/search/selection-run.ts"
import { layer } from "../../src/store/Store.ts"
import { evolution, run, SMALL, tempDir } from "../search/harness.ts"

const SUMMARY: Summary = {
  best: { id: 3, loss: "neg(mul(y, y_hat))", score: 0.29, metrics: { miou: 0.29 } },
  top5: [{ id: 3, loss: "neg(mul(y, y_hat))", score: 0.29 }, { id: 8, loss: "exp(y_hat)", score: 0.27 }],
  counters: { trained: 60, proposed: 143, passed: 23 },
  selection: {
    metric: "miou",
    seeds: [101, 102],
    chosen: {
      id: 8, loss: "exp(y_hat)", score: 0.27, proxyMetrics: { miou: 0.27 },
      heldOut: { values: [0.28, 0.26], mean: 0.27, sd: 0.0141 },
      vsBaseline: { diffs: [0.03, -0.01], mean: 0.01, sd: 0.0283, wins: 1, ties: 0, losses: 1 }
    },
    baseline: { heldOut: { values: [0.25, 0.27], mean: 0.26, sd: 0.0141 }, proxy: 0.2634, proxyMetrics: { miou: 0.2634 } },
    confirmation: null,
    verdict: "unconfirmed",
    verdictReason: null,
    finalists: [
      { id: 3, loss: "neg(mul(y, y_hat))", score: 0.29, heldOutMean: 0.25, diffMean: -0.01, wins: 0 },
      { id: 8, loss: "exp(y_hat)", score: 0.27, heldOutMean: 0.27, diffMean: 0.01, wins: 1 }
    ],
    setAside: []
  }
}

t.test("the terminal summary: the answer beside the baseline, seed by seed, and the finalists", async (t) => {
  const text = formatSummary(SUMMARY, { dir: "runs/s", report: "runs/s/report.html" })
  t.match(text, /^Search finished: 60 proxy trainings, 143 losses generated, 23 passed screening\./)
  t.match(text, /The answer: candidate 8, the best held-out miou of the top 2 \(seeds 101, 102\)\n  exp\(y_hat\)\n/)
  t.match(text, /\n  chosen +0\.2700 +0\.2700 ± 0\.0141 +0\.2800 +0\.2600\n/)
  t.match(text, /\n  baseline +0\.2634 +0\.2600 ± 0\.0141 +0\.2500 +0\.2700\n/)
  // proxy: 0.27 − 0.2634 = +0.0066
  t.match(text, /\n  difference +\+0\.0066 +\+0\.0100 ± 0\.0283 +\+0\.0300 +-0\.0100\n/)
  t.match(text, /better than the baseline on 1 of 2 held-out seeds \(0 tie\(s\), 1 worse\)\n/)
  t.match(text, /\n  1 +3 +0\.2900 +0\.2500 +-0\.0100 +neg\(mul\(y, y_hat\)\)\n  2 +8 +0\.2700 +0\.2700 +\+0\.0100 +\* +exp\(y_hat\)\n/)
  t.match(text, /Report: +runs\/s\/report\.html\nExport: +npx autoloss export runs\/s --format torch +\(the chosen loss;/)
})

t.test("the confirmation: its own table and the verdict, confirmed or not", async (t) => {
  const sel = SUMMARY.selection!
  t.match(formatSummary(SUMMARY, { dir: "runs/s", report: null }), /Not confirmed on further seeds \(--confirm-seeds none\)/)
  const confirmation = {
    seeds: [201, 202],
    chosen: { values: [0.30, 0.24], mean: 0.27, sd: 0.0424 },
    baseline: { values: [0.28, 0.25], mean: 0.265, sd: 0.0212 },
    vsBaseline: { diffs: [0.02, -0.01], mean: 0.005, sd: 0.0212, wins: 1, ties: 0, losses: 1 }
  }
  const reason = "the answer beats the baseline by +0.0050 on seeds it was not chosen on (1 of 2 better; paired t = 7.00 ≥ 6.314, one-sided 5 %)"
  const yes = formatSummary({ ...SUMMARY, selection: { ...sel, confirmation, verdict: "confirmed", verdictReason: reason } }, { dir: "runs/s", report: null })
  t.match(yes, /Confirmation on seeds 201, 202, which took no part in the choice:\n/)
  t.match(yes, /\n  chosen +0\.2700 ± 0\.0424 +0\.3000 +0\.2400\n  baseline +0\.2650 ± 0\.0212 +0\.2800 +0\.2500\n  difference +\+0\.0050 ± 0\.0212 +\+0\.0200 +-0\.0100\n/)
  t.match(yes, /Verdict: confirmed, the answer beats the baseline by \+0\.0050 on seeds it was not chosen on \(1 of 2 better; paired t = 7\.00/)
  t.notMatch(yes, /NOT confirmed/)
  const unsure = formatSummary({ ...SUMMARY, selection: { ...sel, confirmation, verdict: "inconclusive", verdictReason: "within seed noise" } }, { dir: "runs/s", report: null })
  t.match(unsure, /Verdict: inconclusive, within seed noise;\n  train both on more seeds \(`--confirm-seeds`, or `autoloss compare`\)/)
  t.notMatch(unsure, /confirmed/)
  const no = formatSummary({ ...SUMMARY, selection: { ...sel, confirmation, verdict: "not-confirmed", verdictReason: "not ahead" } }, { dir: "runs/s", report: null })
  t.match(no, /Verdict: NOT confirmed, the answer does not beat the baseline on seeds it was not chosen on \(1 of 2 better\);\n  keep the handcrafted baseline/)
})

t.test("a loss set aside as the baseline rediscovered is named after the finalists; none, no sentence", async (t) => {
  t.notMatch(formatSummary(SUMMARY, { dir: "runs/s", report: null }), /set aside/)
  const setAside = [{ id: 5, loss: "neg(log(mul(y, y_hat)))", score: 0.31 }]
  const text = formatSummary({ ...SUMMARY, selection: { ...SUMMARY.selection!, setAside } }, { dir: "runs/s", report: null })
  t.match(text, /\* +exp\(y_hat\)\n\nCandidate 5 \(proxy 0\.3100\) ranked among the finalists but was set aside: gradient-equivalent to the baseline[^\n]*:\n  candidate 5  neg\(log\(mul\(y, y_hat\)\)\)\n/)
})

t.test("asha: the cost in full-proxy equivalents and the trainings per rung", async (t) => {
  const counters = { trained: 40, proposed: 300, passed: 50, trainedRung0: 40, trainedRung1: 10, trainedRung10: 0, trainedRung2: 3, spentUnits: 78, unitsPerFull: 9 }
  const text = formatSummary({ ...SUMMARY, counters }, { dir: "runs/s", report: null })
  t.match(text, /^Search finished: 8\.7 full-proxy equivalents \(trainings per rung 40\/10\/3\/0\), 300 losses generated, 50 passed screening\./)
})

t.test("without a selection the proxy best is the answer, and the summary says so", async (t) => {
  const text = formatSummary({ ...SUMMARY, selection: null }, { dir: "runs/s", report: null })
  t.match(text, /The answer \(best proxy score; no held-out selection was made\): candidate 3, 0\.2900\n  neg\(mul\(y, y_hat\)\)/)
  t.match(text, /Top 2 by proxy score:\n  1\. candidate 3 +0\.2900/)
  t.notMatch(text, /Report:/)
  t.match(text, /\(the proxy best;/)
})

t.test("the stored run's summary carries the selection the store holds", async (t) => {
  const dir = tempDir(t)
  const fake = makeFakeEvaluator({ invalidRate: 0 })
  await run(dir, evolution(8), fake, { ...SMALL, budget: 12 })
  const settings = { top: 3, seeds: [101, 102], iterations: null, confirmSeeds: [201, 202, 203] }
  const { decision } = await Effect.runPromise(
    runSelection(settings, { metric: "miou", searchSeed: 0, concurrency: 2, baselineKey: null }).pipe(Effect.provide(Layer.merge(layer(dir), fake.layer)))
  )
  const s = await loadSummary(dir)
  t.equal(s.selection?.chosen.id, decision!.chosen)
  t.same(s.selection?.finalists.map((f) => f.id), decision!.finalists.map((f) => f.id))
  t.same(s.top5.slice(0, 3).map((x) => x.id), decision!.finalists.map((f) => f.id), "the finalists are the top of the proxy ranking")
  t.equal(s.best?.id, s.top5[0]?.id)
  t.same(s.selection?.chosen.heldOut.values, decision!.finalists.find((f) => f.id === decision!.chosen)!.comparison.loss.values)
  t.ok(typeof s.selection?.baseline.proxy === "number")
  const k = decision!.confirmation!
  t.same(s.selection?.confirmation?.seeds, [201, 202, 203])
  t.same(s.selection?.confirmation?.chosen.values, k.comparison.loss.values)
  t.same(s.selection?.confirmation?.baseline.values, k.comparison.against.values)
  t.equal(s.selection?.verdict, k.verdict.kind)
  t.equal(s.selection?.verdictReason, k.verdict.reason)
})
