/**
 * Structural validation of loss graphs: known operators with their arity, leaves drawn from the
 * branch kind's inputs, unique identifier branch names, and the size limits of the wire spec
 * (`protocol/README.md`). Errors name the branch, the path (child indices from the branch's top
 * node) and the problem, e.g. `rpn_cls@[0,1]: unknown input 'z' (kind box: i, u, e, one)`.
 */
import { arityOf, isOpName } from "./ops.ts"
import type { Branch, LossGraph, Node } from "./types.ts"

export interface Limits {
  /** Most operator nodes on any root→leaf path of a branch. */
  readonly maxDepth: number
  /** Most nodes (operators + leaves) in one branch. */
  readonly maxNodes: number
  readonly maxBranches: number
}

export const DEFAULT_LIMITS: Limits = { maxDepth: 16, maxNodes: 256, maxBranches: 16 }

export const BRANCH_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/

export class GraphValidationError extends Error {
  override readonly name = "GraphValidationError"
  constructor(
    /** The offending branch's name ("" when the problem is the graph as a whole). */
    readonly branch: string,
    /** Child indices from the branch's top node to the offending node. */
    readonly path: ReadonlyArray<number>,
    readonly problem: string
  ) {
    // Graph-wide problems (branch "") have no place to point at.
    super(branch === "" ? problem : `${branch}@[${path.join(",")}]: ${problem}`)
  }
}

/** Operator nodes on the longest root→leaf path (a bare input leaf has depth 0). */
export const depthOf = (node: Node): number =>
  node.type === "input" ? 0 : 1 + Math.max(...node.args.map(depthOf))

/** Operators plus leaves. */
export const sizeOf = (node: Node): number =>
  node.type === "input" ? 1 : node.args.reduce((sum, arg) => sum + sizeOf(arg), 1)

/** Operator nodes only. */
export const opCountOf = (node: Node): number =>
  node.type === "input" ? 0 : node.args.reduce((sum, arg) => sum + opCountOf(arg), 1)

export const validateLoss = (g: LossGraph, limits?: Partial<Limits>): void => {
  const lim: Limits = { ...DEFAULT_LIMITS, ...limits }
  if (g.branches.length === 0) throw new GraphValidationError("", [], "a loss needs at least one branch")
  if (g.branches.length > lim.maxBranches) {
    throw new GraphValidationError("", [], `${g.branches.length} branches exceed the limit of ${lim.maxBranches}`)
  }
  const seen = new Set<string>()
  for (const branch of g.branches) {
    if (!BRANCH_NAME_PATTERN.test(branch.name)) {
      throw new GraphValidationError(branch.name, [], `invalid branch name '${branch.name}' (want [A-Za-z_][A-Za-z0-9_]*)`)
    }
    if (seen.has(branch.name)) throw new GraphValidationError(branch.name, [], `duplicate branch name '${branch.name}'`)
    seen.add(branch.name)
    validateBranch(branch, lim)
  }
}

const validateBranch = (branch: Branch, lim: Limits): void => {
  const { kind } = branch
  if (kind.inputs.length === 0) throw new GraphValidationError(branch.name, [], `branch kind '${kind.name}' declares no inputs`)
  const inputs = new Set(kind.inputs)
  let size = 0
  // Depth-first with the depth bound checked on the way down, so a hostile deep tree cannot blow
  // the stack and the size bound stops the walk early.
  const visit = (node: Node, path: ReadonlyArray<number>, depth: number): void => {
    size += 1
    if (size > lim.maxNodes) {
      throw new GraphValidationError(branch.name, path, `branch has more than ${lim.maxNodes} nodes`)
    }
    switch (node.type) {
      case "input":
        if (!inputs.has(node.name)) {
          throw new GraphValidationError(
            branch.name, path, `unknown input '${node.name}' (kind ${kind.name}: ${kind.inputs.join(", ")})`)
        }
        return
      case "op": {
        if (!isOpName(node.op)) throw new GraphValidationError(branch.name, path, `unknown operator '${String(node.op)}'`)
        if (depth + 1 > lim.maxDepth) {
          throw new GraphValidationError(branch.name, path, `depth exceeds the limit of ${lim.maxDepth} operators`)
        }
        const arity = arityOf(node.op)
        if (!Array.isArray(node.args) || node.args.length !== arity) {
          const got = Array.isArray(node.args) ? node.args.length : 0
          throw new GraphValidationError(
            branch.name, path, `operator '${node.op}' takes ${arity} argument${arity === 1 ? "" : "s"}, got ${got}`)
        }
        node.args.forEach((arg, i) => visit(arg, [...path, i], depth + 1))
        return
      }
      default: {
        const unknown: never = node
        throw new GraphValidationError(branch.name, path, `not a node (type '${String((unknown as { type?: unknown }).type)}')`)
      }
    }
  }
  visit(branch.root, [], 0)
}
