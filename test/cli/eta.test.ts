import t from "tap"
import { estimateEta, formatDuration } from "../../src/cli/eta.ts"

t.test("ETA: remaining units at the rate this process achieved", async (t) => {
  // 10 of 60 units in 300 s → 30 s per unit, 50 left → 1500 s
  t.equal(estimateEta({ elapsedS: 300, done: 10, doneAtStart: 0, total: 60 }), 1500)
  // a resume that found 40 done and did 5 more in 100 s: 20 s per unit, 15 left → 300 s
  t.equal(estimateEta({ elapsedS: 100, done: 45, doneAtStart: 40, total: 60 }), 300)
})

t.test("ETA: unknown before this process did anything, and once all is done", async (t) => {
  t.equal(estimateEta({ elapsedS: 50, done: 0, doneAtStart: 0, total: 60 }), null)
  t.equal(estimateEta({ elapsedS: 50, done: 40, doneAtStart: 40, total: 60 }), null, "replayed work is not speed")
  t.equal(estimateEta({ elapsedS: 50, done: 30, doneAtStart: 40, total: 60 }), null, "a replay rewinding the counters")
  t.equal(estimateEta({ elapsedS: 500, done: 60, doneAtStart: 0, total: 60 }), null)
  t.equal(estimateEta({ elapsedS: 0, done: 1, doneAtStart: 0, total: 60 }), null)
})

t.test("durations read as seconds, minutes or hours", async (t) => {
  t.equal(formatDuration(59.4), "59s")
  t.equal(formatDuration(725), "12m05s")
  t.equal(formatDuration(7380), "2h03m")
})

t.test("work units: own finished trainings against the budget, then the selection's trainings", async (t) => {
  const { workUnits } = await import("../../src/cli/progress.ts")
  const counters = { observed: 14, equivalentReuses: 3, duplicateReuses: 1, trained: 12 }
  t.same(workUnits({ counters, budget: 60, selection: null }), { done: 10, total: 60 })
  t.same(workUnits({ counters: { observed: 70, equivalentReuses: 5 }, budget: 60, selection: { done: 4, total: 19 } }), { done: 64, total: 79 })
})
