/** `autoloss random --seed S`: random initial losses (paper initialisation, depth 3), one per line. */
import { Rng } from "../../graph/rng.ts"
import { randomLoss } from "../../graph/random.ts"
import { printLoss } from "../../graph/syntax.ts"
import { BRANCH_NAME_PATTERN } from "../../graph/validate.ts"
import { BUILTIN_KINDS } from "../../graph/types.ts"
import type { BranchKind } from "../../graph/types.ts"
import { nonNegativeInt, UsageError } from "../args.ts"
import { defineVerb } from "../verb.ts"

const parseBranches = (spec: string): Array<{ name: string; kind: BranchKind }> => {
  const branches = spec.split(",").map((part) => {
    const [name = "", kindName = "", ...rest] = part.trim().split(":")
    const kind = BUILTIN_KINDS.find((k) => k.name === kindName)
    if (rest.length > 0 || !BRANCH_NAME_PATTERN.test(name) || kind === undefined) {
      throw new UsageError(`--branches wants name:kind with kind one of ${BUILTIN_KINDS.map((k) => k.name).join(", ")}, got '${part}'`)
    }
    return { name, kind }
  })
  const names = branches.map((b) => b.name)
  const dup = names.find((n, i) => names.indexOf(n) !== i)
  if (dup !== undefined) throw new UsageError(`--branches names '${dup}' twice`)
  return branches
}

export const { spec, summary, run } = defineVerb({
  name: "random",
  summary: "print random initial losses (paper initialisation) for a seed",
  flags: {
    seed: { type: "string", required: true, value: "S", help: "random seed (same seed, same losses)" },
    count: { type: "string", default: "1", value: "N", help: "how many losses" },
    branches: { type: "string", default: "loss:dense", value: "NAME:KIND,...", help: "the branches of each loss (kinds: dense, box)" }
  },
  description: "Exit: 0 ok, 2 usage error.",
  examples: ["autoloss random --seed 7 --count 5", "autoloss random --seed 7 --branches cls:dense,reg:box"]
}, async ({ values }, out) => {
  const rng = new Rng(nonNegativeInt("--seed", values.seed))
  const count = nonNegativeInt("--count", values.count)
  const branches = parseBranches(values.branches)
  const lines: Array<string> = []
  for (let i = 0; i < count; i++) lines.push(printLoss(randomLoss(branches, rng)))
  out.stdout(lines.map((l) => l + "\n").join(""))
  return 0
})
