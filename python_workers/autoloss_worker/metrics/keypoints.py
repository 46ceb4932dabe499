"""Keypoint metrics: COCO keypoint mAP (via pycocotools COCOeval) and per-instance OKS.

    from autoloss_worker.metrics.keypoints import keypoint_map, oks
    ap = keypoint_map(to_coco(split), predictions)   # predictions: COCO results
    # [{"image_id", "category_id", "keypoints": [x, y, v] * K, "score"}, ...]

Both use the per-keypoint sigmas of the shapes world (`data.shapes.KEYPOINT_SIGMAS`).
"""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ..data.shapes import KEYPOINT_SIGMAS


def oks(pred_kpts: np.ndarray, gt_kpts: np.ndarray, area: float, sigmas: np.ndarray = KEYPOINT_SIGMAS) -> float:
    """Object keypoint similarity of one prediction against one ground truth, as COCOeval.computeOks:

        OKS = mean over labelled gt keypoints (v > 0) of exp(-d_k^2 / (2 * area * (2 * sigma_k)^2))

    pred_kpts: (K, 2) or (K, 3) (a visibility column is ignored); gt_kpts: (K, 3) with v in column 2;
    area: the ground-truth segment area in px^2 (COCO's `area`)."""
    pred = np.asarray(pred_kpts, dtype=np.float64)
    gt = np.asarray(gt_kpts, dtype=np.float64)
    sigmas = np.asarray(sigmas, dtype=np.float64)
    k = sigmas.shape[0]
    if pred.shape not in ((k, 2), (k, 3)) or gt.shape != (k, 3):
        raise ValueError(f"oks: need pred (K, 2|3) and gt (K, 3) with K = {k}, got {pred.shape} and {gt.shape}")
    if area <= 0:
        raise ValueError(f"oks: area must be > 0, got {area}")
    labelled = gt[:, 2] > 0
    if not labelled.any():
        raise ValueError("oks: the ground truth has no labelled keypoint (all v = 0)")
    d2 = ((pred[:, :2] - gt[:, :2]) ** 2).sum(axis=1)
    e = d2 / (2.0 * area * (2.0 * sigmas) ** 2)
    return float(np.exp(-e[labelled]).mean())


def keypoint_map(gt_coco: dict, predictions: list[dict], sigmas: np.ndarray = KEYPOINT_SIGMAS) -> float:
    """COCO keypoint AP averaged over OKS thresholds 0.50:0.05:0.95 (COCOeval stats[0]: all areas,
    20 detections per image), on a 0-1 scale. Ground truths without labelled keypoints are ignored,
    as in COCOeval (if none is left: ValueError). No predictions gives 0.0. COCOeval's progress prints are silenced."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(gt_coco)
        gt.createIndex()
        if not predictions:
            return 0.0
        dt = gt.loadRes(copy.deepcopy(list(predictions)))
        evaluator = COCOeval(gt, dt, iouType="keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    ap = float(evaluator.stats[0])
    if ap < 0:  # COCOeval's "undefined": no ground truth with labelled keypoints
        raise ValueError("keypoint_map: the ground truth has no annotation with labelled keypoints")
    return ap
