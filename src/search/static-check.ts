/**
 * A free pre-check before the loss-rejection protocol: a branch whose value cannot depend on the
 * prediction, or cannot depend on the target, can never pass rejection, so it is rejected here
 * without spending a worker job.
 *
 * Why such a branch is hopeless (paper §3.2, η = 0.6 on a 0–1 metric):
 * - no prediction leaf: ∂L/∂ŷ ≡ 0, the optimised predictions never move, g(L) = 0 < η;
 * - no target leaf: the optimisation moves every sample the same way whatever its target, so it
 *   cannot raise a metric that rewards agreement with the target by η (e.g. `neg(y_hat)` pushes all
 *   class scores up alike).
 *
 * Which leaves count, per branch kind (`DEPENDENCE_ROLES`):
 * - `dense`: prediction = `y_hat`, target = `y`; `one` is neither.
 * - `box`: `i`, `u`, `e` (intersection, union and enclosing areas of the predicted and the target
 *   box) are each a function of *both* boxes, so any one of them carries the prediction and the
 *   target; a branch built only from `one` is the hopeless case.
 * - any other kind: unknown roles, nothing is rejected (the check must never reject a loss the
 *   protocol could pass). Callers with custom kinds pass their own roles.
 *
 * The analysis is structural (which leaves are reachable from the root), and that is sound: every
 * one of the 14 primitives is a function of its operands only, none is a constant (no `zero`, no
 * `0·x`), so a leaf that is not reachable cannot influence the value. The converse does not hold:
 * compositions can cancel a reachable leaf (`add(y_hat, neg(y_hat))` ≡ 0), and such a branch passes
 * this check and is rejected by the protocol itself. Structural dependence is thus a necessary
 * condition, never a wrongful rejection.
 */
import type { Branch, LossGraph, Node } from "../graph/types.ts"

/** The leaf names that carry the prediction and the target for one branch kind. */
export interface DependenceRoles {
  readonly prediction: ReadonlyArray<string>
  readonly target: ReadonlyArray<string>
}

export const DEPENDENCE_ROLES: Readonly<Record<string, DependenceRoles>> = {
  dense: { prediction: ["y_hat"], target: ["y"] },
  box: { prediction: ["i", "u", "e"], target: ["i", "u", "e"] }
}

export type StaticVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly branch: string; readonly reason: string }

/** The set of input names reachable from `node` (its leaves). */
export const leavesOf = (node: Node, into: Set<string> = new Set()): Set<string> => {
  if (node.type === "input") {
    into.add(node.name)
  } else {
    for (const arg of node.args) leavesOf(arg, into)
  }
  return into
}

const describeNeed = (names: ReadonlyArray<string>): string =>
  names.length === 1 ? `'${names[0]}'` : `any of ${names.map((n) => `'${n}'`).join(", ")}`

/** The first reason `branch` cannot pass rejection, or undefined when it might. */
export const staticBranchReason = (
  branch: Branch,
  roles: Readonly<Record<string, DependenceRoles>> = DEPENDENCE_ROLES
): string | undefined => {
  const role = roles[branch.kind.name]
  if (role === undefined) return undefined
  const leaves = leavesOf(branch.root)
  const uses = (names: ReadonlyArray<string>): boolean => names.some((n) => leaves.has(n))
  const used = [...leaves].sort().join(", ")
  if (!uses(role.prediction)) {
    return `does not depend on the prediction (needs ${describeNeed(role.prediction)}; uses only ${used})`
  }
  if (!uses(role.target)) {
    return `does not depend on the target (needs ${describeNeed(role.target)}; uses only ${used})`
  }
  return undefined
}

/** Rejects the whole loss at its first hopeless branch: rejection runs per branch and all must pass. */
export const staticCheck = (
  g: LossGraph,
  roles: Readonly<Record<string, DependenceRoles>> = DEPENDENCE_ROLES
): StaticVerdict => {
  for (const branch of g.branches) {
    const reason = staticBranchReason(branch, roles)
    if (reason !== undefined) return { ok: false, branch: branch.name, reason: `branch '${branch.name}' ${reason}` }
  }
  return { ok: true }
}
