// Paper initialisation: every root→leaf path has exactly D operator nodes; uniform draws.
import t from "tap"
import fc from "fast-check"
import { OP_NAMES } from "../../src/graph/ops.ts"
import { BOX, DENSE } from "../../src/graph/types.ts"
import type { Node } from "../../src/graph/types.ts"
import { Rng } from "../../src/graph/rng.ts"
import { INIT_DEPTH, randomLoss, randomTree } from "../../src/graph/random.ts"
import { printLoss } from "../../src/graph/syntax.ts"
import { depthOf, validateLoss } from "../../src/graph/validate.ts"
import { nodesOf } from "../../src/graph/mutate.ts"
import { FC, kindArb, within5Sigma } from "./_arbitraries.ts"

/** Operator nodes above each leaf (= its path length, since the branch tree's top is an operator). */
const leafDepths = (root: Node): number[] => nodesOf(root).filter((l) => l.node.type === "input").map((l) => l.path.length)

t.test("every root→leaf path holds exactly D operators; leaves are the kind's inputs", async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 32 }), kindArb, fc.integer({ min: 1, max: 5 }), (seed, kind, depth) => {
      const root = randomTree(kind, new Rng(seed), depth)
      const located = nodesOf(root)
      for (const { path, node } of located) {
        if (node.type === "input") {
          if (path.length !== depth || !kind.inputs.includes(node.name)) return false
        } else if (path.length >= depth) return false
      }
      return true
    }),
    FC
  )
  t.equal(INIT_DEPTH, 3)
  const root = randomTree(DENSE, new Rng(1))
  t.equal(depthOf(root), 3)
  t.ok(leafDepths(root).every((d) => d === 3))
})

t.test("randomLoss: one tree per requested branch, valid, deterministic per seed", async (t) => {
  const spec = [{ name: "rpn_cls", kind: DENSE }, { name: "rpn_reg", kind: BOX }]
  const g = randomLoss(spec, new Rng(99))
  t.same(g.branches.map((b) => [b.name, b.kind.name]), [["rpn_cls", "dense"], ["rpn_reg", "box"]])
  t.doesNotThrow(() => validateLoss(g))
  t.equal(printLoss(randomLoss(spec, new Rng(99))), printLoss(g))
  t.not(printLoss(randomLoss(spec, new Rng(100))), printLoss(g))
  // Pins the draw order (pre-order, operator before children): a change here changes every search.
  t.equal(printLoss(randomLoss([{ name: "loss", kind: DENSE }], new Rng(3))), "mul(max_pool(mean_nhw(y_hat)), add(mean_nhw(y_hat), mean_nhw(one)))")
})

t.test("operators and inputs are drawn uniformly", async (t) => {
  const rng = new Rng(2024)
  const n = 14_000
  const ops = new Map<string, number>()
  const leaves = new Map<string, number>()
  for (let i = 0; i < n; i++) {
    const root = randomTree(BOX, rng, 1)
    if (root.type !== "op") throw new Error("top is an operator")
    ops.set(root.op, (ops.get(root.op) ?? 0) + 1)
    const first = root.args[0]
    if (first?.type === "input") leaves.set(first.name, (leaves.get(first.name) ?? 0) + 1)
  }
  for (const name of OP_NAMES) t.ok(within5Sigma(ops.get(name) ?? 0, n, 1 / 14), `${name}: ${ops.get(name)}`)
  for (const name of BOX.inputs) t.ok(within5Sigma(leaves.get(name) ?? 0, n, 1 / 4), `${name}: ${leaves.get(name)}`)
})

t.test("bad depth or kind is refused", async (t) => {
  t.throws(() => randomTree(DENSE, new Rng(1), 0), RangeError)
  t.throws(() => randomTree(DENSE, new Rng(1), 2.5), RangeError)
  t.throws(() => randomTree({ name: "empty", inputs: [] }, new Rng(1)), /declares no inputs/)
})
