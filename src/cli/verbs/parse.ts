/**
 * `autoloss parse "<expr>" [--kind BRANCH=dense|box ...] [--json]`: check a loss expression and show its canonical form, hash,
 * depth, size and LaTeX. Multi-branch: `depth` is the max and `size` the sum over branches
 * (per-branch values under `branches`). Exit 0 ok, 1 invalid loss, 2 usage error.
 */
import { parseArgs } from "node:util"
import { GraphSyntaxError, parseLoss, printLoss } from "../../graph/syntax.ts"
import { GraphValidationError, depthOf, sizeOf, validateLoss } from "../../graph/validate.ts"
import { canonicalLoss, hashLoss } from "../../graph/canonical.ts"
import { toLatex } from "../../graph/latex.ts"
import { firstSentence, parseKinds, pointAt } from "../args.ts"

export const summary = "check a loss expression; print canonical form, hash, depth, size, LaTeX"

const USAGE = 'usage: autoloss parse "<expr>" [--kind BRANCH=dense|box ...] [--json]'


export const run = async (argv: ReadonlyArray<string>): Promise<number> => {
  let args
  let kinds
  try {
    args = parseArgs({
      args: [...argv],
      options: { json: { type: "boolean", default: false }, kind: { type: "string", multiple: true } },
      allowPositionals: true,
      strict: true
    })
    kinds = parseKinds(args.values.kind ?? [])
  } catch (e) {
    process.stderr.write(`autoloss parse: ${firstSentence((e as Error).message)}\n${USAGE}\n`)
    return 2
  }
  const [text, ...extra] = args.positionals
  if (text === undefined || extra.length > 0) {
    process.stderr.write(`autoloss parse: want exactly one expression, got ${args.positionals.length}\n${USAGE}\n`)
    return 2
  }
  const json = args.values.json
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
    if (json) {
      process.stdout.write(JSON.stringify(report) + "\n")
    } else {
      const lines = [
        `canonical  ${report.canonical}`,
        `hash       ${report.hash}`,
        `depth      ${report.depth}${g.branches.length > 1 ? " (max over branches)" : ""}`,
        `size       ${report.size}${g.branches.length > 1 ? " (sum over branches)" : ""}`,
        `latex      ${report.latex}`
      ]
      process.stdout.write(lines.join("\n") + "\n")
    }
    return 0
  } catch (e) {
    if (e instanceof GraphSyntaxError) {
      if (json) process.stdout.write(JSON.stringify({ ok: false, error: e.message, column: e.column }) + "\n")
      else process.stderr.write(`autoloss parse: ${e.message}${pointAt(text, e.column)}\n`)
      return 1
    }
    if (e instanceof GraphValidationError) {
      if (json) process.stdout.write(JSON.stringify({ ok: false, error: e.message, branch: e.branch, path: e.path }) + "\n")
      else process.stderr.write(`autoloss parse: ${e.message}\n`)
      return 1
    }
    throw e
  }
}
