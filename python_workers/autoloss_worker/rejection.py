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
  to their ground truth (App. A.2) through ``Task.ground_truth_raw`` (``with_ground_truth``).

This module holds what every part of the protocol shares: its constants (``RejectionConfig``) and
its outcome (``BranchVerdict``, one wire form). The protocol itself runs in ``fastreject``: one
core (``fastreject.core``) steps K candidates' copies of the predictions together; engines
(``fastreject.engines``) supply the values and gradients.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from autoloss_worker.tasks.base import Task


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


PAPER_REJECTION = RejectionConfig()


@dataclass
class BranchVerdict:
    """The protocol's outcome for one branch of one loss (or, from ``combine``, for a whole loss).

    ``score`` is g, or −1.0 (g's lower bound) when ``invalid``; ``iterations`` the SGD steps taken
    (the step of a non-finite value, 1 for a zero gradient, t for an early reject at t);
    ``grad_norms`` / ``fingerprint``: B entries / rows (NaN when the first value was non-finite);
    ``metric_before`` / ``metric_after``: ξ per sample before and after (``after`` = ``before`` when
    the predictions never moved or went non-finite; at t for an early reject); ``trace``: (t, g_t,
    optimistic g) at the recorded iterations and at the end."""

    passed: bool
    score: float
    invalid: bool
    iterations: int
    reason: str = ""
    grad_norms: list[float] = field(default_factory=list)
    fingerprint: list[list[float]] = field(default_factory=list)
    metric_before: list[float] = field(default_factory=list)
    metric_after: list[float] = field(default_factory=list)
    trace: list[tuple[int, float, float]] = field(default_factory=list)

    def wire(self) -> dict[str, Any]:
        """The form every eval-loss result carries, per branch and for the whole loss (JSON: non-finite
        numbers become null). The control plane reads it as it is."""
        return {
            "passed": self.passed,
            "score": self.score,
            "gradNorms": [finite_or_none(n) for n in self.grad_norms],
            # direction-sensitive companion of gradNorms for the equivalence check (B rows per branch)
            "fingerprint": [[finite_or_none(v) for v in row] for row in self.fingerprint],
            "iterations": self.iterations,
            "invalid": self.invalid,
        }


def combine(verdicts: Sequence[BranchVerdict]) -> BranchVerdict:
    """One verdict for several branches of a loss, in the order given: it passes iff every branch
    passes; ``score`` is the worst branch's g; norms and fingerprint rows are concatenated
    branch-major (B per branch); ``iterations`` add up."""
    return BranchVerdict(
        passed=all(v.passed for v in verdicts),
        score=min(v.score for v in verdicts),
        invalid=any(v.invalid for v in verdicts),
        iterations=sum(v.iterations for v in verdicts),
        reason="; ".join(v.reason for v in verdicts if v.reason),
        grad_norms=[n for v in verdicts for n in v.grad_norms],
        fingerprint=[row for v in verdicts for row in v.fingerprint],
    )


def finite_or_none(x: float) -> float | None:
    """JSON has no NaN/Infinity: report such numbers as null."""
    return x if math.isfinite(x) else None


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def directions(like: Sequence[Tensor], count: int, seed: int) -> list[Tensor]:
    """``count`` unit directions per sample (float64, (count, numel)), the same on every machine
    for a given seed."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for t in like:
        d = torch.randn((count, t.numel()), generator=gen, dtype=torch.float64)
        out.append(d / d.norm(dim=1, keepdim=True))
    return out


def with_ground_truth(task: Task, branch: str, pred: Tensor, target: Any) -> dict[str, Tensor]:
    """The raw predictions of every branch of one sample: ``pred`` for ``branch``, the ground truth
    for the others (App. A.2), as ``Task.sample_metric`` takes them."""
    raw = {name: task.ground_truth_raw(name, target) for name in task.branches if name != branch}
    raw[branch] = pred
    return raw


def summarise(verdicts: Mapping[str, BranchVerdict]) -> dict[str, Any]:
    """The eval-loss result for ``verdicts`` (branch -> verdict, in the order checked): the
    combined verdict's wire form and every branch's own under ``branches``."""
    return {**combine(list(verdicts.values())).wire(), "branches": {n: v.wire() for n, v in verdicts.items()}}
