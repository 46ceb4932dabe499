// Validation: each broken graph names branch, path and problem; limits are inclusive.
import t from "tap"
import { BOX, DENSE, input, op } from "../../src/graph/types.ts"
import type { Branch, LossGraph, Node } from "../../src/graph/types.ts"
import { DEFAULT_LIMITS, GraphValidationError, depthOf, opCountOf, sizeOf, validateLoss } from "../../src/graph/validate.ts"
import { parseLoss } from "../../src/graph/syntax.ts"

const branch = (name: string, root: Node, kind = DENSE): Branch => ({ name, kind, root })
const loss = (...branches: Branch[]): LossGraph => ({ branches })
/** `neg` applied n times to y: depth n, size n + 1. */
const chain = (n: number): Node => (n === 0 ? input("y") : op("neg", chain(n - 1)))
/** Escape hatch for graphs the types forbid. */
const raw = (x: unknown): Node => x as Node

t.test("depthOf / sizeOf / opCountOf by hand", async (t) => {
  const g = parseLoss("add(square(add(y_hat, neg(mul(y, square(y))))), square(y_hat))")
  const root = g.branches[0]!.root
  // add → square → add → neg → mul → square → y: 6 operators on the longest path.
  t.equal(depthOf(root), 6)
  // Operators add, square, add, neg, mul, square, square; leaves y_hat, y, y, y_hat.
  t.equal(opCountOf(root), 7)
  t.equal(sizeOf(root), 7 + 4)
  t.equal(depthOf(input("y")), 0)
  t.equal(sizeOf(input("y")), 1)
  t.same(DEFAULT_LIMITS, { maxDepth: 16, maxNodes: 256, maxBranches: 16 })
})

t.test("limits are inclusive", async (t) => {
  t.doesNotThrow(() => validateLoss(loss(branch("loss", chain(16)))))
  t.doesNotThrow(() => validateLoss(loss(branch("loss", chain(3))), { maxNodes: 4 }))
  t.doesNotThrow(() => validateLoss(loss(...Array.from({ length: 16 }, (_, i) => branch(`b${i}`, input("y"))))))
  t.doesNotThrow(() => validateLoss(loss(branch("reg", op("mul", input("e"), op("inv", input("i"))), BOX))))
})

t.test("broken graphs name branch, path and problem", async (t) => {
  const cases: Array<[what: string, g: LossGraph, opts: object, message: string]> = [
    ["no branches", loss(), {}, "a loss needs at least one branch"],
    ["too many branches", loss(branch("a", input("y")), branch("b", input("y"))), { maxBranches: 1 },
      "2 branches exceed the limit of 1"],
    ["unknown operator", loss(branch("cls", op("neg", raw({ type: "op", op: "lgo", args: [input("y")] })))), {},
      "cls@[0]: unknown operator 'lgo'"],
    ["too few arguments", loss(branch("cls", op("neg", raw({ type: "op", op: "add", args: [input("y")] })))), {},
      "cls@[0]: operator 'add' takes 2 arguments, got 1"],
    ["too many arguments", loss(branch("cls", raw({ type: "op", op: "log", args: [input("y"), input("y")] }))), {},
      "cls@[]: operator 'log' takes 1 argument, got 2"],
    ["unknown input for the kind", loss(branch("reg", op("add", input("i"), op("neg", input("y"))), BOX)), {},
      "reg@[1,0]: unknown input 'y' (kind box: i, u, e, one)"],
    ["not a node", loss(branch("cls", op("neg", raw({ type: "const", value: 1 })))), {}, "cls@[0]: not a node (type 'const')"],
    ["duplicate names", loss(branch("a", input("y")), branch("a", input("y_hat"))), {}, "a@[]: duplicate branch name 'a'"],
    ["name with a dash", loss(branch("rpn-cls", input("y"))), {}, "rpn-cls@[]: invalid branch name 'rpn-cls' (want [A-Za-z_][A-Za-z0-9_]*)"],
    ["name starting with a digit", loss(branch("1st", input("y"))), {}, "1st@[]: invalid branch name '1st' (want [A-Za-z_][A-Za-z0-9_]*)"],
    ["empty name", loss(branch("", input("y"))), {}, "invalid branch name '' (want [A-Za-z_][A-Za-z0-9_]*)"],
    ["too deep", loss(branch("deep", chain(17))), {}, `deep@[${Array(16).fill(0).join(",")}]: depth exceeds the limit of 16 operators`],
    // Pre-order: add, neg, neg, y, neg [1], neg [1,0], then y [1,0,0] is the 7th node.
    ["too big", loss(branch("big", op("add", chain(2), chain(2)))), { maxNodes: 6 }, "big@[1,0,0]: branch has more than 6 nodes"],
    ["kind without inputs", loss(branch("x", input("y"), { name: "void", inputs: [] })), {}, "x@[]: branch kind 'void' declares no inputs"]
  ]
  for (const [what, g, opts, message] of cases) {
    const err = t.throws(() => validateLoss(g, opts), GraphValidationError, what) as unknown as GraphValidationError
    t.equal(err.message, message, what)
  }
  const err = t.throws(() => validateLoss(loss(branch("reg", op("add", input("i"), op("neg", input("y"))), BOX)))) as unknown as GraphValidationError
  t.equal(err.branch, "reg")
  t.same(err.path, [1, 0])
  t.equal(err.problem, "unknown input 'y' (kind box: i, u, e, one)")
})

t.test("a hostile deep tree fails on depth without overflowing the stack", async (t) => {
  let deep: Node = input("y")
  for (let i = 0; i < 100_000; i++) deep = op("neg", deep)
  t.throws(() => validateLoss(loss(branch("loss", deep))), /depth exceeds the limit of 16/)
})
