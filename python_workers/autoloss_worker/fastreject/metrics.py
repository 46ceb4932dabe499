"""g for many candidates at once, on the predictions' device.

``gains(..., exact=False)`` is the protocol's g for every row of P (blocks, see ``core.py``). For
a task's ``confusion_metrics`` (seg's region metrics: mIoU, FWIoU, gAcc, mAcc) on stacked samples it builds all K·B
confusion matrices with one ``bincount`` and evaluates ``metrics.segmentation.region_metrics`` in
torch (float64, same formulas; the sums run in another order, so values may differ from numpy's in
the last bits). Every other task/metric, and ``exact=True``, goes through the task's own
``sample_metric``, one sample at a time (the other branches at ground truth).

Use the vectorised numbers where a margin absorbs last-bit differences (early-reject checkpoints);
final verdicts use the task's own numbers.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from autoloss_worker.rejection import with_ground_truth
from autoloss_worker.tasks.base import Sample, Task

Blocks = Sequence[Tensor]


def sample_rows(P: Blocks, b: int) -> Tensor:
    """Sample b's predictions of every row, (rows, 1, ...): a slice of the one stacked block, or the
    b-th of B per-sample blocks."""
    return P[0][:, b : b + 1] if len(P) == 1 else P[b]


def exact_metrics(task: Task, branch: str, P: Blocks, samples: Sequence[Sample], metric: str) -> list[list[float]]:
    """ξ per row and sample with the task's ``sample_metric`` (other branches at ground truth)."""
    rows = P[0].shape[0]
    per_sample = [sample_rows(P, b) for b in range(len(samples))]
    return [[task.sample_metric(with_ground_truth(task, branch, per_sample[b][k].detach().to(
                device=s.raw[branch].device, dtype=s.raw[branch].dtype), s.target), s.target, metric)
             for b, s in enumerate(samples)] for k in range(rows)]


def gain(after: Sequence[float], before: Sequence[float]) -> float:
    """g = (1/B) Σ_b [ξ_b after − ξ_b before]."""
    total = 0.0
    for a, b in zip(after, before):
        total += a - b
    return total / len(before)


def _region(cm: Tensor, metric: str) -> Tensor:
    """``region_metrics(cm)[metric]`` for a stack of confusion matrices (n, k, k) -> (n,)."""
    cm = cm.double()
    total = cm.sum(dim=(1, 2))
    tp = cm.diagonal(dim1=1, dim2=2)
    gt = cm.sum(dim=2)
    union = gt + cm.sum(dim=1) - tp
    present = union > 0
    iou = torch.where(present, tp / torch.where(present, union, torch.ones_like(union)), torch.zeros_like(union))
    if metric == "miou":
        return (iou * present).sum(dim=1) / present.sum(dim=1)
    if metric == "fwiou":
        return (gt / total[:, None] * iou).sum(dim=1)
    if metric == "gacc":
        return tp.sum(dim=1) / total
    has_gt = gt > 0
    acc = torch.where(has_gt, tp / torch.where(has_gt, gt, torch.ones_like(gt)), torch.zeros_like(gt))
    return (acc * has_gt).sum(dim=1) / has_gt.sum(dim=1)


def _vectorised(task: Task, P: Blocks, samples: Sequence[Sample], metric: str) -> bool:
    return metric in task.confusion_metrics and len(task.branches) == 1 and len(P) == 1


def gains(task: Task, branch: str, P: Blocks, samples: Sequence[Sample], metric: str, before: Sequence[float],
          *, exact: bool) -> tuple[list[float], list[list[float]]]:
    """g per row of P, and ξ per row and sample."""
    if exact or not _vectorised(task, P, samples, metric):
        after = exact_metrics(task, branch, P, samples, metric)
        return [gain(a, before) for a in after], after
    X = P[0]
    K, B, k = X.shape[0], X.shape[1], X.shape[2]
    labels = torch.cat([s.target.labels for s in samples]).to(X.device)  # (B, H, W)
    # max(dim).indices: the same first-maximum index as argmax, ~7× faster over a middle dim on CPU.
    pred = X.max(dim=2).indices  # (K, B, H, W)
    cell = (torch.arange(K * B, device=X.device).view(K, B, 1, 1) * (k * k) + labels * k + pred).flatten()
    cm = torch.bincount(cell, minlength=K * B * k * k).view(K * B, k, k)
    now = _region(cm, metric).view(K, B)
    g = (now - torch.tensor(list(before), dtype=now.dtype, device=now.device)).mean(dim=1)
    return g.tolist(), now.tolist()


def _blocks(P: Tensor | Blocks) -> Blocks:
    return [P] if isinstance(P, Tensor) else P


def exact_gain(task: Task, branch: str, P: Tensor | Blocks, samples: Sequence[Sample], metric: str,
               before: Sequence[float]) -> list[float]:
    """g per row with the task's own metric; P: a stacked (K, B, ...) tensor or blocks."""
    return gains(task, branch, _blocks(P), samples, metric, before, exact=True)[0]


def metric_gain(task: Task, branch: str, P: Tensor | Blocks, samples: Sequence[Sample], metric: str,
                before: Sequence[float]) -> list[float]:
    """g per row, vectorised where the task's metric allows it."""
    return gains(task, branch, _blocks(P), samples, metric, before, exact=False)[0]
