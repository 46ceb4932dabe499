import t from "tap"
import { runExample } from "../../examples/custom-scheduler.ts"
import { readStore, tempDir } from "./harness.ts"

t.test("the example hill climber runs through the engine and only ever climbs", async (t) => {
  const dir = tempDir(t)
  const result = await runExample(dir, 3, { budget: 12, screenWindow: 4, trainConcurrency: 2, trainLag: 2 })
  t.equal(result.counters.trained, 12)
  const { rows, population } = await readStore(dir)
  const score = new Map(rows.map((r) => [r.id, r.score]))
  // Each proposal mutates the best outcome observed so far, so parent scores never decrease.
  const parentScores = rows.filter((r) => r.parentId !== null).map((r) => score.get(r.parentId!)!)
  t.ok(parentScores.length > 0, "offspring were proposed")
  t.ok(parentScores.every((s, i) => i === 0 || s >= parentScores[i - 1]!), "parents' scores are non-decreasing")
  t.equal(population.length, 1)
  t.equal(population[0]!.score, result.best!.score, "the stored population is the best loss")
  const again = await runExample(dir, 3, { budget: 12, screenWindow: 4, trainConcurrency: 2, trainLag: 2 })
  t.ok(again.resumed, "running it again resumes the finished run")
  t.same(again.counters, result.counters)
  t.same(again.evaluatorCalls, { screen: 0, train: 0 }, "a finished run replays from the store without any job")
})
