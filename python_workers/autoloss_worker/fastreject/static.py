"""Free rejection before any tensor work (mirror of ``src/search/static-check.ts``).

A dense branch whose tree has no ``y_hat`` leaf has ∂L/∂ŷ ≡ 0: the predictions never move and
g = 0 < η. One without a ``y`` leaf moves every sample alike whatever its target. Every primitive
is a function of its operands only, so an unreachable leaf cannot matter; the check is structural
and never rejects a loss that depends on both. Kinds without known roles are never rejected here.
"""
from __future__ import annotations

from autoloss_worker.graph import Branch, Tree

# kind -> (prediction leaves, target leaves): the branch needs one of each.
DEPENDENCE_ROLES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "dense": (frozenset({"y_hat"}), frozenset({"y"})),
    "box": (frozenset({"i", "u", "e"}), frozenset({"i", "u", "e"})),
}


def leaves(tree: Tree) -> frozenset[str]:
    return frozenset({tree}) if isinstance(tree, str) else frozenset().union(*(leaves(a) for a in tree.args))


def static_reason(branch: Branch) -> str | None:
    """Why ``branch`` cannot pass rejection, or None when it might."""
    roles = DEPENDENCE_ROLES.get(branch.kind)
    if roles is None:
        return None
    used = leaves(branch.tree)
    prediction, target = roles
    if not used & prediction:
        return f"branch '{branch.name}' does not depend on the prediction (uses only {', '.join(sorted(used))})"
    if not used & target:
        return f"branch '{branch.name}' does not depend on the target (uses only {', '.join(sorted(used))})"
    return None
