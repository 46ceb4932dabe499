"""Evaluate K different loss trees with a number of kernel launches independent of K.

The per-tree evaluator launches a few kernels per operator per candidate, so on a GPU a batch of
K candidates costs K × (tree size) launches per step. Here all K trees are evaluated level by
level (level 0 = roots): the nodes of one level, across every candidate, form one tensor
(n, B, C, H, W); for each operator present on the level, its nodes' children are gathered from the
level below with one ``index_select``, the operator runs once on all of them, and the results are
put back in node order with one permutation. Launches per step: about levels × operators present.

Semantics are those of ``graph/ops.py`` with samples independent (``rejection._objective``):
``mean_nhw`` averages over H, W of its own sample (N = 1 per sample), which is what the protocol
computes for a tree that contains it; the other operators never mix samples.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from autoloss_worker.graph import Tree
from autoloss_worker.graph.ops import BINARY, UNARY


def _mean_nhw(x: Tensor) -> Tensor:  # (n, B, C, H, W): per sample and channel
    return x.mean(dim=(3, 4), keepdim=True).expand_as(x)


def _mean_c(x: Tensor) -> Tensor:
    return x.mean(dim=2, keepdim=True).expand_as(x)


def _max_pool(x: Tensor) -> Tensor:
    return F.max_pool2d(x.flatten(0, 1), kernel_size=3, stride=1, padding=1).view_as(x)


def _min_pool(x: Tensor) -> Tensor:
    return -F.max_pool2d(-x.flatten(0, 1), kernel_size=3, stride=1, padding=1).view_as(x)


# The operators on stacked (n, B, C, H, W) tensors; elementwise ones are graph/ops.py's own.
STACKED_UNARY = {**UNARY, "mean_nhw": _mean_nhw, "mean_c": _mean_c, "max_pool": _max_pool, "min_pool": _min_pool}


@dataclass(frozen=True)
class _Group:
    kind: str  # an operator name, or "leaf:<input>"
    nodes: Tensor  # positions on this level, long (m,)
    first: Tensor  # leaf: candidate index; operator: first child's position on the level below
    second: Tensor | None  # binary operators: second child's position


@dataclass(frozen=True)
class _Level:
    groups: tuple[_Group, ...]
    order: Tensor | None  # permutation putting the groups' concatenated results in node order


@dataclass(frozen=True)
class LevelPlan:
    """The K trees laid out level by level (build once per batch composition)."""

    candidates: int
    levels: tuple[_Level, ...]  # deepest last


def plan(trees: Sequence[Tree], device: torch.device | str = "cpu") -> LevelPlan:
    # Breadth-first over all trees: level[l] lists (candidate, tree node).
    level: list[tuple[int, Tree]] = [(k, t) for k, t in enumerate(trees)]
    raw_levels = []
    while level:
        below: list[tuple[int, Tree]] = []
        groups: dict[str, tuple[list[int], list[int], list[int]]] = {}
        for pos, (k, node) in enumerate(level):
            if isinstance(node, str):
                nodes, first, _ = groups.setdefault("leaf:" + node, ([], [], []))
                nodes.append(pos)
                first.append(k)
                continue
            nodes, first, second = groups.setdefault(node.op, ([], [], []))
            nodes.append(pos)
            first.append(len(below))
            below.append((k, node.args[0]))
            if len(node.args) == 2:
                second.append(len(below))
                below.append((k, node.args[1]))
        raw_levels.append((len(level), groups))
        level = below

    def ix(xs: list[int]) -> Tensor:
        return torch.tensor(xs, dtype=torch.long, device=device)

    levels = []
    for n, groups in raw_levels:
        built = tuple(_Group(kind, ix(nodes), ix(first), ix(second) if second else None)
                      for kind, (nodes, first, second) in sorted(groups.items()))
        concat = [p for g in built for p in g.nodes.tolist()]
        identity = concat == list(range(n))
        order = None if identity else torch.argsort(ix(concat))
        levels.append(_Level(built, order))
    return LevelPlan(candidates=len(trees), levels=tuple(levels))


def evaluate(p: LevelPlan, inputs: Mapping[str, Tensor]) -> Tensor:
    """Elementwise outputs of all K trees, (K, B, C, H, W); ``inputs``: name -> (K, B, C, H, W)."""
    below: Tensor | None = None
    for level in reversed(p.levels):
        parts = []
        for g in level.groups:
            if g.kind.startswith("leaf:"):
                parts.append(inputs[g.kind[5:]].index_select(0, g.first))
                continue
            assert below is not None, f"operator {g.kind} without children"
            a = below.index_select(0, g.first)
            if g.second is not None:
                parts.append(BINARY[g.kind](a, below.index_select(0, g.second)))
            else:
                parts.append(STACKED_UNARY[g.kind](a))
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
        below = out if level.order is None else out.index_select(0, level.order)
    assert below is not None and below.shape[0] == p.candidates
    return below
