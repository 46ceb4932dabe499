import t from "tap"
import { parseLoss } from "../../src/graph/syntax.ts"
import { DENSE, type LossGraph } from "../../src/graph/types.ts"
import { tensor, type Tensor } from "../../src/graph/evaluate.ts"
import { lossGradients } from "../../src/graph/finite-diff.ts"
import { Rng } from "../../src/graph/rng.ts"
import { equivalenceKey, paperKey, twoSignificant, directionalKey } from "../../src/search/equivalence.ts"

t.test("twoSignificant rounds to two significant digits", async (t) => {
  t.equal(twoSignificant(1234), "1.2e+3")
  t.equal(twoSignificant(0.001249), "1.2e-3")
  t.equal(twoSignificant(-0.0996), "-1.0e-1")
  t.equal(twoSignificant(0), "0")
  t.equal(twoSignificant(-0), "0")
  t.equal(twoSignificant(NaN), "nan")
  t.equal(twoSignificant(-Infinity), "-inf")
})

/**
 * The rejection signature of a loss, computed independently of any worker: B samples of softmax-like
 * predictions and one-hot targets of shape (1, C, 1, 1); gradients by central differences; projections
 * on 4 fixed unit directions drawn from a seeded Rng (the same for every loss, as the worker does).
 */
const C = 3
const B = 3
const samples = (): Array<{ y_hat: Tensor; y: Tensor }> => {
  const rng = new Rng(7)
  return Array.from({ length: B }, (_, b) => {
    const raw = Array.from({ length: C }, () => 0.2 + rng.float())
    const sum = raw.reduce((a, x) => a + x, 0)
    return {
      y_hat: tensor([1, C, 1, 1], raw.map((x) => x / sum)),
      y: tensor([1, C, 1, 1], Array.from({ length: C }, (_, c) => (c === b % C ? 1 : 0)))
    }
  })
}
const directions = (): number[][] => {
  const rng = new Rng(11)
  return Array.from({ length: 4 }, () => {
    const d = Array.from({ length: C }, () => rng.float() - 0.5)
    const n = Math.hypot(...d)
    return d.map((x) => x / n)
  })
}
const signature = (g: LossGraph) => {
  const dirs = directions()
  const gradNorms: number[] = []
  const fingerprint: number[][] = []
  for (const s of samples()) {
    const fd = lossGradients(g, { ...s, one: tensor([1, C, 1, 1], [1, 1, 1]) }, ["y_hat"])
    const grad = Array.from(fd.grads["y_hat"]!.data)
    gradNorms.push(Math.hypot(...grad))
    fingerprint.push(dirs.map((d) => d.reduce((a, x, k) => a + x * grad[k]!, 0)))
  }
  return { gradNorms, fingerprint }
}

t.test("CE and -CE: same paper key, different directional keys", async (t) => {
  const ce = signature(parseLoss("neg(mul(y, log(y_hat)))", { kinds: { loss: DENSE } }))
  const negCe = signature(parseLoss("mul(y, log(y_hat))", { kinds: { loss: DENSE } }))
  t.equal(paperKey(ce), paperKey(negCe))
  t.not(directionalKey(ce), directionalKey(negCe))
  t.equal(equivalenceKey(ce), directionalKey(ce), "directional is the default mode")
  t.equal(equivalenceKey(ce, "paper"), paperKey(ce))
  // ∂CE/∂ŷ = −y/ŷ: each norm is 1/ŷ_target, a hand check of the signature itself.
  const s = samples()
  ce.gradNorms.forEach((n, b) => t.ok(Math.abs(n - 1 / s[b]!.y_hat.data[b % C]!) < 1e-6, `norm of sample ${b}`))
})

t.test("a rescaled-but-close gradient shares the key; a 10% different one does not", async (t) => {
  const a = { gradNorms: [1.234, 0.5], fingerprint: [[0.3, -0.2, 0, 1e-14], [0.1, 0.1, 0.1, 0.1]] }
  const b = { gradNorms: [1.2349, 0.5001], fingerprint: [[0.3001, -0.2001, 0, -1e-14], [0.1, 0.1, 0.1, 0.1]] }
  const c = { gradNorms: [1.35, 0.5], fingerprint: a.fingerprint }
  t.equal(directionalKey(a), directionalKey(b), "1e-14 vs −1e-14 is orthogonal noise, both key as 0")
  t.not(paperKey(a), paperKey(c))
  t.equal(paperKey(a), "p:1.2e+0,5.0e-1")
  t.throws(() => directionalKey({ gradNorms: [1, 2], fingerprint: [[1]] }), /1 rows but there are 2/)
})
