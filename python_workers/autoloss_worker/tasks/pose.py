"""Top-down keypoint estimation on synthetic shapes: the proxy task for COCO keypoint mAP.

    from autoloss_worker.tasks import get_task
    task = get_task("pose")                            # options: see PoseOptions
    result = task.proxy_train(loss, seed=0, metric="map")

Every annotated object (with at least one labelled keypoint) is cropped from its image: the square
around its box centre with side ``padding`` × the longer box side, resampled to ``crop`` × ``crop``
(bilinear, zeros outside the image). The ground-truth box stands in for the person detector of
the paper's SimpleBaseline setting. A small SimpleBaseline-like network (strided conv encoder,
one deconvolution, 1×1 head) predicts K heatmaps at ¼ the crop resolution.

Loss inputs, all (N, K, h, w) with h = w = crop / 4:

* ``y_hat`` = the predicted heatmaps as they are (SimpleBaseline regresses them linearly);
* ``y``     = Gaussian target heatmaps, peak 1, std ``sigma`` heatmap pixels (SimpleBaseline);
* ``weight`` (N, K, 1, 1) = 1 for a labelled joint (COCO v > 0, SimpleBaseline's/MMPose's
  ``target_weight``) whose centre lies on the heatmap, else 0. It multiplies the graph's
  elementwise output before aggregation, so the value is Σ_{n,k,h,w} weight_nk · o_nkhw / (N·h·w):
  joints that do not count add nothing to the value or the gradient, whatever the graph computes.

Coordinates: image pixel (r, c) covers [c, c+1) × [r, r+1) (the data module's convention). Crop
pixel j covers crop coordinate [j, j+1); heatmap cell i covers crop [4i, 4i+4), so heatmap index
coordinate h maps to crop coordinate 4h + 2 and image coordinate box_x0 + (4h + 2) · scale.
Decoding: the argmax cell, moved a quarter cell towards the higher neighbour (SimpleBaseline).
The prediction's score is the mean of the K heatmap maxima.

Metric ``map``: COCO keypoint AP (OKS thresholds 0.50:0.05:0.95) on the eval split via
``keypoint_map``. Per rejection sample ξ is the same AP for that single object: with one ground
truth and one prediction it is the fraction of the 10 thresholds t with OKS ≥ t.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoloss_worker.data.coco import to_coco
from autoloss_worker.data.shapes import NUM_KEYPOINTS, ShapesSplit
from autoloss_worker.metrics.keypoints import keypoint_map, oks
from autoloss_worker.tasks.base import DENSE, PretrainableTask, Sample, TrainResult
from autoloss_worker.tasks.losses import WEIGHT_KEY, branch_output, training_value
from autoloss_worker.tasks.train_state import Continuation
from autoloss_worker.tasks.pose_net import PoseNet
from autoloss_worker.tasks.training import BatchOrder, cosine_lr, guarded_training, parse_options, set_threads, shapes_split

BRANCH = "loss"
STRIDE = 4  # heatmap resolution is crop / STRIDE
OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # COCOeval's iouThrs


@dataclass(frozen=True)
class PoseOptions:
    size: int = 64  # image side, px
    num_classes: int = 4
    train_images: int = 384
    eval_images: int = 128
    data_seed: int = 0
    crop: int = 64  # crop side, px; heatmaps are crop / 4
    padding: float = 1.25  # crop side / longer box side
    sigma: float = 1.0  # target Gaussian std, heatmap px
    width: int = 16
    iterations: int = 300  # default proxy budget (Adam steps)
    batch_size: int = 32
    lr: float = 3e-3  # Adam; the paper's 2.5e-4 is for batch 256 and R50 over 4 epochs
    warmup: int = 25  # linear warm-up steps before the cosine schedule
    # torch intra-op threads for proxy training; 0: the process's own (a pool worker's --threads, 1
    # each by default). A fixed 2 spun against the pool's other worker: 6x slower steps on 2 loaded cores.
    threads: int = 0
    device: str = "cpu"
    stop_on_invalid: bool = True  # False: train through NaN/Inf (the naive ablation baseline)
    # Start from the shapes-pretrained encoder (pretrain.native; built once, cached) instead of random weights.
    pretrained: bool = False


@dataclass(frozen=True)
class Crops:
    """All annotated objects of a split, cropped. Boxes are (x0, y0, scale): image = x0 + crop_coord · scale."""

    images: Tensor  # (M, 3, S, S) float32
    heatmaps: Tensor  # (M, K, h, w) float32 targets
    weights: Tensor  # (M, K) float32, 1 where the joint counts in the loss
    boxes: np.ndarray  # (M, 3) float64
    keypoints: np.ndarray  # (M, K, 3) float64, image coordinates, COCO visibility
    areas: np.ndarray  # (M,) COCO area (visible mask pixels)
    image_ids: np.ndarray  # (M,) COCO image ids (1-based, as to_coco numbers them)
    categories: np.ndarray  # (M,)


@dataclass(frozen=True)
class PoseTarget:
    """Target of one rejection sample (one object)."""

    heatmaps: Tensor  # (1, K, h, w)
    weight: Tensor  # (1, K, 1, 1)
    box: np.ndarray  # (3,) x0, y0, scale
    keypoints: np.ndarray  # (K, 3)
    area: float


def gaussian_heatmaps(centres: Tensor, size: int, sigma: float) -> Tensor:
    """(M, K, 2) heatmap index coordinates (x, y) -> (M, K, size, size) Gaussians with peak 1."""
    grid = torch.arange(size, dtype=centres.dtype)
    gx = torch.exp(-((grid - centres[..., 0:1]) ** 2) / (2 * sigma**2))  # (M, K, size) over x
    gy = torch.exp(-((grid - centres[..., 1:2]) ** 2) / (2 * sigma**2))  # over y
    return gy[..., :, None] * gx[..., None, :]


def decode_heatmaps(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """(M, K, h, w) -> heatmap index coordinates (M, K, 2) and maxima (M, K): argmax + quarter offset."""
    m, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(m, k, h * w)
    maxval, idx = flat.max(dim=2)
    x, y = idx % w, idx // w

    def at(yy: Tensor, xx: Tensor) -> Tensor:  # heatmap value at (yy, xx), indices clamped inside
        return flat.gather(2, (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1))[..., None]).squeeze(2)

    zero = torch.zeros_like(maxval)
    dx = torch.where((x > 0) & (x < w - 1), torch.sign(at(y, x + 1) - at(y, x - 1)), zero)
    dy = torch.where((y > 0) & (y < h - 1), torch.sign(at(y + 1, x) - at(y - 1, x)), zero)
    coords = torch.stack([x.to(heatmaps.dtype) + 0.25 * dx, y.to(heatmaps.dtype) + 0.25 * dy], dim=-1)
    return coords, maxval


def heatmap_to_image(coords: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(M, K, 2) heatmap index coordinates -> image coordinates, with boxes (M, 3) = x0, y0, scale."""
    crop_xy = STRIDE * coords + STRIDE / 2
    return boxes[:, None, :2] + crop_xy * boxes[:, None, 2:3]


def image_to_heatmap(xy: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Inverse of ``heatmap_to_image``."""
    crop_xy = (xy - boxes[:, None, :2]) / boxes[:, None, 2:3]
    return (crop_xy - STRIDE / 2) / STRIDE


def crop_objects(split: ShapesSplit, crop: int, padding: float, sigma: float) -> Crops:
    """Every instance with a labelled keypoint, cropped and with its heatmap targets."""
    rows = [(i, inst) for i, insts in enumerate(split.instances) for inst in insts if (inst.keypoints[:, 2] > 0).any()]
    if not rows:
        raise ValueError("pose: the split has no object with a labelled keypoint")
    _, _, height, width = split.images.shape
    boxes = np.empty((len(rows), 3))
    for r, (_, inst) in enumerate(rows):
        x0, y0, x1, y1 = inst.box
        side = padding * max(x1 - x0, y1 - y0)
        boxes[r] = ((x0 + x1 - side) / 2, (y0 + y1 - side) / 2, side / crop)
    # Sampling grid: crop pixel j's centre is image coordinate x0 + (j + 0.5) · scale; grid_sample
    # (align_corners=False) maps image coordinate c to 2c / W − 1.
    j = torch.arange(crop, dtype=torch.float64) + 0.5
    b = torch.from_numpy(boxes)
    gx = (b[:, 0:1] + j * b[:, 2:3]) * 2 / width - 1  # (M, S)
    gy = (b[:, 1:2] + j * b[:, 2:3]) * 2 / height - 1
    grid = torch.stack([gx[:, None, :].expand(-1, crop, -1), gy[:, :, None].expand(-1, -1, crop)], dim=-1).float()
    source = torch.from_numpy(split.images[[i for i, _ in rows]])
    images = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    keypoints = np.stack([inst.keypoints for _, inst in rows]).astype(np.float64)  # (M, K, 3)
    centres = image_to_heatmap(keypoints[..., :2], boxes)
    size = crop // STRIDE
    on_map = (centres >= -0.5).all(-1) & (centres < size - 0.5).all(-1)
    weights = ((keypoints[..., 2] > 0) & on_map).astype(np.float32)
    heatmaps = gaussian_heatmaps(torch.from_numpy(centres), size, sigma).float()
    return Crops(
        images=images,
        heatmaps=heatmaps,
        weights=torch.from_numpy(weights),
        boxes=boxes,
        keypoints=keypoints,
        areas=np.array([float(inst.mask.sum()) for _, inst in rows]),
        image_ids=np.array([i + 1 for i, _ in rows]),
        categories=np.array([inst.category for _, inst in rows]),
    )


def single_object_ap(oks_value: float) -> float:
    """COCO AP of one prediction against its one ground truth: the share of thresholds it clears."""
    return float((oks_value >= OKS_THRESHOLDS).mean())


class PoseTask(PretrainableTask):
    name = "pose"
    branches = {BRANCH: DENSE}
    continues = True
    metrics = ("map",)
    default_metric = "map"
    # Heatmap MSE: Σ (ŷ − y)², the SimpleBaseline / MMPose baseline.
    baseline_loss = {"v": 1, "branches": [{"name": BRANCH, "kind": DENSE, "inputs": ["y_hat", "y", "one"],
                                           "tree": ["square", ["add", "y_hat", ["neg", "y"]]]}]}

    def __init__(self, **options: Any) -> None:
        self.options = parse_options(PoseOptions, options)
        if self.options.crop % 8 or self.options.crop < 16:  # encoder stride 8
            raise ValueError(f"pose: crop must be a multiple of 8 and >= 16, got {self.options.crop}")
        self._samples: dict[tuple[int, int], list[Sample]] = {}

    @functools.cached_property
    def train_crops(self) -> Crops:
        o = self.options
        return crop_objects(shapes_split("train", o.train_images, o.data_seed, o.size, o.num_classes), o.crop, o.padding, o.sigma)

    @functools.cached_property
    def eval_crops(self) -> Crops:
        o = self.options
        return crop_objects(self.eval_split(), o.crop, o.padding, o.sigma)

    def eval_split(self) -> ShapesSplit:
        o = self.options
        return shapes_split("eval", o.eval_images, o.data_seed, o.size, o.num_classes)

    @functools.cached_property
    def eval_coco(self) -> dict:
        return to_coco(self.eval_split())

    def random_model(self, seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return PoseNet(NUM_KEYPOINTS, self.options.width)

    def encoder_spec(self) -> Any:
        from autoloss_worker.pretrain.native import Encoder, NativeSpec

        width = self.options.width
        encoder = Encoder(build=lambda: PoseNet(NUM_KEYPOINTS, width), levels=lambda net, x: (net.encoder(x),),
                          prefixes=PoseNet.ENCODER, code=(PoseNet.__module__,))
        return NativeSpec.of("pose", {"keypoints": NUM_KEYPOINTS, "width": width}, encoder)

    # ------------------------------------------------------------------ rejection

    def rejection_samples(self, B: int, seed: int) -> list[Sample]:
        key = (B, seed)
        if key not in self._samples:
            crops = self.train_crops
            usable = np.flatnonzero(crops.weights.sum(1).numpy() > 0)
            chosen = np.random.default_rng(seed).choice(usable, size=B, replace=False)
            model = self.random_model(seed).double().eval()
            samples = []
            with torch.no_grad():
                for i in chosen:
                    raw = model(crops.images[i : i + 1].double())
                    target = PoseTarget(
                        heatmaps=crops.heatmaps[i : i + 1].double(),
                        weight=crops.weights[i : i + 1].double()[..., None, None],
                        box=crops.boxes[i],
                        keypoints=crops.keypoints[i],
                        area=float(crops.areas[i]),
                    )
                    samples.append(Sample(raw={BRANCH: raw}, target=target))
            self._samples[key] = samples
        return self._samples[key]

    def to_loss_inputs(self, branch: str, raw: Tensor, target: PoseTarget, *, metric: str) -> dict[str, Tensor]:
        return {"y_hat": raw, "y": target.heatmaps, WEIGHT_KEY: target.weight}

    def sample_metric(self, raw: Mapping[str, Tensor], target: PoseTarget, metric: str) -> float:
        coords, _ = decode_heatmaps(raw[BRANCH].detach().cpu().double())
        xy = heatmap_to_image(coords.numpy(), target.box[None])[0]  # (K, 2)
        return single_object_ap(oks(xy, target.keypoints, target.area))

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
        crops = self.train_crops
        images, heatmaps = crops.images.to(device), crops.heatmaps.to(device)
        weights = crops.weights.to(device)[..., None, None]  # (M, K, 1, 1)

        model = self.build_model(seed).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=o.lr)
        order = BatchOrder(len(images), min(o.batch_size, len(images)), seed)

        def step_loss(i: int) -> Tensor:
            idx = torch.from_numpy(order(i)).to(device)
            inputs = {"y_hat": model(images[idx]), "y": heatmaps[idx], WEIGHT_KEY: weights[idx]}
            return sum(training_value(branch_output(fn, inputs)) for fn in losses.values())  # type: ignore[return-value]

        start = time.perf_counter()
        invalid, done, resumed_from = guarded_training(model, optimizer, iterations, step_loss,
                                         lambda i: cosine_lr(o.lr, i, iterations, min(o.warmup, iterations)), progress,
                                         stop_on_invalid=o.stop_on_invalid, stop_at=stop_at, states=states)
        train_s = time.perf_counter() - start
        metrics = {"map": 0.0} if invalid else self.evaluate(model)
        return TrainResult(metrics=metrics, target=metrics[metric], invalid=invalid, iterations=done,
                           resumed_from=resumed_from, extra={"train_s": train_s})

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """COCO keypoint mAP of ``model`` on the eval split (ground-truth boxes)."""
        crops = self.eval_crops
        model.eval()
        device = next(model.parameters()).device
        out = torch.cat([model(crops.images[i : i + 128].to(device)).cpu() for i in range(0, len(crops.images), 128)])
        coords, maxval = decode_heatmaps(out.double())
        xy = heatmap_to_image(coords.numpy(), crops.boxes)  # (M, K, 2)
        predictions = [
            {
                "image_id": int(crops.image_ids[m]),
                "category_id": int(crops.categories[m]),
                "keypoints": [float(v) for v in np.concatenate([xy[m], np.ones((xy.shape[1], 1))], 1).reshape(-1)],
                "score": float(maxval[m].mean()),
            }
            for m in range(len(xy))
        ]
        return {"map": keypoint_map(self.eval_coco, predictions)}
