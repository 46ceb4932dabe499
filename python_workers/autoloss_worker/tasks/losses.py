"""Candidate losses as the tasks see them: one elementwise function per branch.

A task never interprets loss graphs itself. It receives a mapping ``branch name -> BranchLoss``
whose ``fn`` maps the branch's input tensors (``y_hat``, ``y``, ``one`` ...) to the elementwise
output ``o`` of shape (N, C, H, W). Graphs from the wire are compiled with ``compile_loss``;
tests pass hand-written closures through ``elementwise``.

Aggregation lives here too, so that proxy training and the rejection protocol agree on how a
task's per-element weight (pose: 1 for labelled joints, 0 otherwise) enters the value:

    o_w = o * weight                       # weight broadcasts over (N, C, H, W), e.g. (N, K, 1, 1)
    training value   L = Σ o_w / (N·H·W)   # the paper's branch value (no normalisation over C)
    rejection value  L = Σ o_w             # the paper's rejection objective (no normalisation)
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

# Key under which `Task.to_loss_inputs` may return a per-element weight; it is never a graph input.
WEIGHT_KEY = "weight"

ElementwiseFn = Callable[[Mapping[str, Tensor]], Tensor]


@dataclass(frozen=True)
class BranchLoss:
    """One branch of a candidate loss.

    ``mixes_samples`` is True when the output for sample n may depend on other samples (the
    ``mean_nhw`` operator averages over N). The rejection protocol then evaluates each sample on
    its own (N = 1) so that samples never interact; otherwise it may batch them, which is exactly
    equivalent for a summed objective.
    """

    fn: ElementwiseFn
    mixes_samples: bool = True


def elementwise(fn: ElementwiseFn, *, mixes_samples: bool = True) -> BranchLoss:
    """Wrap a hand-written closure (tests, baselines written in Python)."""
    return BranchLoss(fn=fn, mixes_samples=mixes_samples)


def tree_uses(tree: Any, op_name: str) -> bool:
    """Whether a tree contains ``op_name``: an interpreter tree (``str`` leaf or a node with ``op``
    and ``args``) or its wire form (``str`` or ``[op, child, ...]``)."""
    if isinstance(tree, str):
        return False
    op, children = (tree.op, tree.args) if hasattr(tree, "op") else (tree[0], tree[1:])
    return op == op_name or any(tree_uses(child, op_name) for child in children)


def compile_loss(graph: Any) -> dict[str, BranchLoss]:
    """Compile an interpreter ``LossGraph`` into one ``BranchLoss`` per branch."""
    from autoloss_worker.graph import compile_branch  # the interpreter is optional for closures

    return {
        branch.name: BranchLoss(
            fn=compile_branch(branch),
            mixes_samples=tree_uses(branch.tree, "mean_nhw"),
        )
        for branch in graph.branches
    }


def as_branch_losses(loss: Any) -> dict[str, BranchLoss]:
    """Accept either a mapping of ``BranchLoss`` / plain callables or an interpreter ``LossGraph``."""
    if isinstance(loss, Mapping):
        return {name: bl if isinstance(bl, BranchLoss) else elementwise(bl) for name, bl in loss.items()}
    if hasattr(loss, "branches"):
        return compile_loss(loss)
    raise TypeError(f"expected a LossGraph or a mapping of branch losses, got {type(loss).__name__}")


def branch_output(loss: BranchLoss, inputs: Mapping[str, Tensor]) -> Tensor:
    """The branch's elementwise output with the task's weight applied, shape (N, C, H, W)."""
    weight = inputs.get(WEIGHT_KEY)
    graph_inputs = {name: t for name, t in inputs.items() if name != WEIGHT_KEY}
    out = loss.fn(graph_inputs)
    reference = graph_inputs.get("y_hat", next(iter(graph_inputs.values())))
    if out.shape != reference.shape:
        # A constant tree (e.g. `one`) may come back as a broadcastable tensor; the value must
        # still count every element, so expand it to the inputs' shape.
        out = out.expand_as(reference)
    return out if weight is None else out * weight


def training_value(out: Tensor) -> Tensor:
    """The paper's branch value: Σ o / (N·H·W), no normalisation over C."""
    n, _, h, w = out.shape
    return out.sum() / (n * h * w)


def is_finite(value: Tensor) -> bool:
    return bool(torch.isfinite(value).all())
