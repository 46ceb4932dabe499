"""Semantic segmentation on synthetic shapes: the proxy task for mIoU, FWIoU, gAcc, mAcc, BIoU, BF1.

    from autoloss_worker.tasks import get_task
    task = get_task("seg")                                  # options: see SegOptions
    result = task.proxy_train(loss, seed=0, metric="miou")  # ~10-20 s on 2 CPU cores

Loss inputs (paper, App. A.1), both (N, C, H, W) with C = num_classes + 1 (background included):

* ``y_hat`` = softmax probabilities of the network's logits;
* ``y``     = one-hot labels for the region metrics (miou, fwiou, gacc, macc);
* ``y``     = one-hot labels restricted to a boundary band for the boundary metrics (biou, bf1),
  y[n, c, h, w] = onehot[n, c, h, w] · band[n, h, w] — the paper's "pre-computed boundaries of y
  as the training targets". The band is exactly the pixels the metric looks at:
  bf1:  ``boundaries(label)``, the metrics' 1-pixel boundary (a pixel whose 3×3 neighbourhood
        holds another label; the image border is no boundary);
  biou: that boundary dilated by the trimap radius ``default_boundary_px(H, W)`` (1 px at 64×64),
        i.e. the trimap region over which BIoU is computed.
  Pixels outside the band have y = 0 in every channel.

Proxy recipe, a scaled-down version of the paper's (DeepLabv3+ R50, 128×128, 3 epochs, SGD 0.02
poly 0.9, momentum 0.9, weight decay 5e-4, head lr ×10): a small encoder-decoder CNN (``SegNet``)
on 64×64 images, ``iterations`` SGD steps with the same momentum, weight decay, poly schedule and
head multiplier. Rejection samples are taken at ``rejection_size`` (default 32×32: the image is
resized bilinearly before the random network sees it, the labels by nearest neighbour, and ξ is
computed at that resolution), which makes one check about 4× cheaper than at 64×64.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoloss_worker.metrics.segmentation import (
    boundaries,
    boundary_f1,
    confusion_matrix,
    default_boundary_px,
    region_metrics,
    segmentation_metrics,
    trimap_biou,
)
from autoloss_worker.tasks.base import DENSE, PretrainableTask, Sample, TrainResult
from autoloss_worker.tasks.losses import branch_output, training_value
from autoloss_worker.tasks.seg_net import SegNet
from autoloss_worker.tasks.train_state import Continuation
from autoloss_worker.tasks.training import BatchOrder, guarded_training, parse_options, poly_lr, set_threads, shapes_split

SEG_METRICS = ("miou", "fwiou", "gacc", "macc", "biou", "bf1")
BOUNDARY_METRICS = frozenset({"biou", "bf1"})
BRANCH = "loss"  # the name a bare expression gets in the text syntax


@dataclass(frozen=True)
class SegOptions:
    size: int = 64  # image side, px
    num_classes: int = 4  # foreground classes; the network predicts num_classes + 1
    train_images: int = 512
    eval_images: int = 128
    data_seed: int = 0  # train/eval splits are derived from it with split_seed
    rejection_size: int = 32  # side of the rejection samples, px (see the module docstring)
    width: int = 16  # channels of the first encoder stage
    iterations: int = 300  # default proxy budget (SGD steps)
    batch_size: int = 16
    lr: float = 0.05  # the paper's 0.02 left CE predicting background only after 300 steps
    head_lr_scale: float = 10.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    # torch intra-op threads for proxy training; 0: the process's own (a pool worker's --threads, 1
    # each by default). A fixed 2 spun against the pool's other worker: 6x slower steps on 2 loaded cores.
    threads: int = 0
    device: str = "cpu"
    stop_on_invalid: bool = True  # False: train through NaN/Inf (the naive ablation baseline)
    # Start from the shapes-pretrained encoder (pretrain.native; built once, cached) instead of random
    # weights: the proxy then separates losses after a fraction of its iterations (README, fidelity).
    pretrained: bool = False


@dataclass(frozen=True)
class SegTarget:
    """Target of one rejection sample: labels (1, H, W) int64 and ``y`` (1, C, H, W) per metric."""

    labels: Tensor
    y: Mapping[str, Tensor]


def onehot(labels: Tensor, classes: int, dtype: torch.dtype) -> Tensor:
    """(N, H, W) int -> (N, C, H, W) one-hot."""
    return F.one_hot(labels, classes).permute(0, 3, 1, 2).to(dtype)


def boundary_band(labels: np.ndarray, metric: str) -> np.ndarray:
    """bool (N, H, W): the pixels a boundary metric scores (see the module docstring)."""
    edges = boundaries(labels)
    if metric == "bf1":
        return edges
    assert metric == "biou", f"no boundary band for metric {metric!r}"
    r = default_boundary_px(*labels.shape[-2:])
    dilated = F.max_pool2d(torch.from_numpy(edges).float()[:, None], 2 * r + 1, stride=1, padding=r)
    return dilated[:, 0].numpy() > 0


def training_target(labels: Tensor, metric: str, classes: int, dtype: torch.dtype) -> Tensor:
    """``y`` for ``metric`` from labels (N, H, W): one-hot, on the boundary band for biou / bf1."""
    y = onehot(labels, classes, dtype)
    if metric not in BOUNDARY_METRICS:
        return y
    band = torch.from_numpy(boundary_band(labels.cpu().numpy(), metric)).to(labels.device)
    return y * band[:, None].to(dtype)


class SegTask(PretrainableTask):
    name = "seg"
    branches = {BRANCH: DENSE}
    continues = True
    metrics = SEG_METRICS
    default_metric = "miou"
    # Cross-entropy −Σ_c y log ŷ; its value Σ/(N·H·W) is the usual mean per-pixel CE.
    baseline_loss = {"v": 1, "branches": [{"name": BRANCH, "kind": DENSE, "inputs": ["y_hat", "y", "one"],
                                           "tree": ["neg", ["mul", "y", ["log", "y_hat"]]]}]}

    softmax_dense_inputs = True  # to_loss_inputs below
    confusion_metrics = frozenset(SEG_METRICS) - BOUNDARY_METRICS

    def __init__(self, **options: Any) -> None:
        self.options = parse_options(SegOptions, options)
        self.classes = self.options.num_classes + 1
        self._samples: dict[tuple[int, int], list[Sample]] = {}

    # ------------------------------------------------------------------ data

    def _split(self, name: str, n: int):
        o = self.options
        return shapes_split(name, n, o.data_seed, o.size, o.num_classes)

    def random_model(self, seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return SegNet(self.classes, self.options.width)

    def encoder_spec(self) -> Any:
        from autoloss_worker.pretrain.native import Encoder, NativeSpec

        classes, width = self.classes, self.options.width
        encoder = Encoder(build=lambda: SegNet(classes, width), levels=lambda net, x: net.encode(x),
                          prefixes=SegNet.ENCODER, code=(SegNet.__module__,))
        return NativeSpec.of("seg", {"classes": classes, "width": width}, encoder)

    # ------------------------------------------------------------------ rejection

    def rejection_samples(self, B: int, seed: int) -> list[Sample]:
        key = (B, seed)
        if key not in self._samples:
            split = self._split("train", self.options.train_images)
            side = (self.options.rejection_size,) * 2
            labels_all = F.interpolate(torch.from_numpy(split.semantic[:, None]).double(), size=side,
                                       mode="nearest-exact")[:, 0].long()  # (n, r, r)
            # Images whose labels have a boundary, so every metric (BIoU, BF1 too) is defined.
            usable = np.flatnonzero(boundaries(labels_all.numpy()).any(axis=(1, 2)))
            chosen = np.random.default_rng(seed).choice(usable, size=B, replace=False)
            model = self.random_model(seed).double().eval()
            samples = []
            with torch.no_grad():
                for i in chosen:
                    x = F.interpolate(torch.from_numpy(split.images[i : i + 1]).double(), size=side, mode="bilinear",
                                      align_corners=False, antialias=True)
                    labels = labels_all[i : i + 1]
                    samples.append(Sample(raw={BRANCH: model(x)}, target=self._target(labels, torch.float64)))
            self._samples[key] = samples
        return self._samples[key]

    def _target(self, labels: Tensor, dtype: torch.dtype) -> SegTarget:
        return SegTarget(labels=labels, y={m: training_target(labels, m, self.classes, dtype) for m in SEG_METRICS})

    def to_loss_inputs(self, branch: str, raw: Tensor, target: SegTarget, *, metric: str) -> dict[str, Tensor]:
        return {"y_hat": torch.softmax(raw, dim=1), "y": target.y[metric]}

    def sample_metric(self, raw: Mapping[str, Tensor], target: SegTarget, metric: str) -> float:
        pred = raw[BRANCH].argmax(dim=1).cpu().numpy()  # (1, H, W)
        labels = target.labels.cpu().numpy()
        k = self.options.num_classes
        if metric == "biou":
            return trimap_biou(pred, labels, k)
        if metric == "bf1":
            return boundary_f1(pred, labels, k)
        return region_metrics(confusion_matrix(pred, labels, k))[metric]

    # ------------------------------------------------------------------ proxy training

    def proxy_train(
        self,
        loss: Any,
        seed: int,
        *,
        metric: str,
        budget: int | None = None,
        progress: Callable[[float], None] | None = None,
        stop_at: int | None = None,
        states: Continuation | None = None,
    ) -> TrainResult:
        metric = self.check_metric(metric)
        losses = self.branch_losses(loss)
        o = self.options
        iterations = o.iterations if budget is None else budget
        set_threads(o.threads)
        device = torch.device(o.device)
        train = self._split("train", o.train_images)
        images = torch.from_numpy(train.images).to(device)
        # y for every training image, built once: (n, C, H, W) float32.
        targets = training_target(torch.from_numpy(train.semantic), metric, self.classes, torch.float32).to(device)

        model = self.build_model(seed).to(device)
        head = list(model.head.parameters())
        body = [p for n, p in model.named_parameters() if not n.startswith("head.")]
        optimizer = torch.optim.SGD(
            [{"params": body}, {"params": head, "lr_scale": o.head_lr_scale}],
            lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay,
        )
        order = BatchOrder(len(train), o.batch_size, seed)

        def step_loss(i: int) -> Tensor:
            idx = torch.from_numpy(order(i)).to(device)
            inputs = {"y_hat": torch.softmax(model(images[idx]), dim=1), "y": targets[idx]}
            return sum(training_value(branch_output(fn, inputs)) for fn in losses.values())  # type: ignore[return-value]

        start = time.perf_counter()
        invalid, done, resumed_from = guarded_training(model, optimizer, iterations, step_loss, lambda i: poly_lr(o.lr, i, iterations), progress,
                                         stop_on_invalid=o.stop_on_invalid, stop_at=stop_at, states=states)
        train_s = time.perf_counter() - start
        metrics = {m: 0.0 for m in SEG_METRICS} if invalid else self.evaluate(model)
        return TrainResult(metrics=metrics, target=metrics[metric], invalid=invalid, iterations=done,
                           resumed_from=resumed_from, extra={"train_s": train_s})

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """All six metrics of ``model`` on the eval split (counts pooled over images)."""
        o = self.options
        split = self._split("eval", o.eval_images)
        model.eval()
        device = next(model.parameters()).device
        preds = [model(torch.from_numpy(split.images[i : i + 64]).to(device)).argmax(dim=1).cpu().numpy()
                 for i in range(0, len(split), 64)]
        return segmentation_metrics(np.concatenate(preds), split.semantic, o.num_classes)

