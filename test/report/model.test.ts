import t from "tap"
import { binWidth, buildReportModel, describeHow, funnelOf, lineageOf, searchCurve, throughputOf, topLosses } from "../../src/report/model.ts"
import { loadRun } from "../../src/report/run-data.ts"
import { COUNTERS, CREATED_AT, tempDir, writeSyntheticRun } from "./fixture.ts"

t.test("rows come back from the read-only loader with the columns the Store does not expose", async (t) => {
  const dir = tempDir(t)
  await writeSyntheticRun(dir)
  const run = loadRun(dir)
  t.equal(run.createdAt, CREATED_AT)
  t.equal(run.config?.task, "seg")
  t.equal(run.candidates.length, 13)
  t.same(run.counters, COUNTERS)
  t.match(run.candidates[4], { proposedAt: CREATED_AT + 40_000, screenMs: 300, screenWorker: "w2", trainMs: 2000, trainWorker: "w1", proxyMetrics: { miou: 0.4, gacc: 0.9 } })
  t.equal(run.candidates[6]!.score, -Infinity, "an invalid loss's −∞ survives SQLite")
  t.equal(run.candidates[6]!.invalid, true)
  t.equal(run.candidates[8]!.status, "abandoned")
  t.not(run.lastOutcomeAt, null)
})

t.test("funnel counts from rows, and they agree with the engine's counters", async (t) => {
  const dir = tempDir(t)
  await writeSyntheticRun(dir)
  const run = loadRun(dir)
  const f = funnelOf(run.candidates)
  t.same(f, { generated: 13, staticRejected: 1, screened: 11, passed: 10, equivalent: 1, duplicate: 1, trained: 7, invalid: 1, abandoned: 1, pending: 0 })
  // The same facts as the engine counted them while running.
  t.equal(f.generated, COUNTERS.proposed)
  t.equal(f.staticRejected, COUNTERS.staticRejected)
  t.equal(f.screened, COUNTERS.screened + COUNTERS.duplicateVerdicts, "a duplicate's copied verdict counts as screened")
  t.equal(f.passed, COUNTERS.passed)
  t.equal(f.equivalent, COUNTERS.equivalentReuses)
  t.equal(f.duplicate, COUNTERS.duplicateReuses)
  t.equal(f.trained, COUNTERS.trained)
  t.equal(f.invalid, COUNTERS.invalid)
})

t.test("search curve: one point per own proxy evaluation, best and best-5 mean by hand", async (t) => {
  const dir = tempDir(t)
  await writeSyntheticRun(dir)
  const curve = searchCurve(loadRun(dir))
  t.same(curve.map((p) => p.candidateId), [0, 4, 6, 9, 10, 11, 12], "reused scores (3, 5) are not evaluations")
  t.same(curve.map((p) => p.evaluations), [1, 2, 3, 4, 5, 6, 7])
  t.same(curve.map((p) => p.best), [0.3, 0.4, 0.4, 0.4, 0.5, 0.5, 0.5], "the invalid −∞ never becomes best")
  t.same(curve.slice(0, 5).map((p) => p.topMean), [null, null, null, null, null], "fewer than 5 finite scores")
  t.ok(Math.abs(curve[5]!.topMean! - (0.3 + 0.4 + 0.1 + 0.5 + 0.2) / 5) < 1e-12)
  t.ok(Math.abs(curve[6]!.topMean! - (0.5 + 0.4 + 0.35 + 0.3 + 0.2) / 5) < 1e-12, "0.1 dropped out of the top 5")
  // finish estimate = proposal + screening + training
  t.ok(Math.abs(curve[0]!.elapsedS - 1.1) < 1e-9)
  t.ok(Math.abs(curve[1]!.elapsedS - (40 + 0.3 + 2)) < 1e-9)
})

t.test("throughput: nice bins, screens per worker per minute, worker totals", async (t) => {
  t.equal(binWidth(120.3), 5)
  t.equal(binWidth(30), 1)
  t.equal(binWidth(3 * 86400), 7200)
  const dir = tempDir(t)
  await writeSyntheticRun(dir)
  const tp = throughputOf(loadRun(dir))
  t.equal(tp.binS, 5)
  t.equal(tp.binStarts.length, 25, "last screening ends at 120.3 s")
  const w1 = tp.screensPerMin.find((s) => s.worker === "w1")!
  const nonZero = w1.values.flatMap((v, i) => (v > 0 ? [[i, v]] : []))
  t.same(nonZero, [[0, 12], [10, 12], [12, 12], [18, 12], [22, 12]], "w1 screened 0, 5, 6, 9, 11; one per 5 s bin = 12/min")
  t.equal(tp.proposedPerMin.filter((v) => v === 12).length, 13)
  t.same(tp.workers, [
    { worker: "w1", screens: 5, trainings: 4, screenMsMean: 100, trainMsMean: (1000 + 2000 + 3000 + 1000) / 4 },
    { worker: "w2", screens: 5, trainings: 3, screenMsMean: 300, trainMsMean: (500 + 700 + 900) / 3 }
  ])
})

t.test("top losses: distinct, finite, by score; lineage follows parents with their changes", async (t) => {
  const dir = tempDir(t)
  await writeSyntheticRun(dir)
  const run = loadRun(dir)
  const { candidates } = run
  const top = topLosses(run)
  t.same(top.map((x) => [x.rank, x.candidate.id]), [[1, 10], [2, 4], [3, 12], [4, 0], [5, 11], [6, 9]])
  const byId = new Map(candidates.map((c) => [c.id, c]))
  const { steps, omitted } = lineageOf(12, byId)
  t.same(steps.map((s) => s.id), [12, 5, 4, 0])
  t.equal(omitted, 0)
  t.equal(steps[0]!.how, "loss: insert add at [0,1] (with one)")
  t.equal(steps[1]!.how, "loss: insert mul at [] (with one); replace abs→square at [0]")
  t.equal(steps[2]!.how, "loss: re-initialised")
  t.equal(steps[3]!.how, "random initialisation")
  t.same(lineageOf(12, byId, 2), { steps: steps.slice(0, 2), omitted: 2 })
  t.equal(describeHow([{ branch: "rpn_cls", kind: "copy" }, { branch: "rpn_reg", kind: "mutate", mutations: [{ kind: "deletion", path: [1], op: "exp", kept: 0 }] }]),
    "rpn_cls: copied | rpn_reg: delete exp at [1]")
})

t.test("the whole model carries the timing caveat and no unknown-worker note when ids exist", async (t) => {
  const dir = tempDir(t)
  await writeSyntheticRun(dir)
  const m = buildReportModel(loadRun(dir))
  t.equal(m.title, "AutoLoss-Zero search — seg")
  t.equal(m.caveats.length, 1)
  t.match(m.caveats[0], /not when they finished/)
})

t.test("on a run the real engine wrote (fake evaluator), the funnel from rows equals the engine's counters", async (t) => {
  const { makeFakeEvaluator } = await import("../search/fake-evaluator.ts")
  const { evolution, runOnTestClock } = await import("../search/harness.ts")
  const dir = tempDir(t)
  const evaluator = makeFakeEvaluator({ passRate: 0.5, invalidRate: 0.2, equivalenceClasses: 10, screenMillis: 1000, trainMillis: 5000 })
  await runOnTestClock(dir, evolution(3), evaluator, { budget: 8, screenWindow: 6, trainConcurrency: 2, trainLag: 2, maxCandidates: 400 })
  const run = loadRun(dir)
  const f = funnelOf(run.candidates)
  const c = run.counters
  t.same(
    [f.generated, f.staticRejected, f.screened, f.passed, f.equivalent, f.duplicate, f.trained],
    [c["proposed"], c["staticRejected"], c["screened"]! + c["duplicateVerdicts"]!, c["passed"], c["equivalentReuses"], c["duplicateReuses"], c["trained"]]
  )
  // The engine counts invalid *outcomes* (a reused −∞ too); the funnel counts invalid *trainings*.
  const reusedInvalid = run.candidates.filter((x) => x.reuseKind !== null && x.score === -Infinity).length
  t.equal(f.invalid + reusedInvalid, c["invalid"])
  t.ok(f.invalid > 0, "the run had invalid trainings")
  t.ok(f.equivalent + f.duplicate > 0, "the run exercised score reuse")
  t.equal(searchCurve(run).length, c["trained"], "one curve point per proxy evaluation")
  t.equal(f.pending, 0)
})
