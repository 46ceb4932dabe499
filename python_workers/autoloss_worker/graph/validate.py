"""Structural validation of loss graphs, mirroring `src/graph/validate.ts`: known operators with
their arity, leaves from the branch's inputs, unique identifier branch names and the size limits
of `protocol/README.md`. Errors name the branch, the path (child indices from the branch's top
node) and the problem, e.g. `rpn_cls@[0,1]: unknown input 'z' (kind box: i, u, e, one)`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from .ops import ARITY
from .tree import Branch, LossGraph, OpNode, Tree

BRANCH_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Limits:
    max_depth: int = 16  # operator nodes on any root→leaf path of a branch
    max_nodes: int = 256  # operators + leaves in one branch
    max_branches: int = 16


DEFAULT_LIMITS = Limits()


class GraphError(ValueError):
    """A loss graph that must not be interpreted; `branch` is "" when the graph as a whole is wrong."""

    def __init__(self, branch: str, path: Sequence[int], problem: str) -> None:
        self.branch = branch
        self.path = tuple(path)
        self.problem = problem
        super().__init__(f"{branch or 'loss'}@[{','.join(str(i) for i in self.path)}]: {problem}")


def arity_problem(op: str, got: int) -> str | None:
    arity = ARITY[op]
    if got == arity:
        return None
    return f"operator '{op}' takes {arity} argument{'' if arity == 1 else 's'}, got {got}"


def validate_loss(graph: LossGraph, limits: Limits = DEFAULT_LIMITS) -> None:
    if len(graph.branches) == 0:
        raise GraphError("", (), "a loss needs at least one branch")
    if len(graph.branches) > limits.max_branches:
        raise GraphError("", (), f"{len(graph.branches)} branches exceed the limit of {limits.max_branches}")
    seen: set[str] = set()
    for branch in graph.branches:
        if not BRANCH_NAME_PATTERN.fullmatch(branch.name):
            raise GraphError(branch.name, (), f"invalid branch name '{branch.name}' (want [A-Za-z_][A-Za-z0-9_]*)")
        if branch.name in seen:
            raise GraphError(branch.name, (), f"duplicate branch name '{branch.name}'")
        seen.add(branch.name)
        _validate_branch(branch, limits)


def _validate_branch(branch: Branch, limits: Limits) -> None:
    if len(branch.inputs) == 0:
        raise GraphError(branch.name, (), f"branch kind '{branch.kind}' declares no inputs")
    allowed = set(branch.inputs)
    size = 0
    # Explicit stack, depth checked on the way down: a hostile tree can neither overflow the
    # Python stack nor make us walk more than max_nodes nodes.
    stack: list[tuple[Tree, tuple[int, ...]]] = [(branch.tree, ())]
    while stack:
        node, path = stack.pop()
        size += 1
        if size > limits.max_nodes:
            raise GraphError(branch.name, path, f"branch has more than {limits.max_nodes} nodes")
        if isinstance(node, str):
            if node not in allowed:
                raise GraphError(
                    branch.name, path, f"unknown input '{node}' (kind {branch.kind}: {', '.join(branch.inputs)})"
                )
            continue
        if not isinstance(node, OpNode):
            raise GraphError(branch.name, path, f"not a node ({type(node).__name__})")
        if node.op not in ARITY:
            raise GraphError(branch.name, path, f"unknown operator '{node.op}'")
        if len(path) + 1 > limits.max_depth:
            raise GraphError(branch.name, path, f"depth exceeds the limit of {limits.max_depth} operators")
        problem = arity_problem(node.op, len(node.args))
        if problem is not None:
            raise GraphError(branch.name, path, problem)
        # Reversed so that children are visited left to right, as the TS walk does.
        for i in reversed(range(len(node.args))):
            stack.append((node.args[i], path + (i,)))
