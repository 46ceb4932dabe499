/**
 * The text form of loss graphs, e.g. `neg(mul(y, log(y_hat)))` or, with several branches,
 * `rpn_cls: neg(mul(y, log(y_hat))); rpn_reg: neg(log(mul(i, inv(e))))`.
 *
 *   loss   := expr | branch (';' branch)*      -- a bare expr is one branch named `loss`
 *   branch := NAME ':' expr
 *   expr   := OP '(' expr (',' expr)* ')' | INPUT
 *
 * Whitespace is free between tokens. `printLoss` writes the canonical spacing (`op(a, b)`,
 * `name: expr`, branches joined by `; `) and is the exact inverse of `parseLoss`.
 * Parsing checks what has a column (operators, arities, inputs, branch names); size limits are
 * `validateLoss`'s job.
 */
import { BUILTIN_KINDS, input, op } from "./types.ts"
import type { Branch, BranchKind, LossGraph, Node } from "./types.ts"
import { OP_NAMES, arityOf, isOpName } from "./ops.ts"

/** Name of the branch a bare expression becomes. */
export const DEFAULT_BRANCH_NAME = "loss"

/** Deeper nesting is refused with a syntax error rather than a stack overflow. */
const MAX_NESTING = 1000

export interface ParseOptions {
  /** Branch kind per branch name; branches not listed get their kind inferred from their inputs. */
  readonly kinds?: Readonly<Record<string, BranchKind>>
}

export class GraphSyntaxError extends Error {
  override readonly name = "GraphSyntaxError"
  constructor(
    readonly problem: string,
    /** 1-based column (UTF-16 code units) where the problem starts. */
    readonly column: number,
    /** What would have been accepted there. */
    readonly expected: string
  ) {
    super(`${problem} at column ${column}`)
  }
}

interface Leaf {
  readonly name: string
  readonly column: number
}

const IDENT_START = /[A-Za-z_]/
const IDENT_PART = /[A-Za-z0-9_]/
const ALL_INPUTS = [...new Set(BUILTIN_KINDS.flatMap((k) => k.inputs))]
const EXPR_START = "an operator or input"

const describeKind = (kind: BranchKind): string => `${kind.name}: ${kind.inputs.join(", ")}`

class Parser {
  private pos = 0
  constructor(private readonly text: string) {}

  parseLoss(options: ParseOptions): LossGraph {
    this.skipSpace()
    if (!this.startsNamedBranch()) {
      const leaves: Leaf[] = []
      const root = this.parseExpr(leaves, 0)
      this.skipSpace()
      if (!this.atEnd()) throw this.expected("end of input")
      return { branches: [this.branch(DEFAULT_BRANCH_NAME, root, leaves, options)] }
    }
    const branches: Branch[] = []
    const columns = new Map<string, number>()
    for (;;) {
      this.skipSpace()
      const column = this.column()
      const name = this.readIdent()
      if (name === undefined) throw this.expected("a branch name")
      if (columns.has(name)) throw new GraphSyntaxError(`duplicate branch name '${name}'`, column, "a new branch name")
      columns.set(name, column)
      this.skipSpace()
      if (!this.eat(":")) throw this.expected(`':' after branch name '${name}'`)
      const leaves: Leaf[] = []
      const root = this.parseExpr(leaves, 0)
      branches.push(this.branch(name, root, leaves, options))
      this.skipSpace()
      if (this.atEnd()) return { branches }
      if (!this.eat(";")) throw this.expected("';' or end of input")
    }
  }

  private parseExpr(leaves: Leaf[], nesting: number): Node {
    this.skipSpace()
    const column = this.column()
    if (nesting > MAX_NESTING) throw new GraphSyntaxError(`nesting deeper than ${MAX_NESTING}`, column, "a shallower expression")
    const name = this.readIdent()
    if (name === undefined) throw this.expected(EXPR_START)
    this.skipSpace()
    if (!this.eat("(")) {
      if (isOpName(name)) throw this.expected(`'(' after operator '${name}'`)
      leaves.push({ name, column })
      return input(name)
    }
    if (!isOpName(name)) {
      throw new GraphSyntaxError(`unknown operator '${name}'`, column, `an operator (${OP_NAMES.join(", ")})`)
    }
    const args: Node[] = []
    for (;;) {
      args.push(this.parseExpr(leaves, nesting + 1))
      this.skipSpace()
      if (this.eat(")")) break
      if (!this.eat(",")) throw this.expected("')' or ','")
    }
    const arity = arityOf(name)
    if (args.length !== arity) {
      const want = `${arity} argument${arity === 1 ? "" : "s"}`
      throw new GraphSyntaxError(`operator '${name}' takes ${want}, got ${args.length}`, column, want)
    }
    return op(name, ...args)
  }

  /** A branch's kind: the one given for its name, else the first built-in kind holding all its inputs. */
  private branch(name: string, root: Node, leaves: ReadonlyArray<Leaf>, options: ParseOptions): Branch {
    const given = options.kinds !== undefined && Object.hasOwn(options.kinds, name) ? options.kinds[name] : undefined
    if (given !== undefined) {
      for (const leaf of leaves) {
        if (!given.inputs.includes(leaf.name)) {
          throw new GraphSyntaxError(
            `unknown input '${leaf.name}' for branch '${name}' (${describeKind(given)})`, leaf.column,
            `one of ${given.inputs.join(", ")}`)
        }
      }
      return { name, kind: given, root }
    }
    let candidates = BUILTIN_KINDS
    for (const leaf of leaves) {
      if (!ALL_INPUTS.includes(leaf.name)) {
        throw new GraphSyntaxError(`unknown input '${leaf.name}'`, leaf.column, `one of ${ALL_INPUTS.join(", ")}`)
      }
      const fitting = candidates.filter((k) => k.inputs.includes(leaf.name))
      if (fitting.length === 0) {
        const earlier = candidates[0] as BranchKind
        throw new GraphSyntaxError(
          `input '${leaf.name}' does not fit the branch kind of the earlier inputs (${describeKind(earlier)})`,
          leaf.column, `one of ${earlier.inputs.join(", ")}`)
      }
      candidates = fitting
    }
    return { name, kind: candidates[0] as BranchKind, root }
  }

  /** `NAME ':'` ahead (looked at without consuming). */
  private startsNamedBranch(): boolean {
    const start = this.pos
    const name = this.readIdent()
    this.skipSpace()
    const named = name !== undefined && this.text[this.pos] === ":"
    this.pos = start
    return named
  }

  private readIdent(): string | undefined {
    const start = this.pos
    if (!IDENT_START.test(this.text[this.pos] ?? "")) return undefined
    this.pos += 1
    while (IDENT_PART.test(this.text[this.pos] ?? "")) this.pos += 1
    return this.text.slice(start, this.pos)
  }

  private eat(ch: string): boolean {
    if (this.text[this.pos] !== ch) return false
    this.pos += 1
    return true
  }

  private skipSpace(): void {
    while (/\s/.test(this.text[this.pos] ?? "")) this.pos += 1
  }

  private atEnd(): boolean {
    return this.pos >= this.text.length
  }

  private column(): number {
    return this.pos + 1
  }

  private expected(what: string): GraphSyntaxError {
    return new GraphSyntaxError(`expected ${what}`, this.column(), what)
  }
}

export const parseLoss = (text: string, options: ParseOptions = {}): LossGraph => new Parser(text).parseLoss(options)

export const printNode = (n: Node): string =>
  n.type === "input" ? n.name : `${n.op}(${n.args.map(printNode).join(", ")})`

export const printLoss = (g: LossGraph): string => {
  const [only] = g.branches
  if (g.branches.length === 1 && only !== undefined && only.name === DEFAULT_BRANCH_NAME) return printNode(only.root)
  return g.branches.map((b) => `${b.name}: ${printNode(b.root)}`).join("; ")
}

/** The kinds of a graph's branches by name: parse(print(g), { kinds: kindsOf(g) }) gives g back. */
export const kindsOf = (g: LossGraph): Record<string, BranchKind> =>
  Object.fromEntries(g.branches.map((b) => [b.name, b.kind]))
