"""The loss-rejection protocol of AutoLoss-Zero (Li et al., CVPR 2022, Sec. 3.3 and App. A).

Take B recorded raw predictions ŷ_b of a randomly initialised network with their targets y_b,
optimise the predictions themselves (not the network) for the candidate loss L, and score

    g(L; ξ) = (1/B) Σ_b [ ξ(ŷ*_b, y_b) − ξ(ŷ_b, y_b) ],   ŷ*_b = argmin L(ŷ_b, y_b),

rejecting L when g < η. Choices made here, all following the paper unless said otherwise:

* What is optimised is the *raw* output (seg: logits; pose: heatmaps) as torch leaf tensors; the
  task turns it into loss inputs at every step (softmax probabilities for dense classification),
  so predictions stay valid probabilities while they move.
* The objective is Σ_b Σ_{c,h,w} o_b — the elementwise output summed without any normalisation
  (App. A: "we do not normalize along any dimensions" since samples and positions are optimised
  independently). A task weight (pose visibility) multiplies o first (``tasks/losses.py``).
* Samples never interact. A loss whose tree contains ``mean_nhw`` would average over N if the B
  samples shared a batch, so such losses are evaluated sample by sample (N = 1 each) and their
  values summed; every other operator acts within a sample, so those losses are evaluated on one
  batch of B, which gives the same objective and the same SGD trajectory, only faster.
* Any non-finite loss value or gradient rejects at once; ``iterations`` then names the step
  (1-based) where it happened.
* An exactly zero gradient at the start (the loss ignores ``y_hat``, e.g. ``one``) leaves every
  prediction where it is under SGD, so the protocol stops after that first step: g = 0.
* Gradient norms ‖∂L/∂ŷ_b‖₂ for the gradient-equivalence check are taken at the initial
  predictions, of the same summed objective, with respect to the *raw* predictions (logits for
  seg). Both choices scale or map every loss the same way, so equal losses keep equal norms.
  ``fingerprint`` adds the same gradient projected on a few fixed unit directions (seeded), which
  tells apart gradients that have equal norms but point differently (e.g. L and −L).
* Multi-branch tasks: each branch is checked on its own; the other branches' predictions are set
  to their ground truth (App. A.2) through ``Task.ground_truth_raw``.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from autoloss_worker.tasks.base import Sample, Task
from autoloss_worker.tasks.losses import BranchLoss, branch_output


@dataclass(frozen=True)
class RejectionConfig:
    """Constants of the protocol; the defaults are the paper's (App. A)."""

    samples: int = 5  # B, random training samples
    iterations: int = 500  # SGD steps on the predictions
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    threshold: float = 0.6  # η: reject when g < η (metrics on a 0-1 scale)
    fingerprint_directions: int = 4  # not in the paper: directions per sample for the fingerprint
    fingerprint_seed: int = 0
    # Not in the paper: torch threads while checking. The tensors are tiny (B × C × H × W), so
    # more threads only add synchronisation; on a loaded 2-core machine 2 threads ran 20× slower.
    threads: int = 1
    # Not in the paper: screen with ``fastreject`` (static check, verdict cache, batched protocol
    # with early exits; same decisions on the benchmark stream, see bench/rejection.py). False
    # runs ``check_loss`` below, the protocol step by step.
    fast: bool = True


PAPER_REJECTION = RejectionConfig()


@dataclass
class RejectionResult:
    """Outcome for one branch. ``score`` is g, or −1.0 (g's lower bound) when ``invalid``."""

    branch: str
    passed: bool
    score: float
    invalid: bool
    iterations: int
    grad_norms: list[float]
    fingerprint: list[list[float]]
    metric_before: list[float]
    metric_after: list[float]
    reason: str = ""
    elapsed_s: float = 0.0


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _directions(like: list[Tensor], count: int, seed: int) -> list[Tensor]:
    """``count`` unit directions per sample, the same on every machine for a given seed."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for t in like:
        d = torch.randn((count, t.numel()), generator=gen, dtype=torch.float64)
        out.append(d / d.norm(dim=1, keepdim=True))
    return out


def _objective(
    task: Task,
    loss: BranchLoss,
    branch: str,
    preds: list[Tensor],
    samples: list[Sample],
    metric: str,
) -> Tensor:
    """Σ_b Σ o_b for the current predictions (unnormalised), samples kept independent."""
    if not loss.mixes_samples:
        # A task whose samples differ in shape (det: anchors per image) may still build all loss
        # inputs in one call: one autograd graph instead of B, the same elementwise values.
        together = getattr(task, "batched_loss_inputs", lambda *a, **k: None)(branch, preds, samples, metric=metric)
        if together is not None:
            return branch_output(loss, together).sum()
    per_sample = [task.to_loss_inputs(branch, p, s.target, metric=metric) for p, s in zip(preds, samples)]
    if loss.mixes_samples:
        return sum(branch_output(loss, inputs).sum() for inputs in per_sample)  # type: ignore[return-value]
    batched = {key: torch.cat([inputs[key] for inputs in per_sample]) for key in per_sample[0]}
    return branch_output(loss, batched).sum()


def _sgd_step(p: Tensor, g: Tensor, v: Tensor | None, config: RejectionConfig) -> Tensor:
    """One step of ``torch.optim.SGD`` (dampening 0, no Nesterov), in place on ``p``; returns the
    new momentum buffer. Written out because constructing the optimizer imports torch._dynamo
    (seconds, once per process) and its bookkeeping outweighs these tiny tensors."""
    if config.weight_decay:
        g = g + config.weight_decay * p
    v = g.clone() if v is None else v.mul_(config.momentum).add_(g)
    p.add_(v, alpha=-config.lr)  # torch.optim.SGD's own update, bit for bit
    return v


def _gradients(value: Tensor, preds: list[Tensor]) -> list[Tensor]:
    if not value.requires_grad:  # the loss does not depend on the predictions at all
        return [torch.zeros_like(p) for p in preds]
    grads = torch.autograd.grad(value, preds, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(preds, grads)]


def _all_finite(tensors: list[Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _with_others_at_ground_truth(task: Task, branch: str, pred: Tensor, sample: Sample) -> dict[str, Tensor]:
    raw = {name: task.ground_truth_raw(name, sample.target) for name in task.branches if name != branch}
    raw[branch] = pred
    return raw


def check_branch(
    task: Task,
    loss: BranchLoss,
    branch: str,
    samples: list[Sample],
    metric: str,
    config: RejectionConfig = PAPER_REJECTION,
) -> RejectionResult:
    """Run the protocol for one branch of a candidate loss on recorded ``samples``."""
    start = time.perf_counter()
    initial = [s.raw[branch].detach() for s in samples]
    preds = [r.clone().requires_grad_(True) for r in initial]
    velocity: list[Tensor | None] = [None] * len(preds)

    grad_norms: list[float] = []
    fingerprint: list[list[float]] = []
    invalid, reason, done = False, "", 0
    for step in range(1, config.iterations + 1):
        done = step
        value = _objective(task, loss, branch, preds, samples, metric)
        if not bool(torch.isfinite(value)):
            invalid, reason = True, f"non-finite loss value {value.detach().item()} at iteration {step}"
            break
        grads = _gradients(value, preds)
        if step == 1:
            grad_norms = [float(g.double().norm()) for g in grads]
            dirs = _directions(grads, config.fingerprint_directions, config.fingerprint_seed)
            fingerprint = [(d @ g.double().reshape(-1)).tolist() for d, g in zip(dirs, grads)]
        if not _all_finite(grads):
            invalid, reason = True, f"non-finite gradient at iteration {step}"
            break
        if step == 1 and all(not bool(g.any()) for g in grads):
            reason = "zero gradient w.r.t. the predictions: they cannot move"
            break
        with torch.no_grad():
            for b, (p, g) in enumerate(zip(preds, grads)):
                velocity[b] = _sgd_step(p, g, velocity[b], config)

    if not grad_norms:  # the very first loss value was already non-finite
        grad_norms = [math.nan] * len(samples)
        fingerprint = [[math.nan] * config.fingerprint_directions for _ in samples]
    with torch.no_grad():
        before = [task.sample_metric(_with_others_at_ground_truth(task, branch, r, s), s.target, metric)
                  for r, s in zip(initial, samples)]
        after = before if invalid else [
            task.sample_metric(_with_others_at_ground_truth(task, branch, p.detach(), s), s.target, metric)
            for p, s in zip(preds, samples)
        ]
    score = -1.0 if invalid else sum(a - b for a, b in zip(after, before)) / len(samples)
    return RejectionResult(
        branch=branch,
        passed=not invalid and score >= config.threshold,
        score=score,
        invalid=invalid,
        iterations=done,
        grad_norms=grad_norms,
        fingerprint=fingerprint,
        metric_before=before,
        metric_after=after,
        reason=reason,
        elapsed_s=time.perf_counter() - start,
    )


def check_loss(
    task: Task,
    loss: Any,
    metric: str | None = None,
    seed: int = 0,
    config: RejectionConfig = PAPER_REJECTION,
) -> dict[str, RejectionResult]:
    """Check every branch of ``loss`` (a LossGraph or ``{branch: BranchLoss | callable}``).

    ``seed`` picks the B training samples and initialises the network that predicts them, so
    every candidate of one search is judged on the same recorded predictions.
    """
    metric = task.check_metric(metric)
    losses = task.branch_losses(loss)
    samples = task.rejection_samples(config.samples, seed)
    with _torch_threads(config.threads):
        return {b: check_branch(task, losses[b], b, samples, metric, config) for b in task.branches}


def finite_or_none(x: float) -> float | None:
    """JSON has no NaN/Infinity: report such numbers as null."""
    return x if math.isfinite(x) else None


def summarise(results: Mapping[str, RejectionResult]) -> dict[str, Any]:
    """One verdict for a whole loss: it passes iff every branch passes; ``score`` is the worst
    branch's g; ``gradNorms`` lists the branches' norms in branch order (B per branch)."""
    rs = list(results.values())
    return {
        "passed": all(r.passed for r in rs),
        "score": min(r.score for r in rs),
        "gradNorms": [finite_or_none(n) for r in rs for n in r.grad_norms],
        # direction-sensitive companion of gradNorms for the equivalence check (B rows per branch)
        "fingerprint": [[finite_or_none(v) for v in row] for r in rs for row in r.fingerprint],
        "iterations": sum(r.iterations for r in rs),
        "invalid": any(r.invalid for r in rs),
    }
