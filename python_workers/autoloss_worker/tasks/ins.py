"""Instance segmentation inside an unchanged MMDetection config: the ``ins`` task (Mask R-CNN, 5 branches).

    task = get_task("ins")                              # options: see InsOptions (= DetOptions)
    task.proxy_train(loss, seed=0, metric="segm_map")    # mmengine Runner, the config's CocoMetric

The ``det`` task (``tasks.det``, read its docstring first) plus the mask head's loss. Branches
(paper, App. A.2), in this order: ``rpn_cls``, ``rpn_reg``, ``rcnn_cls``, ``rcnn_reg`` as in det, and
``mask`` (dense): per RoI, the mask logits of its class channel as per-pixel foreground/background
probabilities, y_hat = (σ(x), 1 − σ(x)) and y = (t, 1 − t), (P, 2, h, w) (``mmlab.inputs.mask_inputs``,
which ``AutoLossGraph`` in mask mode applies to mmdet's ``loss_mask(pred, target, label)``); loss
weight 1. The baseline's mask branch is CE over those two channels, i.e. mmdet's binary mask CE.

Metrics: the config's CocoMetric with ``metric=['bbox', 'segm']``: ``segm_map`` (default) =
``coco/segm_mAP``, ``segm_map_50`` = ``coco/segm_mAP_50``, ``bbox_map`` = ``coco/bbox_mAP``. Default
config: the shipped ``autoloss_worker/configs/ins_mask_rcnn_shapes.py``; ``config=`` takes any MMDetection 3 Mask
R-CNN-style config (a ``StandardRoIHead`` with its own mask RoI extractor); ``branches=`` searches a
subset, as in det.

Loss rejection: det's samples and factors, and for the mask branch (``mmlab.det_samples``
``MaskRecord``): the raw prediction is the mask logits (1, P, h, w) of the image's positive RoIs
(their class channel), the target their mmdet mask targets. ξ factor of the mask branch: the mean
over those RoIs of max(0, (IoU − IoU₀) / (1 − IoU₀)), IoU being the mask IoU of the binarised
prediction (σ > 0.5, mmdet's ``mask_thr_binary``) with the target in the RoI's frame, and IoU₀ that
of the RoI box itself (the all-foreground mask), i.e. the share of the RoI the object covers. It is
the mask counterpart of det's box factor: the part of the error left by the box that the mask
removes, 1 at the ground truth (logits ±10), about 0 for the random network (whose masks are
roughly all on or all off: IoU ≈ IoU₀ or 0). Plain mask IoU would not do: the all-on mask of a
random network already scores IoU₀ ≈ 0.5-0.8 on these objects, leaving too little room for η = 0.6.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from autoloss_worker.mmlab.inputs import mask_inputs
from autoloss_worker.tasks.base import DENSE
from autoloss_worker.tasks.det import BRANCHES as DET_BRANCHES
from autoloss_worker.tasks.det import GT_LOGIT, DetOptions, DetTask, baseline_wire
from autoloss_worker.tasks.mmlab_proxy import SHIPPED_CONFIGS

DEFAULT_CONFIG = str(SHIPPED_CONFIGS / "ins_mask_rcnn_shapes.py")
BRANCHES = {**DET_BRANCHES, "mask": DENSE}
EVALUATOR_KEYS = {"segm_map": "coco/segm_mAP", "segm_map_50": "coco/segm_mAP_50", "bbox_map": "coco/bbox_mAP"}


@dataclass(frozen=True)
class InsOptions(DetOptions):
    config: str = DEFAULT_CONFIG  # any MMDetection 3 Mask R-CNN-style config (see the module docstring)


def mask_factor(logits: Tensor, targets: Tensor) -> float:
    """Mean over RoIs of max(0, (IoU − IoU₀)/(1 − IoU₀)) (see the module docstring).
    logits, targets: (P, h, w); every target covers some but not all of its RoI (``det_samples``)."""
    pred = logits > 0  # σ > 0.5
    fg = targets > 0.5
    inter = (pred & fg).flatten(1).sum(1).double()
    union = (pred | fg).flatten(1).sum(1).double()
    iou = inter / union
    iou0 = fg.flatten(1).double().mean(1)
    return float(((iou - iou0) / (1 - iou0)).clamp(min=0).mean())


class InsTask(DetTask):
    name = "ins"
    branches = BRANCHES
    all_branches = BRANCHES
    metrics = tuple(EVALUATOR_KEYS)
    default_metric = "segm_map"
    evaluator_keys = EVALUATOR_KEYS
    options_class = InsOptions
    baseline_loss = baseline_wire(BRANCHES)

    def _leaf(self, record: Any) -> Tensor:
        from autoloss_worker.mmlab.det_samples import MaskRecord

        return record.logits if isinstance(record, MaskRecord) else super()._leaf(record)

    def to_loss_inputs(self, branch: str, raw: Tensor, target: Any, *, metric: str) -> dict[str, Tensor]:
        from autoloss_worker.mmlab.det_samples import MaskRecord

        record = target.branches[branch]
        if not isinstance(record, MaskRecord):
            return super().to_loss_inputs(branch, raw, target, metric=metric)
        n = raw.shape[0]  # 1 in the protocol; more when several predictions of the image are stacked
        targets = record.targets.repeat(n, 1, 1) if n > 1 else record.targets
        return mask_inputs(raw.reshape(-1, *raw.shape[-2:]), targets).as_env()  # (P, 2, h, w), as in training

    def ground_truth_raw(self, branch: str, target: Any) -> Tensor:
        from autoloss_worker.mmlab.det_samples import MaskRecord

        record = target.branches[branch]
        if not isinstance(record, MaskRecord):
            return super().ground_truth_raw(branch, target)
        return (GT_LOGIT * (2 * record.targets - 1))[None]  # σ(±10): the target to 5e-5

    def _factor(self, record: Any, pred: Tensor) -> float:
        from autoloss_worker.mmlab.det_samples import MaskRecord

        return mask_factor(pred, record.targets) if isinstance(record, MaskRecord) else super()._factor(record, pred)
