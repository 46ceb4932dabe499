/** `autoloss simplify "<expr>"`: rewrite a loss to a smaller equivalent one and verify it numerically. */
import { GraphSyntaxError, parseLoss, printLoss } from "../../graph/syntax.ts"
import { GraphValidationError, validateLoss } from "../../graph/validate.ts"
import { RANGE_PRESETS, type Range, type Ranges, simplifyLoss, verifySimplification } from "../../graph/simplify.ts"
import { pointAt, UsageError } from "../args.ts"
import { defineVerb } from "../verb.ts"

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

export const { spec, summary, run } = defineVerb({
  name: "simplify",
  summary: "simplify a loss expression and verify value and gradients numerically",
  positionals: '"<expr>"',
  positionalNoun: "expression",
  positionalCount: 1,
  flags: {
    ranges: {
      type: "string", default: "", value: "PRESET|NAME=LO:HI,...",
      help: `input ranges the rewrites may assume and the check samples from: presets (${Object.keys(RANGE_PRESETS).join(", ")}) or name=lo:hi pairs (inf allowed), later entries win`,
      defaultText: "none"
    },
    "exact-only": { type: "boolean", default: false, help: "apply only rewrites that are exact in floating point" },
    json: { type: "boolean", default: false, help: "print {input, simplified, verified, exact, steps, failures?, inconclusive?}" }
  },
  description: `
Rewrites the loss to a smaller equivalent one, then checks numerically (value and finite-difference
gradients on random inputs in the declared ranges) that nothing changed.
Exit: 0 ok, 1 a verification disagreement (a rewrite rule is wrong), 2 usage error (incl. an
expression that does not parse or validate).`,
  examples: ['autoloss simplify "neg(neg(abs(square(y_hat))))"', 'autoloss simplify "log(exp(y_hat))" --ranges probabilities --json']
}, async ({ values, positionals }, out) => {
  const ranges = parseRanges(values.ranges)
  const text = positionals[0]!
  const json = values.json
  let g
  try {
    g = parseLoss(text)
    validateLoss(g)
  } catch (e) {
    if (!(e instanceof GraphSyntaxError || e instanceof GraphValidationError)) throw e
    if (json) out.stdout(JSON.stringify({ input: text, error: e.message }) + "\n")
    const caret = e instanceof GraphSyntaxError ? pointAt(text, e.column) : ""
    out.stderr(`autoloss simplify: invalid expression: ${e.message}${caret}\n`)
    return 2
  }
  const { graph, steps, exact } = simplifyLoss(g, { ranges, exactOnly: values["exact-only"] })
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
    out.stdout(JSON.stringify(report) + "\n")
  } else {
    const lines = [
      `input       ${report.input}`,
      `simplified  ${report.simplified}`,
      `verified    ${report.verified}${check.inconclusive !== undefined ? ` (${check.inconclusive})` : ""}`,
      `exact       ${exact}${exact ? "" : " (some rules are exact up to float rounding)"}`,
      ...steps.map((s, i) => `${i === 0 ? "steps       " : "            "}${s}`),
      ...check.failures.map((f) => `FAILED      ${f}`)
    ]
    out.stdout(lines.join("\n") + "\n")
  }
  // A disagreement means a rewrite rule is wrong: never let it pass silently.
  return check.failures.length > 0 ? 1 : 0
})
