/**
 * Canonical form of loss graphs: the arguments of the commutative operators (add, mul) are put in
 * the order of their canonical text, bottom-up. Two trees that differ only by argument swaps of
 * add/mul at any depth get the same canonical form (the printed text is unambiguous, so sorting
 * children by it is a canonical labelling of unordered trees); nothing else is simplified.
 * Branch order is kept: a graph's branch order is fixed by its task.
 */
import { createHash } from "node:crypto"
import { OPS } from "./ops.ts"
import { op } from "./types.ts"
import type { Branch, LossGraph, Node } from "./types.ts"
import { printNode } from "./syntax.ts"

/** Hex characters kept of the SHA-256 digest (64 bits: collisions need ~4·10⁹ distinct losses). */
export const HASH_LENGTH = 16

export const canonicalNode = (n: Node): Node => {
  if (n.type === "input") return n
  const args = n.args.map(canonicalNode)
  if (OPS[n.op].commutative) {
    // Plain code-unit comparison, not localeCompare: the order must not depend on the machine.
    const keyed = args.map((a) => ({ a, key: printNode(a) }))
    keyed.sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0))
    return op(n.op, ...keyed.map((k) => k.a))
  }
  return op(n.op, ...args)
}

export const canonicalLoss = (g: LossGraph): LossGraph => ({
  branches: g.branches.map((b) => ({ ...b, root: canonicalNode(b.root) }))
})

/** `name/kind(inputs): canonical expr`, the text the hashes digest. */
export const canonicalBranchText = (b: Branch): string =>
  `${b.name}/${b.kind.name}(${b.kind.inputs.join(",")}): ${printNode(canonicalNode(b.root))}`

export const canonicalText = (g: LossGraph): string => g.branches.map(canonicalBranchText).join("; ")

const digest = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex").slice(0, HASH_LENGTH)

/** First 16 hex chars of SHA-256 over the canonical text with branch names and kinds. */
export const hashLoss = (g: LossGraph): string => digest(canonicalText(g))

/** Same digest for one branch; for a one-branch loss `hashBranch(b) === hashLoss(g)`. */
export const hashBranch = (b: Branch): string => digest(canonicalBranchText(b))
