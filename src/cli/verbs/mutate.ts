/**
 * `autoloss mutate "<expr>" --seed S [--count N] [--kind BRANCH=dense|box ...] [--json]`: offspring of a loss under the paper's
 * pipeline (copy 10% / re-init 45% / two mutations 45%, per branch), one per line in text syntax;
 * `--json` prints `{"loss", "hash", "how"}` per line with what happened to each branch.
 * Exit 0 ok, 1 invalid parent, 2 usage error.
 */
import { parseArgs } from "node:util"
import { Rng } from "../../graph/rng.ts"
import { offspring } from "../../graph/mutate.ts"
import { GraphSyntaxError, parseLoss, printLoss } from "../../graph/syntax.ts"
import { GraphValidationError, validateLoss } from "../../graph/validate.ts"
import { hashLoss } from "../../graph/canonical.ts"
import type { BranchKind } from "../../graph/types.ts"
import { firstSentence, parseKinds, UsageError } from "../args.ts"

export const summary = "print offspring of a loss (copy / re-init / two mutations per branch) for a seed"

const USAGE = 'usage: autoloss mutate "<expr>" --seed S [--count N] [--kind BRANCH=dense|box ...] [--json]'

const nonNegativeInt = (flag: string, value: string): number => {
  const n = Number(value)
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new UsageError(`${flag} wants an integer ≥ 0, got '${value}'`)
  return n
}


export const run = async (argv: ReadonlyArray<string>): Promise<number> => {
  let text: string
  let seed: number
  let count: number
  let json: boolean
  let kinds: Record<string, BranchKind>
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      options: {
        seed: { type: "string" },
        count: { type: "string", default: "1" },
        json: { type: "boolean", default: false },
        kind: { type: "string", multiple: true }
      },
      allowPositionals: true,
      strict: true
    })
    if (positionals.length !== 1) throw new UsageError(`want exactly one expression, got ${positionals.length}`)
    if (values.seed === undefined) throw new UsageError("--seed is required")
    text = positionals[0] as string
    seed = nonNegativeInt("--seed", values.seed)
    count = nonNegativeInt("--count", values.count)
    json = values.json
    try {
      kinds = parseKinds(values.kind ?? [])
    } catch (e) {
      throw new UsageError((e as Error).message)
    }
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS") === true) {
      const message = e instanceof UsageError ? e.message : firstSentence((e as Error).message)
      process.stderr.write(`autoloss mutate: ${message}\n${USAGE}\n`)
      return 2
    }
    throw e
  }
  let parent
  try {
    parent = parseLoss(text, { kinds })
    validateLoss(parent)
  } catch (e) {
    if (e instanceof GraphSyntaxError || e instanceof GraphValidationError) {
      process.stderr.write(`autoloss mutate: ${e.message}\n`)
      return 1
    }
    throw e
  }
  const rng = new Rng(seed)
  const lines: Array<string> = []
  for (let i = 0; i < count; i++) {
    const { graph, how } = offspring(parent, rng)
    lines.push(json ? JSON.stringify({ loss: printLoss(graph), hash: hashLoss(graph), how }) : printLoss(graph))
  }
  process.stdout.write(lines.map((l) => l + "\n").join(""))
  return 0
}
