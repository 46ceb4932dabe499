/**
 * `autoloss parse "<expr>"`: check a loss expression and show its canonical form, hash, depth,
 * size and LaTeX. Multi-branch: `depth` is the max and `size` the sum over branches (per-branch
 * values under `branches`).
 */
import { GraphSyntaxError, parseLoss, printLoss } from "../../graph/syntax.ts"
import { GraphValidationError, depthOf, sizeOf, validateLoss } from "../../graph/validate.ts"
import { canonicalLoss, hashLoss } from "../../graph/canonical.ts"
import { toLatex } from "../../graph/latex.ts"
import { parseKinds, pointAt } from "../args.ts"
import { defineVerb } from "../verb.ts"

export const { spec, summary, run } = defineVerb({
  name: "parse",
  summary: "check a loss expression; print canonical form, hash, depth, size, LaTeX",
  positionals: '"<expr>"',
  positionalNoun: "expression",
  positionalCount: 1,
  flags: {
    kind: { type: "string", multiple: true, value: "BRANCH=dense|box", help: "the kind of a branch whose leaves do not tell it (a box branch built only from `one`)" },
    json: { type: "boolean", default: false, help: "print one JSON object ({ok, canonical, hash, depth, size, latex, branches} or {ok: false, error, column|branch,path})" }
  },
  description: `
Multi-branch losses ("name: expr; name: expr"): depth is the max and size the sum over branches.
Exit: 0 valid, 2 invalid expression (the column of a syntax error is marked; as in every verb,
an expression that does not parse or validate is a usage error) or another usage error.`,
  examples: ['autoloss parse "neg(mul(y, log(y_hat)))"', 'autoloss parse "rpn_cls: neg(mul(y, log(y_hat))); rpn_reg: abs(sub(i, u))" --json']
}, async ({ values, positionals }, out) => {
  const text = positionals[0]!
  const kinds = parseKinds(values.kind ?? [])
  try {
    const g = parseLoss(text, { kinds })
    validateLoss(g)
    const branches = g.branches.map((b) => ({ name: b.name, kind: b.kind.name, depth: depthOf(b.root), size: sizeOf(b.root) }))
    const report = {
      ok: true,
      canonical: printLoss(canonicalLoss(g)),
      hash: hashLoss(g),
      depth: Math.max(...branches.map((b) => b.depth)),
      size: branches.reduce((sum, b) => sum + b.size, 0),
      latex: toLatex(g),
      branches
    }
    if (values.json) {
      out.stdout(JSON.stringify(report) + "\n")
    } else {
      const lines = [
        `canonical  ${report.canonical}`,
        `hash       ${report.hash}`,
        `depth      ${report.depth}${g.branches.length > 1 ? " (max over branches)" : ""}`,
        `size       ${report.size}${g.branches.length > 1 ? " (sum over branches)" : ""}`,
        `latex      ${report.latex}`
      ]
      out.stdout(lines.join("\n") + "\n")
    }
    return 0
  } catch (e) {
    if (e instanceof GraphSyntaxError) {
      if (values.json) out.stdout(JSON.stringify({ ok: false, error: e.message, column: e.column }) + "\n")
      else out.stderr(`autoloss parse: ${e.message}${pointAt(text, e.column)}\n`)
      return 2
    }
    if (e instanceof GraphValidationError) {
      if (values.json) out.stdout(JSON.stringify({ ok: false, error: e.message, branch: e.branch, path: e.path }) + "\n")
      else out.stderr(`autoloss parse: ${e.message}\n`)
      return 2
    }
    throw e
  }
})
