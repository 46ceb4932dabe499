"""The one loss-graph branch an MMLab loss module evaluates, from what a config can carry.

A config holds plain data, so a branch arrives in one of three wire shapes (`protocol/README.md`):

    graph={"v": 1, "branches": [...]}, branch="rcnn_reg"     # a whole loss, pick one branch
    graph={"name": ..., "kind": "box", "inputs": [...], "tree": [...]}   # one wire branch
    graph=["neg", ["log", ["mul", "i", ["inv", "e"]]]], branch_kind="box"   # a bare tree

Everything goes through `loss_from_wire`, so it is validated exactly like a graph from the search.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autoloss_worker.graph import BOX_INPUTS, DENSE_INPUTS, GRAPH_WIRE_VERSION, Branch, GraphError, loss_from_wire

KIND_INPUTS: dict[str, tuple[str, ...]] = {"dense": DENSE_INPUTS, "box": BOX_INPUTS}


def plain(obj: Any) -> Any:
    """Config containers (ConfigDict, tuples) as the dicts and lists the wire reader accepts."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def resolve_branch(graph: Any, *, branch: str | None = None, branch_kind: str | None = None) -> Branch:
    """The validated branch `graph` describes (see the module docstring); GraphError otherwise.
    `branch_kind`, when given, must match the branch's kind."""
    obj = plain(graph)
    if isinstance(obj, (str, list)):
        if branch_kind not in KIND_INPUTS:
            raise GraphError(branch or "loss", (), f"a bare tree needs branch_kind in {sorted(KIND_INPUTS)}, got {branch_kind!r}")
        wire_branch = {"name": branch or "loss", "kind": branch_kind, "inputs": list(KIND_INPUTS[branch_kind]), "tree": obj}
        obj = {"v": GRAPH_WIRE_VERSION, "branches": [wire_branch]}
    elif isinstance(obj, dict) and "tree" in obj:
        obj = {"v": GRAPH_WIRE_VERSION, "branches": [obj]}
    elif not (isinstance(obj, dict) and "branches" in obj):
        raise GraphError(branch or "", (), "graph must be a wire loss {v, branches}, a wire branch {name, kind, inputs, tree} or a tree")
    loss = loss_from_wire(obj)
    if branch is None:
        if len(loss.branches) != 1:
            names = [b.name for b in loss.branches]
            raise GraphError("", (), f"the loss has branches {names}: say which one with branch=")
        chosen = loss.branches[0]
    else:
        matches = [b for b in loss.branches if b.name == branch]
        if not matches:
            raise GraphError(branch, (), f"no branch '{branch}' in the loss (has {[b.name for b in loss.branches]})")
        chosen = matches[0]
    if branch_kind is not None and chosen.kind != branch_kind:
        raise GraphError(chosen.name, (), f"branch kind is '{chosen.kind}' but branch_kind='{branch_kind}' was asked for")
    if chosen.kind not in KIND_INPUTS:
        raise GraphError(chosen.name, (), f"unknown branch kind '{chosen.kind}' (MMLab adapters know {sorted(KIND_INPUTS)})")
    return chosen
