"""The loss-rejection protocol written the obvious way: the independent oracle of the tests and
the baseline of ``bench/rejection.py`` (kept out of the package: nothing in production uses it).

One candidate at a time, eager PyTorch autograd, ``torch.optim.SGD`` (momentum 0.9, lr 1e-3), all
500 iterations whatever happens, no static filtering, no caches, no early exit. A non-finite loss
value or gradient at any iteration makes the candidate invalid (g = −1, rejected), as in
``rejection.py``. The objective is written out here (Σ o unnormalised over each sample's own loss
inputs; samples independent: one batch of B unless the loss mixes samples, then one by one), so
it shares nothing with ``fastreject`` but the task.

    from rejection_reference import reference_check
    passed, score, invalid = reference_check(task, graph, metric="miou", seed=0)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from autoloss_worker.rejection import PAPER_REJECTION, RejectionConfig
from autoloss_worker.tasks.base import Sample, Task
from autoloss_worker.tasks.losses import BranchLoss, branch_output


@dataclass(frozen=True)
class ReferenceVerdict:
    passed: bool
    score: float  # g, or −1.0 when invalid
    invalid: bool


def objective(task: Task, loss: BranchLoss, branch: str, preds: list[Tensor], samples: list[Sample], metric: str) -> Tensor:
    """Σ_b Σ o_b of one candidate, each sample's loss inputs built by itself."""
    per_sample = [task.to_loss_inputs(branch, p, s.target, metric=metric) for p, s in zip(preds, samples)]
    if loss.mixes_samples:
        return sum(branch_output(loss, inputs).sum() for inputs in per_sample)  # type: ignore[return-value]
    return branch_output(loss, {key: torch.cat([inputs[key] for inputs in per_sample]) for key in per_sample[0]}).sum()


def reference_check(
    task: Task, loss: Any, metric: str | None = None, seed: int = 0, config: RejectionConfig = PAPER_REJECTION
) -> ReferenceVerdict:
    """The protocol for every branch of ``loss``; it passes iff every branch passes."""
    metric = task.check_metric(metric)
    losses = task.branch_losses(loss)
    samples = task.rejection_samples(config.samples, seed)
    passed, worst, any_invalid = True, float("inf"), False
    for branch, fn in losses.items():
        initial = [s.raw[branch].detach() for s in samples]
        preds = [r.clone().requires_grad_(True) for r in initial]
        opt = torch.optim.SGD(preds, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
        invalid = False
        for _ in range(config.iterations):
            opt.zero_grad()
            value = objective(task, fn, branch, preds, samples, metric)
            if value.requires_grad:
                value.backward()
            grads_finite = all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in preds)
            invalid = invalid or not bool(torch.isfinite(value)) or not grads_finite
            opt.step()
        with torch.no_grad():
            gain = 0.0
            for r, p, s in zip(initial, preds, samples):
                others = {n: task.ground_truth_raw(n, s.target) for n in task.branches if n != branch}
                before = task.sample_metric({**others, branch: r}, s.target, metric)
                after = task.sample_metric({**others, branch: p.detach()}, s.target, metric)
                gain += after - before
        score = -1.0 if invalid else gain / len(samples)
        passed = passed and not invalid and score >= config.threshold
        worst, any_invalid = min(worst, score), any_invalid or invalid
    return ReferenceVerdict(passed=passed, score=worst, invalid=any_invalid)
