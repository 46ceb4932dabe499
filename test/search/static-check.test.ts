import t from "tap"
import { parseLoss } from "../../src/graph/syntax.ts"
import { BOX, DENSE } from "../../src/graph/types.ts"
import { staticCheck, leavesOf } from "../../src/search/static-check.ts"

const dense = (text: string) => parseLoss(text, { kinds: { loss: DENSE } })

t.test("dense: needs both y_hat and y reachable", async (t) => {
  t.same(staticCheck(dense("neg(mul(y, log(y_hat)))")), { ok: true })
  const noTarget = staticCheck(dense("neg(log(y_hat))"))
  t.equal(noTarget.ok, false)
  t.match(noTarget, { branch: "loss", reason: /does not depend on the target \(needs 'y'; uses only y_hat\)/ })
  const noPrediction = staticCheck(dense("exp(add(y, one))"))
  t.match(noPrediction, { ok: false, reason: /does not depend on the prediction \(needs 'y_hat'; uses only one, y\)/ })
  t.match(staticCheck(dense("tanh(one)")), { ok: false, reason: /prediction/ })
})

t.test("box: any of i, u, e carries both boxes; `one` alone is hopeless", async (t) => {
  const box = (text: string) => parseLoss(text, { kinds: { loss: BOX } })
  t.same(staticCheck(box("neg(log(mul(i, inv(e))))")), { ok: true })
  t.same(staticCheck(box("square(e)")), { ok: true })
  t.match(staticCheck(box("exp(one)")), { ok: false, reason: /needs any of 'i', 'u', 'e'/ })
})

t.test("multi-branch: the first hopeless branch is named", async (t) => {
  const g = parseLoss("cls: neg(mul(y, log(y_hat))); reg: square(add(one, one))", {
    kinds: { cls: DENSE, reg: BOX }
  })
  t.match(staticCheck(g), { ok: false, branch: "reg", reason: /^branch 'reg' does not depend on the prediction/ })
})

t.test("unknown kinds are never rejected; custom roles can be passed", async (t) => {
  const kind = { name: "heat", inputs: ["h", "t", "one"] }
  const g = parseLoss("square(one)", { kinds: { loss: kind } })
  t.same(staticCheck(g), { ok: true })
  t.match(staticCheck(g, { heat: { prediction: ["h"], target: ["t"] } }), { ok: false, reason: /'h'/ })
})

t.test("structural: a cancelling composite still passes (sound, not complete)", async (t) => {
  // add(y_hat, neg(y_hat)) ≡ 0 but reaches y_hat; the protocol, not this check, rejects it.
  t.same(staticCheck(dense("mul(y, add(y_hat, neg(y_hat)))")), { ok: true })
  t.same([...leavesOf(dense("mul(y, add(y_hat, one))").branches[0]!.root)].sort(), ["one", "y", "y_hat"])
})
