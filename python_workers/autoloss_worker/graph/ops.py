"""The 14 primitive operators of AutoLoss-Zero (Li et al., CVPR 2022, Table 1) in torch.

All map (N, C, H, W) tensors to (N, C, H, W) tensors, work in float32 and float64 alike, and are
differentiable by autograd. Semantics (restated from `src/graph/ops.ts`, checked against the TS
reference evaluator by `protocol/vectors/graphs.json`):

- ε = 1e-12; sign(0) = 0, so log(0) = sqrt(0) = 0.
- inv(x) = 1/(x + ε), log(x) = sign(x)·log(|x| + ε), sqrt(x) = sign(x)·sqrt(|x| + ε).
- mean_nhw: mean over N, H, W per channel; mean_c: mean over C per (n, h, w); both broadcast back.
- max_pool / min_pool: 3×3, stride 1, padding 1, and the padding never wins. `F.max_pool2d`
  pads implicitly with −inf (https://pytorch.org/docs/stable/generated/torch.nn.MaxPool2d.html),
  and min_pool(x) = −max_pool(−x) turns that into +inf padding.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.nn.functional as F

EPSILON = 1e-12

Tensor = torch.Tensor


def _inv(x: Tensor) -> Tensor:
    return torch.reciprocal(x + EPSILON)


def _log(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.log(torch.abs(x) + EPSILON)


def _sqrt(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.sqrt(torch.abs(x) + EPSILON)


def _mean_nhw(x: Tensor) -> Tensor:
    return x.mean(dim=(0, 2, 3), keepdim=True).expand_as(x)  # (1, C, 1, 1) -> (N, C, H, W)


def _mean_c(x: Tensor) -> Tensor:
    return x.mean(dim=1, keepdim=True).expand_as(x)  # (N, 1, H, W) -> (N, C, H, W)


def _max_pool(x: Tensor) -> Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


def _min_pool(x: Tensor) -> Tensor:
    return -F.max_pool2d(-x, kernel_size=3, stride=1, padding=1)


UNARY: Mapping[str, Callable[[Tensor], Tensor]] = {
    "neg": torch.neg,
    "abs": torch.abs,
    "inv": _inv,
    "log": _log,
    "exp": torch.exp,
    "tanh": torch.tanh,
    "square": torch.square,
    "sqrt": _sqrt,
    "mean_nhw": _mean_nhw,
    "mean_c": _mean_c,
    "max_pool": _max_pool,
    "min_pool": _min_pool,
}

BINARY: Mapping[str, Callable[[Tensor, Tensor], Tensor]] = {
    "add": torch.add,
    "mul": torch.mul,
}

# Same order as OP_NAMES in src/graph/ops.ts (the order random sampling indexes into).
OP_NAMES: tuple[str, ...] = (
    "add", "mul", "neg", "abs", "inv", "log", "exp", "tanh", "square", "sqrt",
    "mean_nhw", "mean_c", "max_pool", "min_pool",
)

ARITY: Mapping[str, int] = {**{name: 1 for name in UNARY}, **{name: 2 for name in BINARY}}

assert set(ARITY) == set(OP_NAMES) and len(ARITY) == 14, "every operator needs exactly one implementation"
