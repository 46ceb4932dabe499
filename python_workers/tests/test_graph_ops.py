"""Torch operators and the interpreter against independent numpy formulas, gradcheck in float64,
pooling borders, aggregation broadcast, and the paper's Table 8 losses on probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from autoloss_worker.graph import (
    ARITY,
    DENSE_INPUTS,
    EPSILON,
    OP_NAMES,
    Branch,
    OpNode,
    branch_value,
    compile_branch,
)
from autoloss_worker.graph.ops import BINARY, UNARY

torch.set_num_threads(1)
RNG = np.random.default_rng(7)
SHAPE = (2, 3, 4, 5)


def _pool_ref(x: np.ndarray, reduce) -> np.ndarray:
    """3×3 stride-1 pooling with padding that never wins: pad with NaN and ignore NaNs."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=np.nan)
    return reduce(sliding_window_view(padded, (3, 3), axis=(2, 3)), axis=(-2, -1))


NUMPY_REFERENCE = {
    "add": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "neg": lambda a: -a,
    "abs": np.abs,
    "inv": lambda a: 1.0 / (a + EPSILON),
    "log": lambda a: np.sign(a) * np.log(np.abs(a) + EPSILON),
    "exp": np.exp,
    "tanh": np.tanh,
    "square": lambda a: a * a,
    "sqrt": lambda a: np.sign(a) * np.sqrt(np.abs(a) + EPSILON),
    "mean_nhw": lambda a: np.broadcast_to(a.mean(axis=(0, 2, 3), keepdims=True), a.shape),
    "mean_c": lambda a: np.broadcast_to(a.mean(axis=1, keepdims=True), a.shape),
    "max_pool": lambda a: _pool_ref(a, np.nanmax),
    "min_pool": lambda a: _pool_ref(a, np.nanmin),
}


def _apply(op: str, *args: torch.Tensor) -> torch.Tensor:
    return BINARY[op](*args) if ARITY[op] == 2 else UNARY[op](*args)


def _signed(shape=SHAPE, lo=0.05, hi=2.0) -> np.ndarray:
    """Both signs, magnitudes log-uniform in [lo, hi]: away from every kink at 0."""
    mag = np.exp(RNG.uniform(np.log(lo), np.log(hi), size=shape))
    return np.where(RNG.random(shape) < 0.5, -mag, mag)


def _distinct(shape=SHAPE) -> np.ndarray:
    """A permutation of well-separated values (gap 0.1): pooling windows never nearly tie."""
    return (RNG.permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 1.0) + RNG.uniform(-0.02, 0.02, shape)


def test_operator_table_matches_the_protocol():
    assert OP_NAMES == (
        "add", "mul", "neg", "abs", "inv", "log", "exp", "tanh", "square", "sqrt",
        "mean_nhw", "mean_c", "max_pool", "min_pool",
    )
    assert {op for op in OP_NAMES if ARITY[op] == 2} == {"add", "mul"}
    assert EPSILON == 1e-12


@pytest.mark.parametrize("op", OP_NAMES)
def test_operator_matches_numpy_formula(op):
    # Includes exact zeros to pin sign(0) = 0, and values of both signs.
    xs = [_signed(), _signed()]
    xs[0].flat[:3] = 0.0
    args = xs[: ARITY[op]]
    got = _apply(op, *(torch.from_numpy(a) for a in args))
    want = NUMPY_REFERENCE[op](*args)
    assert got.shape == SHAPE and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-13, atol=0)


@pytest.mark.parametrize("op", OP_NAMES)
def test_operator_keeps_float32(op):
    args = [_signed(), _signed()][: ARITY[op]]
    got = _apply(op, *(torch.from_numpy(a).float() for a in args))
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), NUMPY_REFERENCE[op](*args), rtol=1e-5, atol=1e-6)


def test_sign_conventions_at_zero_and_near_zero():
    x = torch.tensor([0.0, 1e-20, -4.0, 4.0], dtype=torch.float64).reshape(1, 1, 1, 4)
    assert UNARY["log"](x).flatten().tolist()[0] == 0.0
    assert UNARY["sqrt"](x).flatten().tolist()[0] == 0.0
    assert UNARY["inv"](x).flatten()[0].item() == pytest.approx(1e12)
    np.testing.assert_allclose(UNARY["sqrt"](x).flatten()[2:].numpy(), [-2.0, 2.0], rtol=1e-12)
    # log(1e-20) = log(1e-20 + ε) ≈ log(ε): finite, not -inf
    assert UNARY["log"](x).flatten()[1].item() == pytest.approx(np.log(1e-12 + 1e-20))


def _gradcheck_inputs(op: str) -> list[torch.Tensor]:
    shape = (2, 3, 3, 4)
    if op in ("max_pool", "min_pool"):
        arrays = [_distinct(shape)]
    elif op in ("exp", "tanh"):
        arrays = [RNG.uniform(-2, 2, shape)]
    else:
        arrays = [_signed(shape, 0.1, 2.0), _signed(shape, 0.1, 2.0)][: ARITY[op]]
    return [torch.from_numpy(a).requires_grad_(True) for a in arrays]


@pytest.mark.parametrize("op", OP_NAMES)
def test_operator_gradcheck(op):
    assert torch.autograd.gradcheck(lambda *a: _apply(op, *a), _gradcheck_inputs(op), eps=1e-6, atol=1e-7)


def test_max_pool_borders_with_all_negative_input():
    x = -torch.arange(1, 10, dtype=torch.float64).reshape(1, 1, 3, 3)  # -1 .. -9
    # zero padding would make every border output 0; hand-computed window maxima:
    assert UNARY["max_pool"](x).flatten().tolist() == [-1, -1, -2, -1, -1, -2, -4, -4, -5]


def test_min_pool_borders_with_all_positive_input():
    x = torch.arange(1, 13, dtype=torch.float64).reshape(1, 1, 3, 4)
    assert UNARY["min_pool"](x).flatten().tolist() == [1, 1, 2, 3, 1, 1, 2, 3, 5, 5, 6, 7]


def test_pooling_gradient_goes_to_the_window_winner_never_to_padding():
    x = (-torch.arange(1, 10, dtype=torch.float64)).reshape(1, 1, 3, 3).requires_grad_(True)
    UNARY["max_pool"](x).sum().backward()
    # winners: -1 wins 4 windows, -2 wins 2, -4 wins 2, -5 wins 1; gradients sum to 9 outputs
    assert x.grad.flatten().tolist() == [4, 2, 0, 2, 1, 0, 0, 0, 0]


def test_pooling_stays_inside_each_plane():
    x = torch.tensor([1, 2, 10, 20, -5, -6, 7, 3], dtype=torch.float64).reshape(2, 2, 1, 2)
    assert UNARY["max_pool"](x).flatten().tolist() == [2, 2, 20, 20, -5, -5, 7, 7]
    assert UNARY["min_pool"](x).flatten().tolist() == [1, 1, 10, 10, -6, -6, 3, 3]


def test_aggregations_broadcast_back():
    x = torch.tensor([1, 2, 10, 20, 3, 6, 30, 40], dtype=torch.float64).reshape(2, 2, 1, 2)
    assert UNARY["mean_nhw"](x).flatten().tolist() == [3, 3, 25, 25, 3, 3, 25, 25]
    assert UNARY["mean_c"](x).flatten().tolist() == [5.5, 11, 5.5, 11, 16.5, 23, 16.5, 23]
    # the broadcast result is a full tensor downstream ops can consume
    assert UNARY["exp"](UNARY["mean_c"](x)).shape == x.shape
    # branch value: sum 112 over N·H·W = 4, no normalisation over C
    assert branch_value(x).item() == 28.0


def _branch(tree, name="loss", inputs=DENSE_INPUTS, kind="dense") -> Branch:
    return Branch(name=name, kind=kind, inputs=inputs, tree=tree)


def _op(name, *args):
    return OpNode(name, args)


# Paper Table 8 as trees (same as the TS syntax in scripts/gen-vectors.ts).
HALF = _op("inv", _op("add", "one", "one"))
TABLE_8_DENSE = {
    "seg_miou": _op("neg", _op("mul", HALF, _op("log", _op("mul", _op("tanh", _op("mul", _op("mul", "y", _op("inv", _op("add", "one", "y"))), _op("sqrt", "y_hat"))), _op("add", _op("square", "y_hat"), "y"))))),
    "seg_fwiou": _op("log", _op("mul", "y", _op("log", _op("add", "y", _op("mul", _op("add", "y", "y_hat"), _op("inv", "y_hat")))))),
    "seg_gacc": _op("exp", _op("square", _op("add", "y", _op("neg", _op("sqrt", "y_hat"))))),
    "seg_macc": _op("tanh", _op("sqrt", _op("mean_nhw", _op("mul", _op("neg", _op("log", "y_hat")), _op("sqrt", _op("max_pool", _op("sqrt", _op("add", "y", "y")))))))),
    "seg_biou": _op("neg", _op("log", _op("mul", _op("mul", _op("mul", _op("mul", "y_hat", _op("square", "y_hat")), "y"), _op("sqrt", _op("neg", _op("min_pool", _op("neg", "y_hat"))))), _op("exp", _op("square", _op("mul", "y_hat", _op("exp", "y_hat"))))))),
    "seg_bf1": _op("exp", _op("add", _op("mean_nhw", _op("mul", _op("neg", _op("max_pool", "y")), _op("log", _op("max_pool", "y_hat")))), _op("tanh", _op("mean_nhw", _op("add", _op("add", "y_hat", "y_hat"), "one"))))),
    "det_rpn_cls": _op("mul", _op("exp", _op("tanh", "y")), _op("inv", "y_hat")),
    "det_rcnn_cls": _op("neg", _op("mul", "y", _op("log", "y_hat"))),
    "ins_rpn_cls": _op("neg", _op("mul", _op("mul", "y", "y_hat"), _op("inv", _op("tanh", "y_hat")))),
    "ins_mask": _op("abs", _op("log", _op("mul", "y", "y_hat"))),
    "pose": _op("add", _op("square", _op("add", "y_hat", _op("neg", _op("square", _op("square", _op("add", "y", "y")))))), _op("square", _op("square", "y_hat"))),
}
TABLE_8_BOX = {
    "det_rpn_reg": _op("mul", "e", _op("inv", _op("add", "i", "u"))),
    "det_rcnn_reg": _op("neg", _op("log", _op("mul", "i", _op("inv", "e")))),
    "ins_rcnn_reg": _op("neg", _op("mul", _op("sqrt", "i"), _op("inv", _op("sqrt", "e")))),
}


def test_table8_hand_values():
    # −y·log(ŷ + ε) at ŷ = 1/2, y = 1: log 2 − 2ε per element; N·H·W = 1, C = 2 → 2·log 2 − 4ε
    f = compile_branch(_branch(TABLE_8_DENSE["det_rcnn_cls"]))
    out = f({"y_hat": torch.full((1, 2, 1, 1), 0.5, dtype=torch.float64), "y": torch.ones(1, 2, 1, 1, dtype=torch.float64)})
    assert branch_value(out).item() == pytest.approx(2 * np.log(2) - 4e-12, abs=1e-15)
    # pose at ŷ = 1, y = 1/2: (1 − 16/16)² + 1 = 1
    f = compile_branch(_branch(TABLE_8_DENSE["pose"]))
    out = f({"y_hat": torch.ones(1, 1, 1, 1, dtype=torch.float64), "y": torch.full((1, 1, 1, 1), 0.5, dtype=torch.float64)})
    assert out.item() == pytest.approx(1.0, rel=1e-12)
    # e/(i + u) at i = 1, u = 2, e = 6: 2
    f = compile_branch(_branch(TABLE_8_BOX["det_rpn_reg"], inputs=("i", "u", "e", "one"), kind="box"))
    t = lambda v: torch.full((1, 1, 1, 1), v, dtype=torch.float64)  # noqa: E731
    assert f({"i": t(1.0), "u": t(2.0), "e": t(6.0)}).item() == pytest.approx(2.0, rel=1e-12)


@pytest.mark.parametrize("name", sorted(TABLE_8_DENSE))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_table8_dense_losses_finite_on_probabilities(name, dtype):
    f = compile_branch(_branch(TABLE_8_DENSE[name]))
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        logits = torch.randn(4, 5, 8, 8, generator=gen, dtype=dtype)
        y_hat = torch.softmax(logits, dim=1).requires_grad_(True)  # probabilities in (0, 1)
        y = torch.rand(4, 5, 8, 8, generator=gen, dtype=dtype).clamp_min(1e-3)
        value = branch_value(f({"y_hat": y_hat, "y": y}))
        (grad,) = torch.autograd.grad(value, [y_hat])
        assert torch.isfinite(value), f"{name}: value {value}"
        assert torch.isfinite(grad).all(), f"{name}: gradient not finite"


@pytest.mark.parametrize("name", sorted(TABLE_8_BOX))
def test_table8_box_losses_finite(name):
    f = compile_branch(_branch(TABLE_8_BOX[name], inputs=("i", "u", "e", "one"), kind="box"))
    gen = torch.Generator().manual_seed(5)
    i = torch.rand(16, 1, 1, 1, generator=gen, dtype=torch.float64) + 0.01
    u = i + torch.rand(16, 1, 1, 1, generator=gen, dtype=torch.float64)
    e = u + torch.rand(16, 1, 1, 1, generator=gen, dtype=torch.float64)
    ins = {"i": i.requires_grad_(True), "u": u.requires_grad_(True), "e": e.requires_grad_(True)}
    value = branch_value(f(ins))
    grads = torch.autograd.grad(value, list(ins.values()), allow_unused=True)
    assert torch.isfinite(value)
    assert all(g is None or torch.isfinite(g).all() for g in grads)


COMPOSITES = {
    "cross_entropy": TABLE_8_DENSE["det_rcnn_cls"],
    "seg_macc": TABLE_8_DENSE["seg_macc"],
    "seg_bf1": TABLE_8_DENSE["seg_bf1"],
    "seg_biou": TABLE_8_DENSE["seg_biou"],
    "means_and_pools": _op("mul", _op("mean_c", _op("max_pool", "y_hat")), _op("add", _op("mean_nhw", "y"), _op("min_pool", _op("mul", "y_hat", "y")))),
}


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_composite_gradcheck(name):
    f = compile_branch(_branch(COMPOSITES[name]))
    shape = (2, 3, 3, 3)
    # separated probabilities: no pooling near-ties, away from 0 and 1
    y_hat = torch.from_numpy(0.05 + 0.9 * (RNG.permutation(54).reshape(shape) + RNG.uniform(0.3, 0.7, shape)) / 54)
    y = torch.from_numpy(0.05 + 0.9 * (RNG.permutation(54).reshape(shape) + RNG.uniform(0.3, 0.7, shape)) / 54)
    inputs = [y_hat.requires_grad_(True), y.requires_grad_(True)]
    assert torch.autograd.gradcheck(lambda a, b: branch_value(f({"y_hat": a, "y": b})), inputs, eps=1e-7, atol=1e-6)


def test_one_is_shaped_like_the_first_other_input_and_shapes_must_agree():
    f = compile_branch(_branch(_op("add", "one", "y")))
    y = torch.zeros(2, 3, 1, 1, dtype=torch.float32)
    out = f({"y": y})
    assert out.dtype == torch.float32 and out.shape == y.shape and out.eq(1).all()
    with pytest.raises(ValueError, match="input 'y' was not provided"):
        compile_branch(_branch(_op("neg", "y")))({"y_hat": y})
    with pytest.raises(ValueError, match=r"input 'y' has shape \(2, 3, 1, 2\), expected \(2, 3, 1, 1\)"):
        compile_branch(_branch(_op("add", "y_hat", "y")))({"y_hat": y, "y": torch.zeros(2, 3, 1, 2)})
    with pytest.raises(ValueError, match=r"must be \(N, C, H, W\)"):
        compile_branch(_branch(_op("neg", "y")))({"y": torch.zeros(3)})
    with pytest.raises(ValueError, match="no input to shape 'one'"):
        compile_branch(_branch(_op("neg", "one")))({})
