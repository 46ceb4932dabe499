// LaTeX printer: the paper's discovered losses and the precedence corner cases, written by hand.
import t from "tap"
import fc from "fast-check"
import { OP_NAMES } from "../../src/graph/ops.ts"
import { input, op, DENSE } from "../../src/graph/types.ts"
import { parseLoss } from "../../src/graph/syntax.ts"
import { nodeToLatex, toLatex } from "../../src/graph/latex.ts"
import { FC, anyGraphArb } from "./_arbitraries.ts"

const tex = (s: string): string => toLatex(parseLoss(s))

t.test("paper Table 8 losses", async (t) => {
  t.equal(tex("neg(mul(y, log(y_hat)))"), "-y \\cdot \\log\\left(\\hat{y}\\right)")
  t.equal(tex("exp(square(add(y, neg(sqrt(y_hat)))))"), "\\exp\\left(\\left(y + \\left(-\\sqrt{\\hat{y}}\\right)\\right)^{2}\\right)")
  t.equal(tex("neg(log(mul(i, inv(e))))"), "-\\log\\left(i \\cdot \\frac{1}{e + \\epsilon}\\right)")
  t.equal(tex("mul(e, inv(add(i, u)))"), "e \\cdot \\frac{1}{i + u + \\epsilon}")
  t.equal(tex("tanh(sqrt(mean_nhw(mul(neg(log(y_hat)), sqrt(max_pool(sqrt(add(y, y))))))))"),
    "\\tanh\\left(\\sqrt{\\operatorname{mean}_{NHW}\\left(\\left(-\\log\\left(\\hat{y}\\right)\\right) \\cdot " +
    "\\sqrt{\\operatorname{maxpool}\\left(\\sqrt{y + y}\\right)}\\right)}\\right)")
})

t.test("parentheses only where precedence needs them", async (t) => {
  t.equal(tex("mul(add(y, one), y_hat)"), "\\left(y + 1\\right) \\cdot \\hat{y}")
  t.equal(tex("add(mul(y, one), y_hat)"), "y \\cdot 1 + \\hat{y}")
  t.equal(tex("add(y, add(y_hat, one))"), "y + \\hat{y} + 1")
  t.equal(tex("neg(add(y, one))"), "-\\left(y + 1\\right)")
  t.equal(tex("neg(neg(y))"), "-\\left(-y\\right)")
  t.equal(tex("add(neg(y), y_hat)"), "-y + \\hat{y}")
  t.equal(tex("square(y_hat)"), "\\hat{y}^{2}")
  t.equal(tex("square(abs(y))"), "\\left|y\\right|^{2}")
  t.equal(tex("square(neg(y))"), "\\left(-y\\right)^{2}")
  t.equal(tex("square(log(y))"), "\\left(\\log\\left(y\\right)\\right)^{2}")
  t.equal(tex("square(inv(y))"), "\\left(\\frac{1}{y + \\epsilon}\\right)^{2}")
  t.equal(tex("mean_c(min_pool(y))"), "\\operatorname{mean}_{C}\\left(\\operatorname{minpool}\\left(y\\right)\\right)")
})

t.test("branches and unknown inputs", async (t) => {
  t.equal(tex("rpn_cls: neg(y); rpn_reg: u"), "L_{\\mathrm{rpn\\_cls}} = -y,\\quad L_{\\mathrm{rpn\\_reg}} = u")
  t.equal(nodeToLatex(op("abs", input("w_1"))), "\\left|\\mathrm{w\\_1}\\right|")
  t.equal(toLatex({ branches: [{ name: "loss", kind: DENSE, root: input("one") }] }), "1")
})

t.test("each operator by itself; braces and \\left/\\right always balance", async (t) => {
  const count = (s: string, sub: string): number => s.split(sub).length - 1
  fc.assert(fc.property(anyGraphArb, (g) => {
    const s = toLatex(g)
    return count(s, "{") === count(s, "}") && count(s, "\\left") === count(s, "\\right")
  }), FC)
  const each: Record<(typeof OP_NAMES)[number], string> = {
    add: "y + \\hat{y}",
    mul: "y \\cdot \\hat{y}",
    neg: "-y",
    abs: "\\left|y\\right|",
    inv: "\\frac{1}{y + \\epsilon}",
    log: "\\log\\left(y\\right)",
    exp: "\\exp\\left(y\\right)",
    tanh: "\\tanh\\left(y\\right)",
    square: "y^{2}",
    sqrt: "\\sqrt{y}",
    mean_nhw: "\\operatorname{mean}_{NHW}\\left(y\\right)",
    mean_c: "\\operatorname{mean}_{C}\\left(y\\right)",
    max_pool: "\\operatorname{maxpool}\\left(y\\right)",
    min_pool: "\\operatorname{minpool}\\left(y\\right)"
  }
  for (const name of OP_NAMES) t.equal(tex(name === "add" || name === "mul" ? `${name}(y, y_hat)` : `${name}(y)`), each[name], name)
})
