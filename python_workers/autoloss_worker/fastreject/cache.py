"""Structural keys for the verdict cache: a loss seen before (up to argument order of the
commutative ``add`` / ``mul``, at any depth) gets the earlier verdict without any work.

The key is the canonical text of ``src/graph/canonical.ts`` (children of commutative operators
sorted by their canonical text, plain code-point order), with branch name and kind: both
implementations compute the same function for such trees (elementwise ``x + y == y + x`` and
``x * y == y * x`` in IEEE arithmetic), so the verdict is identical, not just likely equal.
"""
from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from autoloss_worker.graph import Branch, LossGraph, Tree

COMMUTATIVE = frozenset({"add", "mul"})

V = TypeVar("V")


def canonical_text(tree: Tree) -> str:
    if isinstance(tree, str):
        return tree
    args = [canonical_text(a) for a in tree.args]
    if tree.op in COMMUTATIVE:
        args.sort()
    return f"{tree.op}({', '.join(args)})"


def branch_key(branch: Branch) -> str:
    return f"{branch.name}/{branch.kind}({','.join(branch.inputs)}): {canonical_text(branch.tree)}"


def loss_key(graph: LossGraph) -> str:
    return "; ".join(branch_key(b) for b in graph.branches)


class VerdictCache(Generic[V]):
    """Key -> verdict, with hit/miss counters for the benchmark. The screening context (task,
    metric, seed, protocol constants) must be part of the key or fixed per cache instance."""

    def __init__(self) -> None:
        self._store: dict[Hashable, V] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        value = self._store.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, key: Hashable, value: V) -> None:
        self._store[key] = value

    def __len__(self) -> int:
        return len(self._store)
