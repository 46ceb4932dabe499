import t from "tap"
import { join } from "node:path"
import Database from "better-sqlite3"
import { Deferred, Effect, Layer } from "effect"
import { HeldOutTrainer, type HeldOutJob } from "../../src/search/evaluator.ts"
import { makeFakeEvaluator, type FakeEvaluator } from "./fake-evaluator.ts"
import { rankByFitness, type SelectionSettings } from "../../src/search/selection.ts"
import { runSelection } from "../../src/search/selection-run.ts"
import { layer, Store } from "../../src/store/Store.ts"
import { DB_FILE } from "../../src/store/schema.ts"
import { evolution, readStore, run, SMALL, tempDir } from "./harness.ts"

const SETTINGS: SelectionSettings = { top: 4, seeds: [101, 102, 103], iterations: null, confirmSeeds: [201, 202] }
const OPTIONS = { metric: "miou", searchSeed: 0, concurrency: 2, baselineKey: null }
const CONFIG = { ...SMALL, budget: 12 }
/** 4 finalists + the baseline on 3 held-out seeds, the baseline's proxy run, the chosen loss and the baseline on 2 confirmation seeds. */
const CELLS = 5 * 3 + 1 + 2 * 2

const select = (dir: string, trainer: FakeEvaluator["heldOut"], settings = SETTINGS) =>
  Effect.runPromise(
    runSelection(settings, OPTIONS).pipe(
      Effect.provide(Layer.merge(layer(dir), Layer.succeed(HeldOutTrainer, HeldOutTrainer.of(trainer))))
    )
  )

const readSelection = (dir: string) =>
  Effect.runPromise(
    Effect.gen(function* () {
      const s = yield* Store
      const runs = (yield* s.holdoutRuns()).map(({ elapsedMs: _e, ...r }) => r)
      return { selection: yield* s.selection(), runs }
    }).pipe(Effect.provide(layer(dir)))
  )

/** A searched run whose fake held-out score is 1 − its proxy score: the held-out order reverses the proxy's. */
const reversedSearch = async (t: Parameters<typeof tempDir>[0]) => {
  const dir = tempDir(t)
  await run(dir, evolution(8), makeFakeEvaluator({ invalidRate: 0 }), CONFIG)
  const { rows } = await readStore(dir)
  const proxy = new Map(rows.filter((r) => r.reuseKind === null && r.score !== null).map((r) => [r.hash, r.score!]))
  const heldOut = (job: HeldOutJob) =>
    job.subject.kind === "baseline" ? 0.5 + job.seed / 10_000 : 1 - proxy.get(job.subject.candidate.hash)! + job.seed / 1000
  return { dir, rows, heldOut }
}

t.test("the held-out choice can differ from the proxy's best, and is stored with every training", async (t) => {
  const { dir, rows, heldOut } = await reversedSearch(t)
  const fake = makeFakeEvaluator({ heldOut })
  const out = await select(dir, fake.heldOut)
  const finalists = rankByFitness(rows, 4)
  t.equal(finalists.length, 4)
  const d = out.decision!
  t.same(d.finalists.map((f) => f.id), finalists.map((f) => f.id), "finalists are the top 4 by proxy score")
  t.equal(d.chosen, finalists[3]!.id, "the worst finalist by proxy is the best held out")
  t.not(d.chosen, finalists[0]!.id)
  const chosen = d.finalists.find((f) => f.id === d.chosen)!
  // held out: 1 − proxy + seed/1000 → mean 1 − proxy + 0.102; baseline 0.5 + seed/10000 → 0.5102
  t.ok(Math.abs(chosen.comparison.loss.mean - (1 - finalists[3]!.score! + 0.102)) < 1e-12)
  t.ok(Math.abs(d.baseline.mean - 0.5102) < 1e-12)
  t.same(chosen.comparison.seeds, [101, 102, 103])
  t.ok(Math.abs(d.baselineProxy! - 0.5) < 1e-12, "the baseline's proxy run uses the search's seed (0)")
  t.equal(out.trainings, CELLS)
  const holdouts = fake.calls.filter((c) => c.kind === "holdout")
  t.equal(holdouts.length, CELLS)
  t.same(holdouts.slice(0, 5).map((c) => [c.id, c.seed]), [[-1, 101], ...finalists.map((f) => [f.id, 101])], "seed by seed, baseline first")
  t.same(holdouts[15], { kind: "holdout", id: -1, hash: holdouts[15]!.hash, seed: 0, split: "proxy" })
  t.same(holdouts.slice(16).map((c) => [c.id, c.seed, c.split]), [[-1, 201, "held-out"], [d.chosen, 201, "held-out"], [-1, 202, "held-out"], [d.chosen, 202, "held-out"]],
    "then the chosen loss and the baseline on the confirmation seeds, trained after the choice")
  // confirmation: chosen 1 − proxy + seed/1000 against 0.5 + seed/10000 on seeds 201, 202
  const k = d.confirmation!
  t.same(k.seeds, [201, 202])
  t.ok(Math.abs(k.comparison.loss.mean - (1 - finalists[3]!.score! + 0.2015)) < 1e-12)
  t.ok(Math.abs(k.comparison.against.mean - 0.52015) < 1e-12)
  t.equal(k.verdict.kind === "not-confirmed", !(k.comparison.diff.mean > 0), "not ahead on the mean: not confirmed")
  const stored = await readSelection(dir)
  t.equal(stored.selection?.chosenId, d.chosen)
  t.ok(stored.selection?.completedAt !== null)
  t.same(stored.selection?.finalists.map((f) => f.id), finalists.map((f) => f.id))
  t.equal(stored.runs.length, CELLS)

  const again = makeFakeEvaluator({ heldOut })
  const rerun = await select(dir, again.heldOut)
  t.equal(again.calls.length, 0, "a finished selection trains nothing again")
  t.same(rerun.decision, d)
})

t.test("kill during the selection, resume: same choice and rows, no stored training redone", async (t) => {
  const { dir: reference, heldOut } = await reversedSearch(t)
  const refOut = await select(reference, makeFakeEvaluator({ heldOut }).heldOut)
  const ref = await readSelection(reference)
  const comparable = (runs: typeof ref.runs) =>
    runs.map(({ workerId: _w, attempt: _a, ...r }) => r).sort((a, b) => `${a.subject}/${a.seed}`.localeCompare(`${b.subject}/${b.seed}`))
  for (const killAt of [1, 7, 17, CELLS - 1]) {
    const dir = tempDir(t)
    await run(dir, evolution(8), makeFakeEvaluator({ invalidRate: 0 }), CONFIG)
    const first = makeFakeEvaluator({ heldOut, timingSeed: killAt })
    const killed = await Effect.runPromise(
      Effect.gen(function* () {
        const kill = yield* Deferred.make<void>()
        const fire = Effect.suspend(() => (first.calls.length >= killAt ? Deferred.succeed(kill, undefined) : Effect.void))
        const trainer = { train: (job: HeldOutJob) => Effect.zipLeft(first.heldOut.train(job), fire) }
        return yield* Effect.raceFirst(
          Effect.as(runSelection(SETTINGS, OPTIONS), "finished" as const),
          Effect.as(Deferred.await(kill), "killed" as const)
        ).pipe(Effect.provide(Layer.merge(layer(dir), Layer.succeed(HeldOutTrainer, HeldOutTrainer.of(trainer)))))
      })
    )
    t.equal(killed, "killed", `killed after training ${killAt}`)
    const atKill = await readSelection(dir)
    t.equal(atKill.selection?.completedAt, null, "not completed at the kill")
    const storedAtKill = new Set(atKill.runs.map((r) => `${r.subject === "baseline" ? -1 : r.subject}/${r.seed}`))

    const second = makeFakeEvaluator({ heldOut, timingSeed: killAt + 1 })
    await run(dir, evolution(8), makeFakeEvaluator({ invalidRate: 0 }), CONFIG) // resume replays the search first
    const resumed = await select(dir, second.heldOut)
    t.same(resumed.decision, refOut.decision, `kill at ${killAt}: the same decision`)
    const after = await readSelection(dir)
    t.same(comparable(after.runs), comparable(ref.runs), `kill at ${killAt}: the same trainings stored`)
    t.equal(after.selection?.chosenId, ref.selection?.chosenId)
    const redone = second.calls.map((c) => `${c.id}/${c.seed}`)
    t.notOk(redone.some((k) => storedAtKill.has(k)), "no stored training is redone")
    t.equal(storedAtKill.size + redone.length, CELLS, "each missing training was run exactly once")
    t.equal(resumed.trainings, redone.length)
  }
})

t.test("--select-top 0 stores nothing and trains nothing", async (t) => {
  const dir = tempDir(t)
  const fake = makeFakeEvaluator()
  await run(dir, evolution(8), fake, CONFIG)
  const out = await select(dir, fake.heldOut, { ...SETTINGS, top: 0 })
  t.same(out, { decision: null, trainings: 0 })
  t.equal(fake.calls.filter((c) => c.kind === "holdout").length, 0)
  const db = new Database(join(dir, DB_FILE), { readonly: true })
  t.same(db.prepare("SELECT (SELECT count(*) FROM selection) AS s, (SELECT count(*) FROM holdout_runs) AS h").get(), { s: 0, h: 0 })
  db.close()
})

t.test("a changed plan on resume is refused, not mixed with the stored trainings", async (t) => {
  const { dir, heldOut } = await reversedSearch(t)
  await select(dir, makeFakeEvaluator({ heldOut }).heldOut)
  const exit = await Effect.runPromiseExit(
    runSelection({ ...SETTINGS, seeds: [301, 302, 303] }, OPTIONS).pipe(Effect.provide(Layer.merge(layer(dir), makeFakeEvaluator().layer)))
  )
  t.match(JSON.stringify(exit), /"reason":"diverged"/)
})

t.test("the baseline rediscovered (its key and its proxy score) is set aside, stored with the plan, and a resume keeps it so", async (t) => {
  const { dir, rows, heldOut } = await reversedSearch(t)
  const ranked = rankByFitness(rows, rows.length)
  const top = ranked[0]!
  t.type(top.equivalenceKey, "string", "the search keyed its losses")
  // the baseline's proxy run (its seed, the search's data) scores exactly what the top loss scored
  const sameTraining = (job: HeldOutJob) => (job.subject.kind === "baseline" && job.split === "proxy" ? top.score! : heldOut(job))
  const withKey = { ...OPTIONS, baselineKey: top.equivalenceKey }
  const fake = makeFakeEvaluator({ heldOut: sameTraining })
  const selectWith = (options: typeof withKey, trainer = fake) =>
    Effect.runPromise(runSelection(SETTINGS, options).pipe(Effect.provide(Layer.merge(layer(dir), trainer.layer))))
  const out = await selectWith(withKey)
  const holdouts = fake.calls.filter((c) => c.kind === "holdout")
  t.same([holdouts[0]?.id, holdouts[0]?.split], [-1, "proxy"], "the baseline's proxy run came first")
  t.equal(holdouts.length, CELLS, "and was not trained twice")
  const sameKey = ranked.filter((r) => r.equivalenceKey === top.equivalenceKey && r.score === top.score).map((r) => r.id)
  t.same(out.decision!.finalists.map((f) => f.id), ranked.filter((r) => !sameKey.includes(r.id)).slice(0, 4).map((r) => r.id),
    "the finalists are the best four of the others")
  const { selection } = await readSelection(dir)
  t.equal(selection?.baselineKey, top.equivalenceKey)
  t.same(selection?.setAside[0], { id: top.id, score: top.score }, "the best loss, set aside first")
  t.same((await selectWith(withKey, makeFakeEvaluator({ heldOut: sameTraining }))).decision, out.decision, "a resume with the stored key replays the plan")
  const exit = await Effect.runPromiseExit(
    runSelection(SETTINGS, OPTIONS).pipe(Effect.provide(Layer.merge(layer(dir), makeFakeEvaluator({ heldOut }).layer)))
  )
  t.match(JSON.stringify(exit), /"reason":"diverged"/, "the same run without the key is another plan: refused")
})

t.test("a loss with the baseline's key that trains to another score is a finalist like any other", async (t) => {
  const { dir, rows, heldOut } = await reversedSearch(t)
  const top = rankByFitness(rows, 1)[0]!
  const out = await Effect.runPromise(
    runSelection(SETTINGS, { ...OPTIONS, baselineKey: top.equivalenceKey }).pipe(
      Effect.provide(Layer.merge(layer(dir), makeFakeEvaluator({ heldOut }).layer))
    )
  )
  t.not(top.score, 0.5, "the baseline's proxy run scores 0.5 here")
  t.same(out.decision!.finalists.map((f) => f.id), rankByFitness(rows, 4).map((r) => r.id))
  t.same((await readSelection(dir)).selection?.setAside, [])
})

t.test("when every scored loss is the baseline rediscovered, they are held out after all", async (t) => {
  const { dir, rows, heldOut } = await reversedSearch(t)
  // every trained loss gets the same key and trains to the baseline's proxy score
  const db = new Database(join(dir, DB_FILE))
  db.prepare("UPDATE candidates SET equivalence_key = 'd:same', score = 0.5 WHERE score IS NOT NULL").run()
  db.close()
  const out = await Effect.runPromise(
    runSelection(SETTINGS, { ...OPTIONS, baselineKey: "d:same" }).pipe(Effect.provide(Layer.merge(layer(dir), makeFakeEvaluator({ heldOut }).layer)))
  )
  t.equal(out.decision?.finalists.length, Math.min(4, rows.filter((r) => r.reuseKind === null && r.status === "evaluated" && r.score !== null && Number.isFinite(r.score)).length))
  t.same((await readSelection(dir)).selection?.setAside, [])
})
