/**
 * Offspring of a parent loss (AutoLoss-Zero §3.2), per branch and independently:
 *   1. with probability 10% copy the branch unchanged;
 *   2. else with probability 50% re-initialise it randomly (depth D = 3);
 *   3. else apply two mutations in sequence, each drawn uniformly from insertion / deletion /
 *      replacement.
 *
 * Choices this implementation makes where the paper leaves room (each documented at its function):
 * - A branch keeps ≥ 1 operator: deletion is applicable only with ≥ 2 operator nodes, and never
 *   puts a bare input at the top. Mutation kinds that are not applicable are not drawn (the draw is
 *   uniform over the applicable ones); insertion is always applicable.
 * - A mutation (or re-initialised tree) whose result would break the depth/size limits is
 *   redrawn (kind and position), so every offspring of a valid parent is valid.
 * - Replacement picks an operator node (the paper's "non-root node" is read as a computational
 *   node, as in Figure 3).
 *
 * Trees are immutable; mutated trees share every untouched subtree with the parent.
 */
import { OP_NAMES, arityOf } from "./ops.ts"
import type { OpName } from "./ops.ts"
import { input, op } from "./types.ts"
import type { Branch, BranchKind, LossGraph, Node, OpNode } from "./types.ts"
import { randomTree } from "./random.ts"
import { DEFAULT_LIMITS, depthOf, opCountOf, sizeOf, validateLoss } from "./validate.ts"
import type { Limits } from "./validate.ts"
import type { Rng } from "./rng.ts"

export const COPY_PROBABILITY = 0.1
/** Conditional on not copying. */
export const REINIT_PROBABILITY = 0.5
export const MUTATIONS_PER_OFFSPRING = 2

/** Redraws before giving up (only reachable with limits too tight for any draw, e.g. maxDepth < 3). */
const MAX_REDRAWS = 10_000

/** Child indices from a branch's top node. */
export type Path = ReadonlyArray<number>

export type MutationKind = "insertion" | "deletion" | "replacement"

export const MUTATION_KINDS: ReadonlyArray<MutationKind> = ["insertion", "deletion", "replacement"]

export type Mutation =
  /** `op` now sits at `path`; the old subtree is its argument `slot`; `input` is the extra leaf of a binary op. */
  | { readonly kind: "insertion"; readonly path: Path; readonly op: OpName; readonly slot: number; readonly input?: string }
  /** The operator `op` at `path` was removed; its argument `kept` took its place. */
  | { readonly kind: "deletion"; readonly path: Path; readonly op: OpName; readonly kept: number }
  /** The operator at `path` changed `from` → `to`, keeping arguments `kept` (old indices) then appending `added` inputs. */
  | {
    readonly kind: "replacement"
    readonly path: Path
    readonly from: OpName
    readonly to: OpName
    readonly kept: ReadonlyArray<number>
    readonly added: ReadonlyArray<string>
  }

export type BranchChange =
  | { readonly branch: string; readonly kind: "copy" }
  | { readonly branch: string; readonly kind: "reinit" }
  | { readonly branch: string; readonly kind: "mutate"; readonly mutations: ReadonlyArray<Mutation> }

export interface Mutated {
  readonly root: Node
  readonly mutation: Mutation
}

export interface Located<N extends Node = Node> {
  readonly path: Path
  readonly node: N
}

// ---------------------------------------------------------------------------------------------
// Tree addressing

/** Every node with its path, in pre-order. */
export const nodesOf = (root: Node): Array<Located> => {
  const out: Array<Located> = []
  const walk = (node: Node, path: Path): void => {
    out.push({ path, node })
    if (node.type === "op") node.args.forEach((arg, i) => walk(arg, [...path, i]))
  }
  walk(root, [])
  return out
}

export const opNodesOf = (root: Node): Array<Located<OpNode>> =>
  nodesOf(root).filter((l): l is Located<OpNode> => l.node.type === "op")

export const nodeAt = (root: Node, path: Path): Node =>
  path.reduce<Node>((node, i) => {
    const child = node.type === "op" ? node.args[i] : undefined
    if (child === undefined) throw new RangeError(`no node at path [${path.join(",")}]`)
    return child
  }, root)

/** `root` with the node at `path` replaced; nodes off the path are shared, not copied. */
export const replaceAt = (root: Node, path: Path, replacement: Node): Node => {
  const [head, ...rest] = path
  if (head === undefined) return replacement
  const child = root.type === "op" ? root.args[head] : undefined
  if (root.type !== "op" || child === undefined) throw new RangeError(`no node at path [${path.join(",")}]`)
  return op(root.op, ...root.args.map((arg, i) => (i === head ? replaceAt(child, rest, replacement) : arg)))
}

// ---------------------------------------------------------------------------------------------
// The three mutations

/**
 * Insertion: a random operator goes between a random node (any node of the branch tree, leaf or
 * operator: all are non-root, the output node sits above) and its parent. A binary operator gets
 * a random input as its other argument, the old subtree at a random argument position.
 */
export const insertion = (root: Node, kind: BranchKind, rng: Rng): Mutated => {
  const { path, node } = rng.pick(nodesOf(root))
  const name = rng.pick(OP_NAMES)
  if (arityOf(name) === 1) return { root: replaceAt(root, path, op(name, node)), mutation: { kind: "insertion", path, op: name, slot: 0 } }
  const extra = rng.pick(kind.inputs)
  const slot = rng.int(2)
  const args = slot === 0 ? [node, input(extra)] : [input(extra), node]
  return { root: replaceAt(root, path, op(name, ...args)), mutation: { kind: "insertion", path, op: name, slot, input: extra } }
}

/**
 * Deletion: a random operator node is removed and a random one of its arguments takes its place.
 * Undefined (not applicable) with fewer than 2 operators; a draw that would leave a bare input at
 * the top (top operator removed in favour of a leaf) is redrawn, so the branch keeps an operator.
 */
export const deletion = (root: Node, rng: Rng): Mutated | undefined => {
  const ops = opNodesOf(root)
  if (ops.length < 2) return undefined
  for (;;) {
    const { path, node } = rng.pick(ops)
    const kept = rng.int(node.args.length)
    const child = node.args[kept] as Node
    if (path.length === 0 && child.type === "input") continue
    return { root: replaceAt(root, path, child), mutation: { kind: "deletion", path, op: node.op, kept } }
  }
}

/**
 * Replacement: a random operator node gets an operator drawn uniformly from all 14 (possibly the
 * same). Surplus arguments are dropped (a random subset of the right size is kept, order
 * preserved); missing arguments are random inputs appended after the kept ones.
 * Undefined (not applicable) when the branch has no operator.
 */
export const replacement = (root: Node, kind: BranchKind, rng: Rng): Mutated | undefined => {
  const ops = opNodesOf(root)
  if (ops.length === 0) return undefined
  const { path, node } = rng.pick(ops)
  const to = rng.pick(OP_NAMES)
  const kept = randomSubset(node.args.length, Math.min(arityOf(to), node.args.length), rng)
  const added = Array.from({ length: arityOf(to) - kept.length }, () => rng.pick(kind.inputs))
  const args = [...kept.map((i) => node.args[i] as Node), ...added.map(input)]
  return { root: replaceAt(root, path, op(to, ...args)), mutation: { kind: "replacement", path, from: node.op, to, kept, added } }
}

/** k distinct indices of [0, n), increasing (selection sampling, Knuth's Algorithm S). */
const randomSubset = (n: number, k: number, rng: Rng): Array<number> => {
  const out: Array<number> = []
  for (let i = 0; i < n && out.length < k; i++) {
    if (rng.int(n - i) < k - out.length) out.push(i)
  }
  return out
}

/**
 * One mutation of a branch tree: the kind uniform over the applicable ones, redrawn while the
 * result breaks the limits.
 */
export const mutateOnce = (root: Node, kind: BranchKind, rng: Rng, limits: Limits = DEFAULT_LIMITS): Mutated => {
  const opCount = opCountOf(root)
  const applicable = MUTATION_KINDS.filter((k) => (k === "deletion" ? opCount >= 2 : k === "replacement" ? opCount >= 1 : true))
  for (let attempt = 0; attempt < MAX_REDRAWS; attempt++) {
    const mutated = applyKind(rng.pick(applicable), root, kind, rng)
    if (mutated !== undefined && depthOf(mutated.root) <= limits.maxDepth && sizeOf(mutated.root) <= limits.maxNodes) {
      return mutated
    }
  }
  throw new RangeError(`no mutation within the limits found in ${MAX_REDRAWS} draws`)
}

const applyKind = (k: MutationKind, root: Node, kind: BranchKind, rng: Rng): Mutated | undefined => {
  switch (k) {
    case "insertion":
      return insertion(root, kind, rng)
    case "deletion":
      return deletion(root, rng)
    case "replacement":
      return replacement(root, kind, rng)
    default: {
      const unknown: never = k
      throw new Error(`unknown mutation kind ${String(unknown)}`)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Offspring

/** A fresh depth-D tree, redrawn while it breaks the limits (only possible under limits below 3 deep / 15 nodes). */
const reinitialised = (kind: BranchKind, rng: Rng, limits: Limits): Node => {
  for (let attempt = 0; attempt < MAX_REDRAWS; attempt++) {
    const root = randomTree(kind, rng)
    if (depthOf(root) <= limits.maxDepth && sizeOf(root) <= limits.maxNodes) return root
  }
  throw new RangeError(`no initial tree within the limits found in ${MAX_REDRAWS} draws`)
}

/**
 * One branch's offspring (paper §3.2): copied with probability 0.1, else re-initialised with
 * probability 0.5, else mutated twice. `offspring` applies it to every branch; a scheduler that
 * redraws only the branches that failed rejection (App. A.2) calls it per branch.
 */
export const branchOffspring = (b: Branch, rng: Rng, limits: Limits = DEFAULT_LIMITS): { branch: Branch; change: BranchChange } => {
  if (rng.chance(COPY_PROBABILITY)) return { branch: b, change: { branch: b.name, kind: "copy" } }
  if (rng.chance(REINIT_PROBABILITY)) {
    return { branch: { ...b, root: reinitialised(b.kind, rng, limits) }, change: { branch: b.name, kind: "reinit" } }
  }
  let root = b.root
  const mutations: Array<Mutation> = []
  for (let i = 0; i < MUTATIONS_PER_OFFSPRING; i++) {
    const mutated = mutateOnce(root, b.kind, rng, limits)
    root = mutated.root
    mutations.push(mutated.mutation)
  }
  return { branch: { ...b, root }, change: { branch: b.name, kind: "mutate", mutations } }
}

/**
 * One offspring of `parent` and what happened to each branch. The parent must be valid under
 * `limits` (checked); the offspring then is too.
 */
export const offspring = (
  parent: LossGraph,
  rng: Rng,
  limits?: Partial<Limits>
): { graph: LossGraph; how: ReadonlyArray<BranchChange> } => {
  const lim: Limits = { ...DEFAULT_LIMITS, ...limits }
  validateLoss(parent, lim)
  const results = parent.branches.map((b) => branchOffspring(b, rng, lim))
  return { graph: { branches: results.map((r) => r.branch) }, how: results.map((r) => r.change) }
}
