import t from "tap"
import { join } from "node:path"
import Database from "better-sqlite3"
import { Effect, Exit } from "effect"
import { Rng } from "../../src/graph/rng.ts"
import { NaiveEvolution } from "../../src/search/aging-evolution.ts"
import { runSearch } from "../../src/search/engine.ts"
import { makeFakeEvaluator } from "./fake-evaluator.ts"
import { FULL_PIPELINE, WAIT, type Scheduler } from "../../src/search/scheduler.ts"
import { layer } from "../../src/store/Store.ts"
import { DB_FILE } from "../../src/store/schema.ts"
import { hashBranch } from "../../src/graph/canonical.ts"
import { fromWire } from "../../src/graph/wire.ts"
import { BRANCHES, SMALL, comparable, detEvolution, evolution, readStore, run, runOnTestClock, tempDir } from "./harness.ts"

t.test("budget, counters and the stored record agree", async (t) => {
  const dir = tempDir(t)
  const fake = makeFakeEvaluator({ passRate: 0.4, invalidRate: 0.2 })
  const scheduler = evolution(1)
  const r = await run(dir, scheduler, fake)
  const c = r.counters
  t.equal(c.trained, 16, "stops at the budget of proxy evaluations")
  t.equal(fake.calls.filter((x) => x.kind === "train").length, 16, "one training job per budget unit")
  t.equal(c.admitted, c.trained + c.duplicateReuses + c.equivalentReuses)
  t.equal(c.observed, c.admitted, "every admitted candidate was observed")
  t.ok(c.invalid > 0, "some invalid losses were evaluated")
  t.equal(c.passed + c.rejected, c.screened + c.duplicateVerdicts)
  const s = await readStore(dir)
  const abandoned = new Set(s.rows.filter((row) => row.status === "abandoned").map((row) => row.id))
  const screens = fake.calls.filter((x) => x.kind === "screen" && !abandoned.has(x.id))
  t.equal(screens.length, c.screened, "one screening job per screened verdict")
  const duplicates = new Set(s.rows.filter((row) => row.duplicateOf !== null).map((row) => row.id))
  t.ok(duplicates.size > 0 && !screens.some((x) => duplicates.has(x.id)), "identical losses reuse the verdict without a job")
  const count = (status: string) => s.rows.filter((row) => row.status === status).length
  t.equal(s.rows.length, c.proposed)
  t.equal(count("static_rejected"), c.staticRejected)
  t.equal(count("rejected"), c.rejected)
  t.equal(count("discarded"), c.discarded)
  t.equal(count("evaluated"), c.observed)
  t.equal(count("abandoned") + c.staticRejected + c.rejected + c.discarded + c.observed, c.proposed, "no row left in flight")
  t.same(s.counters, c, "the counters table holds the final counters")
  t.equal(s.checkpoint?.observations, c.observed)
  t.same(s.population, scheduler.population(), "the stored population is the scheduler's")
  for (const row of s.rows.filter((x) => x.invalid === true)) t.equal(row.score, -Infinity, `invalid ${row.id} scores worst`)
  const staticIds = new Set(s.rows.filter((x) => x.status === "static_rejected").map((x) => x.id))
  t.notOk(fake.calls.some((x) => staticIds.has(x.id)), "static rejections cost no job")
  t.ok(s.rows.filter((x) => x.status === "static_rejected").every((x) => /does not depend on the (prediction|target)/.test(x.staticReason ?? "")))
  t.ok(r.best !== null && r.best.score === Math.max(...s.rows.filter((x) => x.score !== null).map((x) => x.score!)))
})

t.test("gradient-equivalent losses reuse the earlier score instead of training", async (t) => {
  const dir = tempDir(t)
  // Three equivalence classes: most passing losses are equivalent to an earlier one.
  const fake = makeFakeEvaluator({ passRate: 0.5, equivalenceClasses: 3, invalidRate: 0 })
  const r = await run(dir, evolution(2), fake, { ...SMALL, budget: 3, maxCandidates: 400 })
  t.equal(r.counters.trained, 3, "only the three classes are trained")
  t.ok(r.counters.equivalentReuses > 0, `equivalent reuses counted (${r.counters.equivalentReuses})`)
  const { rows } = await readStore(dir)
  const byId = new Map(rows.map((x) => [x.id, x]))
  for (const row of rows.filter((x) => x.reuseKind === "equivalent")) {
    const source = byId.get(row.reusedFrom!)!
    t.equal(row.equivalenceKey, source.equivalenceKey)
    t.not(row.hash, source.hash)
    t.equal(row.score, source.score)
    t.ok(source.admissionIndex! < row.admissionIndex!)
  }
})

t.test("same seed, different timing: the same search", async (t) => {
  const fast = makeFakeEvaluator({ timingSeed: 1 })
  const slow = makeFakeEvaluator({ timingSeed: 2, trainMillis: 5000 })
  const a = tempDir(t)
  const b = tempDir(t)
  const c = tempDir(t)
  const ra = await run(a, evolution(3), fast)
  const rb = await runOnTestClock(b, evolution(3), slow)
  t.same(rb.counters, ra.counters)
  const [sa, sb] = [await readStore(a), await readStore(b)]
  t.same(comparable(sb.rows), comparable(sa.rows))
  t.same(sb.population, sa.population)
  t.not(fast.done.map((x) => x.id).join(), slow.done.map((x) => x.id).join(), "the jobs really finished in another order")
  await run(c, evolution(4), makeFakeEvaluator())
  t.not((await readStore(c)).rows.map((x) => x.hash).join(), sa.rows.map((x) => x.hash).join(), "another seed, another search")
})

t.test("naive evolution trains everything it admits: no screens, no reuse", async (t) => {
  const dir = tempDir(t)
  const fake = makeFakeEvaluator()
  const r = await run(dir, new NaiveEvolution(BRANCHES, new Rng(5), { initialPopulation: 4 }), fake, { ...SMALL, budget: 10 })
  t.equal(fake.calls.filter((x) => x.kind === "screen").length, 0)
  t.equal(r.counters.trained, 10)
  t.equal(r.counters.duplicateReuses + r.counters.equivalentReuses + r.counters.staticRejected, 0)
})

t.test("resume refuses another configuration and detects a changed seed", async (t) => {
  const dir = tempDir(t)
  await run(dir, evolution(6), makeFakeEvaluator(), { ...SMALL, budget: 4 })
  const other = await Effect.runPromiseExit(
    runSearch(evolution(6), { config: { ...SMALL, budget: 5 }, run: { test: true } }).pipe(
      Effect.provide(layer(dir)),
      Effect.provide(makeFakeEvaluator().layer)
    )
  )
  t.match(Exit.isFailure(other) && JSON.stringify(other.cause), /"reason":"config"/)
  const reseeded = await Effect.runPromiseExit(
    runSearch(evolution(7), { config: { ...SMALL, budget: 4 }, run: { test: true } }).pipe(
      Effect.provide(layer(dir)),
      Effect.provide(makeFakeEvaluator().layer)
    )
  )
  t.match(Exit.isFailure(reseeded) && JSON.stringify(reseeded.cause), /"reason":"diverged".*candidate 0 was stored/)
})

t.test("resume compares the replayed scheduler state with the stored checkpoint", async (t) => {
  const dir = tempDir(t)
  await run(dir, evolution(6), makeFakeEvaluator(), { ...SMALL, budget: 4 })
  const db = new Database(join(dir, DB_FILE))
  const row = db.prepare("SELECT scheduler FROM checkpoint").get() as { scheduler: string }
  const tampered = { ...(JSON.parse(row.scheduler) as Record<string, unknown>), initAdmitted: 99 }
  db.prepare("UPDATE checkpoint SET scheduler = ?").run(JSON.stringify(tampered))
  db.close()
  const exit = await Effect.runPromiseExit(
    runSearch(evolution(6), { config: { ...SMALL, budget: 4 }, run: { test: true } }).pipe(
      Effect.provide(layer(dir)),
      Effect.provide(makeFakeEvaluator().layer)
    )
  )
  t.match(Exit.isFailure(exit) && JSON.stringify(exit.cause), /"reason":"diverged".*after 4 outcomes differs/)
})

t.test("a scheduler that waits with nothing in flight is a deadlock, not a hang", async (t) => {
  const stuck: Scheduler = {
    name: "stuck",
    flags: FULL_PIPELINE,
    propose: () => WAIT,
    admit: () => false,
    observe: () => undefined,
    population: () => [],
    snapshot: () => ({}),
    restore: () => undefined
  }
  const exit = await Effect.runPromiseExit(
    runSearch(stuck).pipe(Effect.provide(layer(tempDir(t))), Effect.provide(makeFakeEvaluator().layer))
  )
  t.match(Exit.isFailure(exit) && JSON.stringify(exit.cause), /"reason":"deadlock"/)
})

t.test("four branches: screened branch by branch, each branch once per run, population built", async (t) => {
  const dir = tempDir(t)
  // Each branch passes with p = 0.3, so a whole random 4-branch loss passes with 0.3^4 < 1%:
  // without per-branch redraws the 15 admissions below would take ~1,800 proposals.
  const fake = makeFakeEvaluator({ passRate: 0.3, invalidRate: 0 })
  const r = await run(dir, detEvolution(3), fake, { ...SMALL, budget: 10, maxCandidates: 1500 })
  const c = r.counters
  t.equal(c.trained, 10, "the budget was spent: the population was built and evolved")
  t.ok(c.proposed < 400, `${c.proposed} proposals for ${c.admitted} admissions`)
  const s = await readStore(dir)
  const graphs = new Map(s.rows.map((row) => [row.id, fromWire(row.wire)]))
  const abandoned = new Set(s.rows.filter((row) => row.status === "abandoned").map((row) => row.id))
  const screened = fake.calls.filter((x) => x.kind === "screen")
  const keys = screened.flatMap((x) =>
    (x.branches ?? []).map((name) => `${name}/${hashBranch(graphs.get(x.id)!.branches.find((b) => b.name === name)!)}`)
  )
  t.equal(new Set(keys).size, keys.length, "no branch was screened twice")
  const delivered = screened.filter((x) => !abandoned.has(x.id))
  t.equal(delivered.flatMap((x) => x.branches ?? []).length, c.branchesScreened, "branchesScreened counts the branches of jobs")
  t.ok(c.branchesReused > c.branchesScreened, `most branch verdicts come from earlier proposals (${c.branchesReused} reused, ${c.branchesScreened} screened)`)
  const staticRows = s.rows.filter((row) => row.status === "static_rejected")
  t.ok(staticRows.length > 0 && staticRows.every((row) => fake.calls.every((x) => x.id !== row.id || !(x.branches ?? []).includes(row.staticBranch!))), "statically rejected branches get no job")
  t.ok(staticRows.some((row) => fake.calls.some((x) => x.id === row.id)), "the other branches of a statically rejected loss are still screened")
  for (const row of s.rows.filter((x) => x.status === "admitted" || x.status === "evaluated")) {
    t.equal(row.rejectionPassed, true, `admitted ${row.id} passed on every branch`)
  }
})
