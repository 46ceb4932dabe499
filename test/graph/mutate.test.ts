// Offspring pipeline: validity, paper frequencies, each mutation's exact effect, faithful records.
import t from "tap"
import assert from "node:assert/strict"
import fc from "fast-check"
import { arityOf } from "../../src/graph/ops.ts"
import { BOX, DENSE, input, op } from "../../src/graph/types.ts"
import type { Branch, LossGraph, Node } from "../../src/graph/types.ts"
import { Rng } from "../../src/graph/rng.ts"
import { randomLoss } from "../../src/graph/random.ts"
import { parseLoss, printLoss } from "../../src/graph/syntax.ts"
import { GraphValidationError, depthOf, opCountOf, sizeOf, validateLoss } from "../../src/graph/validate.ts"
import {
  deletion, insertion, mutateOnce, nodeAt, nodesOf, offspring, opNodesOf, replaceAt, replacement
} from "../../src/graph/mutate.ts"
import type { BranchChange, Mutation } from "../../src/graph/mutate.ts"
import { FC, anyGraphArb, initialGraphArb, kindArb, treeArb, within5Sigma } from "./_arbitraries.ts"

const seedArb = fc.integer({ min: 0, max: 2 ** 32 })

/** Rebuilds a mutation's result from its record alone: the record must say everything that happened. */
const replay = (root: Node, m: Mutation): Node => {
  const target = nodeAt(root, m.path)
  switch (m.kind) {
    case "insertion": {
      if (arityOf(m.op) === 1) return replaceAt(root, m.path, op(m.op, target))
      const extra = input(m.input as string)
      return replaceAt(root, m.path, op(m.op, ...(m.slot === 0 ? [target, extra] : [extra, target])))
    }
    case "deletion":
      assert.ok(target.type === "op" && target.op === m.op)
      return replaceAt(root, m.path, target.args[m.kept] as Node)
    case "replacement":
      assert.ok(target.type === "op" && target.op === m.from)
      return replaceAt(root, m.path, op(m.to, ...m.kept.map((i) => target.args[i] as Node), ...m.added.map(input)))
  }
}

t.test("every offspring of every graph is valid, over many generations", async (t) => {
  fc.assert(fc.property(anyGraphArb, seedArb, (g, seed) => {
    const rng = new Rng(seed)
    let parent = g
    for (let gen = 0; gen < 10; gen++) {
      const child = offspring(parent, rng).graph
      validateLoss(child)
      child.branches.forEach((b, i) => assert.ok(opCountOf(b.root) >= Math.min(1, opCountOf(parent.branches[i]!.root))))
      parent = child
    }
  }), FC)
  t.pass(`${FC.numRuns} lineages of 10 generations`)
})

t.test("tight limits: mutations that would break them are redrawn", async (t) => {
  const limits = { maxDepth: 4, maxNodes: 16 }
  fc.assert(fc.property(initialGraphArb, seedArb, (g, seed) => {
    const rng = new Rng(seed)
    let parent = g
    for (let gen = 0; gen < 30; gen++) {
      parent = offspring(parent, rng, limits).graph
      validateLoss(parent, limits)
    }
  }), { ...FC, numRuns: 100 })
  t.throws(() => offspring(parseLoss("neg(neg(neg(neg(neg(y)))))"), new Rng(1), limits), GraphValidationError, "parent over the limits")
  // Re-initialised trees are redrawn too: 8 nodes admit the all-unary depth-3 trees only.
  const small = { maxNodes: 8 }
  const rng = new Rng(4)
  let parent = parseLoss("neg(neg(neg(y)))")
  for (let k = 0; k < 300; k++) {
    parent = offspring(parent, rng, small).graph
    validateLoss(parent, small)
  }
  const tooShallow = (): void => {
    for (let k = 0; k < 200; k++) offspring(parseLoss("neg(neg(y))"), rng, { maxDepth: 2 })
  }
  t.throws(tooShallow, /no initial tree within the limits/)
})

t.test("the records replay to the offspring; copies share the parent branch", async (t) => {
  fc.assert(fc.property(anyGraphArb, seedArb, (g, seed) => {
    const { graph, how } = offspring(g, new Rng(seed))
    assert.equal(how.length, g.branches.length)
    how.forEach((change: BranchChange, i) => {
      const before = g.branches[i] as Branch
      const after = graph.branches[i] as Branch
      assert.equal(change.branch, before.name)
      assert.equal(after.name, before.name)
      assert.equal(after.kind, before.kind)
      switch (change.kind) {
        case "copy":
          assert.equal(after, before)
          break
        case "reinit":
          assert.ok(nodesOf(after.root).every((l) => (l.node.type === "input") === (l.path.length === 3)))
          break
        case "mutate":
          assert.equal(change.mutations.length, 2)
          assert.deepStrictEqual(change.mutations.reduce(replay, before.root), after.root)
      }
    })
  }), FC)
  t.pass()
})

t.test("copy / re-init / mutate frequencies are 10% / 45% / 45%", async (t) => {
  const n = 10_000
  const rng = new Rng(11)
  const parent = parseLoss("rpn_cls: neg(mul(y, log(y_hat))); rpn_reg: neg(log(mul(i, inv(e))))")
  const counts = { copy: 0, reinit: 0, mutate: 0 }
  let bothCopied = 0
  const firstKinds = { insertion: 0, deletion: 0, replacement: 0 }
  for (let k = 0; k < n; k++) {
    const { how } = offspring(parent, rng)
    const [cls, reg] = how as [BranchChange, BranchChange]
    counts[cls.kind] += 1
    if (cls.kind === "copy" && reg.kind === "copy") bothCopied += 1
    // The parent branch has 3 operators, so all three kinds apply to the first mutation.
    if (cls.kind === "mutate") firstKinds[cls.mutations[0]!.kind] += 1
  }
  t.ok(within5Sigma(counts.copy, n, 0.1), `copy ${counts.copy}`)
  t.ok(within5Sigma(counts.reinit, n, 0.45), `reinit ${counts.reinit}`)
  t.ok(within5Sigma(counts.mutate, n, 0.45), `mutate ${counts.mutate}`)
  t.ok(within5Sigma(bothCopied, n, 0.01), `branches draw independently: both copied ${bothCopied}`)
  for (const [kind, c] of Object.entries(firstKinds)) t.ok(within5Sigma(c, counts.mutate, 1 / 3), `${kind} ${c} of ${counts.mutate}`)
})

t.test("insertion adds one operator (and one input for add/mul) above the chosen node", async (t) => {
  fc.assert(fc.property(kindArb.chain((k) => fc.tuple(fc.constant(k), treeArb(k))), seedArb, ([kind, root], seed) => {
    const { root: out, mutation: m } = insertion(root, kind, new Rng(seed))
    assert.equal(m.kind, "insertion")
    if (m.kind !== "insertion") return
    const arity = arityOf(m.op)
    assert.equal(sizeOf(out), sizeOf(root) + arity)
    assert.equal(opCountOf(out), opCountOf(root) + 1)
    const inserted = nodeAt(out, m.path)
    assert.ok(inserted.type === "op" && inserted.op === m.op)
    // The old subtree is kept as is (same object), in the recorded argument slot.
    assert.equal(nodeAt(out, [...m.path, m.slot]), nodeAt(root, m.path))
    if (arity === 2) assert.deepStrictEqual(nodeAt(out, [...m.path, 1 - m.slot]), input(m.input as string))
    assert.ok(depthOf(out) - depthOf(root) <= 1)
  }), FC)
  t.pass()
})

t.test("deletion removes one operator and the arguments it did not keep", async (t) => {
  fc.assert(fc.property(kindArb.chain((k) => treeArb(k)), seedArb, (root, seed) => {
    const result = deletion(root, new Rng(seed))
    if (opCountOf(root) < 2) return assert.equal(result, undefined)
    const { root: out, mutation: m } = result as NonNullable<typeof result>
    assert.equal(m.kind, "deletion")
    if (m.kind !== "deletion") return
    const removed = nodeAt(root, m.path)
    assert.ok(removed.type === "op")
    const dropped = removed.args.filter((_, i) => i !== m.kept).reduce((s, a) => s + sizeOf(a), 0)
    assert.equal(sizeOf(out), sizeOf(root) - 1 - dropped)
    assert.equal(nodeAt(out, m.path), removed.args[m.kept])
    assert.ok(opCountOf(out) >= 1, "a branch keeps an operator")
  }), FC)
  t.equal(deletion(parseLoss("add(y, y_hat)").branches[0]!.root, new Rng(1)), undefined, "one operator: not applicable")
  // With two operators where the top's arguments are a leaf and an op, removing the top must keep the op.
  const root = parseLoss("add(y, neg(y_hat))").branches[0]!.root
  const rng = new Rng(5)
  for (let k = 0; k < 200; k++) assert.notEqual(deletion(root, rng)?.root.type, "input")
})

t.test("replacement swaps one operator, dropping or adding arguments to fit its arity", async (t) => {
  fc.assert(fc.property(kindArb.chain((k) => fc.tuple(fc.constant(k), treeArb(k))), seedArb, ([kind, root], seed) => {
    const result = replacement(root, kind, new Rng(seed))
    if (opCountOf(root) === 0) return assert.equal(result, undefined)
    const { root: out, mutation: m } = result as NonNullable<typeof result>
    assert.equal(m.kind, "replacement")
    if (m.kind !== "replacement") return
    const old = nodeAt(root, m.path)
    const now = nodeAt(out, m.path)
    assert.ok(old.type === "op" && now.type === "op" && old.op === m.from && now.op === m.to)
    assert.equal(now.args.length, arityOf(m.to))
    assert.equal(m.kept.length + m.added.length, arityOf(m.to))
    assert.deepStrictEqual([...m.kept].sort(), [...m.kept], "kept arguments stay in order")
    m.kept.forEach((oldIndex, i) => assert.equal(now.args[i], old.args[oldIndex]))
    assert.ok(m.added.every((name) => kind.inputs.includes(name)))
    const dropped = old.args.filter((_, i) => !m.kept.includes(i)).reduce((s, a) => s + sizeOf(a), 0)
    assert.equal(sizeOf(out), sizeOf(root) + m.added.length - dropped)
  }), FC)
  t.equal(replacement(input("y"), DENSE, new Rng(1)), undefined, "no operator: not applicable")
  // 2 → 1 keeps either argument about equally often.
  const rng = new Rng(8)
  const keptFirst = { n: 0, of: 0 }
  const root = op("add", input("y"), input("y_hat"))
  for (let k = 0; k < 14_000; k++) {
    const m = replacement(root, DENSE, rng)!.mutation
    if (m.kind === "replacement" && m.kept.length === 1) {
      keptFirst.of += 1
      if (m.kept[0] === 0) keptFirst.n += 1
    }
  }
  t.ok(within5Sigma(keptFirst.n, keptFirst.of, 0.5), `kept the first ${keptFirst.n} of ${keptFirst.of}`)
})

t.test("mutation kind is uniform over the applicable kinds", async (t) => {
  const rng = new Rng(21)
  const n = 6000
  const single = parseLoss("neg(y)").branches[0]!.root
  const counts = new Map<string, number>()
  for (let k = 0; k < n; k++) {
    const kind = mutateOnce(single, DENSE, rng).mutation.kind
    counts.set(kind, (counts.get(kind) ?? 0) + 1)
  }
  t.equal(counts.get("deletion"), undefined, "one operator: no deletion")
  t.ok(within5Sigma(counts.get("insertion") ?? 0, n, 0.5), `insertion ${counts.get("insertion")}`)
  const leaf = mutateOnce(input("u"), BOX, rng)
  t.equal(leaf.mutation.kind, "insertion", "a bare input can only get an operator inserted")
})

t.test("untouched subtrees are shared with the parent", async (t) => {
  const parent = parseLoss("add(neg(y), mul(y_hat, log(y)))").branches[0]!.root
  const out = replaceAt(parent, [1, 1], input("one"))
  t.equal(nodeAt(out, [0]), nodeAt(parent, [0]))
  t.equal(nodeAt(out, [1, 0]), nodeAt(parent, [1, 0]))
  t.equal(printLoss({ branches: [{ name: "loss", kind: DENSE, root: out }] }), "add(neg(y), mul(y_hat, one))")
  t.same(opNodesOf(parent).map((l) => l.path), [[], [0], [1], [1, 1]])
  t.throws(() => nodeAt(parent, [0, 1]), RangeError)
  t.throws(() => replaceAt(parent, [2], input("y")), RangeError)
})

t.test("same seed, same offspring", async (t) => {
  const parent: LossGraph = randomLoss([{ name: "a", kind: DENSE }, { name: "b", kind: BOX }], new Rng(5))
  const lineage = (seed: number): string[] => {
    const rng = new Rng(seed)
    return Array.from({ length: 20 }, () => printLoss(offspring(parent, rng).graph))
  }
  t.same(lineage(77), lineage(77))
  t.not(lineage(77).join("\n"), lineage(78).join("\n"))
})
