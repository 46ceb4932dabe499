import t from "tap"
import { Deferred, Effect } from "effect"
import { Rng } from "../../src/graph/rng.ts"
import { runSearch } from "../../src/search/engine.ts"
import { Evaluator, type EvaluatorService } from "../../src/search/evaluator.ts"
import { makeFakeEvaluator } from "./fake-evaluator.ts"
import { layer } from "../../src/store/Store.ts"
import type { AgingEvolution } from "../../src/search/aging-evolution.ts"
import { SMALL, comparable, detEvolution, evolution, readStore, run, tempDir } from "./harness.ts"

const CONFIG = { ...SMALL, budget: 12 }

/** The fake evaluator, plus a switch that fires when the `killAt`-th job starts. */
const killable = (killAt: number) =>
  Effect.gen(function* () {
    const fake = makeFakeEvaluator({ timingSeed: killAt })
    const kill = yield* Deferred.make<void>()
    const fire = Effect.suspend(() => (fake.calls.length >= killAt ? Deferred.succeed(kill, undefined) : Effect.void))
    const evaluator: EvaluatorService = {
      screen: (c, branches) => Effect.zipLeft(fake.screen(c, branches), fire),
      train: (c) => Effect.zipLeft(fake.train(c), fire)
    }
    return { fake, kill, evaluator }
  })

const cases: ReadonlyArray<[string, (seed: number) => AgingEvolution]> = [["one branch", evolution], ["four branches", detEvolution]]
for (const [label, evolution] of cases) t.test(`crash and resume (${label}): same search, nothing completed evaluated twice`, async (t) => {
  const reference = tempDir(t)
  const refFake = makeFakeEvaluator()
  const refResult = await run(reference, evolution(8), refFake, CONFIG)
  const ref = await readStore(reference)
  const totalJobs = refFake.calls.length
  const rng = new Rng(2024)
  const killPoints = [1, ...Array.from({ length: 2 }, () => 2 + rng.int(totalJobs - 2))]
  let lostAndRedone = 0
  for (const killAt of killPoints) {
    const dir = tempDir(t)
    const started: Array<{ kind: string; id: number }> = []
    const killed = await Effect.runPromise(
      Effect.gen(function* () {
        const { fake, kill, evaluator } = yield* killable(killAt)
        const result = yield* Effect.raceFirst(
          Effect.as(runSearch(evolution(8), { config: CONFIG, run: { test: true } }), "finished" as const),
          Effect.as(Deferred.await(kill), "killed" as const)
        ).pipe(Effect.provide(layer(dir)), Effect.provide(Evaluator.context(evaluator)))
        started.push(...fake.calls)
        return result
      })
    )
    t.equal(killed, "killed", `killed after job ${killAt}`)
    const atKill = await readStore(dir)
    const screenedAtKill = new Set(atKill.rows.filter((x) => x.rejectionPassed !== null).map((x) => x.id))
    const trainedAtKill = new Set(atKill.rows.filter((x) => x.invalid !== null).map((x) => x.id))

    const again = makeFakeEvaluator({ timingSeed: killAt + 1 })
    const resumed = await run(dir, evolution(8), again, CONFIG)
    const after = await readStore(dir)
    t.ok(resumed.resumed)
    t.same(resumed.counters, refResult.counters, `kill at ${killAt}: counters equal the uninterrupted run`)
    t.same(comparable(after.rows), comparable(ref.rows), `kill at ${killAt}: every candidate equals the uninterrupted run`)
    t.same(after.population, ref.population, `kill at ${killAt}: the population equals the uninterrupted run`)
    const screensAgain = again.calls.filter((x) => x.kind === "screen").map((x) => x.id)
    const trainsAgain = again.calls.filter((x) => x.kind === "train").map((x) => x.id)
    t.notOk(screensAgain.some((id) => screenedAtKill.has(id)), "no stored screen is redone")
    t.notOk(trainsAgain.some((id) => trainedAtKill.has(id)), "no stored training is redone")
    t.equal(new Set(trainsAgain).size, trainsAgain.length, "a lost training is redone once")
    t.equal(trainedAtKill.size + trainsAgain.length, refResult.counters.trained, "trainings across both runs = the budget")
    const lost = started.filter((x) => !(x.kind === "screen" ? screenedAtKill : trainedAtKill).has(x.id))
    lostAndRedone += lost.filter((x) => again.calls.some((y) => y.kind === x.kind && y.id === x.id)).length
  }
  t.ok(lostAndRedone > 0, `jobs in flight at a kill were evaluated again (${lostAndRedone})`)
})
