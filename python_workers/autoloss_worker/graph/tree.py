"""Loss graphs as plain immutable data: a loss is named branches, a branch a tree of operators
whose leaves name the branch's inputs (the wire form of `protocol/README.md`, version 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

# Branch kinds the core knows (src/graph/types.ts); the wire carries each branch's inputs anyway.
DENSE_INPUTS: tuple[str, ...] = ("y_hat", "y", "one")
BOX_INPUTS: tuple[str, ...] = ("i", "u", "e", "one")


@dataclass(frozen=True)
class OpNode:
    op: str
    args: tuple["Tree", ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", tuple(self.args))


# A leaf is the input's name.
Tree = Union[str, OpNode]


@dataclass(frozen=True)
class Branch:
    name: str
    kind: str
    # The names the kind allows as leaves, e.g. ("y_hat", "y", "one") or ("i", "u", "e", "one").
    inputs: tuple[str, ...]
    tree: Tree

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))


@dataclass(frozen=True)
class LossGraph:
    branches: tuple[Branch, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "branches", tuple(self.branches))


def depth_of(tree: Tree) -> int:
    """Operator nodes on the longest root→leaf path (a bare leaf has depth 0)."""
    return 0 if isinstance(tree, str) else 1 + max(depth_of(a) for a in tree.args)


def size_of(tree: Tree) -> int:
    """Operators plus leaves."""
    return 1 if isinstance(tree, str) else 1 + sum(size_of(a) for a in tree.args)


def to_text(tree: Tree) -> str:
    """The TS printer's form, `op(a, b)`, for messages and debugging (parsing text is TS-only)."""
    return tree if isinstance(tree, str) else f"{tree.op}({', '.join(to_text(a) for a in tree.args)})"
