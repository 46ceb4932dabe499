import t from "tap"
import { applyConcurrentMarking, concurrentMarkingWanted } from "../../src/workers/internal/gcPolicy.ts"

t.test("auto marks on the main thread only when local workers leave at most one core free", async (t) => {
  t.equal(concurrentMarkingWanted("auto", 2, 1), false, "2 cores, 1 worker: the other core runs the worker")
  t.equal(concurrentMarkingWanted("auto", 2, 2), false)
  t.equal(concurrentMarkingWanted("auto", 3, 1), true, "a spare core for V8's marking threads")
  t.equal(concurrentMarkingWanted("auto", 16, 8), true)
  t.equal(concurrentMarkingWanted("auto", 16, 15), false)
  t.equal(concurrentMarkingWanted("auto", 2, 0), true, "no local workers: V8's default")
})

t.test("on and off override the machine", async (t) => {
  t.equal(concurrentMarkingWanted("on", 2, 2), true)
  t.equal(concurrentMarkingWanted("off", 64, 1), false)
})

t.test("apply reports what it set", async (t) => {
  t.equal(applyConcurrentMarking("auto", 4, 2), false)
  t.equal(applyConcurrentMarking("auto", 1, 8), true)
  t.equal(applyConcurrentMarking("off", 0, 8), false)
  applyConcurrentMarking("on", 0) // leave V8's default for the rest of this process
})
