/** A `train-loss` result as the pool evaluator reads it: metrics, target, and where it continued from. */
import t from "tap"
import { decodeTrain } from "../../src/search/pool-evaluator.ts"

const out = (extra: Record<string, unknown>) => ({ metrics: { miou: 0.25, facc: null }, target: 0.25, invalid: false, iterations: 100, ...extra })

t.test("resumedFrom: a step number is kept, null or absent means a training from step 0", async (t) => {
  t.same(decodeTrain(out({ resumedFrom: 33 })), { metrics: { miou: 0.25, facc: NaN }, target: 0.25, invalid: false, resumedFrom: 33 })
  t.notOk("resumedFrom" in decodeTrain(out({ resumedFrom: null })))
  t.notOk("resumedFrom" in decodeTrain(out({})))
  t.equal(decodeTrain(out({ resumedFrom: 0 })).resumedFrom, 0)
})

t.test("a bad resumedFrom names the field and the value", async (t) => {
  t.throws(() => decodeTrain(out({ resumedFrom: "33" })), /result field 'resumedFrom' must be null or a step number, got "33"/)
  t.throws(() => decodeTrain(out({ resumedFrom: 2.5 })), /got 2\.5/)
  t.throws(() => decodeTrain(out({ resumedFrom: -1 })), /got -1/)
})
