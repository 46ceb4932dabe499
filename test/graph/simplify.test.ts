// Simplification: hand-written rewrite table, traps that must NOT be rewritten (ε, pooling), a
// verifier that can fail, random graphs (value/gradient preserved, never larger), the CLI verb.
import t from "tap"
import fc from "fast-check"
import { execa } from "execa"
import { fileURLToPath } from "node:url"
import { UNARY, BINARY } from "./_arbitraries.ts"
import { Rng } from "../../src/graph/rng.ts"
import { randomLoss } from "../../src/graph/random.ts"
import { parseLoss, printLoss } from "../../src/graph/syntax.ts"
import { BOX, DENSE, input, op } from "../../src/graph/types.ts"
import type { BranchKind, LossGraph, Node } from "../../src/graph/types.ts"
import { sizeOf, validateLoss } from "../../src/graph/validate.ts"
import { RANGE_PRESETS, constancyOf, nonNegative, simplifyLoss, verifySimplification } from "../../src/graph/simplify.ts"
import type { Shape } from "../../src/graph/evaluate.ts"
import type { OpName } from "../../src/graph/ops.ts"

const simplified = (text: string, ranges = {}): { text: string; exact: boolean; steps: ReadonlyArray<string> } => {
  const r = simplifyLoss(parseLoss(text), { ranges })
  return { text: printLoss(r.graph), exact: r.exact, steps: r.steps }
}

// [input, expected, exact]: every expected text worked out by hand from the operator definitions.
const REWRITES: ReadonlyArray<readonly [string, string, boolean]> = [
  ["neg(neg(y_hat))", "y_hat", true],
  ["neg(neg(neg(one)))", "neg(one)", true],
  ["abs(neg(y))", "abs(y)", true],
  ["abs(log(neg(y)))", "abs(log(y))", true],
  ["square(mean_c(neg(y)))", "square(mean_c(y))", true],
  ["square(mul(y_hat, neg(y)))", "square(mul(y_hat, y))", true],
  ["abs(abs(y))", "abs(y)", true],
  ["abs(square(y_hat))", "square(y_hat)", true],
  ["abs(exp(y))", "exp(y)", true],
  ["abs(one)", "one", true],
  ["abs(mean_nhw(inv(square(y))))", "mean_nhw(inv(square(y)))", true],
  ["abs(mul(exp(y), add(abs(y_hat), one)))", "mul(exp(y), add(abs(y_hat), one))", true],
  ["square(neg(y))", "square(y)", true],
  ["square(abs(y_hat))", "square(y_hat)", true],
  ["square(neg(abs(y)))", "square(y)", true],
  ["mul(one, y)", "y", true],
  ["mul(y_hat, one)", "y_hat", true],
  ["mul(y, y)", "square(y)", true],
  ["mul(neg(y), neg(y_hat))", "mul(y, y_hat)", true],
  ["add(neg(y), neg(y_hat))", "neg(add(y, y_hat))", true],
  ["neg(mul(y, log(neg(y_hat))))", "mul(y, log(y_hat))", true],
  ["neg(sqrt(neg(y)))", "sqrt(y)", true],
  ["neg(mul(neg(y), y_hat))", "mul(y, y_hat)", true],
  ["add(log(neg(y)), mul(y_hat, neg(y)))", "neg(add(log(y), mul(y_hat, y)))", true],
  ["neg(mean_c(neg(y)))", "mean_c(y)", true],
  ["neg(min_pool(neg(y)))", "max_pool(y)", true],
  ["mean_nhw(one)", "one", true],
  ["mean_c(one)", "one", true],
  ["max_pool(one)", "one", true],
  ["min_pool(one)", "one", true],
  ["max_pool(mean_nhw(y))", "mean_nhw(y)", true],
  ["min_pool(exp(mean_nhw(y)))", "exp(mean_nhw(y))", true],
  ["max_pool(mul(mean_nhw(y), one))", "mean_nhw(y)", true],
  ["square(one)", "one", true],
  ["mul(add(one, one), one)", "add(one, one)", true],
  ["tanh(square(neg(one)))", "tanh(one)", true],
  ["add(y, mul(square(one), exp(abs(one))))", "add(y, exp(one))", true],
  // Means of a quantity constant along the averaged axes: equal in real arithmetic only.
  ["mean_c(mean_c(y))", "mean_c(y)", false],
  ["mean_nhw(mean_nhw(y_hat))", "mean_nhw(y_hat)", false],
  ["mean_c(mean_nhw(mean_c(y)))", "mean_nhw(mean_c(y))", false],
  ["mean_c(exp(one))", "exp(one)", false],
  ["neg(tanh(neg(y)))", "tanh(y)", false],
  ["mul(neg(y), tanh(neg(y_hat)))", "mul(y, tanh(y_hat))", false]
]

t.test("rewrite table", async (t) => {
  for (const [text, want, exact] of REWRITES) {
    const got = simplified(text)
    t.equal(got.text, want, text)
    t.equal(got.exact, exact, `${text}: exact`)
    t.ok(got.steps.length > 0, `${text}: steps recorded`)
  }
})

t.test("not identities under ε, or not idempotent: left alone", async (t) => {
  for (const text of [
    "inv(inv(y))", // 1/(1/(y+ε)+ε) ≠ y
    "log(one)", // log(1 + ε) ≈ 1e-12, not 0: inv(log(one)) = 5e11, inv(0) = 1e12
    "sqrt(one)", // √(1 + ε)
    "inv(one)",
    "inv(log(one))",
    "inv(neg(y))", // 1/(−y+ε) ≠ −1/(y+ε)
    "square(sqrt(y))", // |y| + ε
    "exp(log(y))",
    "max_pool(max_pool(y))", // a 5×5 pool
    "min_pool(min_pool(y_hat))",
    "max_pool(mean_c(y))", // mean_c is not constant over H, W
    "mean_nhw(mean_c(y))", // mean_c is not constant over N, H, W
    "mean_c(max_pool(y))",
    "abs(y_hat)", // no range declared: y_hat may be negative
    "abs(log(square(y)))", // log(x) < 0 on (0, 1)
    "abs(tanh(y))",
    "add(y, y)",
    "exp(neg(y))",
    // A neg moves only when it cancels: nothing to gain here.
    "max_pool(neg(y))",
    "tanh(neg(y))",
    "log(mul(neg(y), y_hat))",
    "add(neg(y), y_hat)",
    "neg(inv(neg(y)))",
    "neg(exp(neg(y)))",
    "abs(inv(neg(y)))",
    "square(exp(neg(y)))",
    "mul(neg(y), exp(neg(y_hat)))"
  ]) {
    const got = simplified(text)
    t.equal(got.text, text, text)
    t.same(got.steps, [], `${text}: no steps`)
  }
})

t.test("declared input ranges enable abs removal, and only on non-negative quantities", async (t) => {
  const p = RANGE_PRESETS["probabilities"]!
  t.equal(simplified("abs(y_hat)", p).text, "y_hat")
  t.equal(simplified("abs(mul(y, sqrt(y_hat)))", p).text, "mul(y, sqrt(y_hat))")
  t.equal(simplified("abs(add(y, neg(y_hat)))", p).text, "abs(add(y, neg(y_hat)))")
  t.equal(simplified("abs(log(y_hat))", p).text, "abs(log(y_hat))")
  t.equal(simplified("abs(i)", RANGE_PRESETS["areas"]!).text, "i")
  t.equal(simplified("abs(i)", p).text, "abs(i)")
  t.equal(nonNegative(parseLoss("inv(tanh(min_pool(y)))").branches[0]!.root, { y: [0, 3] }), true)
  t.equal(nonNegative(parseLoss("inv(tanh(min_pool(y)))").branches[0]!.root, { y: [-1e-9, 3] }), false)
})

t.test("constancy analysis", async (t) => {
  const of = (text: string) => constancyOf(parseLoss(text).branches[0]!.root)
  t.same(of("one"), { c: true, hw: true, nhw: true })
  t.same(of("y"), { c: false, hw: false, nhw: false })
  t.same(of("mean_c(y)"), { c: true, hw: false, nhw: false })
  t.same(of("max_pool(mean_nhw(y))"), { c: false, hw: true, nhw: true })
  t.same(of("mul(mean_c(y), mean_nhw(y))"), { c: false, hw: false, nhw: false })
  t.same(of("mean_nhw(mean_c(y))"), { c: true, hw: true, nhw: true })
})

t.test("steps say which rule, where, and what it did", async (t) => {
  t.same(simplified("neg(mul(y, log(neg(y_hat))))").steps, [
    "neg(f(neg(x))) → f(x) for odd f: neg(mul(y, log(neg(y_hat)))) → mul(y, log(y_hat))"
  ])
  t.same(simplified("abs(mul(one, square(neg(y))))").steps, [
    "square(f(neg(x))) → square(f(x)) for odd f: square(neg(y)) → square(y)",
    "mul(one, x) → x: mul(one, square(y)) → square(y)",
    "abs(x) → x for x ≥ 0: abs(square(y)) → square(y)"
  ])
  const multi = simplified("cls: neg(neg(mul(y, log(y_hat)))); reg: mean_c(mean_c(i))")
  t.equal(multi.text, "cls: mul(y, log(y_hat)); reg: mean_c(i)")
  t.same(multi.steps, [
    "cls: neg(neg(x)) → x: neg(neg(mul(y, log(y_hat)))) → mul(y, log(y_hat))",
    "reg: mean_c(x) → x for x constant over C: mean_c(mean_c(i)) → mean_c(i) [rounding]"
  ])
  const exactOnly = simplifyLoss(parseLoss("neg(neg(add(mean_c(mean_c(y)), mean_c(one))))"), { exactOnly: true })
  t.equal(printLoss(exactOnly.graph), "add(mean_c(mean_c(y)), one)")
  t.equal(exactOnly.exact, true)
  t.equal(printLoss(simplifyLoss(parseLoss("neg(tanh(neg(y)))"), { exactOnly: true }).graph), "neg(tanh(neg(y)))")
})

t.test("the verifier fails on rewrites that are wrong", async (t) => {
  const check = (from: string, to: string, ranges = {}) => verifySimplification(parseLoss(from), parseLoss(to), { ranges, trials: 3 })
  t.equal(check("neg(neg(y))", "y").verified, true)
  t.equal(check("mean_c(mean_c(y))", "mean_c(y)").verified, true)
  // ε matters: 1/(1/(y + ε) + ε) is y only to ~1e-12 relative, far above VALUE_RTOL for y near 0…
  const inv = check("inv(add(inv(inv(y)), neg(y)))", "inv(add(y, neg(y)))")
  t.equal(inv.verified, false)
  t.match(inv.failures[0], /^trial 0 \(shape \[2,3,3,4\]\): value /)
  // …pooling is not idempotent…
  t.equal(check("max_pool(max_pool(y))", "max_pool(y)").verified, false)
  // …a wrong gradient with the right value at no point: sign flip of a term.
  t.equal(check("add(y, y_hat)", "add(y, neg(y_hat))").verified, false)
  // abs(y_hat) → y_hat holds only on the declared range.
  t.equal(check("abs(y_hat)", "y_hat").verified, false)
  t.equal(check("abs(y_hat)", "y_hat", RANGE_PRESETS["probabilities"]!).verified, true)
  // Not finite anywhere: nothing to compare gradients on, so not verified (but no disagreement).
  const inf = check("exp(exp(exp(exp(exp(add(one, one))))))", "exp(exp(exp(exp(exp(add(one, one))))))")
  t.equal(inf.verified, false)
  t.same(inf.failures, [])
  t.match(inf.inconclusive, /gradients were never compared/)
})

// Random trees rich in the patterns the rules look for, on both kinds (box: i, u, e, one).
const PATTERNS: ReadonlyArray<(a: Node, b: Node, f: OpName) => Node> = [
  // A sign through a random unary operator: cancels only if f is odd.
  (a, _b, f) => op("neg", op(f, op("neg", a))),
  (a, _b, f) => op("abs", op(f, op("neg", a))),
  (a, _b, f) => op("square", op(f, op("neg", a))),
  (a, b, f) => op("mul", op("neg", a), op(f, op("neg", b))),
  (a, b, f) => op("add", op(f, op("neg", a)), op("neg", b)),
  (a) => op("neg", op("neg", a)),
  (a) => op("abs", op("square", a)),
  (a) => op("abs", op("neg", a)),
  (a) => op("square", op("neg", a)),
  (a) => op("square", op("abs", a)),
  (a) => op("mul", input("one"), a),
  (a) => op("mul", a, a),
  (a, b) => op("mul", op("neg", a), op("neg", b)),
  (a, b) => op("add", op("neg", a), op("neg", b)),
  (a, b) => op("mul", op("neg", a), b),
  (a) => op("log", op("neg", a)),
  (a) => op("max_pool", op("neg", a)),
  (a) => op("max_pool", op("mean_nhw", a)),
  (a) => op("mean_c", op("mean_c", a)),
  (a) => op("mean_nhw", op("mean_nhw", a)),
  (a) => op("tanh", op("neg", a)),
  // Traps: look like the rules but are not identities (inv and exp are not odd).
  (a) => op("inv", op("neg", a)),
  (a) => op("exp", op("neg", a)),
  (a) => op("max_pool", op("max_pool", a)),
  () => op("square", op("abs", input("one"))),
  () => op("mean_c", op("exp", input("one")))
]

const patternTreeArb = (kind: BranchKind): fc.Arbitrary<Node> =>
  fc.letrec<{ node: Node }>((tie) => ({
    node: fc.oneof(
      { maxDepth: 4, depthIdentifier: "pattern" },
      fc.constantFrom(...kind.inputs).map(input),
      fc.tuple(fc.constantFrom(...UNARY), tie("node")).map(([o, a]) => op(o, a)),
      fc.tuple(fc.constantFrom(...BINARY), tie("node"), tie("node")).map(([o, a, b]) => op(o, a, b)),
      fc.tuple(fc.constantFrom(...PATTERNS), tie("node"), tie("node"), fc.constantFrom(...UNARY)).map(([p, a, b, f]) => p(a, b, f))
    )
  })).node

const graphArb: fc.Arbitrary<LossGraph> = fc.oneof(
  fc.tuple(fc.constantFrom(DENSE, BOX), fc.boolean()).chain(([kind, two]) =>
    fc.tuple(patternTreeArb(kind), patternTreeArb(DENSE)).map(([a, b]) => ({
      branches: two ? [{ name: "a", kind, root: a }, { name: "b", kind: DENSE, root: b }] : [{ name: "loss", kind, root: a }]
    }))
  ),
  fc.integer({ min: 0, max: 2 ** 31 }).map((seed) => randomLoss([{ name: "loss", kind: DENSE }], new Rng(seed)))
)

/** Small shapes keep finite differences cheap; still N, C, H, W > 1 and pooling borders. */
const SMALL: ReadonlyArray<Shape> = [[2, 2, 3, 3], [1, 3, 1, 2]]

t.test("random graphs: valid, never larger, a fixpoint, same value and gradients", async (t) => {
  let changed = 0
  let compared = 0
  fc.assert(
    fc.property(graphArb, (g) => {
      const { graph, steps } = simplifyLoss(g)
      validateLoss(graph)
      g.branches.forEach((b, i) => {
        const after = sizeOf(graph.branches[i]!.root)
        if (after > sizeOf(b.root)) throw new Error(`size grew: ${printLoss(g)} → ${printLoss(graph)}`)
      })
      const again = simplifyLoss(graph)
      if (again.steps.length > 0) throw new Error(`not a fixpoint: ${printLoss(graph)}: ${again.steps.join("; ")}`)
      if (steps.length === 0) return
      changed++
      const v = verifySimplification(g, graph, { trials: 2, shapes: SMALL })
      if (v.failures.length > 0) throw new Error(`${printLoss(g)} → ${printLoss(graph)}: ${v.failures.join("; ")}`)
      compared += v.gradientTrials
    }),
    { seed: 0x51a9, numRuns: 300 }
  )
  // The generator must actually exercise the rules and the gradient comparison.
  t.ok(changed >= 150, `${changed} of 300 graphs changed`)
  t.ok(compared >= 200, `${compared} gradient comparisons`)
})

const bin = fileURLToPath(new URL("../../bin/autoloss.js", import.meta.url))
const autoloss = (...args: string[]) => execa("node", [bin, ...args], { reject: false })

t.test("verb: simplify --json", async (t) => {
  const ok = await autoloss("simplify", "neg(mul(y, log(neg(y_hat))))", "--json")
  t.equal(ok.exitCode, 0, ok.stderr)
  const report = JSON.parse(ok.stdout) as Record<string, unknown>
  t.same(Object.keys(report), ["input", "simplified", "verified", "exact", "steps"])
  t.equal(report["input"], "neg(mul(y, log(neg(y_hat))))")
  t.equal(report["simplified"], "mul(y, log(y_hat))")
  t.equal(report["verified"], true)
  t.same(report["steps"], ["neg(f(neg(x))) → f(x) for odd f: neg(mul(y, log(neg(y_hat)))) → mul(y, log(y_hat))"])

  const ranged = await autoloss("simplify", "abs(y_hat)", "--ranges", "probabilities", "--json")
  t.equal(JSON.parse(ranged.stdout).simplified, "y_hat")

  const bad = await autoloss("simplify", "neg(lgo(y))", "--json")
  t.equal(bad.exitCode, 2, "an expression that does not parse is a usage error, in every verb")
  t.same(JSON.parse(bad.stdout), { input: "neg(lgo(y))", error: "unknown operator 'lgo' at column 5" })
  t.match(bad.stderr, /invalid expression: unknown operator 'lgo' at column 5\n  neg\(lgo\(y\)\)\n      \^/)
})
