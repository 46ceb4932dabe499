"""Σ o and ∂(Σ o)/∂inputs of one loss tree in closed form: no autograd graph per step.

    grad = TreeGradient(tree, variables={"y_hat"}).bind({"y": y, "one": one})  # once per run
    value, adjoints = grad({"y_hat": y_hat})   # value: 0-dim Σ o; adjoints: {"y_hat": ∂Σo/∂y_hat}

Why: the protocol takes 500 steps per passing candidate on tensors of a few ten thousand numbers,
where building and walking autograd's graph costs as much as the arithmetic. Here the tree is
walked once at construction into a post-order program, subtrees that do not depend on a variable
input (``y``, ``one`` only) are evaluated once at ``bind``, and every step runs the forward
values (the operators of ``graph/ops.py``) and then each operator's derivative, the same
formulas autograd applies (``tools/autograd/derivatives.yaml``), so gradients agree with
autograd's to the last bits (only the order of summing a variable's several leaves may differ).

Shapes: inputs are (B, C, H, W) for *one* candidate, B samples that never interact: ``mean_nhw``
averages over H, W of its own sample (the protocol evaluates a loss that contains it sample by
sample, N = 1), ``mean_c`` over C, pooling over H, W.
"""
from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from autoloss_worker.graph import EPSILON, Tree
from autoloss_worker.graph.ops import BINARY, UNARY


@dataclass(frozen=True)
class _Node:
    op: str  # operator name, or "" for a leaf
    leaf: str  # input name (leaves only)
    args: tuple[int, ...]  # program positions of the children
    variable: bool  # depends on a variable input


def max_pool_with_indices(x: Tensor) -> tuple[Tensor, Tensor]:
    """``F.max_pool2d(x, 3, 1, 1)`` and, per output, the flat H·W index of its winner. The same
    kernel as graph/ops.py, run on all B·C maps as channels of one channels-last image: about 5×
    faster on these small float64 maps than the (B, C) layout, and bitwise the same values and
    indices (a max has no rounding; both kernels keep the first maximum in window order)."""
    B, C, H, W = x.shape
    maps = x.reshape(1, B * C, H, W).contiguous(memory_format=torch.channels_last)
    value, index = F.max_pool2d(maps, kernel_size=3, stride=1, padding=1, return_indices=True)
    return value.reshape(B, C, H, W), index.reshape(B, C, H, W)


def max_pool_backward(a: Tensor, index: Tensor) -> Tensor:
    """Each output's adjoint added to its winner in output order (``scatter_add_``), the order of
    autograd's ``max_pool2d_with_indices_backward``: bitwise the same gradient."""
    B, C, H, W = a.shape
    out = a.new_zeros((B, C, H * W))
    return out.scatter_add_(-1, index.flatten(-2), a.flatten(-2)).view(B, C, H, W)


# An adjoint is a tensor, or a float when it is that number everywhere (the root's 1, then −1
# after a neg ...): multiplying by ±1 is exact, so skipping that multiply changes no bit.
Adjoint = Tensor | float


def _times(a: Adjoint, t: Tensor) -> Tensor:
    """a · t, exactly as autograd's ``grad * t`` with a uniform ``a``."""
    if isinstance(a, Tensor):
        return a * t
    return t if a == 1.0 else -t if a == -1.0 else t * a


def _positive(x: Tensor) -> bool:
    """Every entry > 0 (NaN fails). Then sign(x) = 1 and |x| = x, and log, sqrt, abs and their
    derivatives lose the sign factors without changing a bit (1·v = v)."""
    return bool(x.min() > 0)


def _forward(op: str, x: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor | bool | None]:
    """The operator's value and what its derivative needs beyond operands and result: the pool
    winners, or for log / sqrt / abs whether the operand is positive."""
    if op in ("log", "sqrt", "abs"):
        if not _positive(x):
            return UNARY[op](x), False
        if op == "abs":
            return x, True
        return (torch.log if op == "log" else torch.sqrt)(x + EPSILON), True
    if op == "max_pool":
        return max_pool_with_indices(x)
    if op == "min_pool":  # −max_pool(−x), as graph/ops.py
        value, index = max_pool_with_indices(-x)
        return -value, index
    if op == "mean_nhw":  # per sample (N = 1): over H, W
        return x.mean(dim=(-2, -1), keepdim=True).expand_as(x), None
    if y is not None:
        return BINARY[op](x, y), None
    return UNARY[op](x), None


def _backward(op: str, a: Adjoint, x: Tensor, y: Tensor | None, out: Tensor, saved: Tensor | bool | None,
              which: int) -> Adjoint:
    """∂(Σ o)/∂(operand ``which``) given the adjoint ``a`` of the operator's result ``out``.
    Each line is autograd's formula for the operator as ``graph/ops.py`` composes it (sign has a
    zero derivative, abs → a·sgn(x), log → a / x, sqrt → a / (2·result), pow(x, 2) → a·2x ...)."""
    if op == "add":
        return a
    if op == "mul":
        return _times(a, y if which == 0 else x)  # type: ignore[arg-type]
    if op == "neg":
        return -a
    if op in ("mean_nhw", "mean_c") and not isinstance(a, Tensor):
        return a  # the mean of n copies of ±1 is exactly ±1
    if op == "mean_nhw":
        H, W = x.shape[-2:]
        return (a.sum(dim=(-2, -1), keepdim=True) / (H * W)).expand_as(x)
    if op == "mean_c":
        return (a.sum(dim=-3, keepdim=True) / x.shape[-3]).expand_as(x)
    if not isinstance(a, Tensor):
        a = out.new_full((), a).expand_as(out)
    if op == "abs":
        return a if saved else a * x.sgn()
    if op == "inv":  # reciprocal(x + ε): −a·r²
        return -a * (out * out)
    if op == "log":  # sign(x)·log(|x| + ε)
        if saved:
            return a / (x + EPSILON)
        s = x.sign()
        return (a * s) / (x.abs() + EPSILON) * s
    if op == "exp":
        return a * out
    if op == "tanh":
        return torch.ops.aten.tanh_backward(a, out)
    if op == "square":
        return a * (2 * x)
    if op == "sqrt":  # sign(x)·sqrt(|x| + ε)
        if saved:
            return a / (2 * out)
        s = x.sign()
        return (a * s) / (2 * torch.sqrt(x.abs() + EPSILON)) * s
    if op == "max_pool":
        assert isinstance(saved, Tensor)
        return max_pool_backward(a, saved)
    if op == "min_pool":  # −max_pool(−x): the two negations cancel around the scatter
        assert isinstance(saved, Tensor)
        return -max_pool_backward(-a, saved)
    raise ValueError(f"no derivative for operator {op!r}")


class TreeGradient:
    """A tree compiled to a post-order program over its nodes (build once per candidate)."""

    def __init__(self, tree: Tree, variables: Set[str]) -> None:
        self.nodes: list[_Node] = []
        self.variables = frozenset(variables)

        def visit(t: Tree) -> int:
            if isinstance(t, str):
                self.nodes.append(_Node("", t, (), t in self.variables))
            else:
                assert t.op in UNARY or t.op in BINARY, f"unknown operator {t.op!r}"
                args = tuple(visit(a) for a in t.args)
                self.nodes.append(_Node(t.op, "", args, any(self.nodes[i].variable for i in args)))
            return len(self.nodes) - 1

        visit(tree)

    @property
    def constant(self) -> bool:
        return not self.nodes[-1].variable

    def bind(self, constants: Mapping[str, Tensor]) -> BoundGradient:
        return BoundGradient(self, constants)


class BoundGradient:
    """A ``TreeGradient`` with its constant subtrees evaluated on fixed constant inputs."""

    def __init__(self, program: TreeGradient, constants: Mapping[str, Tensor]) -> None:
        self.program = program
        nodes = program.nodes
        # Constant nodes a variable node reads, and a constant root: evaluated once, kept.
        needed = {c for n in nodes if n.variable for c in n.args if not nodes[c].variable}
        if program.constant:
            needed.add(len(nodes) - 1)
        self.fixed: dict[int, Tensor] = {}
        values: list[Tensor | None] = []
        for i, node in enumerate(nodes):
            value = None
            if node.variable:
                pass
            elif not node.op:
                value = constants[node.leaf]
            else:
                x, y = values[node.args[0]], values[node.args[1]] if len(node.args) == 2 else None
                assert x is not None
                value, _ = _forward(node.op, x, y)
            values.append(value)
            if i in needed:
                assert value is not None
                self.fixed[i] = value
        self.like = next(iter(constants.values()))

    def __call__(self, inputs: Mapping[str, Tensor], seed: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Σ (o · seed) and its derivative w.r.t. every variable input present in the tree (a
        variable the tree does not use is absent). ``seed``: the task's weight (broadcast), or None."""
        nodes = self.program.nodes
        if self.program.constant:
            out = self.fixed[len(nodes) - 1]
            out = out.expand_as(self.like) if seed is None else out.expand_as(self.like) * seed
            return out.sum(), {}
        values: list[Tensor | None] = [None] * len(nodes)
        saved: list[Tensor | bool | None] = [None] * len(nodes)
        for i, node in enumerate(nodes):
            if not node.variable:
                values[i] = self.fixed.get(i)  # None: only read by other constants
            elif not node.op:
                values[i] = inputs[node.leaf]
            else:
                y = values[node.args[1]] if len(node.args) == 2 else None
                values[i], saved[i] = _forward(node.op, values[node.args[0]], y)  # type: ignore[arg-type]
        root = values[-1]
        assert root is not None
        value = (root if seed is None else root * seed).sum()
        adjoint: list[Adjoint | None] = [None] * len(nodes)
        adjoint[-1] = 1.0 if seed is None else seed.expand_as(root)
        grads: dict[str, Adjoint] = {}
        for i in range(len(nodes) - 1, -1, -1):
            node, a = nodes[i], adjoint[i]
            if not node.variable or a is None:
                continue
            adjoint[i] = None  # free as we go
            if not node.op:
                grads[node.leaf] = a if node.leaf not in grads else grads[node.leaf] + a
                continue
            x = values[node.args[0]]
            y = values[node.args[1]] if len(node.args) == 2 else None
            for which, child in enumerate(node.args):
                if nodes[child].variable:
                    adjoint[child] = _backward(node.op, a, x, y, values[i], saved[i], which)  # type: ignore[arg-type]
        return value, {key: g if isinstance(g, Tensor) else root.new_full((), g).expand_as(root)
                       for key, g in grads.items()}
