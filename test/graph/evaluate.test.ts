// Reference evaluator and finite differences against values worked out by hand.
import t from "tap"
import { EPSILON, OP_NAMES } from "../../src/graph/ops.ts"
import { BOX, DENSE, input, op, type Branch, type Node } from "../../src/graph/types.ts"
import {
  type Shape,
  type Tensor,
  EvaluationError,
  applyOp,
  branchValue,
  evaluateBranch,
  evaluateNode,
  lossValue,
  tensor
} from "../../src/graph/evaluate.ts"
import { KINK_MARGIN, centralDifferences, lossGradients, nearestKink, stepFor } from "../../src/graph/finite-diff.ts"

const dense = (root: Node): Branch => ({ name: "loss", kind: DENSE, root })
const row = (...values: number[]): Tensor => tensor([1, 1, 1, values.length], values)

/** Describes the first element off by more than tol·max(1, |expected|), or undefined when all agree. */
const mismatch = (actual: Tensor, expected: ReadonlyArray<number>, tol: number): string | undefined => {
  if (actual.data.length !== expected.length) return `length ${actual.data.length}, want ${expected.length}`
  const k = expected.findIndex((e, k) => !(Math.abs(actual.data[k]! - e) <= tol * Math.max(1, Math.abs(e))))
  return k < 0 ? undefined : `[${k}] = ${actual.data[k]}, want ${expected[k]}`
}

t.test("binary and sign-free elementwise operators", async (t) => {
  const a = row(-2, 0.5, 3)
  const b = row(4, -1, 0.25)
  t.same(Array.from(applyOp("add", [a, b]).data), [2, -0.5, 3.25])
  t.same(Array.from(applyOp("mul", [a, b]).data), [-8, -0.5, 0.75])
  t.same(Array.from(applyOp("neg", [a]).data), [2, -0.5, -3])
  t.same(Array.from(applyOp("abs", [a]).data), [2, 0.5, 3])
  t.same(Array.from(applyOp("square", [a]).data), [4, 0.25, 9])
  t.equal(mismatch(applyOp("exp", [row(0, 1, -1)]), [1, Math.E, 1 / Math.E], 1e-15), undefined, "exp")
  // tanh(ln(3)/2) = (3 − 1)/(3 + 1) = 0.5
  t.equal(mismatch(applyOp("tanh", [row(0, Math.log(3) / 2, -Math.log(3) / 2)]), [0, 0.5, -0.5], 1e-15), undefined, "tanh")
})

t.test("epsilon and sign conventions of inv, log, sqrt", async (t) => {
  t.equal(EPSILON, 1e-12)
  // inv(x) = 1/(x + ε): at 0 it is 1/ε, not infinity
  t.equal(mismatch(applyOp("inv", [row(2, -4, 0)]), [0.5, -0.25, 1e12], 1e-12), undefined, "inv")
  // log(x) = sign(x)·log(|x| + ε): odd in x and 0 at 0
  t.equal(mismatch(applyOp("log", [row(Math.E, -Math.E, 0, 1)]), [1, -1, 0, 1e-12], 1e-12), undefined, "log")
  t.equal(applyOp("log", [row(0)]).data[0], 0, "log(0) is exactly 0 because sign(0) = 0")
  // sqrt(x) = sign(x)·sqrt(|x| + ε)
  t.equal(mismatch(applyOp("sqrt", [row(4, -9, 0, 0.25)]), [2, -3, 0, 0.5], 1e-12), undefined, "sqrt")
  t.equal(applyOp("sqrt", [row(0)]).data[0], 0, "sqrt(0) is exactly 0")
  // sqrt(1e-20 + 1e-12) = 1e-6·sqrt(1 + 1e-8) ≈ 1e-6·(1 + 5e-9)
  t.equal(mismatch(applyOp("sqrt", [row(1e-20)]), [1.000000005e-6], 1e-15), undefined, "sqrt of a tiny value is about sqrt(ε)")
})

t.test("mean_nhw and mean_c broadcast back over the reduced axes", async (t) => {
  // shape (2, 2, 1, 2): n0c0 [1, 2], n0c1 [10, 20], n1c0 [3, 6], n1c1 [30, 40]
  const x = tensor([2, 2, 1, 2], [1, 2, 10, 20, 3, 6, 30, 40])
  // channel 0: (1 + 2 + 3 + 6)/4 = 3; channel 1: (10 + 20 + 30 + 40)/4 = 25
  t.same(Array.from(applyOp("mean_nhw", [x]).data), [3, 3, 25, 25, 3, 3, 25, 25])
  // n0: (1 + 10)/2, (2 + 20)/2; n1: (3 + 30)/2, (6 + 40)/2
  t.same(Array.from(applyOp("mean_c", [x]).data), [5.5, 11, 5.5, 11, 16.5, 23, 16.5, 23])
  t.same(applyOp("mean_c", [x]).shape, [2, 2, 1, 2])
  // sum 112 over N·H·W = 4 (no normalisation over C)
  t.equal(branchValue(x), 28)
})

t.test("max_pool: 3×3, stride 1, padding never wins (all-negative input)", async (t) => {
  const x = tensor([1, 1, 3, 3], [-1, -2, -3, -4, -5, -6, -7, -8, -9])
  t.same(Array.from(applyOp("max_pool", [x]).data), [-1, -1, -2, -1, -1, -2, -4, -4, -5])
})

t.test("min_pool: 3×3, stride 1, padding never wins (all-positive input)", async (t) => {
  const x = tensor([1, 1, 3, 4], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
  t.same(Array.from(applyOp("min_pool", [x]).data), [1, 1, 2, 3, 1, 1, 2, 3, 5, 5, 6, 7])
})

t.test("pooling stays inside one (n, c) plane", async (t) => {
  // (2, 2, 1, 2): channels and samples must not see each other's values
  const x = tensor([2, 2, 1, 2], [1, 2, 10, 20, -5, -6, 7, 3])
  t.same(Array.from(applyOp("max_pool", [x]).data), [2, 2, 20, 20, -5, -5, 7, 7])
  t.same(Array.from(applyOp("min_pool", [x]).data), [1, 1, 10, 10, -6, -6, 3, 3])
  const single = tensor([1, 1, 1, 1], [-3])
  t.same(Array.from(applyOp("max_pool", [single]).data), [-3], "a 1×1 plane pools to itself")
})

t.test("every operator is handled and preserves shape", async (t) => {
  const shape: Shape = [2, 3, 2, 2]
  const x = tensor(shape, Array.from({ length: 24 }, (_, k) => (k - 11.5) / 7))
  for (const name of OP_NAMES) {
    const out = applyOp(name, [x, x])
    t.same(out.shape, shape, `${name} keeps (N, C, H, W)`)
  }
  t.throws(() => applyOp("add", [x, row(1)]), EvaluationError, "add refuses mismatched shapes")
})

t.test("evaluateNode fills `one` and reports missing inputs", async (t) => {
  const y = tensor([1, 2, 1, 1], [0.25, 4])
  // neg(mul(y, log(y_hat))) hand-computed with y_hat = e: −y·(1 + ε/e)
  const yHat = tensor([1, 2, 1, 1], [Math.E, Math.E])
  const ce = evaluateNode(op("neg", op("mul", input("y"), op("log", input("y_hat")))), { y_hat: yHat, y })
  t.equal(mismatch(ce, [-0.25, -4], 1e-12), undefined, "cross entropy")
  // one + one = 2 everywhere, shaped like y
  t.same(Array.from(evaluateNode(op("add", input("one"), input("one")), { y }).data), [2, 2])
  t.throws(() => evaluateNode(op("neg", input("u")), { y }), /input 'u' was not provided/)
  t.throws(() => evaluateNode(input("y"), { y, y_hat: row(1) }), /input 'y_hat' has shape/)
})

t.test("branches read only their kind's inputs; loss value sums branches", async (t) => {
  const dense = { name: "cls", kind: DENSE, root: op("mul", input("y"), input("one")) }
  const box = { name: "reg", kind: BOX, root: op("mul", input("e"), op("inv", input("u"))) }
  const inputs = {
    y: tensor([1, 2, 1, 2], [1, 2, 3, 4]),
    y_hat: tensor([1, 2, 1, 2], [0, 0, 0, 0]),
    e: tensor([2, 1, 1, 1], [4, 9]),
    u: tensor([2, 1, 1, 1], [2, 3]),
    i: tensor([2, 1, 1, 1], [1, 1])
  }
  // `one` of the box branch is (2,1,1,1) although the dense inputs are (1,2,1,2)
  t.equal(mismatch(evaluateBranch(box, inputs), [2, 3], 1e-11), undefined, "e/u")
  // dense: (1 + 2 + 3 + 4)/(1·1·2) = 5; box: (2 + 3)/2 = 2.5
  t.ok(Math.abs(lossValue({ branches: [dense, box] }, inputs) - 7.5) < 1e-10)
})

t.test("central differences: exact on quadratics, step size, kink detection", async (t) => {
  t.equal(stepFor(3), 3e-6)
  t.equal(stepFor(-1e-5), 1e-8, "near 0 the step has a floor")
  const x = tensor([1, 1, 1, 3], [0.5, -2, 3])
  // L = Σ x² / 3 → ∂L/∂x = 2x/3
  const sq = { branches: [{ name: "loss", kind: DENSE, root: op("square", input("y_hat")) }] }
  const r = lossGradients(sq, { y_hat: x, y: x }, ["y_hat", "y"])
  t.ok(r.smooth)
  t.equal(mismatch(r.grads["y_hat"]!, [1 / 3, -4 / 3, 2], 1e-8), undefined, "d/dx of x²")
  t.same(Array.from(r.grads["y"]!.data), [0, 0, 0], "an unused input has zero gradient")
  t.same(Array.from(x.data), [0.5, -2, 3], "inputs are not mutated")

  // |x| with x inside the stencil (h = 1e-8): the estimates at h and 2h disagree
  const kink = centralDifferences((v) => [applyOp("abs", [v["a"]!])], { a: row(1e-9) }, ["a"])
  t.notOk(kink.smooth)
  t.equal(kink.firstFailure?.input, "a")
  // a near-tie in max pooling fools FD (1/2 at h and at 2h) but not the kink scan
  const tie = centralDifferences((v) => [applyOp("max_pool", [v["a"]!])], { a: row(1, 1 + 1e-12) }, ["a"])
  t.ok(tie.smooth, "FD alone cannot see a tie closer than h")
  t.ok(Math.abs(tie.grads["a"]!.data[0]! - 0.5) < 1e-3, "FD averages the two sides of the tie")
  // non-finite values are never smooth
  const inf = centralDifferences((v) => [applyOp("exp", [v["a"]!])], { a: row(800) }, ["a"])
  t.notOk(inf.smooth)
})

t.test("nearestKink finds near-ties and near-zero arguments on intermediate values", async (t) => {
  const y = tensor([1, 1, 2, 2], [0.5, 0.9, 0.1, 0.3])
  const yHat = tensor([1, 1, 2, 2], [0.2, 0.4, 0.6, 0.5 + 5e-5])
  t.equal(nearestKink(dense(op("max_pool", input("y"))), { y, y_hat: yHat }), undefined, "lead 0.4 is far from a tie")
  // max_pool of y_hat is 0.6 everywhere (a structural exact tie), then min_pool sees only ties
  t.equal(nearestKink(dense(op("min_pool", op("max_pool", input("y_hat")))), { y, y_hat: yHat }), undefined)
  // |y − y_hat| with y_hat 3e-5 away from y at the last position
  const near = tensor([1, 1, 2, 2], [0.5, 0.9, 0.1, 0.3 + 3e-5])
  const k = nearestKink(dense(op("neg", op("abs", op("add", input("y"), op("neg", input("y_hat")))))), { y, y_hat: near })
  t.equal(k?.op, "abs")
  t.same(k?.path, [0])
  t.ok(k !== undefined && Math.abs(k.distance - 3e-5) < 1e-12)
  // y − y is exactly 0 (structural): not a kink
  t.equal(nearestKink(dense(op("log", op("add", input("y"), op("neg", input("y"))))), { y }), undefined)
  // a pooling window whose two largest differ by 5e-5 < KINK_MARGIN
  const tie = tensor([1, 1, 1, 3], [0.7, 0.7 + 5e-5, -1])
  t.ok(5e-5 < KINK_MARGIN)
  t.equal(nearestKink(dense(op("max_pool", input("y"))), { y: tie })?.op, "max_pool")
  // the exact tie of a broadcast mean is not a kink
  t.equal(nearestKink(dense(op("max_pool", op("mean_nhw", input("y")))), { y }), undefined)
})

t.test("central differences through aggregations and several branches", async (t) => {
  // value(mean_c(x)) = Σ_{n,h,w} C·mean_c / (N·H·W) = Σ x / (N·H·W): gradient 1/(N·H·W) = 1/4 everywhere
  const x = tensor([2, 3, 1, 2], Array.from({ length: 12 }, (_, k) => (k - 5) / 3))
  const g = { branches: [{ name: "a", kind: DENSE, root: op("mean_c", input("y")) }] }
  const r = lossGradients(g, { y: x }, ["y"])
  t.ok(r.smooth)
  t.equal(mismatch(r.grads["y"]!, Array(12).fill(0.25), 1e-9), undefined)
  // two branches reading different inputs: gradients do not mix
  const two = {
    branches: [
      { name: "cls", kind: DENSE, root: op("square", input("y")) },
      { name: "reg", kind: BOX, root: op("mul", input("i"), input("one")) }
    ]
  }
  const boxes = tensor([3, 1, 1, 1], [0.5, 1, 2])
  const r2 = lossGradients(two, { y: x, i: boxes }, ["y", "i"])
  // d/dy Σ y²/4 = y/2; d/di Σ i/3 = 1/3
  t.equal(mismatch(r2.grads["y"]!, Array.from(x.data, (v) => v / 2), 1e-8), undefined)
  t.equal(mismatch(r2.grads["i"]!, [1 / 3, 1 / 3, 1 / 3], 1e-9), undefined)
  t.ok(r2.errorBound < 1e-8, `error bound ${r2.errorBound}`)
})

t.test("finite differences of a bare-input branch see the perturbation (output aliases the input)", async (t) => {
  const { lossGradients } = await import("../../src/graph/finite-diff.ts")
  const { parseLoss } = await import("../../src/graph/syntax.ts")
  const y = { shape: [1, 1, 1, 2] as [number, number, number, number], data: Float64Array.from([0.3, 0.7]) }
  const r = lossGradients(parseLoss("y"), { y, y_hat: y }, ["y"])
  // L = (0.3 + 0.7) / (N·H·W = 2) → ∂L/∂y_j = 1/2
  t.ok(Math.abs(r.grads["y"]!.data[0]! - 0.5) < 1e-6)
  t.ok(Math.abs(r.grads["y"]!.data[1]! - 0.5) < 1e-6)
})
