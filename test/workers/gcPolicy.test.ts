import t from "tap"
import { applyConcurrentMarking, markingAction } from "../../src/workers/internal/gcPolicy.ts"

t.test("auto turns concurrent marking off only when local workers leave at most one core free", async (t) => {
  t.equal(markingAction("auto", 2, 1), "off", "2 cores, 1 worker: the other core runs the worker")
  t.equal(markingAction("auto", 2, 2), "off")
  t.equal(markingAction("auto", 3, 1), "leave", "a spare core for V8's marking threads")
  t.equal(markingAction("auto", 16, 8), "leave")
  t.equal(markingAction("auto", 16, 15), "off")
  t.equal(markingAction("auto", 2, 0), "leave", "no local workers: whatever the process runs with")
})

t.test("on and off are applied whatever the machine", async (t) => {
  t.equal(markingAction("on", 2, 2), "on")
  t.equal(markingAction("off", 64, 1), "off")
})

t.test("apply reports what it did", async (t) => {
  t.equal(applyConcurrentMarking("auto", 4, 2), "off")
  t.equal(applyConcurrentMarking("auto", 1, 8), "leave")
  t.equal(applyConcurrentMarking("on", 0, 8), "on") // V8's default again for the rest of this process
})
