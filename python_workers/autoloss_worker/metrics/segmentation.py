"""Semantic-segmentation metrics of AutoLoss-Zero (Table 2): mIoU, FWIoU, gAcc, mAcc, BIoU, BF1.

    from autoloss_worker.metrics.segmentation import segmentation_metrics
    m = segmentation_metrics(pred, target, num_classes=4)   # pred, target: int (n, H, W)
    m["miou"], m["bf1"]                                     # 0-1 scale

Labels are 0 (background) .. num_classes, i.e. num_classes + 1 classes; target pixels equal to
`ignore_index` are left out. Every metric is computed over the whole set (counts accumulated over
images, as MMSegmentation and Auto Seg-Loss do), not averaged per image. Exact definitions, and why
BIoU is the trimap IoU of the paper's reference [24] rather than Cheng et al.'s Boundary IoU, are in
README.md beside this file.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

# Boundary tolerances as a fraction of the image diagonal: Csurka et al. (2013) use 0.75% for BF.
# On PASCAL VOC (~500 px, diagonal ~700 px) this gives 5 px, the value of Auto Seg-Loss' evaluator,
# whose numbers AutoLoss-Zero compares against; we use the same fraction for the BIoU trimap band.
BOUNDARY_TOLERANCE_FRAC = 0.0075


def default_boundary_px(height: int, width: int, frac: float = BOUNDARY_TOLERANCE_FRAC) -> int:
    """max(1, round(frac * image diagonal)) pixels; 1 px at 64 x 64 and 128 x 128, 5 px at 512 x 512."""
    return max(1, int(round(frac * math.hypot(height, width))))


# ----------------------------------------------------------------------------- region metrics


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """int64 (num_classes + 1, num_classes + 1); entry [t, p] counts pixels with target t predicted p.

    `num_classes` counts foreground classes; labels run 0..num_classes. Target pixels equal to
    `ignore_index` are skipped; any other label outside the range is an error."""
    pred, target = _check_pair(pred, target, num_classes, ignore_index)
    k = num_classes + 1
    valid = target != ignore_index
    return np.bincount(k * target[valid] + pred[valid], minlength=k * k).reshape(k, k)


def region_metrics(cm: np.ndarray) -> dict[str, float]:
    """mIoU, FWIoU, gAcc, mAcc from a confusion matrix (rows = target, columns = prediction).

    A class absent from both prediction and target (union 0) is left out of the IoU means; a class
    absent from the target is left out of mAcc (its accuracy is undefined). A class that is only
    predicted keeps IoU 0, so hallucinated classes are penalised."""
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    if total == 0:
        raise ValueError("region_metrics: no labelled pixels (everything is ignore_index?)")
    tp = np.diag(cm)
    gt = cm.sum(axis=1)
    union = gt + cm.sum(axis=0) - tp
    present = union > 0
    iou = np.where(present, tp / np.where(present, union, 1.0), 0.0)
    has_gt = gt > 0
    return {
        "miou": float(iou[present].mean()),
        "fwiou": float((gt / total * iou).sum()),
        "gacc": float(tp.sum() / total),
        "macc": float((tp[has_gt] / gt[has_gt]).mean()),
    }


# ----------------------------------------------------------------------------- boundaries


def boundaries(labels: np.ndarray, width: int = 1) -> np.ndarray:
    """bool, same shape as `labels` ((H, W) or (n, H, W)): True where some pixel within chessboard
    distance `width` (a (2w+1) x (2w+1) window, clipped at the image border) has another label.

    With width = 1 this marks, for every class, its pixels that touch another class (8-connected),
    i.e. the inner boundary of each region on both sides of a label change. The image border is not a
    boundary. This is what the boundary metrics use and what boundary-metric training targets of y are
    built from."""
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3):
        raise ValueError(f"boundaries: labels must be (H, W) or (n, H, W), got shape {labels.shape}")
    if width < 1:
        raise ValueError(f"boundaries: width must be >= 1, got {width}")
    window = _window(labels.ndim, width)
    # mode="nearest" repeats the edge label, so the border never creates a false change.
    hi = ndimage.maximum_filter(labels, size=window, mode="nearest")
    lo = ndimage.minimum_filter(labels, size=window, mode="nearest")
    return (hi != labels) | (lo != labels)


def _window(ndim: int, radius: int) -> tuple[int, ...]:
    side = 2 * radius + 1
    return (side, side) if ndim == 2 else (1, side, side)  # never across images


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Pixels within chessboard distance `radius` of a True pixel of the same image."""
    if radius == 0:
        return mask
    return ndimage.maximum_filter(mask, size=_window(mask.ndim, radius), mode="constant", cval=False)


def trimap_biou(
    pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int = 255, radius: int | None = None
) -> float:
    """BIoU (Kohli et al. 2009 "trimap" accuracy, as evaluated by Auto Seg-Loss): mIoU over the pixels
    within chessboard distance `radius` of a target boundary pixel (`boundaries(target)` without
    ignored pixels). radius defaults to default_boundary_px(H, W)."""
    pred, target = _check_pair(pred, target, num_classes, ignore_index)
    pred, target = _batched(pred), _batched(target)
    if radius is None:
        radius = default_boundary_px(*target.shape[1:])
    valid = target != ignore_index
    band = _dilate(boundaries(target) & valid, radius) & valid
    if not band.any():
        raise ValueError("trimap_biou: the target has no boundaries, so the trimap band is empty")
    k = num_classes + 1
    cm = np.bincount(k * target[band] + pred[band], minlength=k * k).reshape(k, k)
    return region_metrics(cm)["miou"]


def boundary_f1(
    pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int = 255, tolerance: int | None = None
) -> float:
    """BF1 (Csurka et al. 2013 BF score): per class c, the boundary pixels of c in the prediction
    (resp. target) are matched if a target (resp. predicted) boundary pixel of c lies within
    chessboard distance `tolerance` in the same image; precision = matched predicted / predicted,
    recall = matched target / target, counts summed over images; F1 = 2PR / (P + R), 0 when P + R = 0.
    Classes with no boundary pixel on either side are left out of the mean; a class with boundary
    pixels on one side only scores 0. tolerance defaults to default_boundary_px(H, W)."""
    pred, target = _check_pair(pred, target, num_classes, ignore_index)
    pred, target = _batched(pred), _batched(target)
    if tolerance is None:
        tolerance = default_boundary_px(*target.shape[1:])
    valid = target != ignore_index
    pred_edges, target_edges = boundaries(pred), boundaries(target) & valid
    scores = []
    for c in range(num_classes + 1):
        pred_c, target_c = pred_edges & (pred == c), target_edges & (target == c)
        n_pred, n_target = int(pred_c.sum()), int(target_c.sum())
        if n_pred + n_target == 0:
            continue
        precision = (pred_c & _dilate(target_c, tolerance)).sum() / n_pred if n_pred else 0.0
        recall = (target_c & _dilate(pred_c, tolerance)).sum() / n_target if n_target else 0.0
        scores.append(2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0)
    if not scores:
        raise ValueError("boundary_f1: neither prediction nor target has any boundary")
    return float(np.mean(scores))


def mask_boundary_iou(pred_mask: np.ndarray, gt_mask: np.ndarray, dilation_ratio: float = 0.02) -> float:
    """Boundary IoU of two binary masks (Cheng et al. 2021; not the paper's BIoU, see README.md):
    IoU of the mask pixels within chessboard distance d of each mask's contour (the image border
    counts as outside), d = max(1, round(dilation_ratio * diagonal)). NaN when both masks are empty."""
    pred_mask, gt_mask = np.asarray(pred_mask, dtype=bool), np.asarray(gt_mask, dtype=bool)
    if pred_mask.shape != gt_mask.shape or pred_mask.ndim != 2:
        raise ValueError(f"mask_boundary_iou: need two equal (H, W) masks, got {pred_mask.shape} and {gt_mask.shape}")
    d = default_boundary_px(*gt_mask.shape, frac=dilation_ratio)
    pred_band, gt_band = _inner_band(pred_mask, d), _inner_band(gt_mask, d)
    union = (pred_band | gt_band).sum()
    return float((pred_band & gt_band).sum() / union) if union else float("nan")


def _inner_band(mask: np.ndarray, d: int) -> np.ndarray:
    # Chessboard distance of each mask pixel to the nearest non-mask pixel, outside the image included.
    padded = np.pad(mask, 1, constant_values=False)
    dist = ndimage.distance_transform_cdt(padded, metric="chessboard")[1:-1, 1:-1]
    return mask & (dist <= d)


# ----------------------------------------------------------------------------- all six


def segmentation_metrics(
    pred: np.ndarray,
    target: np.ndarray,
    num_classes: int,
    ignore_index: int = 255,
    boundary_tolerance: int | None = None,
    biou_radius: int | None = None,
) -> dict[str, float]:
    """miou, fwiou, gacc, macc, biou, bf1 (0-1 scale) of integer label maps (n, H, W) or (H, W)."""
    metrics = region_metrics(confusion_matrix(pred, target, num_classes, ignore_index))
    metrics["biou"] = trimap_biou(pred, target, num_classes, ignore_index, biou_radius)
    metrics["bf1"] = boundary_f1(pred, target, num_classes, ignore_index, boundary_tolerance)
    return metrics


# ----------------------------------------------------------------------------- input checks


def _batched(a: np.ndarray) -> np.ndarray:
    return a[None] if a.ndim == 2 else a


def _check_pair(pred, target, num_classes: int, ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {pred.shape} != target shape {target.shape}")
    if pred.ndim not in (2, 3):
        raise ValueError(f"label maps must be (H, W) or (n, H, W), got shape {pred.shape}")
    if not (np.issubdtype(pred.dtype, np.integer) and np.issubdtype(target.dtype, np.integer)):
        raise ValueError(f"label maps must be integer arrays, got {pred.dtype} and {target.dtype}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if 0 <= ignore_index <= num_classes:
        raise ValueError(f"ignore_index {ignore_index} collides with a class label 0..{num_classes}")
    bad_pred = (pred < 0) | (pred > num_classes)
    if bad_pred.any():
        raise ValueError(f"pred has label {int(pred[bad_pred][0])} outside 0..{num_classes}")
    bad_target = ((target < 0) | (target > num_classes)) & (target != ignore_index)
    if bad_target.any():
        raise ValueError(f"target has label {int(target[bad_target][0])} outside 0..{num_classes} (ignore_index={ignore_index})")
    return pred.astype(np.int64), target.astype(np.int64)
