/**
 * `autoloss random --seed S [--count N] [--branches name:kind,...]`: random initial losses (paper
 * initialisation, depth 3), one per line in text syntax. Same seed, same losses.
 * Exit 0 ok, 2 usage error.
 */
import { parseArgs } from "node:util"
import { Rng } from "../../graph/rng.ts"
import { randomLoss } from "../../graph/random.ts"
import { printLoss } from "../../graph/syntax.ts"
import { BRANCH_NAME_PATTERN } from "../../graph/validate.ts"
import { BUILTIN_KINDS } from "../../graph/types.ts"
import type { BranchKind } from "../../graph/types.ts"
import { firstSentence, UsageError } from "../args.ts"

export const summary = "print random initial losses (paper initialisation) for a seed"

const USAGE = "usage: autoloss random --seed S [--count N] [--branches name:kind,...]   (kinds: dense, box)"

const nonNegativeInt = (flag: string, value: string): number => {
  const n = Number(value)
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new UsageError(`${flag} wants an integer ≥ 0, got '${value}'`)
  return n
}

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


export const run = async (argv: ReadonlyArray<string>): Promise<number> => {
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      options: { seed: { type: "string" }, count: { type: "string", default: "1" }, branches: { type: "string", default: "loss:dense" } },
      allowPositionals: true,
      strict: true
    })
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`)
    if (values.seed === undefined) throw new UsageError("--seed is required")
    const rng = new Rng(nonNegativeInt("--seed", values.seed))
    const count = nonNegativeInt("--count", values.count)
    const branches = parseBranches(values.branches)
    const lines: Array<string> = []
    for (let i = 0; i < count; i++) lines.push(printLoss(randomLoss(branches, rng)))
    process.stdout.write(lines.map((l) => l + "\n").join(""))
    return 0
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS") === true) {
      const message = e instanceof UsageError ? e.message : firstSentence((e as Error).message)
      process.stderr.write(`autoloss random: ${message}\n${USAGE}\n`)
      return 2
    }
    throw e
  }
}
