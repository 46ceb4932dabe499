/** Shared bits of the verbs' argument handling. */
import { BUILTIN_KINDS, type BranchKind } from "../graph/types.ts"
import { DEFAULT_PYTHON } from "../workers/internal/localWorkers.ts"

/** node:util's parseArgs messages go on to explain `--` quoting; the first sentence says it all. */
export const firstSentence = (message: string): string => message.split(/\.\s/)[0] ?? message

/** The expression on its own line with a caret under `column` (1-based): where a syntax error is. */
export const pointAt = (text: string, column: number): string => `\n  ${text}\n  ${" ".repeat(column - 1)}^`

/** A command-line mistake: the verb prints it with its synopsis and exits 2 (`defineVerb`). */
export class UsageError extends Error {}

/** A non-negative integer flag value (a safe integer), or a `UsageError` naming the flag. */
export const nonNegativeInt = (flag: string, value: string): number => {
  const n = Number(value)
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new UsageError(`${flag} wants an integer ≥ 0, got '${value}'`)
  return n
}

/** The interpreter the verbs run Python jobs with: the project's venv, unless AUTOLOSS_PYTHON names another. */
export const verbPython = (): string => process.env["AUTOLOSS_PYTHON"] ?? DEFAULT_PYTHON

/**
 * `--kind NAME=KIND` pairs (repeatable) as parse options: a branch's kind is otherwise inferred from
 * its leaves, and a box branch built only from `one` would read back as dense.
 */
export const parseKinds = (pairs: ReadonlyArray<string>): Record<string, BranchKind> => {
  const kinds: Record<string, BranchKind> = {}
  for (const pair of pairs) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.+)$/.exec(pair)
    const kind = BUILTIN_KINDS.find((k) => k.name === m?.[2])
    if (m === null || kind === undefined) {
      throw new UsageError(`--kind wants BRANCH=${BUILTIN_KINDS.map((k) => k.name).join("|")}, got '${pair}'`)
    }
    kinds[m[1]!] = kind
  }
  return kinds
}
