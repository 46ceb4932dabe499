/**
 * `autoloss mutate "<expr>" --seed S`: offspring of a loss under the paper's pipeline (copy 10% /
 * re-init 45% / two mutations 45%, per branch), one per line in text syntax.
 */
import { Rng } from "../../graph/rng.ts"
import { offspring } from "../../graph/mutate.ts"
import { GraphSyntaxError, parseLoss, printLoss } from "../../graph/syntax.ts"
import { GraphValidationError, validateLoss } from "../../graph/validate.ts"
import { hashLoss } from "../../graph/canonical.ts"
import { nonNegativeInt, parseKinds, pointAt } from "../args.ts"
import { defineVerb } from "../verb.ts"

export const { spec, summary, run } = defineVerb({
  name: "mutate",
  summary: "print offspring of a loss (copy / re-init / two mutations per branch) for a seed",
  positionals: '"<expr>"',
  positionalNoun: "expression",
  positionalCount: 1,
  flags: {
    seed: { type: "string", required: true, value: "S", help: "random seed (same seed, same offspring)" },
    count: { type: "string", default: "1", value: "N", help: "how many offspring" },
    kind: { type: "string", multiple: true, value: "BRANCH=dense|box", help: "the kind of a branch whose leaves do not tell it" },
    json: { type: "boolean", default: false, help: 'print {"loss", "hash", "how"} per line, "how" saying what happened to each branch' }
  },
  description: "Exit: 0 ok, 2 usage error (incl. a parent expression that does not parse or validate).",
  examples: ['autoloss mutate "neg(mul(y, log(y_hat)))" --seed 4 --count 5', 'autoloss mutate "reg: exp(one)" --kind reg=box --seed 2 --json']
}, async ({ values, positionals }, out) => {
  const text = positionals[0]!
  const seed = nonNegativeInt("--seed", values.seed)
  const count = nonNegativeInt("--count", values.count)
  const kinds = parseKinds(values.kind ?? [])
  let parent
  try {
    parent = parseLoss(text, { kinds })
    validateLoss(parent)
  } catch (e) {
    if (e instanceof GraphSyntaxError || e instanceof GraphValidationError) {
      out.stderr(`autoloss mutate: ${e.message}${e instanceof GraphSyntaxError ? pointAt(text, e.column) : ""}\n`)
      return 2
    }
    throw e
  }
  const rng = new Rng(seed)
  const lines: Array<string> = []
  for (let i = 0; i < count; i++) {
    const { graph, how } = offspring(parent, rng)
    lines.push(values.json ? JSON.stringify({ loss: printLoss(graph), hash: hashLoss(graph), how }) : printLoss(graph))
  }
  out.stdout(lines.map((l) => l + "\n").join(""))
  return 0
})
