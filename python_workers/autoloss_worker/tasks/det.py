"""Object detection inside an unchanged MMDetection config: the ``det`` task (Faster R-CNN, 4 branches).

    task = get_task("det")                            # options: see DetOptions
    task.proxy_train(loss, seed=0, metric="bbox_map")   # mmengine Runner, the config's CocoMetric

Branches (paper, App. A.2), in this order: ``rpn_cls`` (dense), ``rpn_reg`` (box), ``rcnn_cls``
(dense), ``rcnn_reg`` (box). Classification inputs are softmax probabilities and one-hot labels,
box inputs the intersection, union and enclosing areas of predicted and target boxes, with the
paper's loss weights 1 (cls) and 10 (reg); see ``docs/mmlab.md`` for how mmdet's heads feed them.

Proxy training: ``mmlab.rewrite`` puts the searched branches into the config (``config`` option,
default the shipped ``det_faster_rcnn_shapes.py``), shortens the schedule to ``iterations`` and
reports the config's own evaluator: ``bbox_map`` = ``coco/bbox_mAP``, ``bbox_map_50`` =
``coco/bbox_mAP_50``.

Loss rejection (the generic protocol of ``rejection.py``; samples from ``mmlab.det_samples``).
One rejection *sample* is one training image; its raw predictions per branch are

* ``rpn_cls`` / ``rcnn_cls``: the logits (1, n, C) of the image's *sampled* anchors / RoIs
  (background is the last column); loss inputs: softmax and one-hot, (n, C, 1, 1) — the layout
  ``AutoLossGraph`` gets in training, so ``max_pool``/``min_pool`` act on 1×1 maps there and here;
* ``rpn_reg`` / ``rcnn_reg``: the box offsets (1, p, 4) of the image's positive anchors / RoIs, in
  units of the prior's size (``det_samples``); loss inputs: i, u, e of the decoded boxes and their
  targets, (p, 1, 1, 1).

Per-sample metric ξ (a documented proxy of COCO bbox AP, computed per image; 0-1, higher is
better). ξ = Π over the four branches of a factor that is exactly 1 at the ground truth, so with
the other three branches at ground truth (paper, App. A.2) ξ is the tested branch's factor:

* classification factor: COCO-style AP (101 recall points, precision made monotone) of the
  sampled anchors / RoIs ranked by their softmax probability of a foreground class, averaged over
  the foreground classes with a positive sample in the image. This is the image's COCO AP when
  every sampled anchor / RoI is a detection whose box is exact (regression at ground truth) and
  every positive sample counts as its own ground-truth object (duplicates on one object are not
  suppressed by NMS). Random logits give about the fraction of positives; CE drives it to 1.
* regression factor: the mean over positive anchors / RoIs of max(0, (IoU − IoU₀) / (1 − IoU₀)),
  IoU₀ being the prior's own IoU with the target: the part of the localisation error that the
  predicted offsets remove (0 for the random network's near-zero offsets, 1 for an exact box).
  COCO's AP over IoU thresholds 0.5:0.95 would start at 0.3-0.6 for boxes the assigners already
  call positive (IoU ≥ 0.5 / 0.7), leaving too little room for the paper's η = 0.6.

The ground-truth raw predictions: logits 10·one-hot(label); offsets that decode exactly to the
target box. Rejection runs the protocol one sample at a time (``batched_rejection = False``): the
anchors and RoIs of an image vary in number, and laying them out along H would let the pooling
operators mix neighbouring RoIs, which they never do in training.
"""
from __future__ import annotations

import contextlib
import functools
import math
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from autoloss_worker.graph import LossGraph, loss_from_wire
from autoloss_worker.graph.wire import loss_to_wire
from autoloss_worker.mmlab.inputs import box_inputs, classification_inputs
from autoloss_worker.tasks.base import BOX, DENSE, Sample, Task, TrainResult
from autoloss_worker.tasks.training import parse_options

DEFAULT_CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "det_faster_rcnn_shapes.py")
DET_METRICS = ("bbox_map", "bbox_map_50")
EVALUATOR_KEYS = {"bbox_map": "coco/bbox_mAP", "bbox_map_50": "coco/bbox_mAP_50"}
GT_LOGIT = 10.0  # ground-truth logits: 10 on the label, 0 elsewhere (softmax ≥ 0.998 on the label for C ≤ 21)

CE = ["neg", ["mul", "y", ["log", "y_hat"]]]
# 1 − GIoU = 1 − i/u + (e − u)/e: the box loss of the paper's regression baseline [48] (the shipped
# config's own L1 on deltas cannot be written with i, u, e).
ONE_MINUS_GIOU = ["add", "one", ["add", ["neg", ["mul", "i", ["inv", "u"]]], ["mul", ["add", "e", ["neg", "u"]], ["inv", "e"]]]]
BRANCHES = {"rpn_cls": DENSE, "rpn_reg": BOX, "rcnn_cls": DENSE, "rcnn_reg": BOX}
INPUTS = {DENSE: ["y_hat", "y", "one"], BOX: ["i", "u", "e", "one"]}


def baseline_wire() -> dict[str, Any]:
    """CE for both classification branches, 1 − GIoU for both box branches (wire form)."""
    return {"v": 1, "branches": [{"name": n, "kind": k, "inputs": INPUTS[k], "tree": CE if k == DENSE else ONE_MINUS_GIOU}
                                 for n, k in BRANCHES.items()]}


@dataclass(frozen=True)
class DetOptions:
    config: str = DEFAULT_CONFIG  # any MMDetection 3 two-stage config with the Faster R-CNN loss keys
    iterations: int = 150  # proxy schedule (mmlab.rewrite.ProxySchedule.max_iters)
    warmup_iters: int = 50
    lr: float = 0.0  # 0: the config's own learning rate
    device: str = "cpu"  # proxy training device ("cpu" hides CUDA from the Runner)
    work_dir: str = ""  # "": a fresh temporary directory per run
    # > 0: predict only the first val_images validation images (smoke tests). CocoMetric still scores
    # against its whole ann_file, so the other images' objects count as missed: not for searching.
    val_images: int = 0


def ap_101(scores: Tensor, positive: Tensor) -> float:
    """COCO-style average precision of one ranking: precision made non-increasing, sampled at
    recall 0, 0.01, …, 1 (pycocotools' ``accumulate``); 0 when nothing is positive."""
    n_pos = int(positive.sum())
    if n_pos == 0:
        return 0.0
    order = torch.argsort(-scores, stable=True)
    tp = positive[order].double().cumsum(0)
    precision = tp / torch.arange(1, len(tp) + 1, dtype=torch.float64)
    recall = tp / n_pos
    precision = torch.flip(torch.cummax(torch.flip(precision, [0]), 0).values, [0])
    thresholds = torch.linspace(0, 1, 101, dtype=torch.float64)
    idx = torch.searchsorted(recall, thresholds, side="left")
    hit = idx < len(precision)
    return float(torch.where(hit, precision[idx.clamp(max=len(precision) - 1)], torch.zeros_like(thresholds)).mean())


def cls_factor(logits: Tensor, labels: Tensor, others: Tensor) -> float:
    """Mean AP over the foreground classes present (see the module docstring); ``others`` are the
    fixed logits of the anchors / RoIs outside the sample, all negatives."""
    fg = logits.shape[-1] - 1
    probs = torch.softmax(torch.cat([logits.double(), others.double()]), dim=-1)
    labels = torch.cat([labels, labels.new_full((len(others),), fg)])
    present = [c for c in range(fg) if bool((labels == c).any())]
    return sum(ap_101(probs[:, c], labels == c) for c in present) / len(present) if present else 0.0


WH_CLIP = abs(math.log(16 / 1000))  # mmdet's delta2bbox clamps dw, dh at |log(wh_ratio_clip = 16/1000)|


def decode(offsets: Tensor, priors: Tensor) -> Tensor:
    """Boxes from offsets in units of the prior's size: mmdet's ``delta2bbox`` with means 0 and
    stds 1, written out with fewer operations (it runs at every rejection step)."""
    pxy = (priors[:, :2] + priors[:, 2:]) / 2
    pwh = priors[:, 2:] - priors[:, :2]
    xy = pxy + pwh * offsets[:, :2]
    half = pwh * offsets[:, 2:].clamp(-WH_CLIP, WH_CLIP).exp() / 2
    return torch.cat([xy - half, xy + half], dim=1)


def encode(boxes: Tensor, priors: Tensor) -> Tensor:
    """The offsets that ``decode`` maps to ``boxes`` (mmdet's ``bbox2delta`` with means 0, stds 1)."""
    pxy, pwh = (priors[:, :2] + priors[:, 2:]) / 2, priors[:, 2:] - priors[:, :2]
    gxy, gwh = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]
    return torch.cat([(gxy - pxy) / pwh, torch.log(gwh / pwh)], dim=1)


def aligned_iou(a: Tensor, b: Tensor) -> Tensor:
    parts = box_inputs(a, b)
    return (parts["i"] / parts["u"]).flatten()


def box_factor(offsets: Tensor, priors: Tensor, targets: Tensor) -> float:
    """Mean over boxes of max(0, (IoU − IoU₀)/(1 − IoU₀)) (see the module docstring)."""
    iou = aligned_iou(decode(offsets, priors), targets)
    iou0 = aligned_iou(priors, targets)
    return float(((iou - iou0) / (1 - iou0)).clamp(min=0).mean())


class DetTask(Task):
    name = "det"
    branches = BRANCHES
    metrics = DET_METRICS
    default_metric = "bbox_map"
    baseline_loss = baseline_wire()
    batched_rejection = False  # see the module docstring

    def __init__(self, **options: Any) -> None:
        self.options = parse_options(DetOptions, options)
        if not Path(self.options.config).is_file():
            raise ValueError(f"det: config file '{self.options.config}' does not exist")
        self._samples: dict[tuple[int, int], list[Sample]] = {}

    @functools.cached_property
    def config(self) -> Any:
        from mmengine.config import Config

        return Config.fromfile(self.options.config)

    def build_model(self, seed: int) -> nn.Module:
        """The config's detector with its own losses, initialised from ``seed`` (proxy training
        builds its model through mmengine's Runner, rejection through ``det_samples``)."""
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules

        register_all_modules(init_default_scope=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = MODELS.build(self.config.model)
            model.init_weights()
        return model

    # ------------------------------------------------------------------ rejection

    def rejection_samples(self, B: int, seed: int) -> list[Sample]:
        key = (B, seed)
        if key not in self._samples:
            from autoloss_worker.mmlab.det_samples import BoxRecord, record_det_samples

            samples = []
            for record in record_det_samples(self.config, B, seed):
                raw = {n: (r.offsets if isinstance(r, BoxRecord) else r.logits)[None] for n, r in record.branches.items()}
                samples.append(Sample(raw=raw, target=record))
            self._samples[key] = samples
        return self._samples[key]

    def to_loss_inputs(self, branch: str, raw: Tensor, target: Any, *, metric: str) -> dict[str, Tensor]:
        record = target.branches[branch]
        n = raw.shape[0]  # 1 in the protocol; more when several predictions of the image are stacked
        if BRANCHES[branch] == DENSE:
            labels = record.labels.repeat(n) if n > 1 else record.labels
            return classification_inputs(raw.reshape(-1, raw.shape[-1]), labels).as_env()
        priors, targets = (record.priors.repeat(n, 1), record.targets.repeat(n, 1)) if n > 1 else (record.priors, record.targets)
        return box_inputs(decode(raw.reshape(-1, 4), priors), targets)

    def ground_truth_raw(self, branch: str, target: Any) -> Tensor:
        record = target.branches[branch]
        if BRANCHES[branch] == DENSE:
            logits = torch.zeros_like(record.logits)
            logits[torch.arange(len(record.labels)), record.labels] = GT_LOGIT
            return logits[None]
        return encode(record.targets, record.priors)[None]

    def sample_metric(self, raw: Mapping[str, Tensor], target: Any, metric: str) -> float:
        self.check_metric(metric)
        xi = 1.0
        for branch, kind in BRANCHES.items():
            record = target.branches[branch]
            pred = raw[branch][0]
            xi *= cls_factor(pred, record.labels, record.others) if kind == DENSE else box_factor(pred, record.priors, record.targets)
        return xi

    # ------------------------------------------------------------------ proxy training

    def proxy_train(
        self,
        loss: Any,
        seed: int,
        *,
        metric: str,
        budget: int | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> TrainResult:
        from autoloss_worker.mmlab.rewrite import FASTER_RCNN, ProxySchedule, rewrite_config, train_proxy

        metric = self.check_metric(metric)
        o = self.options
        wire = loss_to_wire(loss) if isinstance(loss, LossGraph) else loss
        self.branch_losses(loss_from_wire(wire))  # names must match the task's branches
        extra = {"val_dataloader.dataset.indices": o.val_images} if o.val_images > 0 else {}
        schedule = ProxySchedule(max_iters=o.iterations if budget is None else budget, warmup_iters=o.warmup_iters,
                                 lr=o.lr or None, seed=seed, extra=extra)
        cfg = rewrite_config(self.config, wire, FASTER_RCNN, schedule)
        # pycocotools prints its summary on stdout, which carries the CLI's JSON: send it to stderr.
        with _device(o.device), contextlib.redirect_stdout(sys.stderr), \
                tempfile.TemporaryDirectory(prefix="autoloss-det-") as tmp:
            result = train_proxy(cfg, o.work_dir or tmp)
        if progress is not None:
            progress(1.0)
        if result["invalid"]:
            metrics = {m: 0.0 for m in DET_METRICS}
        else:
            # COCO reports −1 where an AP is undefined (no ground truth of that kind): count it as 0.
            metrics = {m: max(0.0, float(result["metrics"].get(k, 0.0))) for m, k in EVALUATOR_KEYS.items()}
        return TrainResult(metrics=metrics, target=metrics[metric], invalid=result["invalid"],
                           iterations=result["iterations"], extra={"reason": result["reason"]})


class _device:
    """Put mmengine's Runner on ``device``: it moves the model to ``mmengine.device.get_device()``,
    a constant fixed at import (CUDA whenever present), through the name its module imported."""

    def __init__(self, device: str) -> None:
        self.device = device

    def __enter__(self) -> None:
        import mmengine.runner.runner as runner_module

        self._saved = runner_module.get_device
        runner_module.get_device = lambda: self.device  # type: ignore[assignment]

    def __exit__(self, *exc: object) -> None:
        import mmengine.runner.runner as runner_module

        runner_module.get_device = self._saved  # type: ignore[assignment]
