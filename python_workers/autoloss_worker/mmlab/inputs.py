"""Map an MMLab head's raw predictions and targets to a loss graph's inputs.

Every function returns (N, C, H, W) tensors, the layout the graph interpreter expects; predictions
without spatial dims use H = W = 1 (AutoLoss-Zero, Sec. 3.1). Which rows count is the caller's job
(`valid` masks are returned where the library encodes "ignore" in the labels).

    classification_inputs(cls_score, labels, use_sigmoid=False)  # y_hat, y: (N, C, 1, 1), valid (N,)
    soft_row_inputs(cls_score, rows)                             # y_hat = σ, y = rows: (N, C, 1, 1)
    box_inputs(pred_boxes, target_boxes)                         # i, u, e: (N, 1, 1, 1)
    mask_inputs(mask_logits, mask_targets)                       # y_hat, y: (N, 2, H, W) fg/bg
    segmentation_inputs(seg_logits, seg_labels, ignore_index)    # y_hat, y: (N, C, H, W), valid (N, 1, H, W)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class DenseInputs:
    y_hat: Tensor  # probabilities, (N, C, H, W)
    y: Tensor  # targets in {0, 1}, same shape, dtype of y_hat
    valid: Tensor  # bool: (N,) per sample, or (N, 1, H, W) per pixel

    def as_env(self) -> dict[str, Tensor]:
        return {"y_hat": self.y_hat, "y": self.y}


def _column(x: Tensor) -> Tensor:
    """(N, C) -> (N, C, 1, 1)."""
    return x[:, :, None, None]


def classification_inputs(
    cls_score: Tensor, labels: Tensor, *, use_sigmoid: bool = False, ignore_index: int | None = None,
    scores: Tensor | None = None,
) -> DenseInputs:
    """Probabilities and one-hot targets for an mmdet classification branch.

    Softmax heads (`use_sigmoid=False`, C = classes + 1, background is the last column, as in
    mmdet's `BBoxHead` and a softmax `RPNHead`): y_hat = softmax(cls_score), y = one-hot(label);
    a label outside [0, C) or equal to `ignore_index` is not valid.
    Sigmoid heads (C = classes, no background column): y_hat = sigmoid(cls_score) and background
    (label == C) is the all-zero row, exactly mmdet's `_expand_onehot_labels`; a negative label or
    `ignore_index` is not valid.
    Soft targets (`scores` (N,), sigmoid heads only: QualityFocalLoss's IoU-quality scores): the
    label's entry of y is the row's score instead of 1; background rows stay all zero.
    """
    assert scores is None or (use_sigmoid and scores.shape == labels.shape), "soft scores need a sigmoid head and one score per row"
    assert cls_score.dim() == 2, f"cls_score must be (N, C), got {tuple(cls_score.shape)}"
    assert labels.shape == cls_score.shape[:1], f"labels must be (N,) = {tuple(cls_score.shape[:1])}, got {tuple(labels.shape)}"
    n, c = cls_score.shape
    labels = labels.long()
    valid = labels >= 0
    if ignore_index is not None:
        valid &= labels != ignore_index
    if use_sigmoid:
        y_hat = cls_score.sigmoid()
        hot = valid & (labels < c)  # background rows stay all zero
    else:
        y_hat = cls_score.softmax(dim=1)
        valid &= labels < c
        hot = valid
    y = cls_score.new_zeros(n, c)
    y[hot.nonzero(as_tuple=True)[0], labels[hot]] = 1.0 if scores is None else scores[hot].to(y.dtype)
    return DenseInputs(y_hat=_column(y_hat), y=_column(y), valid=valid)


def soft_row_inputs(cls_score: Tensor, rows: Tensor) -> DenseInputs:
    """A sigmoid head's probabilities against soft target rows of the same shape (YOLOX's
    ``loss_cls``: each positive's one-hot row times its IoU): y_hat = σ, y = the rows; every row valid."""
    assert cls_score.dim() == 2 and rows.shape == cls_score.shape, \
        f"soft rows must be (N, C) = {tuple(cls_score.shape)}, got {tuple(rows.shape)}"
    valid = torch.ones(cls_score.shape[0], dtype=torch.bool, device=cls_score.device)
    return DenseInputs(y_hat=_column(cls_score.sigmoid()), y=_column(rows.to(cls_score.dtype)), valid=valid)


def box_inputs(pred: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Intersection, union and smallest enclosing box areas of aligned (x0, y0, x1, y1) boxes.

    Same arithmetic as mmdet's `bbox_overlaps(..., is_aligned=True, mode='giou')` (box areas are
    not clamped, overlap and enclosing sides are clamped at 0), without its eps, so that the graph
    applies its own ε. Each output is (N, 1, 1, 1).
    """
    assert pred.dim() == 2 and pred.shape[-1] == 4, f"pred boxes must be (N, 4), got {tuple(pred.shape)}"
    assert target.shape == pred.shape, f"target boxes must be {tuple(pred.shape)}, got {tuple(target.shape)}"
    area_p = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    area_t = (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1])
    overlap_wh = (torch.min(pred[:, 2:], target[:, 2:]) - torch.max(pred[:, :2], target[:, :2])).clamp(min=0)
    inter = overlap_wh[:, 0] * overlap_wh[:, 1]
    union = area_p + area_t - inter
    enclose_wh = (torch.max(pred[:, 2:], target[:, 2:]) - torch.min(pred[:, :2], target[:, :2])).clamp(min=0)
    enclose = enclose_wh[:, 0] * enclose_wh[:, 1]
    return {name: v[:, None, None, None] for name, v in (("i", inter), ("u", union), ("e", enclose))}


def mask_inputs(mask_logits: Tensor, mask_targets: Tensor) -> DenseInputs:
    """Per-pixel foreground/background probabilities of one mask per RoI (paper: mask branch).

    mask_logits, mask_targets: (N, H, W). Channel 0 is foreground, channel 1 background:
    y_hat = (σ(x), 1 − σ(x)), y = (t, 1 − t), both (N, 2, H, W).
    """
    assert mask_logits.dim() == 3, f"mask logits must be (N, H, W), got {tuple(mask_logits.shape)}"
    assert mask_targets.shape == mask_logits.shape, (
        f"mask targets must be {tuple(mask_logits.shape)}, got {tuple(mask_targets.shape)}"
    )
    p = mask_logits.sigmoid()
    t = mask_targets.to(p.dtype)
    valid = torch.ones(mask_logits.shape[0], dtype=torch.bool, device=mask_logits.device)
    return DenseInputs(y_hat=torch.stack([p, 1 - p], dim=1), y=torch.stack([t, 1 - t], dim=1), valid=valid)


def score_inputs(logits: Tensor, scores: Tensor) -> DenseInputs:
    """One score per prior (FCOS / ATSS centerness): logits and targets in [0, 1], both (P,), as
    one-pixel masks: y_hat = (σ, 1 − σ), y = (t, 1 − t), both (P, 2, 1, 1)."""
    assert logits.dim() == 1 and scores.shape == logits.shape, \
        f"score logits and targets must both be (P,), got {tuple(logits.shape)} and {tuple(scores.shape)}"
    return mask_inputs(logits[:, None, None], scores[:, None, None])


def segmentation_inputs(seg_logits: Tensor, seg_labels: Tensor, ignore_index: int = 255) -> DenseInputs:
    """Softmax probabilities and one-hot labels per pixel; ignored pixels get an all-zero target
    and `valid` False. seg_logits (N, C, H, W), seg_labels (N, H, W) with values in [0, C) or
    `ignore_index`."""
    assert seg_logits.dim() == 4, f"seg logits must be (N, C, H, W), got {tuple(seg_logits.shape)}"
    n, c, h, w = seg_logits.shape
    assert seg_labels.shape == (n, h, w), f"seg labels must be {(n, h, w)}, got {tuple(seg_labels.shape)}"
    labels = seg_labels.long()
    valid = (labels != ignore_index) & (labels >= 0) & (labels < c)
    y = F.one_hot(torch.where(valid, labels, 0), c).permute(0, 3, 1, 2).to(seg_logits.dtype)
    y = y * valid[:, None].to(y.dtype)
    return DenseInputs(y_hat=seg_logits.softmax(dim=1), y=y, valid=valid[:, None])
