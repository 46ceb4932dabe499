"""Compile a loss branch into a torch function of its input tensors.

    fn = compile_branch(branch)                 # once per graph: builds a closure tree
    out = fn({"y_hat": probs, "y": onehot})     # (N, C, H, W), elementwise; autograd-ready
    loss = branch_value(out)                    # sum / (N·H·W), the paper's branch value

The graph is walked once at compile time; calls only run the closures. `one` may be omitted from
the inputs: it is then ones shaped (and typed, and placed) like the first of the branch's other
inputs that is present, in the order the branch kind lists them.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch

from .ops import BINARY, UNARY
from .tree import Branch, OpNode, Tree

Tensor = torch.Tensor
Env = Mapping[str, Tensor]
BranchFn = Callable[[Env], Tensor]


def _compile(tree: Tree) -> Callable[[Env], Tensor]:
    if isinstance(tree, str):
        name = tree
        return lambda env: env[name]
    assert isinstance(tree, OpNode), f"not a node: {tree!r}"
    if tree.op in BINARY:
        f2 = BINARY[tree.op]
        left, right = (_compile(a) for a in tree.args)
        return lambda env: f2(left(env), right(env))
    f1 = UNARY[tree.op]
    (child,) = (_compile(a) for a in tree.args)
    return lambda env: f1(child(env))


def _leaves(tree: Tree) -> set[str]:
    return {tree} if isinstance(tree, str) else set().union(*(_leaves(a) for a in tree.args))


def compile_branch(branch: Branch) -> BranchFn:
    """The branch's elementwise output as a function of its inputs (a validated branch, e.g. from
    `decode_loss`). Raises ValueError for missing inputs or inputs of different shapes."""
    run = _compile(branch.tree)
    used = [name for name in branch.inputs if name in _leaves(branch.tree)]
    # Every declared input except `one`, in kind order: `one` copies the first one present.
    others = [name for name in branch.inputs if name != "one"]

    def fn(inputs: Env) -> Tensor:
        env = dict(inputs)
        if "one" not in env:
            reference = next((env[n] for n in others if n in env), None)
            if reference is None:
                raise ValueError(f"branch '{branch.name}': no input to shape 'one' like (want one of {others})")
            env["one"] = torch.ones_like(reference)
        shape = None
        for name in used:
            if name not in env:
                raise ValueError(f"branch '{branch.name}': input '{name}' was not provided")
            t = env[name]
            if t.dim() != 4:
                raise ValueError(f"branch '{branch.name}': input '{name}' must be (N, C, H, W), got {tuple(t.shape)}")
            # No broadcasting between inputs: add/mul would silently broadcast in torch.
            if shape is None:
                shape = t.shape
            elif t.shape != shape:
                raise ValueError(
                    f"branch '{branch.name}': input '{name}' has shape {tuple(t.shape)}, expected {tuple(shape)}"
                )
        return run(env)

    return fn


def branch_value(out: Tensor) -> Tensor:
    """L = Σ o / (N·H·W) for an (N, C, H, W) output: no normalisation over C (paper Eq. 1)."""
    assert out.dim() == 4, f"branch output must be (N, C, H, W), got {tuple(out.shape)}"
    n, _, h, w = out.shape
    return out.sum() / (n * h * w)
