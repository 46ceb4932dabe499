"""Golden vectors (protocol/vectors/graphs.json, written by scripts/gen-vectors.ts from the float64
TS reference evaluator): the torch interpreter must reproduce every output and value, and its
autograd gradients must match the finite-difference gradients wherever the vector has them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import msgpack
import numpy as np
import pytest
import torch

from autoloss_worker.graph import (
    EPSILON,
    GRAPH_WIRE_VERSION,
    branch_value,
    compile_branch,
    decode_loss,
    loss_to_wire,
    to_text,
)

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "protocol" / "vectors" / "graphs.json").read_text())
CASES = VECTORS["cases"]

OUTPUT_RTOL, OUTPUT_ATOL = 1e-9, 1e-12
GRAD_RTOL, GRAD_ATOL = 1e-5, 1e-8


def _tensor(t: dict, requires_grad: bool = False) -> torch.Tensor:
    x = torch.tensor(t["data"], dtype=torch.float64).reshape(t["shape"])
    return x.requires_grad_(requires_grad)


def test_file_header_matches_this_build():
    assert VECTORS["version"] == 1
    assert VECTORS["graph_wire_version"] == GRAPH_WIRE_VERSION
    assert VECTORS["epsilon"] == EPSILON
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector(case):
    torch.set_num_threads(1)
    wire_bytes = base64.b64decode(case["wire_b64"])
    graph = decode_loss(wire_bytes)
    # TS writes the smallest msgpack headers, as msgpack.packb does: re-encoding is byte-identical.
    assert msgpack.packb(loss_to_wire(graph)) == wire_bytes
    # The text is the TS printer's; our debug printer must agree on every branch.
    texts = [to_text(b.tree) for b in graph.branches]
    if len(graph.branches) == 1 and graph.branches[0].name == "loss":
        assert texts[0] == case["text"]
    else:
        assert "; ".join(f"{b.name}: {t}" for b, t in zip(graph.branches, texts)) == case["text"]

    inputs = {name: _tensor(t, requires_grad=True) for name, t in case["inputs"].items()}
    assert "one" not in inputs  # the interpreter must make it
    value = torch.zeros((), dtype=torch.float64)
    for branch, expected in zip(graph.branches, case["branches"], strict=True):
        assert branch.name == expected["name"]
        out = compile_branch(branch)(inputs)
        assert out.dtype == torch.float64
        assert list(out.shape) == expected["output"]["shape"]
        np.testing.assert_allclose(
            out.detach().numpy().ravel(), expected["output"]["data"], rtol=OUTPUT_RTOL, atol=OUTPUT_ATOL,
            err_msg=f"{case['name']}: output of branch {branch.name}",
        )
        bv = branch_value(out)
        np.testing.assert_allclose(bv.item(), expected["value"], rtol=OUTPUT_RTOL, atol=OUTPUT_ATOL)
        value = value + bv
    np.testing.assert_allclose(value.item(), case["value"], rtol=OUTPUT_RTOL, atol=OUTPUT_ATOL)

    if case["grads"] is None:
        assert "no grads" in case["note"]
        return
    names = list(case["grads"])
    if value.requires_grad:
        grads = torch.autograd.grad(value, [inputs[n] for n in names], allow_unused=True)
    else:  # a loss of `one` only: constant, every gradient is 0
        grads = (None,) * len(names)
    atol = max(GRAD_ATOL, case["grad_atol"])
    for name, g in zip(names, grads):
        actual = np.zeros(case["grads"][name]["shape"]) if g is None else g.numpy()
        np.testing.assert_allclose(
            actual.ravel(), case["grads"][name]["data"], rtol=GRAD_RTOL, atol=atol,
            err_msg=f"{case['name']}: d value / d {name}",
        )
