/**
 * `autoloss simplify "<expr>" [--ranges probabilities|areas|name=lo:hi,...] [--exact-only] [--json]`:
 * rewrite a loss to a smaller equivalent one and check numerically (value and finite-difference
 * gradients on random inputs in the declared ranges) that nothing changed.
 * Exit 0 ok, 1 invalid expression or a verification disagreement, 2 usage error.
 */
import { parseArgs } from "node:util"
import { GraphSyntaxError, parseLoss, printLoss } from "../../graph/syntax.ts"
import { GraphValidationError, validateLoss } from "../../graph/validate.ts"
import { RANGE_PRESETS, type Range, type Ranges, simplifyLoss, verifySimplification } from "../../graph/simplify.ts"
import { firstSentence, pointAt, UsageError } from "../args.ts"

export const summary = "simplify a loss expression and verify value and gradients numerically"

const USAGE = 'usage: autoloss simplify "<expr>" [--ranges probabilities|areas|name=lo:hi,...] [--exact-only] [--json]'

/** Presets by name, or `name=lo:hi` pairs (`inf` allowed), comma separated; later entries win. */
export const parseRanges = (spec: string): Ranges => {
  const ranges: Record<string, Range> = {}
  for (const part of spec.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
    const preset = RANGE_PRESETS[part]
    if (preset !== undefined) {
      Object.assign(ranges, preset)
      continue
    }
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=([^:]+):([^:]+)$/.exec(part)
    const bound = (s: string): number => (/^[+-]?inf$/i.test(s) ? (s.startsWith("-") ? -Infinity : Infinity) : Number(s))
    const [lo, hi] = m === null ? [NaN, NaN] : [bound(m[2]!), bound(m[3]!)]
    if (m === null || Number.isNaN(lo) || Number.isNaN(hi) || lo > hi) {
      throw new UsageError(
        `--ranges: '${part}' is neither a preset (${Object.keys(RANGE_PRESETS).join(", ")}) nor name=lo:hi with lo ≤ hi`
      )
    }
    ranges[m[1]!] = [lo, hi]
  }
  return ranges
}

export const run = async (argv: ReadonlyArray<string>): Promise<number> => {
  let args
  let ranges: Ranges
  try {
    args = parseArgs({
      args: [...argv],
      options: {
        json: { type: "boolean", default: false },
        ranges: { type: "string", default: "" },
        "exact-only": { type: "boolean", default: false }
      },
      allowPositionals: true,
      strict: true
    })
    ranges = parseRanges(args.values.ranges)
  } catch (e) {
    process.stderr.write(`autoloss simplify: ${firstSentence((e as Error).message)}\n${USAGE}\n`)
    return 2
  }
  const [text, ...extra] = args.positionals
  if (text === undefined || extra.length > 0) {
    process.stderr.write(`autoloss simplify: want exactly one expression, got ${args.positionals.length}\n${USAGE}\n`)
    return 2
  }
  const json = args.values.json
  let g
  try {
    g = parseLoss(text)
    validateLoss(g)
  } catch (e) {
    if (!(e instanceof GraphSyntaxError || e instanceof GraphValidationError)) throw e
    if (json) process.stdout.write(JSON.stringify({ input: text, error: e.message }) + "\n")
    const caret = e instanceof GraphSyntaxError ? pointAt(text, e.column) : ""
    process.stderr.write(`autoloss simplify: invalid expression: ${e.message}${caret}\n`)
    return 1
  }
  const { graph, steps, exact } = simplifyLoss(g, { ranges, exactOnly: args.values["exact-only"] })
  const check = verifySimplification(g, graph, { ranges })
  const report = {
    input: text,
    simplified: printLoss(graph),
    verified: check.verified,
    exact,
    steps,
    ...(check.failures.length > 0 ? { failures: check.failures } : {}),
    ...(check.inconclusive !== undefined ? { inconclusive: check.inconclusive } : {})
  }
  if (json) {
    process.stdout.write(JSON.stringify(report) + "\n")
  } else {
    const lines = [
      `input       ${report.input}`,
      `simplified  ${report.simplified}`,
      `verified    ${report.verified}${check.inconclusive !== undefined ? ` (${check.inconclusive})` : ""}`,
      `exact       ${exact}${exact ? "" : " (some rules are exact up to float rounding)"}`,
      ...steps.map((s, i) => `${i === 0 ? "steps       " : "            "}${s}`),
      ...check.failures.map((f) => `FAILED      ${f}`)
    ]
    process.stdout.write(lines.join("\n") + "\n")
  }
  // A disagreement means a rewrite rule is wrong: never let it pass silently.
  return check.failures.length > 0 ? 1 : 0
}
