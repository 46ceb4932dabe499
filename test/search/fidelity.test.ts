// Successive halving over proxy iterations: the pure rules (hand-worked), the ledger's budget and
// promotions, and whole searches with the fake evaluator (including kill and resume).
import t from "tap"
import { Deferred, Effect } from "effect"
import { Rng } from "../../src/graph/rng.ts"
import { parseLoss } from "../../src/graph/syntax.ts"
import { runSearch } from "../../src/search/engine.ts"
import { Evaluator, type EvaluatorService } from "../../src/search/evaluator.ts"
import { byFitness, fidelityProblem, ladderOf, rungCost, rungIterations, RungTable } from "../../src/search/fidelity.ts"
import { EngineLedger } from "../../src/search/ledger.ts"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { buildReportModel, rungLadderOf, uninformativeRungs } from "../../src/report/model.ts"
import { renderReportBody } from "../../src/report/html.ts"
import { loadRun } from "../../src/report/run-data.ts"
import { DEFAULT_RUN, RUN_FILE } from "../../src/search/run-config.ts"
import { atHighestRung, rankByFitness } from "../../src/search/selection.ts"
import { FULL_PIPELINE } from "../../src/search/scheduler.ts"
import { DEPENDENCE_ROLES } from "../../src/search/static-check.ts"
import { layer, Store } from "../../src/store/Store.ts"
import { makeFakeEvaluator } from "./fake-evaluator.ts"
import { comparable, evolution, readStore, run, SMALL, tempDir } from "./harness.ts"

const ASHA = { kind: "asha", eta: 3, minFraction: 1 / 9 } as const

t.test("rungs: fractions min·eta^r below 1 then 1, integer cost units, iterations per rung, clear config errors", async (t) => {
  const l = ladderOf(ASHA)
  t.same(l, { eta: 3, top: 2, unitsPerFull: 9, units: [1, 3, 9], fractions: [1 / 9, 1 / 3, 1] })
  t.same([0, 1, 2].map((r) => rungCost(l, r)), [1, 2, 6], "1/9, then 3/9−1/9, then 9/9−3/9 of a full proxy")
  t.same(rungIterations(l, 150), [17, 50, 150])
  t.same(rungIterations(l, 9), [1, 3, 9])
  t.throws(() => rungIterations(l, 4), /proxy of 4 iterations is too short for 3 rungs \(iterations per rung: 0, 1, 4\)/)
  t.same(ladderOf({ kind: "full" }), { eta: 1, top: 0, unitsPerFull: 1, units: [1], fractions: [1] })
  t.same(ladderOf({ kind: "asha", eta: 2, minFraction: 0.125 }).fractions, [0.125, 0.25, 0.5, 1])
  // min not a power of 1/eta (Ray Tune's rungs): the top rung is the full proxy, nearer the one below
  const quarter = ladderOf({ kind: "asha", eta: 4, minFraction: 1 / 3 })
  t.same(quarter, { eta: 4, top: 1, unitsPerFull: 3, units: [1, 3], fractions: [1 / 3, 1] })
  t.same([0, 1].map((r) => rungCost(quarter, r)), [1, 2], "1/3, then the remaining 2/3")
  t.same(rungIterations(quarter, 300), [100, 300])
  const tenth = ladderOf({ kind: "asha", eta: 3, minFraction: 0.1 })
  t.same([tenth.units, tenth.fractions], [[1, 3, 9, 10], [0.1, 0.3, 0.9, 1]])
  t.same([0, 1, 2, 3].map((r) => rungCost(tenth, r)), [1, 2, 6, 1])
  t.match(fidelityProblem({ kind: "asha", eta: 3, minFraction: 0.3 }), /min must be 1\/M for an integer M ≥ 2 \(1\/3, 1\/9, 0\.25, \.\.\.\), got 0.3/)
  t.match(fidelityProblem({ kind: "asha", eta: 2.5, minFraction: 0.4 }), /eta must be an integer ≥ 2, got 2.5/)
  t.match(fidelityProblem({ kind: "asha", eta: 3, minFraction: 1 }), /min must be in \(0, 1\), got 1/)
  t.equal(fidelityProblem({ kind: "asha", eta: 4, minFraction: 1 / 16 }), undefined)
})

t.test("promotion: the top ⌊n/eta⌋ of a rung, ties to the lower id, once, never an invalid result", async (t) => {
  const table = new RungTable(ladderOf(ASHA))
  t.same(table.record(0, { id: 0, score: 0.5, invalid: false }), [], "n=1: ⌊1/3⌋ = 0")
  t.same(table.record(0, { id: 1, score: 0.9, invalid: false }), [])
  t.same(table.record(0, { id: 2, score: 0.7, invalid: false }), [1], "n=3: the best, 1")
  table.markPromoted(0, 1)
  t.same(table.record(0, { id: 3, score: 0.95, invalid: false }), [3], "n=4, k=1: 3 now leads; 1 was promoted already")
  table.markPromoted(0, 3)
  t.same(table.record(0, { id: 4, score: 0.1, invalid: false }), [])
  t.same(table.record(0, { id: 5, score: 0.7, invalid: false }), [], "n=6, k=2: the top two (3, 1) were promoted")
  t.same(table.record(0, { id: 6, score: 0.2, invalid: false }), [])
  t.same(table.record(0, { id: 7, score: 0.3, invalid: false }), [])
  t.same(table.record(0, { id: 8, score: 0.05, invalid: false }), [2], "n=9, k=3: 2 ties 5 at 0.7 and wins by its lower id")
  t.same(table.record(2, { id: 1, score: 0.3, invalid: false }), [], "nothing above the top rung")
  const invalid = new RungTable(ladderOf({ kind: "asha", eta: 2, minFraction: 0.5 }))
  invalid.record(0, { id: 0, score: -Infinity, invalid: true })
  t.same(invalid.record(0, { id: 1, score: -Infinity, invalid: true }), [], "an invalid loss is never promoted")
  t.same(
    [{ id: 0, rung: 0, score: 0.9 }, { id: 1, rung: 1, score: 0.2 }, { id: 2, rung: 1, score: 0.4 }, { id: 3, rung: 1, score: 0.4 }].sort(byFitness).map((x) => x.id),
    [2, 3, 1, 0],
    "fitness: highest rung first, then score, then the lower id"
  )
})

t.test("the ledger charges rung 0 at admission and promotions at delivery, within the budget", async (t) => {
  // Budget 1 full proxy = 9 units: at most nine rung-0 trainings, fewer when promotions take units.
  const l = new EngineLedger(FULL_PIPELINE, { budget: 1, equivalence: "directional", roles: DEPENDENCE_ROLES, fidelity: ASHA })
  const admit = (key: string) => {
    l.propose(parseLoss("neg(mul(y, log(y_hat)))"), `h-${key}`)
    const d = l.deliverVerdict({ verdict: { kind: "passed", score: 0.9, branches: {} }, key, summary: null }, true)
    if (!d.ok) throw new Error(d.detail)
  }
  const deliver = (score: number, reused = false) => l.deliverOutcome({ score, invalid: false, reused }, "x")
  for (const k of ["a", "b", "c"]) admit(k)
  t.equal(l.storedCounters()["spentUnits"], 3)
  t.same(deliver(0.2).promotions, [])
  t.same(deliver(0.6).promotions, [])
  t.same(deliver(0.4), { job: { id: 2, rung: 0 }, promotions: [{ id: 1, rung: 1 }] }, "three results at rung 0: the best (1) goes to rung 1")
  t.equal(l.storedCounters()["spentUnits"], 5, "the promotion costs 2 units")
  t.equal(l.outcomesPending(), 1, "a promotion is a pending outcome")
  admit("a") // equivalent of 0: reuses, no unit, no rung entry
  for (const k of ["d", "e", "f", "g"]) admit(k)
  t.ok(l.budgetSpent(), "9 units spent")
  t.same(l.nextOutcome(), { id: 1, rung: 1 }, "results are delivered in the order their jobs were created")
  t.same(deliver(0.5).promotions, [], "one result at rung 1: ⌊1/3⌋ = 0")
  deliver(0.6, true)
  t.same(l.nextOutcome(), { id: 4, rung: 0 })
  deliver(0.1)
  deliver(0.1)
  t.same(deliver(0.9).promotions, [], "6 at rung 0 ranks first but 2 more units do not fit")
  t.equal(l.counters.observed, 7, "the scheduler observes rung-0 results only")
  t.same(l.best, { id: 1, score: 0.5, text: "x" }, "the best sits on the highest rung reached, even below a rung-0 score")
  t.same(l.storedCounters(), { ...l.counters, trainedRung0: 7, trainedRung1: 1, trainedRung2: 0, promoted: 1, spentUnits: 9, unitsPerFull: 9 })
})

const ASHA_CONFIG = { ...SMALL, budget: 6, fidelity: ASHA, proxyIterations: 90 }

t.test("an asha search: rung-0 observations, promotions by the rule, the budget in full-proxy equivalents", async (t) => {
  const dir = tempDir(t)
  const fake = makeFakeEvaluator({ passRate: 0.5, invalidRate: 0.1 })
  const r = await run(dir, evolution(4), fake, ASHA_CONFIG)
  const trains = fake.calls.filter((c) => c.kind === "train")
  const perRung = [0, 1, 2].map((rung) => trains.filter((c) => c.rung === rung).length)
  t.same(trains.map((c) => c.iterations).filter((i) => ![10, 30, 90].includes(i!)), [], "10, 30 or 90 iterations")
  t.same(perRung, r.ladder?.trainedPerRung, `trainings per rung ${perRung.join("/")}`)
  t.equal(r.ladder?.spentUnits, perRung[0]! + 2 * perRung[1]! + 6 * perRung[2]!)
  t.ok(r.ladder!.spentUnits <= 6 * 9 && r.ladder!.spentUnits > 6 * 9 - 1 - 6, `spent ${r.ladder!.spentUnits} of 54 units`)
  t.ok(perRung[0]! > 3 * 6, `explores more losses than 6 full trainings (${perRung[0]})`)
  t.ok(perRung[1]! > 0 && perRung[2]! > 0, "promotions reached the top rung")
  t.equal(r.counters.trained, perRung[0], "trained counts rung-0 trainings")
  t.equal(r.counters.observed, r.counters.admitted, "each admitted candidate is observed once")
  const keys = trains.map((c) => `${c.id}/${c.rung}`)
  t.equal(new Set(keys).size, keys.length, "no rung trained twice")
  // Replay the promotion rule over the delivered results, independently of the ledger.
  const results = r.ladder!.results
  for (const rung of [0, 1]) {
    const promoted = new Set(trains.filter((c) => c.rung === rung + 1).map((c) => c.id))
    for (const id of promoted) t.ok(results[rung]!.some(([x]) => x === id), `${id} was promoted from a result at rung ${rung}`)
    t.ok(results[rung + 1]!.every(([id]) => promoted.has(id)))
  }
  const top = results[2]!
  const bestTop = top.filter(([, s]) => s !== null).sort((a, b) => b[1]! - a[1]! || a[0] - b[0])[0]!
  t.same(r.best?.id, bestTop[0], "the answer is the best loss at the top rung")
  const stored = await Effect.runPromise(Effect.flatMap(Store, (s) => s.rungResults()).pipe(Effect.provide(layer(dir))))
  t.same(stored.map((x) => `${x.candidateId}/${x.rung}`).sort(), keys.filter((k) => !k.endsWith("/0")).sort(), "every promoted result is stored once")
  t.same(stored.map((x) => x.iterations).filter((i) => i !== 30 && i !== 90), [])
  t.same(stored.map((x) => x.result.resumedFrom), stored.map((x) => (x.iterations === 30 ? 10 : 30)), "each promotion stores the step it continued from")
  // The selection, the summary and the report rank stored rows as the engine chose its best.
  const rows = (await readStore(dir)).rows
  t.same(rankByFitness(atHighestRung(rows, stored), 1)[0]?.id, r.best?.id, "rankByFitness over stored rungs picks the engine's best")
  writeFileSync(join(dir, RUN_FILE), JSON.stringify({ ...DEFAULT_RUN, task: "seg", budget: 6, fidelity: ASHA }))
  const model = buildReportModel(loadRun(dir))
  t.same(model.ladder?.map((s) => s.trained), perRung, "the report's ladder counts the trainings per rung")
  t.same(model.ladder?.map((s) => s.iterations), [10, 30, 90])
  t.same(model.ladder?.map((s) => s.continued), [0, perRung[1], perRung[2]], "every promotion continued (the fake caches its state)")
  t.same(model.ladder?.[2]?.leaders[0]?.id, r.best?.id)
  t.equal(model.top[0]?.candidate.id, r.best?.id, "the report's top loss is the engine's best")
  t.equal(model.top[0]?.candidate.rung, 2)
  const html = renderReportBody(model)
  t.match(html, /<section id="rungs"><h2>Rung ladder<\/h2>/)
  t.match(html, new RegExp(`<tr data-rung="2"><td class="num">2</td><td class="num">full \\(90 it\\.\\)</td><td class="num">${perRung[2]}</td><td class="num">${perRung[2]}</td>`))
  t.match(html, /full-proxy equivalents \(asha:eta=3,min=1\/9\)/)
  t.notMatch(html, /class="warning"/, "distinct fake scores: every rung ranks its losses")
})

t.test("a rung where most results tie is reported as not ranking its losses (seg's 33-iteration rung)", async (t) => {
  const loss = (id: number, score: number) => ({ id, text: `l${id}`, status: "evaluated", reuseKind: null, score })
  const promoted = (candidateId: number, rung: number, target: number) => ({ candidateId, rung, iterations: rung === 1 ? 100 : 300, result: { target, invalid: false, metrics: {} }, elapsedMs: 1 })
  const run = {
    config: { ...DEFAULT_RUN, task: "seg", fidelity: ASHA },
    // rung 0: 5 of 7 at the all-background score; rung 1: 2 results, distinct
    candidates: [loss(1, 0.1861), loss(2, 0.1861), loss(3, 0.25), loss(4, 0.1861), loss(5, 0.1861), loss(6, 0.003), loss(7, 0.1861)],
    rungs: [promoted(3, 1, 0.26), promoted(1, 1, 0.19), promoted(3, 2, 0.27)]
  } as unknown as Parameters<typeof rungLadderOf>[0]
  const ladder = rungLadderOf(run)!
  t.same(ladder.map((r) => r.tie), [{ score: 0.1861, count: 5 }, { score: 0.26, count: 1 }, { score: 0.27, count: 1 }])
  t.same(uninformativeRungs(ladder).map((r) => r.rung), [0])
  t.same(ladder.map((r) => r.iterations), [33, 100, 300])
  t.equal(ladder[0]!.median, 0.1861)
  // 4 of 7 tied: still a majority; 3 of 7: not
  const fewer = { ...run, candidates: run.candidates.map((c) => (c.id === 7 ? { ...c, score: 0.2 } : c)) }
  t.same(uninformativeRungs(rungLadderOf(fewer)!).map((r) => r.rung), [0])
  const minority = { ...fewer, candidates: fewer.candidates.map((c) => (c.id === 5 ? { ...c, score: 0.21 } : c)) }
  t.same(uninformativeRungs(rungLadderOf(minority)!).map((r) => r.rung), [])
})

t.test("asha with Ray Tune's rungs (eta=4, min=1/3): a quarter promoted to the full proxy, the budget in thirds", async (t) => {
  const fake = makeFakeEvaluator({ passRate: 0.5, invalidRate: 0 })
  const r = await run(tempDir(t), evolution(4), fake, { ...SMALL, budget: 6, fidelity: { kind: "asha", eta: 4, minFraction: 1 / 3 }, proxyIterations: 90 })
  const trains = fake.calls.filter((c) => c.kind === "train")
  const perRung = [0, 1].map((rung) => trains.filter((c) => c.rung === rung).length)
  t.same(trains.map((c) => c.iterations).filter((i) => i !== 30 && i !== 90), [], "30 or 90 iterations")
  t.same(perRung, r.ladder?.trainedPerRung)
  t.equal(r.ladder?.unitsPerFull, 3)
  t.equal(r.ladder?.spentUnits, perRung[0]! + 2 * perRung[1]!, "a third, then the remaining two thirds")
  t.ok(r.ladder!.spentUnits <= 18 && r.ladder!.spentUnits >= 17, `spent ${r.ladder!.spentUnits} of 18 units`)
  // each rung-0 result may promote the top ⌊n/4⌋: at most a quarter of the rung-0 results
  t.ok(perRung[1]! >= 1 && perRung[1]! <= Math.floor(r.ladder!.results[0]!.length / 4), `promoted ${perRung[1]} of ${r.ladder!.results[0]!.length}`)
})

t.test("asha needs the task's proxy iterations and a valid ladder", async (t) => {
  const fake = makeFakeEvaluator()
  await t.rejects(run(tempDir(t), evolution(1), fake, { ...ASHA_CONFIG, proxyIterations: null }), /fidelity asha needs the task's proxy iterations/)
  await t.rejects(run(tempDir(t), evolution(1), fake, { ...ASHA_CONFIG, proxyIterations: 4 }), /too short for 3 rungs/)
  await t.rejects(run(tempDir(t), evolution(1), fake, { ...ASHA_CONFIG, fidelity: { kind: "asha", eta: 3, minFraction: 0.3 } }), /min must be 1\/M/)
})

t.test("crash and resume under asha: same search, same rung results, no training repeated", async (t) => {
  const reference = tempDir(t)
  const refFake = makeFakeEvaluator()
  const refResult = await run(reference, evolution(8), refFake, ASHA_CONFIG)
  const ref = await readStore(reference)
  const refRungs = await Effect.runPromise(Effect.flatMap(Store, (s) => s.rungResults()).pipe(Effect.provide(layer(reference))))
  const refTrains = refFake.calls.filter((c) => c.kind === "train").map((c) => `${c.id}/${c.rung}`)
  // Kill points on events: the start of the n-th training job (the first promotion among them).
  const firstPromotion = refFake.calls.findIndex((c) => c.kind === "train" && c.rung! > 0)
  const rng = new Rng(77)
  const killPoints = [firstPromotion + 1, firstPromotion + 3, 2 + rng.int(refFake.calls.length - 2)]
  for (const killAt of killPoints) {
    const dir = tempDir(t)
    const fake = makeFakeEvaluator({ timingSeed: killAt })
    const killed = await Effect.runPromise(
      Effect.gen(function* () {
        const kill = yield* Deferred.make<void>()
        const fire = Effect.suspend(() => (fake.calls.length >= killAt ? Deferred.succeed(kill, undefined) : Effect.void))
        const evaluator: EvaluatorService = {
          screen: (c, branches) => Effect.zipLeft(fake.screen(c, branches), fire),
          train: (c, f) => Effect.zipLeft(fake.train(c, f), fire)
        }
        return yield* Effect.raceFirst(
          Effect.as(runSearch(evolution(8), { config: ASHA_CONFIG, run: { test: true } }), "finished" as const),
          Effect.as(Deferred.await(kill), "killed" as const)
        ).pipe(Effect.provide(layer(dir)), Effect.provide(Evaluator.context(evaluator)))
      })
    )
    t.equal(killed, "killed", `killed after job ${killAt}`)
    const storedAtKill = new Set([
      ...(await readStore(dir)).rows.filter((x) => x.invalid !== null).map((x) => `${x.id}/0`),
      ...(await Effect.runPromise(Effect.flatMap(Store, (s) => s.rungResults()).pipe(Effect.provide(layer(dir))))).map((x) => `${x.candidateId}/${x.rung}`)
    ])
    const again = makeFakeEvaluator({ timingSeed: killAt + 1 })
    const resumed = await run(dir, evolution(8), again, ASHA_CONFIG)
    const after = await readStore(dir)
    const rungs = await Effect.runPromise(Effect.flatMap(Store, (s) => s.rungResults()).pipe(Effect.provide(layer(dir))))
    t.ok(resumed.resumed)
    t.same(resumed.counters, refResult.counters, `kill at ${killAt}: counters equal`)
    t.same(resumed.ladder, refResult.ladder, `kill at ${killAt}: the ladder equals the uninterrupted run's`)
    t.same(after.checkpoint, ref.checkpoint, `kill at ${killAt}: the checkpoint equals`)
    t.same(comparable(after.rows), comparable(ref.rows), `kill at ${killAt}: every candidate equals`)
    t.same(rungs.map((x) => [x.candidateId, x.rung, x.iterations, x.result.target]), refRungs.map((x) => [x.candidateId, x.rung, x.iterations, x.result.target]), "same rung results")
    const redone = again.calls.filter((c) => c.kind === "train").map((c) => `${c.id}/${c.rung}`)
    t.same(redone.filter((k) => storedAtKill.has(k)), [], "no stored rung result is trained again")
    t.equal(storedAtKill.size + redone.length, refTrains.length, "trainings across both runs = the uninterrupted run's")
  }
})
