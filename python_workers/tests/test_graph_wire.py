"""Wire decoding and validation: only the exact v1 shape is accepted, with errors that name the
branch, the path and the problem in the same words as src/graph/validate.ts and wire.ts."""

from __future__ import annotations

import copy

import msgpack
import pytest

from autoloss_worker.graph import (
    Branch,
    GraphError,
    Limits,
    LossGraph,
    OpNode,
    decode_loss,
    depth_of,
    loss_from_wire,
    loss_to_wire,
    size_of,
)

DENSE = ["y_hat", "y", "one"]
BOX = ["i", "u", "e", "one"]


def wire(tree, name="loss", inputs=DENSE, kind="dense", **extra):
    return {"v": 1, "branches": [{"name": name, "kind": kind, "inputs": list(inputs), "tree": tree, **extra}]}


def error_of(obj, **kw) -> str:
    with pytest.raises(GraphError) as info:
        loss_from_wire(obj, **kw)
    return str(info.value)


def chain(depth: int, leaf="y"):
    tree = leaf
    for _ in range(depth):
        tree = ["neg", tree]
    return tree


def test_decodes_the_protocol_example():
    bytes_ = msgpack.packb(wire(["neg", ["mul", "y", ["log", "y_hat"]]]))
    graph = decode_loss(bytes_)
    assert graph == LossGraph([Branch("loss", "dense", DENSE, OpNode("neg", [OpNode("mul", ["y", OpNode("log", ["y_hat"])])]))])
    assert depth_of(graph.branches[0].tree) == 3 and size_of(graph.branches[0].tree) == 5
    assert loss_to_wire(graph) == wire(["neg", ["mul", "y", ["log", "y_hat"]]])


def test_multi_branch_roundtrip():
    obj = {
        "v": 1,
        "branches": [
            {"name": "rpn_cls", "kind": "dense", "inputs": DENSE, "tree": ["neg", ["mul", "y", ["log", "y_hat"]]]},
            {"name": "rpn_reg", "kind": "box", "inputs": BOX, "tree": ["mul", "e", ["inv", ["add", "i", "u"]]]},
        ],
    }
    assert loss_to_wire(decode_loss(msgpack.packb(obj))) == obj


def test_unknown_operator():
    assert error_of(wire(["neg", ["frobnicate", "y"]])) == "loss@[0]: unknown operator 'frobnicate'"


def test_wrong_arity():
    assert error_of(wire(["add", "y"])) == "loss@[]: operator 'add' takes 2 arguments, got 1"
    assert error_of(wire(["neg", ["exp", "y", "y_hat"]])) == "loss@[0]: operator 'exp' takes 1 argument, got 2"


def test_unknown_input_is_never_evaluated():
    msg = error_of(wire(["add", "y", ["neg", "__import__('os').system('true')"]], name="rpn_cls"))
    assert msg == "rpn_cls@[1,0]: unknown input '__import__('os').system('true')' (kind dense: y_hat, y, one)"
    # box leaves are not dense leaves
    assert error_of(wire(["neg", "i"])) == "loss@[0]: unknown input 'i' (kind dense: y_hat, y, one)"


def test_depth_limit():
    loss_from_wire(wire(chain(16)))
    assert error_of(wire(chain(17))) == "loss@[" + ",".join(["0"] * 16) + "]: depth exceeds the limit of 16 operators"
    assert "depth exceeds the limit of 3 operators" in error_of(wire(chain(4)), limits=Limits(max_depth=3))


def test_hostile_depth_stops_early():
    deep = chain(100_000)  # built iteratively; the decoder must refuse at depth 16 without recursing further
    assert "depth exceeds the limit of 16" in error_of(wire(deep))


def balanced(depth: int):
    return "y" if depth == 0 else ["add", balanced(depth - 1), balanced(depth - 1)]


def test_node_limit():
    loss_from_wire(wire(["neg", balanced(7)]))  # 1 + 255 = 256 nodes: allowed
    # 1 + 255 + 1 = 257 nodes: the walk (pre-order) stops at the last leaf
    assert error_of(wire(["add", balanced(7), "y"])) == "loss@[1]: branch has more than 256 nodes"
    assert error_of(wire(balanced(2)), limits=Limits(max_nodes=6)) == "loss@[1,1]: branch has more than 6 nodes"


def test_bad_version():
    obj = wire("y")
    obj["v"] = 2
    assert error_of(obj) == "loss@[]: unsupported graph wire version 2 (this build reads 1)"
    obj["v"] = True  # msgpack true must not pass for 1
    assert "unsupported graph wire version True" in error_of(obj)
    del obj["v"]
    assert "unsupported graph wire version None" in error_of(obj)


def test_shape_errors():
    assert error_of([1, 2]) == "loss@[]: a wire loss must be a map"
    assert error_of({"v": 1, "branches": [], "extra": 0}) == "loss@[]: the wire loss has an unknown field 'extra'"
    assert error_of({"v": 1}) == "loss@[]: the wire loss lacks the field 'branches'"
    assert error_of({"v": 1, "branches": {}}) == "loss@[]: 'branches' must be an array"
    assert error_of({"v": 1, "branches": []}) == "loss@[]: a loss needs at least one branch"
    assert error_of({"v": 1, "branches": ["x"]}) == "#0@[]: a wire branch must be a map"
    assert error_of(wire("y", weight=2)) == "loss@[]: the branch has an unknown field 'weight'"
    assert error_of(wire("y", name=3)) == "#0@[]: 'name' must be a string"
    assert error_of(wire("y", inputs=["y", "y"])) == "loss@[]: 'inputs' repeats a name"
    assert error_of(wire("y", inputs=[1])) == "loss@[]: 'inputs' must be an array of strings"
    assert error_of(wire([])) == "loss@[]: not a node: want an input name or [op, ...children]"
    assert error_of(wire(["neg", 3])) == "loss@[0]: not a node: want an input name or [op, ...children]"


def test_branch_names_and_count():
    assert error_of(wire("y", name="rpn-cls")) == "rpn-cls@[]: invalid branch name 'rpn-cls' (want [A-Za-z_][A-Za-z0-9_]*)"
    two = wire("y")
    two["branches"].append(copy.deepcopy(two["branches"][0]))
    assert error_of(two) == "loss@[]: duplicate branch name 'loss'"
    many = {"v": 1, "branches": [wire("y", name=f"b{k}")["branches"][0] for k in range(17)]}
    assert error_of(many) == "loss@[]: 17 branches exceed the limit of 16"
    assert error_of(wire("y", inputs=[])) == "loss@[]: branch kind 'dense' declares no inputs"


def test_malformed_bytes():
    with pytest.raises(GraphError, match=r"^loss@\[\]: not a msgpack loss: "):
        decode_loss(b"\xc1")
    with pytest.raises(GraphError, match="a wire loss must be a map"):
        decode_loss(msgpack.packb("neg(y)"))
