// Text syntax: exact inverse printing, whitespace tolerance, kind inference, errors with columns.
import t from "tap"
import assert from "node:assert/strict"
import fc from "fast-check"
import { BOX, DENSE, input, op } from "../../src/graph/types.ts"
import type { BranchKind } from "../../src/graph/types.ts"
import { GraphSyntaxError, kindsOf, parseLoss, printLoss, printNode } from "../../src/graph/syntax.ts"
import { FC, anyGraphArb } from "./_arbitraries.ts"

t.test("parse(print(g)) deep-equals g", async (t) => {
  fc.assert(fc.property(anyGraphArb, (g) => {
    assert.deepStrictEqual(parseLoss(printLoss(g), { kinds: kindsOf(g) }), g)
  }), FC)
  t.pass(`${FC.numRuns} graphs round-tripped`)
})

t.test("print(parse(s)) == s for canonically spaced text", async (t) => {
  const texts = [
    "neg(mul(y, log(y_hat)))",
    "exp(square(add(y, neg(sqrt(y_hat)))))",
    "tanh(sqrt(mean_nhw(mul(neg(log(y_hat)), sqrt(max_pool(sqrt(add(y, y))))))))",
    "rpn_cls: neg(mul(y, log(y_hat))); rpn_reg: neg(log(mul(i, inv(e))))",
    "rpn_reg: mul(e, inv(add(i, u)))",
    "y_hat"
  ]
  for (const s of texts) t.equal(printLoss(parseLoss(s)), s)
})

t.test("tree shape, default branch name and kind inference", async (t) => {
  t.strictSame(parseLoss("neg(mul(y, log(y_hat)))"), {
    branches: [{ name: "loss", kind: DENSE, root: op("neg", op("mul", input("y"), op("log", input("y_hat")))) }]
  })
  const det = parseLoss("rpn_cls: neg(mul(y, log(y_hat))); rpn_reg: neg(log(mul(i, inv(e))))")
  t.same(det.branches.map((b) => [b.name, b.kind.name]), [["rpn_cls", "dense"], ["rpn_reg", "box"]])
  // `one` fits both kinds: the first built-in (dense) wins unless told otherwise.
  t.equal(parseLoss("neg(one)").branches[0]?.kind, DENSE)
  t.equal(parseLoss("neg(one)", { kinds: { loss: BOX } }).branches[0]?.kind, BOX)
  t.equal(parseLoss("add(one, u)").branches[0]?.kind, BOX)
  const heatmap: BranchKind = { name: "heatmap", inputs: ["y_hat", "y", "w"] }
  t.equal(parseLoss("kp: mul(w, y)", { kinds: { kp: heatmap } }).branches[0]?.kind, heatmap)
  // A name that is an Object.prototype key is not a kind given.
  t.equal(parseLoss("constructor: y", { kinds: {} }).branches[0]?.kind, DENSE)
})

t.test("whitespace is free between tokens", async (t) => {
  const spaced = " \t neg ( mul(\ny ,log (  y_hat ) ) )\n"
  t.strictSame(parseLoss(spaced), parseLoss("neg(mul(y, log(y_hat)))"))
  t.equal(printLoss(parseLoss("a :y ;b:  neg( y )")), "a: y; b: neg(y)")
})

t.test("printNode writes op(a, b)", async (t) => {
  t.equal(printNode(op("add", input("y"), op("inv", input("one")))), "add(y, inv(one))")
  t.equal(printLoss({ branches: [{ name: "rpn_cls", kind: DENSE, root: input("y") }] }), "rpn_cls: y")
})

t.test("syntax errors name the column and what was expected", async (t) => {
  const cases: Array<[text: string, column: number, message: string, expected: RegExp]> = [
    ["neg(mul(y, log(y_hat)) x", 24, "expected ')' or ',' at column 24", /'\)' or ','/],
    ["neg(mul(y, log(y_hat)", 22, "expected ')' or ',' at column 22", /'\)' or ','/],
    ["neg(lgo(y))", 5, "unknown operator 'lgo' at column 5", /an operator \(add, mul, /],
    ["add(y)", 1, "operator 'add' takes 2 arguments, got 1 at column 1", /^2 arguments$/],
    ["neg(log(y, y))", 5, "operator 'log' takes 1 argument, got 2 at column 5", /^1 argument$/],
    ["log y", 5, "expected '(' after operator 'log' at column 5", /'\('/],
    ["", 1, "expected an operator or input at column 1", /operator or input/],
    ["add(y, )", 8, "expected an operator or input at column 8", /operator or input/],
    ["neg(z)", 5, "unknown input 'z' at column 5", /one of y_hat, y, one, i, u, e/],
    ["add(y, i)", 8, "input 'i' does not fit the branch kind of the earlier inputs (dense: y_hat, y, one) at column 8", /y_hat, y, one/],
    ["neg(y); y", 7, "expected end of input at column 7", /end of input/],
    ["a: y; a: y", 7, "duplicate branch name 'a' at column 7", /new branch name/],
    ["a: y;", 6, "expected a branch name at column 6", /branch name/],
    ["a: y b: y", 6, "expected ';' or end of input at column 6", /';'/],
    ["a: y; neg(y)", 10, "expected ':' after branch name 'neg' at column 10", /':'/],
    ["log(y$)", 6, "expected ')' or ',' at column 6", /'\)' or ','/],
    ["2", 1, "expected an operator or input at column 1", /operator or input/]
  ]
  for (const [text, column, message, expected] of cases) {
    const err = t.throws(() => parseLoss(text), GraphSyntaxError, JSON.stringify(text)) as unknown as GraphSyntaxError
    t.equal(err.message, message, JSON.stringify(text))
    t.match(err.expected, expected, JSON.stringify(text))
    t.equal(err.column, column, JSON.stringify(text))
  }
  const box = t.throws(() => parseLoss("reg: add(i, y)", { kinds: { reg: BOX } })) as unknown as GraphSyntaxError
  t.equal(box.message, "unknown input 'y' for branch 'reg' (box: i, u, e, one) at column 13")
})

t.test("absurd nesting is a syntax error, not a stack overflow", async (t) => {
  const deep = "neg(".repeat(5000) + "y" + ")".repeat(5000)
  t.throws(() => parseLoss(deep), { name: "GraphSyntaxError", message: /nesting deeper than 1000 at column 4005/ })
})
