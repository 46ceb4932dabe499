// The concurrent-marking policy: the decision table, and its effect on V8 observed in a child
// process through V8's own marking trace (the test process's flags stay as they are).
import t from "tap"
import { execa } from "execa"
import { fileURLToPath } from "node:url"
import { markingAction } from "../../src/workers/internal/gcPolicy.ts"

const probe = fileURLToPath(new URL("./fixtures/gcProbe.ts", import.meta.url))

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

/** Runs the probe; counts the marking cycles and those where helper threads marked concurrently. */
const observe = async (policy: string, workers: number, cores: number) => {
  const r = await execa("node", ["--trace-incremental-marking", "--import", "tsx", probe, policy, String(workers), String(cores)])
  const lines = r.stdout.split("\n")
  return {
    action: lines.find((l) => l.startsWith("action="))?.slice("action=".length),
    cycles: lines.filter((l) => l.includes("[IncrementalMarking] Start marking")).length,
    background: lines.filter((l) => /Marked \d+KB on background threads/.test(l)).length
  }
}

t.test("V8 marks on background threads unless the policy turned it off", async (t) => {
  const [busy, spare] = await Promise.all([observe("auto", 1, 2), observe("auto", 1, 16)])
  t.equal(busy.action, "off")
  t.ok(busy.cycles >= 2, `${busy.cycles} marking cycles ran`)
  t.equal(busy.background, 0, "no cycle marked on background threads")
  t.equal(spare.action, "leave")
  t.ok(spare.cycles >= 2, `${spare.cycles} marking cycles ran`)
  t.ok(spare.background > 0, `${spare.background} steps found work marked on background threads (V8's default, left alone)`)
})
