"""Top-down keypoint estimation inside an unchanged MMPose config: the ``mmpose`` task (one branch).

    task = get_task("mmpose")                             # options: see MMPoseOptions
    task.proxy_train(loss, seed=0, metric="map")           # mmengine Runner, the config's CocoMetric

Branch ``loss`` = the config's ``head.loss`` (``AutoLossGraph`` of ``mmlab.mmpose_loss``):
y_hat = the predicted heatmaps as they are, y = the target heatmaps; only joints with a target
weight > 0 count (paper: loss only on visible joints). The default config is the shipped
``autoloss_worker/configs/pose_topdown_shapes.py``; ``config=`` swaps in any MMPose 1.x top-down heatmap config
unchanged.

Metric ``map``: the config's ``CocoMetric`` ``coco/AP`` (OKS AP over thresholds 0.50:0.05:0.95)
after the proxy schedule.

Loss rejection (the generic protocol; samples from ``mmlab.mmpose_samples``): one sample is one
training instance through the config's training pipeline, its raw prediction the heatmaps
(1, K, h, w) that ``head.loss`` gets; the loss inputs weight each joint by its keypoint weight.
ξ of a sample is COCO keypoint AP of that one instance, computed as the evaluator does: the
heatmaps decoded by the config's codec (``head.decoder``), OKS with the dataset's sigmas, AP = the
share of the 10 OKS thresholds cleared (one ground truth, one prediction). It is evaluated in the
crop's coordinates, which is exact for OKS (see ``mmpose_samples``). Crops share one size, so the
batched fast path applies.

One deviation, so that ξ = 1 at the ground truth as the protocol requires: the OKS reference is
the labelled joints *as the target heatmaps encode them* (the codec's decoding of the target), not
the labelled joints themselves. A heatmap codec places a joint only on its grid (the shipped
config: 16×16 for a 64×64 crop, quarter-cell refinement), and against the labelled joints the
target heatmaps themselves scored OKS AP 0.6 on a shipped sample: ξ would then measure the codec's
resolution rather than how well a loss pulls the prediction to its target. The visibility of each
joint is the labelled one; the proxy training's metric is the evaluator's, unchanged.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from autoloss_worker.metrics.keypoints import oks
from autoloss_worker.tasks.base import DENSE, Sample
from autoloss_worker.tasks.losses import WEIGHT_KEY
from autoloss_worker.tasks.mmlab_proxy import SHIPPED_CONFIGS, MMLabConfigTask, MMLabOptions
from autoloss_worker.tasks.pose import single_object_ap

DEFAULT_CONFIG = str(SHIPPED_CONFIGS / "pose_topdown_shapes.py")
BRANCH = "loss"
EVALUATOR_KEYS = {"map": "coco/AP"}
SQUARED_ERROR = ["square", ["add", "y_hat", ["neg", "y"]]]


@dataclass(frozen=True)
class MMPoseOptions(MMLabOptions):
    config: str = DEFAULT_CONFIG
    iterations: int = 200  # shipped config: see docs/mmlab.md for time and AP at this budget
    warmup_iters: int = 20


@dataclass(frozen=True)
class PoseTarget:
    """Target of one rejection sample (one instance), in the crop's coordinates."""

    heatmaps: Tensor  # (1, K, h, w)
    weight: Tensor  # (1, K, 1, 1) keypoint weights
    keypoints: np.ndarray  # (K, 3): x, y as the target heatmaps encode them, labelled (0/1)
    area: float
    sigmas: np.ndarray  # (K,)


class MMPoseTask(MMLabConfigTask):
    name = "mmpose"
    branches = {BRANCH: DENSE}
    metrics = tuple(EVALUATOR_KEYS)
    default_metric = "map"
    # Heatmap squared error Σ (ŷ − y)² on visible joints: the shipped config's KeypointMSELoss
    # (which also averages over K; the branch value does not, a constant factor).
    baseline_loss = {"v": 1, "branches": [{"name": BRANCH, "kind": DENSE, "inputs": ["y_hat", "y", "one"],
                                           "tree": SQUARED_ERROR}]}

    options_class = MMPoseOptions
    library = "mmpose"
    evaluator_keys = EVALUATOR_KEYS
    metric_scale = 1.0

    @functools.cached_property
    def codec(self) -> Any:
        """The config's heatmap codec (``head.decoder``): how the evaluator decodes heatmaps."""
        from mmpose.registry import KEYPOINT_CODECS

        decoder = self.config.model.get("head", {}).get("decoder")
        if decoder is None:
            raise ValueError("mmpose: the config's model.head has no decoder (a top-down heatmap head is needed)")
        return KEYPOINT_CODECS.build(decoder)

    # ------------------------------------------------------------------ rejection

    def rejection_samples(self, B: int, seed: int) -> list[Sample]:
        key = (B, seed)
        if key not in self._samples:
            from autoloss_worker.mmlab.mmpose_samples import record_pose_samples

            self._samples[key] = [
                Sample(raw={BRANCH: r.heatmaps},
                       target=PoseTarget(heatmaps=r.target, weight=r.weights[..., None, None],
                                         keypoints=self._encoded_joints(r.target, r.keypoints), area=r.area,
                                         sigmas=r.sigmas))
                for r in record_pose_samples(self.rejection_config, B, seed)
            ]
        return self._samples[key]

    def _encoded_joints(self, target_heatmaps: Tensor, labelled: np.ndarray) -> np.ndarray:
        """The labelled joints (K, 3) as the target heatmaps encode them: x, y decoded by the codec
        (see the module docstring), the labelled flag kept."""
        xy, _ = self.codec.decode(target_heatmaps[0].detach().cpu().float().numpy())  # (1, K, 2)
        return np.concatenate([xy[0].astype(np.float64), labelled[:, 2:3]], axis=1)

    def to_loss_inputs(self, branch: str, raw: Tensor, target: PoseTarget, *, metric: str) -> dict[str, Tensor]:
        return {"y_hat": raw, "y": target.heatmaps, WEIGHT_KEY: target.weight}

    def sample_metric(self, raw: Mapping[str, Tensor], target: PoseTarget, metric: str) -> float:
        self.check_metric(metric)
        keypoints, _ = self.codec.decode(raw[BRANCH][0].detach().cpu().float().numpy())  # (1, K, 2), crop pixels
        return keypoint_ap(keypoints[0], target)


def keypoint_ap(xy: np.ndarray, target: PoseTarget) -> float:
    """COCO keypoint AP of one predicted instance (K, 2) against its ground truth (both in crop
    pixels): the share of the OKS thresholds 0.50:0.05:0.95 that its OKS clears."""
    return single_object_ap(oks(xy, target.keypoints, target.area, target.sigmas))
