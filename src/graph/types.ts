/**
 * A loss function is a set of named branches; each branch is a rooted tree of primitive operators
 * whose leaves are the input tensors its branch kind declares. Trees are immutable: transformations
 * return new trees that share untouched subtrees.
 */
import type { OpName } from "./ops.ts"

export interface OpNode {
  readonly type: "op"
  readonly op: OpName
  readonly args: ReadonlyArray<Node>
}

export interface InputLeaf {
  readonly type: "input"
  readonly name: string
}

export type Node = OpNode | InputLeaf

/** A branch kind names the inputs its leaves may use; the core never hard-codes tasks. */
export interface BranchKind {
  readonly name: string
  readonly inputs: ReadonlyArray<string>
}

export interface Branch {
  readonly name: string
  readonly kind: BranchKind
  readonly root: Node
}

/** Branches in a fixed order; the total loss is their (weighted) sum, weights belong to the task. */
export interface LossGraph {
  readonly branches: ReadonlyArray<Branch>
}

/** Dense / classification branches: prediction, target, tensor of ones. */
export const DENSE: BranchKind = { name: "dense", inputs: ["y_hat", "y", "one"] }
/** Box-regression branches: intersection, union and enclosing areas of predicted and target boxes. */
export const BOX: BranchKind = { name: "box", inputs: ["i", "u", "e", "one"] }

export const BUILTIN_KINDS: ReadonlyArray<BranchKind> = [DENSE, BOX]

export const op = (name: OpName, ...args: ReadonlyArray<Node>): OpNode => ({ type: "op", op: name, args })
export const input = (name: string): InputLeaf => ({ type: "input", name })
