"""Semantic segmentation inside an unchanged MMSegmentation config: the ``mmseg`` task.

    task = get_task("mmseg")                              # options: see MMSegOptions
    task.proxy_train(loss, seed=0, metric="miou")          # mmengine Runner, the config's IoUMetric
    get_task("mmseg", config="my_pspnet.py", branches="loss")   # search the decode head only

Branches (``mmlab.seg_layout``): the config's searchable segmentation slots, named as ``autoloss
slots`` names them, in config order: ``loss`` = ``decode_head.loss_decode`` (the shipped
``autoloss_worker/configs/seg_mmseg_shapes.py`` has only this one), ``aux`` =
``auxiliary_head.loss_decode`` (PSPNet, UPerNet, ...), ``loss0``, ``loss1`` = the decode heads of a
``CascadeEncoderDecoder`` (OCRNet), ``loss_0``, ``loss_1`` = the items of a list of losses. All of
them by default; the option ``branches`` searches a subset and the others keep the config's own
losses. Every searched slot gets an ``AutoLossGraph`` of ``mmlab.mmseg_loss`` with the config's
``loss_weight``: y_hat = softmax over the classes per pixel, y = one-hot labels, pixels with
``ignore_index`` contribute nothing (paper, App. A.1). Baseline: CE in every branch.

Metrics: the config's ``IoUMetric`` after the proxy schedule, divided by 100: ``miou`` = ``mIoU``
(default), ``macc`` = ``mAcc``, ``gacc`` = ``aAcc``.

Loss rejection (the generic protocol; samples from ``mmlab.mmseg_samples``): one sample is one
training image; its raw prediction of branch X is what the loss at X's slot gets in training: the
logits (1, C, H, W) of the head owning the slot, resized to the label size (for a cascade's later
head, computed from the earlier head's output as mmseg's forward passes it). ξ of a sample is the
product over the searched branches of the evaluator's formula on that image alone
(``metrics.segmentation.region_metrics`` of the branch's argmax: IoU per class over the classes
present in the labels or the prediction, pixels with ``ignore_index`` left out; IoUMetric's nanmean
skips the same classes). Each factor is 1 at the ground truth (logits 10 · one-hot), so with the
other branches there (App. A.2) ξ is the checked branch's own; with one branch it is today's ξ.
Samples share one padded size (the data preprocessor pads a batch), so the batched fast path applies.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from autoloss_worker.metrics.segmentation import confusion_matrix, region_metrics
from autoloss_worker.mmlab.inputs import segmentation_inputs
from autoloss_worker.tasks.base import DENSE, Sample
from autoloss_worker.tasks.losses import WEIGHT_KEY
from autoloss_worker.tasks.mmlab_proxy import SHIPPED_CONFIGS, MMLabConfigTask, MMLabOptions, branches_as_text

DEFAULT_CONFIG = str(SHIPPED_CONFIGS / "seg_mmseg_shapes.py")
BRANCH = "loss"
EVALUATOR_KEYS = {"miou": "mIoU", "macc": "mAcc", "gacc": "aAcc"}  # IoUMetric's keys, in percent
CE = ["neg", ["mul", "y", ["log", "y_hat"]]]
GT_LOGIT = 10.0  # ground-truth logits: 10 on the label, 0 elsewhere (softmax ≈ 0.9998 on the label)


def baseline_wire(branches: Sequence[str]) -> dict[str, Any]:
    """CE in every branch: the config's own CrossEntropyLoss (mean over pixels) as a graph."""
    return {"v": 1, "branches": [{"name": n, "kind": DENSE, "inputs": ["y_hat", "y", "one"], "tree": CE} for n in branches]}


@dataclass(frozen=True)
class MMSegOptions(MMLabOptions):
    config: str = DEFAULT_CONFIG
    # Shipped config: CE still predicts background only after 200-500 iterations (mIoU 0.184) and
    # reaches 0.260 after 1000 (docs/mmlab.md).
    iterations: int = 1000
    warmup_iters: int = 20
    # Comma-separated branches to search ("": every branch of the config, in config order); the
    # config keeps its own losses everywhere else. A JSON list is accepted too.
    branches: str = ""


@dataclass(frozen=True)
class SegTarget:
    """Target of one rejection sample, all at the label's resolution."""

    labels: Tensor  # (1, H, W) int64, ignore_index where unlabelled
    y: Tensor  # (1, C, H, W) one-hot, all zero on ignored pixels
    valid: Tensor  # (1, 1, H, W) float, 0 on ignored pixels
    ignore_index: int


class MMSegTask(MMLabConfigTask):
    name = "mmseg"
    branches = {BRANCH: DENSE}  # the shipped config's; an instance holds the ones its config and option give
    all_branches: Mapping[str, str] = {BRANCH: DENSE}
    metrics = tuple(EVALUATOR_KEYS)
    default_metric = "miou"
    # Cross-entropy −Σ_c y log ŷ: the shipped config's own CrossEntropyLoss (mean over pixels).
    baseline_loss = baseline_wire([BRANCH])

    options_class = MMSegOptions
    library = "mmseg"
    evaluator_keys = EVALUATOR_KEYS
    metric_scale = 0.01

    def __init__(self, **options: Any) -> None:
        from autoloss_worker.mmlab.seg_layout import segmentor_layout

        super().__init__(**branches_as_text(options))
        self.adopt_layout(segmentor_layout(self.config), baseline_wire)

    def proxy_slots(self) -> Sequence[Any]:
        return self.slot_table

    # ------------------------------------------------------------------ rejection

    def rejection_samples(self, B: int, seed: int) -> list[Sample]:
        key = (B, seed)
        if key not in self._samples:
            from autoloss_worker.mmlab.mmseg_samples import record_seg_samples

            # every branch of the config is recorded; those outside the option are only used at ground truth
            slots = {s.name: s.key for s in self.slot_table}
            records = record_seg_samples(self.rejection_config, B, seed, slots)
            first = next(iter(slots))  # the recorder checked that every slot sees these labels and classes
            self._samples[key] = [Sample(raw=dict(r.logits), target=_target(r.logits[first], r.labels, r.ignore_index))
                                  for r in records]
        return self._samples[key]

    def to_loss_inputs(self, branch: str, raw: Tensor, target: SegTarget, *, metric: str) -> dict[str, Tensor]:
        # raw may stack several predictions of the sample (N, C, H, W); the targets broadcast.
        return {"y_hat": torch.softmax(raw, dim=1), "y": target.y, WEIGHT_KEY: target.valid}

    def ground_truth_raw(self, branch: str, target: SegTarget) -> Tensor:
        return GT_LOGIT * target.y  # all zero on ignored pixels, which ξ leaves out

    def sample_metric(self, raw: Mapping[str, Tensor], target: SegTarget, metric: str) -> float:
        """Π over the searched branches of the evaluator's formula on the branch's prediction; a
        branch outside the ``branches`` option is at its ground truth, factor 1."""
        self.check_metric(metric)
        xi = 1.0
        for branch in self.branches:
            pred = raw[branch].argmax(dim=1).cpu().numpy()  # (1, H, W)
            classes = raw[branch].shape[1]
            cm = confusion_matrix(pred, target.labels.cpu().numpy(), classes - 1, ignore_index=target.ignore_index)
            xi *= region_metrics(cm)[metric]
        return xi


def _target(logits: Tensor, labels: Tensor, ignore_index: int) -> SegTarget:
    """One-hot targets and the valid-pixel weight, as ``mmseg_loss.AutoLossGraph`` builds them."""
    inputs = segmentation_inputs(logits, labels, ignore_index)
    return SegTarget(labels=labels, y=inputs.y, valid=inputs.valid.to(logits.dtype), ignore_index=ignore_index)
