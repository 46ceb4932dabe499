// Canonical form and hashes: invariant under add/mul argument swaps, sensitive to real changes.
import t from "tap"
import assert from "node:assert/strict"
import { createHash } from "node:crypto"
import fc from "fast-check"
import { OP_NAMES, OPS, arityOf } from "../../src/graph/ops.ts"
import { BOX, DENSE, input, op } from "../../src/graph/types.ts"
import type { Branch, LossGraph, Node } from "../../src/graph/types.ts"
import { canonicalLoss, canonicalText, hashBranch, hashLoss } from "../../src/graph/canonical.ts"
import { parseLoss, printLoss } from "../../src/graph/syntax.ts"
import { nodeAt, nodesOf, replaceAt } from "../../src/graph/mutate.ts"
import { FC, anyGraphArb } from "./_arbitraries.ts"

/** Swaps the arguments of the commutative nodes whose pre-order index has its bit set in `mask`. */
const swapSome = (n: Node, mask: ReadonlyArray<boolean>, counter = { i: 0 }): Node => {
  if (n.type === "input") return n
  const here = mask[counter.i++ % mask.length] === true
  const args = n.args.map((a) => swapSome(a, mask, counter))
  return op(n.op, ...(here && OPS[n.op].commutative ? [...args].reverse() : args))
}

const mapBranches = (g: LossGraph, f: (b: Branch) => Node): LossGraph => ({ branches: g.branches.map((b) => ({ ...b, root: f(b) })) })

t.test("hand-worked canonical text and hash", async (t) => {
  const g = parseLoss("neg(mul(y, log(y_hat)))")
  t.equal(printLoss(canonicalLoss(g)), "neg(mul(log(y_hat), y))")
  t.equal(canonicalText(g), "loss/dense(y_hat,y,one): neg(mul(log(y_hat), y))")
  // python: hashlib.sha256(b"loss/dense(y_hat,y,one): neg(mul(log(y_hat), y))").hexdigest()[:16]
  t.equal(hashLoss(g), "5be0e14ddf189b5e")
  t.equal(hashBranch(g.branches[0]!), hashLoss(g))
  const det = parseLoss("rpn_cls: neg(mul(y, log(y_hat))); rpn_reg: neg(log(mul(i, inv(e))))")
  t.equal(canonicalText(det), "rpn_cls/dense(y_hat,y,one): neg(mul(log(y_hat), y)); rpn_reg/box(i,u,e,one): neg(log(mul(i, inv(e))))")
  t.equal(hashLoss(det), "511fdb8404af40ef")
  // Nested: the inner add is ordered first, then the outer mul compares the finished texts.
  t.equal(printLoss(canonicalLoss(parseLoss("mul(y, add(y_hat, one))"))), "mul(add(one, y_hat), y)")
})

t.test("argument swaps at any depth keep text and hash", async (t) => {
  fc.assert(fc.property(anyGraphArb, fc.array(fc.boolean(), { minLength: 1, maxLength: 64 }), (g, mask) => {
    const swapped = mapBranches(g, (b) => swapSome(b.root, mask))
    assert.equal(canonicalText(swapped), canonicalText(g))
    assert.equal(hashLoss(swapped), hashLoss(g))
    assert.deepStrictEqual(canonicalLoss(canonicalLoss(g)), canonicalLoss(g), "idempotent")
  }), FC)
  t.pass()
})

t.test("real changes change the hash", async (t) => {
  fc.assert(fc.property(anyGraphArb, fc.nat(), fc.nat(), (g, at, pick) => {
    const [first, ...rest] = g.branches as [Branch, ...Branch[]]
    const located = nodesOf(first.root)
    const { path, node } = located[at % located.length]!
    let changed: Node
    if (node.type === "input") {
      // Another input: the multiset of leaf labels differs, which no argument swap can undo.
      const others = first.kind.inputs.filter((x) => x !== node.name)
      changed = input(others[pick % others.length]!)
    } else {
      const others = OP_NAMES.filter((o) => o !== node.op && arityOf(o) === arityOf(node.op))
      changed = op(others[pick % others.length]!, ...node.args)
    }
    const mutated: LossGraph = { branches: [{ ...first, root: replaceAt(first.root, path, changed) }, ...rest] }
    assert.notEqual(nodeAt(mutated.branches[0]!.root, path), node)
    assert.notEqual(hashLoss(mutated), hashLoss(g))
    assert.notEqual(hashBranch(mutated.branches[0]!), hashBranch(first))
  }), FC)
  const g = parseLoss("neg(one)")
  t.not(hashLoss(g), hashLoss(parseLoss("neg(one)", { kinds: { loss: BOX } })), "kind is part of the hash")
  t.not(hashLoss(g), hashLoss(parseLoss("other: neg(one)")), "branch name is part of the hash")
  const two = parseLoss("a: y; b: y_hat")
  t.not(hashLoss(two), hashLoss(parseLoss("a: y_hat; b: y")), "which branch holds what matters")
})

t.test("hash is 16 hex chars of SHA-256 over the canonical text", async (t) => {
  fc.assert(fc.property(anyGraphArb, (g) => {
    const want = createHash("sha256").update(canonicalText(g)).digest("hex").slice(0, 16)
    assert.equal(hashLoss(g), want)
    assert.match(hashLoss(g), /^[0-9a-f]{16}$/)
  }), { ...FC, numRuns: 100 })
  t.equal(canonicalLoss({ branches: [{ name: "loss", kind: DENSE, root: input("y") }] }).branches[0]?.root.type, "input")
})
