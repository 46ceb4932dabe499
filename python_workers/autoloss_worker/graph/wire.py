"""Loss graphs from the wire (version 1, `protocol/README.md`), mirroring `src/graph/wire.ts`.

A graph arrives as msgpack `{v: 1, branches: [{name, kind, inputs, tree}]}`, a tree being an input
name or `[op, *children]`. Only exactly that shape is accepted, it is validated like the TS side
(same limits, errors naming branch + path + problem) and it is only ever interpreted by
`interpreter.compile_branch`: no text is evaluated.
"""

from __future__ import annotations

from typing import Any

import msgpack

from .ops import ARITY
from .tree import Branch, LossGraph, OpNode, Tree
from .validate import DEFAULT_LIMITS, GraphError, Limits, arity_problem, validate_loss

GRAPH_WIRE_VERSION = 1

_LOSS_KEYS = ("v", "branches")
_BRANCH_KEYS = ("name", "kind", "inputs", "tree")


def _check_keys(obj: dict[Any, Any], allowed: tuple[str, ...], branch: str, what: str) -> None:
    for key in allowed:
        if key not in obj:
            raise GraphError(branch, (), f"{what} lacks the field '{key}'")
    for key in obj:
        if key not in allowed:
            raise GraphError(branch, (), f"{what} has an unknown field '{key}'")


def loss_from_wire(obj: Any, limits: Limits = DEFAULT_LIMITS) -> LossGraph:
    """The graph a decoded wire object describes; raises GraphError for anything else."""
    if not isinstance(obj, dict):
        raise GraphError("", (), "a wire loss must be a map")
    version = obj.get("v")
    # `type(...) is int`: msgpack's true must not pass for version 1.
    if type(version) is not int or version != GRAPH_WIRE_VERSION:
        raise GraphError("", (), f"unsupported graph wire version {version!r} (this build reads {GRAPH_WIRE_VERSION})")
    _check_keys(obj, _LOSS_KEYS, "", "the wire loss")
    wire_branches = obj["branches"]
    if not isinstance(wire_branches, list):
        raise GraphError("", (), "'branches' must be an array")
    if len(wire_branches) > limits.max_branches:
        raise GraphError("", (), f"{len(wire_branches)} branches exceed the limit of {limits.max_branches}")
    graph = LossGraph(tuple(_branch_from_wire(b, i, limits) for i, b in enumerate(wire_branches)))
    validate_loss(graph, limits)
    return graph


def _branch_from_wire(b: Any, index: int, limits: Limits) -> Branch:
    label = f"#{index}"
    if not isinstance(b, dict):
        raise GraphError(label, (), "a wire branch must be a map")
    name = b["name"] if isinstance(b.get("name"), str) else label
    _check_keys(b, _BRANCH_KEYS, name, "the branch")
    if not isinstance(b["name"], str):
        raise GraphError(label, (), "'name' must be a string")
    kind, inputs = b["kind"], b["inputs"]
    if not isinstance(kind, str):
        raise GraphError(name, (), "'kind' must be a string")
    if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
        raise GraphError(name, (), "'inputs' must be an array of strings")
    if len(set(inputs)) != len(inputs):
        raise GraphError(name, (), "'inputs' repeats a name")
    return Branch(name=name, kind=kind, inputs=tuple(inputs), tree=_tree_from_wire(b["tree"], name, (), limits))


def _tree_from_wire(t: Any, branch: str, path: tuple[int, ...], limits: Limits) -> Tree:
    """Shape, operator names, arity and the depth guard; leaves against inputs are validate_loss's job."""
    if isinstance(t, str):
        return t
    if not isinstance(t, list) or len(t) == 0 or not isinstance(t[0], str):
        raise GraphError(branch, path, "not a node: want an input name or [op, ...children]")
    op, children = t[0], t[1:]
    if op not in ARITY:
        raise GraphError(branch, path, f"unknown operator '{op}'")
    if len(path) + 1 > limits.max_depth:
        raise GraphError(branch, path, f"depth exceeds the limit of {limits.max_depth} operators")
    problem = arity_problem(op, len(children))
    if problem is not None:
        raise GraphError(branch, path, problem)
    return OpNode(op, tuple(_tree_from_wire(c, branch, path + (i,), limits) for i, c in enumerate(children)))


def decode_loss(data: bytes, limits: Limits = DEFAULT_LIMITS) -> LossGraph:
    """msgpack bytes (as `encodeLoss` writes them in TS) to a validated graph."""
    try:
        obj = msgpack.unpackb(data, raw=False)
    except Exception as e:  # msgpack raises several unrelated types for malformed input
        raise GraphError("", (), f"not a msgpack loss: {e}") from e
    return loss_from_wire(obj, limits)


def _node_to_wire(tree: Tree) -> Any:
    return tree if isinstance(tree, str) else [tree.op, *(_node_to_wire(a) for a in tree.args)]


def loss_to_wire(graph: LossGraph) -> dict[str, Any]:
    """The wire object of a graph (for tests and tools; the TS side owns graph creation)."""
    return {
        "v": GRAPH_WIRE_VERSION,
        "branches": [
            {"name": b.name, "kind": b.kind, "inputs": list(b.inputs), "tree": _node_to_wire(b.tree)}
            for b in graph.branches
        ],
    }
