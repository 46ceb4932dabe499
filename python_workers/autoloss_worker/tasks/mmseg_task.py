"""Semantic segmentation inside an unchanged MMSegmentation config: the ``mmseg`` task (one branch).

    task = get_task("mmseg")                              # options: see MMSegOptions
    task.proxy_train(loss, seed=0, metric="miou")          # mmengine Runner, the config's IoUMetric

Branch ``loss`` = the config's ``decode_head.loss_decode`` (``AutoLossGraph`` of
``mmlab.mmseg_loss``): y_hat = softmax over the classes per pixel, y = one-hot labels, pixels with
``ignore_index`` contribute nothing (paper, App. A.1). The default config is the shipped
``autoloss_worker/configs/seg_mmseg_shapes.py``; ``config=`` swaps in any MMSegmentation 1.x config unchanged.

Metrics: the config's ``IoUMetric`` after the proxy schedule, divided by 100: ``miou`` = ``mIoU``
(default), ``macc`` = ``mAcc``, ``gacc`` = ``aAcc``.

Loss rejection (the generic protocol; samples from ``mmlab.mmseg_samples``): one sample is one
training image, its raw prediction the decode head's logits (1, C, H, W) resized to the label size,
as ``loss_decode`` receives them. ξ of a sample is the evaluator's formula on that image alone
(``metrics.segmentation.region_metrics``: IoU per class over the classes present in the labels or
the prediction, pixels with ``ignore_index`` left out; IoUMetric's nanmean skips the same
classes). Samples share one padded size (the data preprocessor pads a batch), so the batched fast
path applies.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from autoloss_worker.metrics.segmentation import confusion_matrix, region_metrics
from autoloss_worker.mmlab.inputs import segmentation_inputs
from autoloss_worker.tasks.base import DENSE, Sample
from autoloss_worker.tasks.losses import WEIGHT_KEY
from autoloss_worker.tasks.mmlab_proxy import SHIPPED_CONFIGS, MMLabConfigTask, MMLabOptions

DEFAULT_CONFIG = str(SHIPPED_CONFIGS / "seg_mmseg_shapes.py")
BRANCH = "loss"
EVALUATOR_KEYS = {"miou": "mIoU", "macc": "mAcc", "gacc": "aAcc"}  # IoUMetric's keys, in percent
CE = ["neg", ["mul", "y", ["log", "y_hat"]]]


@dataclass(frozen=True)
class MMSegOptions(MMLabOptions):
    config: str = DEFAULT_CONFIG
    # Shipped config: CE still predicts background only after 200-500 iterations (mIoU 0.184) and
    # reaches 0.260 after 1000 (docs/mmlab.md).
    iterations: int = 1000
    warmup_iters: int = 20


@dataclass(frozen=True)
class SegTarget:
    """Target of one rejection sample, all at the label's resolution."""

    labels: Tensor  # (1, H, W) int64, ignore_index where unlabelled
    y: Tensor  # (1, C, H, W) one-hot, all zero on ignored pixels
    valid: Tensor  # (1, 1, H, W) float, 0 on ignored pixels
    ignore_index: int


class MMSegTask(MMLabConfigTask):
    name = "mmseg"
    branches = {BRANCH: DENSE}
    metrics = tuple(EVALUATOR_KEYS)
    default_metric = "miou"
    # Cross-entropy −Σ_c y log ŷ: the shipped config's own CrossEntropyLoss (mean over pixels).
    baseline_loss = {"v": 1, "branches": [{"name": BRANCH, "kind": DENSE, "inputs": ["y_hat", "y", "one"], "tree": CE}]}

    options_class = MMSegOptions
    library = "mmseg"
    evaluator_keys = EVALUATOR_KEYS
    metric_scale = 0.01

    # ------------------------------------------------------------------ rejection

    def rejection_samples(self, B: int, seed: int) -> list[Sample]:
        key = (B, seed)
        if key not in self._samples:
            from autoloss_worker.mmlab.mmseg_samples import record_seg_samples

            self._samples[key] = [Sample(raw={BRANCH: r.logits}, target=_target(r.logits, r.labels, r.ignore_index))
                                  for r in record_seg_samples(self.rejection_config, B, seed)]
        return self._samples[key]

    def to_loss_inputs(self, branch: str, raw: Tensor, target: SegTarget, *, metric: str) -> dict[str, Tensor]:
        # raw may stack several predictions of the sample (N, C, H, W); the targets broadcast.
        return {"y_hat": torch.softmax(raw, dim=1), "y": target.y, WEIGHT_KEY: target.valid}

    def sample_metric(self, raw: Mapping[str, Tensor], target: SegTarget, metric: str) -> float:
        self.check_metric(metric)
        pred = raw[BRANCH].argmax(dim=1).cpu().numpy()  # (1, H, W)
        classes = raw[BRANCH].shape[1]
        cm = confusion_matrix(pred, target.labels.cpu().numpy(), classes - 1, ignore_index=target.ignore_index)
        return region_metrics(cm)[metric]


def _target(logits: Tensor, labels: Tensor, ignore_index: int) -> SegTarget:
    """One-hot targets and the valid-pixel weight, as ``mmseg_loss.AutoLossGraph`` builds them."""
    inputs = segmentation_inputs(logits, labels, ignore_index)
    return SegTarget(labels=labels, y=inputs.y, valid=inputs.valid.to(logits.dtype), ignore_index=ignore_index)
