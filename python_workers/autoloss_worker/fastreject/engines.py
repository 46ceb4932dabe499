"""Engines of the rejection protocol: the objectives of K candidates and their gradients w.r.t. the
raw predictions, nothing else (``core.py`` does the SGD, the exits and the verdicts).

    engine = make_engine("closed", task, branch, samples, metric, trees=trees)
    values, G = engine(P, cands)   # P: blocks (see core.py); values (rows,), G: one tensor per block

Row j of every block is candidate ``cands[j]``. Engines:
* ``tree``: autograd on each candidate's compiled loss (``BranchLoss``); the rows' objectives are
  summed so that one ``autograd.grad`` gives every row's gradient (rows never interact: the sum's
  partial derivative w.r.t. each objective is 1). On stacked samples it evaluates the loss on the
  (B, C, H, W) slice of each row; on per-sample blocks (a task without ``stackable_samples``, or
  ``check_loss``) on the task's ``joint_loss_inputs``, as the protocol is written in the paper;
* ``closed`` (CPU default): each tree's value and input gradient in closed form (``closed.py``,
  ``gradient.py``: autograd's own derivative formulas, constant subtrees evaluated once), then one
  pull-back through the task's input mapping (seg: the softmax backward kernel);
* ``levels`` (GPU): all trees evaluated level by level (``levels.py``), then autograd.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import torch
from torch import Tensor

from autoloss_worker.graph import Tree
from autoloss_worker.tasks.base import Sample, Task
from autoloss_worker.tasks.losses import WEIGHT_KEY, BranchLoss, branch_output

from . import levels
from .closed import ClosedForm

ENGINES = ("tree", "levels", "closed")


class Engine(Protocol):
    def __call__(self, P: Sequence[Tensor], cands: Sequence[int]) -> tuple[Tensor, list[Tensor]]: ...


def _stacked_inputs(
    task: Task, branch: str, P: Tensor, samples: Sequence[Sample], metric: str, dtype: torch.dtype,
    constant: dict[str, Tensor],
) -> dict[str, Tensor]:
    """Loss inputs for all rows: key -> (K, B, C, H, W), plus ``one``. Inputs that do not depend on
    the predictions (targets) are stacked once and reused (``constant``, keyed by K)."""
    K = P.shape[0]
    if task.softmax_dense_inputs:
        # to_loss_inputs for all rows at once: y_hat = softmax over C, y = the target.
        y = constant.get("y")
        if y is None or y.shape[0] != K:
            y = constant["y"] = torch.stack([s.target.y[metric].expand(K, *s.target.y[metric].shape[1:]) for s in samples],
                                            dim=1).to(device=P.device, dtype=dtype)
        return _with_one({"y_hat": torch.softmax(P, dim=2), "y": y}, constant)
    # unbind, not P[:, b]: the backward of B selects would fill B zero tensors of P's full size.
    per_sample = [task.to_loss_inputs(branch, raw, s.target, metric=metric) for raw, s in zip(P.unbind(1), samples)]
    out = {}
    for key in per_sample[0]:
        ts = [d[key] for d in per_sample]
        if not any(t.requires_grad for t in ts):
            cached = constant.get(key)
            if cached is None or cached.shape[0] != K:
                cached = torch.stack([t.expand(K, *t.shape[1:]) for t in ts], dim=1).to(device=P.device, dtype=dtype)
                constant[key] = cached
            out[key] = cached
        else:
            out[key] = torch.stack([t.expand(K, *t.shape[1:]) for t in ts], dim=1).to(dtype)
    return _with_one(out, constant)


def _with_one(out: dict[str, Tensor], constant: dict[str, Tensor]) -> dict[str, Tensor]:
    if "one" not in out:  # as compile_branch: ones like the first input
        like = out["y_hat"] if "y_hat" in out else next(v for k, v in out.items() if k != WEIGHT_KEY)
        one = constant.get("one")
        if one is None or one.shape != like.shape:
            one = constant["one"] = torch.ones_like(like, requires_grad=False)
        out["one"] = one
    return out


def _row_objective(loss: BranchLoss, inputs: Mapping[str, Tensor]) -> Tensor:
    """Σ o for one row's (B, C, H, W) inputs, samples kept independent."""
    if loss.mixes_samples:
        B = next(iter(inputs.values())).shape[0]
        return sum(branch_output(loss, {k: v[b : b + 1] for k, v in inputs.items()}).sum() for b in range(B))  # type: ignore[return-value]
    return branch_output(loss, inputs).sum()


def sample_objective(task: Task, loss: BranchLoss, branch: str, preds: Sequence[Tensor], samples: Sequence[Sample],
                     metric: str) -> Tensor:
    """Σ_b Σ o_b for one candidate's per-sample predictions; a loss that mixes samples (``mean_nhw``)
    is evaluated sample by sample, any other on the joint inputs of all B (same values, one graph)."""
    if loss.mixes_samples:
        return sum(branch_output(loss, task.to_loss_inputs(branch, p, s.target, metric=metric)).sum()  # type: ignore[return-value]
                   for p, s in zip(preds, samples))
    return branch_output(loss, task.joint_loss_inputs(branch, preds, samples, metric=metric)).sum()


def _gradients(total: Tensor | None, leaves: Sequence[Tensor]) -> list[Tensor]:
    """∂total/∂leaf for every leaf (zeros where the total does not depend on it, or is None)."""
    if total is None:
        return [torch.zeros_like(x) for x in leaves]
    grads = torch.autograd.grad(total, list(leaves), allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads)]


def _live_sum(values: Sequence[Tensor]) -> Tensor | None:
    live = [v for v in values if v.requires_grad]
    return sum(live) if live else None  # type: ignore[return-value]


class StackedTree:
    """Engine ``tree`` on stacked samples: one block (K, B, C, H, W)."""

    def __init__(self, task: Task, branch: str, samples: Sequence[Sample], metric: str, dtype: torch.dtype,
                 losses: Sequence[BranchLoss]) -> None:
        self.task, self.branch, self.samples, self.metric, self.dtype, self.losses = task, branch, samples, metric, dtype, losses
        self.constant: dict[str, Tensor] = {}

    def __call__(self, P: Sequence[Tensor], cands: Sequence[int]) -> tuple[Tensor, list[Tensor]]:
        leaf = P[0].detach().requires_grad_(True)
        inputs = _stacked_inputs(self.task, self.branch, leaf, self.samples, self.metric, self.dtype, self.constant)
        # Per-row slices by unbind (one stack in the backward, not K full-size zero fills).
        columns = {key: t.unbind(0) for key, t in inputs.items()}
        values = [_row_objective(self.losses[k], {key: c[j] for key, c in columns.items()}) for j, k in enumerate(cands)]
        G = _gradients(_live_sum(values), [leaf])
        return torch.stack([v.detach().to(self.dtype) for v in values]), G


class SampleTree:
    """Engine ``tree`` on per-sample blocks: B blocks (K, 1, ...), any task."""

    def __init__(self, task: Task, branch: str, samples: Sequence[Sample], metric: str, losses: Sequence[BranchLoss]) -> None:
        self.task, self.branch, self.samples, self.metric, self.losses = task, branch, samples, metric, losses

    def __call__(self, P: Sequence[Tensor], cands: Sequence[int]) -> tuple[Tensor, list[Tensor]]:
        leaves = [p.detach().requires_grad_(True) for p in P]
        values = [sample_objective(self.task, self.losses[k], self.branch, [x[j] for x in leaves], self.samples, self.metric)
                  for j, k in enumerate(cands)]
        G = _gradients(_live_sum(values), leaves)
        return torch.stack([v.detach().to(P[0].dtype) for v in values]), G


class Levels:
    """Engine ``levels``: every row's tree evaluated level by level, then autograd."""

    def __init__(self, task: Task, branch: str, samples: Sequence[Sample], metric: str, dtype: torch.dtype,
                 trees: Sequence[Tree]) -> None:
        self.task, self.branch, self.samples, self.metric, self.dtype, self.trees = task, branch, samples, metric, dtype, trees
        self.constant: dict[str, Tensor] = {}
        self.planned: tuple[int, ...] = ()
        self.layout: levels.LevelPlan | None = None

    def __call__(self, P: Sequence[Tensor], cands: Sequence[int]) -> tuple[Tensor, list[Tensor]]:
        if self.layout is None or tuple(cands) != self.planned:  # the rows changed: lay them out again
            self.planned = tuple(cands)
            self.layout = levels.plan([self.trees[k] for k in cands], device=P[0].device)
        leaf = P[0].detach().requires_grad_(True)
        inputs = _stacked_inputs(self.task, self.branch, leaf, self.samples, self.metric, self.dtype, self.constant)
        out = levels.evaluate(self.layout, inputs)
        if WEIGHT_KEY in inputs:
            out = out * inputs[WEIGHT_KEY]
        values = out.flatten(1).sum(dim=1)  # (K,)
        G = _gradients(values.sum() if values.requires_grad else None, [leaf])
        return values.detach(), G


class Closed:
    """Engine ``closed``: loss inputs from P, the trees' values and input adjoints in closed form
    (``closed.py``), and the adjoints pulled back to P. Seg: y_hat = softmax(P) over C, pulled back
    with the softmax backward kernel autograd itself calls; other tasks: autograd through the task's
    input mapping only (one small graph per step for all rows)."""

    def __init__(self, task: Task, branch: str, samples: Sequence[Sample], metric: str, dtype: torch.dtype,
                 trees: Sequence[Tree]) -> None:
        self.task, self.branch, self.samples, self.metric, self.dtype, self.trees = task, branch, samples, metric, dtype, trees
        self.seg = task.softmax_dense_inputs
        self.constant: dict[str, Tensor] = {}
        self.engine: ClosedForm | None = None

    def _inputs(self, P: Tensor) -> tuple[dict[str, Tensor], Callable[[dict[str, Tensor]], Tensor]]:
        """Detached inputs (key -> (K, B, C, H, W)) and the map from their adjoints to ∂/∂P."""
        if self.seg:
            with torch.no_grad():
                inputs = _stacked_inputs(self.task, self.branch, P, self.samples, self.metric, self.dtype, self.constant)
            y_hat = inputs["y_hat"]
            return inputs, lambda adj: torch.ops.aten._softmax_backward_data(adj["y_hat"], y_hat, 2, P.dtype)
        P = P.detach().requires_grad_(True)
        tracked = _stacked_inputs(self.task, self.branch, P, self.samples, self.metric, self.dtype, self.constant)

        def pullback(adj: dict[str, Tensor]) -> Tensor:
            keys = [k for k in adj if tracked[k].requires_grad]
            if not keys:
                return torch.zeros_like(P)
            (G,) = torch.autograd.grad([tracked[k] for k in keys], P, [adj[k] for k in keys], allow_unused=True)
            return torch.zeros_like(P) if G is None else G

        return {key: t.detach() for key, t in tracked.items()}, pullback

    def __call__(self, P: Sequence[Tensor], cands: Sequence[int]) -> tuple[Tensor, list[Tensor]]:
        inputs, pullback = self._inputs(P[0])
        if self.engine is None:  # which inputs vary is known once the task has built them
            variables = {key for key in inputs if key not in self.constant and key != WEIGHT_KEY}
            # The constants (equal in every row) laid out as for a batch of one: stacking K > 1
            # expanded targets gives a contiguous tensor, K = 1 keeps the target's own strides, and
            # the trees' reductions sum in layout order, so a verdict would depend on its batch.
            alone: dict[str, Tensor] = {}
            _stacked_inputs(self.task, self.branch, P[0][:1].detach(), self.samples, self.metric, self.dtype, alone)
            row = {key: alone[key][0] for key in self.constant if key != WEIGHT_KEY}
            self.engine = ClosedForm(self.trees, variables, row)
        values, adjoints = self.engine.step(cands, inputs, inputs.get(WEIGHT_KEY))
        return values, [pullback(adjoints)]


def make_engine(name: str, task: Task, branch: str, samples: Sequence[Sample], metric: str, dtype: torch.dtype, *,
                stacked: bool, losses: Sequence[BranchLoss] | None = None, trees: Sequence[Tree] | None = None) -> Engine:
    """Engine ``name`` for the blocks of ``core.initial_blocks(..., stacked)``: ``tree`` needs
    ``losses``, ``closed`` and ``levels`` need ``trees`` and stacked samples."""
    assert name in ENGINES, f"unknown engine {name!r}"
    if name == "tree":
        assert losses is not None, "engine 'tree' needs the compiled losses"
        return StackedTree(task, branch, samples, metric, dtype, losses) if stacked else SampleTree(task, branch, samples, metric, losses)
    assert trees is not None, f"engine {name!r} needs one tree per candidate"
    assert stacked, f"engine {name!r} needs stacked samples; task '{task.name}' has per-sample shapes (engine 'tree')"
    return (Closed if name == "closed" else Levels)(task, branch, samples, metric, dtype, trees)
