"""Top-down keypoint estimation inside an unchanged MMPose config: the ``mmpose`` task.

    task = get_task("mmpose")                             # options: see MMPoseOptions
    task.proxy_train(loss, seed=0, metric="map")           # mmengine Runner, the config's CocoMetric
    get_task("mmpose", config="td-hm_mspn50.py", branches="loss_3")   # search the last unit's loss only

Branches (``mmlab.pose_layout``): the config's searchable heatmap slots, named as ``autoloss slots``
names them, in config order: ``loss`` = ``head.loss`` (HeatmapHead, ViPNASHead, a CPMHead or
MSPNHead with one loss for every stage; the shipped
``autoloss_worker/configs/pose_topdown_shapes.py`` has only this one), or ``loss_0``, ``loss_1``, ...
= the items of a list of losses (CPMHead: one per stage; MSPNHead / RSN: one per stage and unit).
All of them by default; the option ``branches`` searches a subset and the others keep the config's
own losses. Every searched slot gets an ``AutoLossGraph`` of ``mmlab.mmpose_loss`` with the
config's ``loss_weight``: y_hat = the predicted heatmaps as they are, y = the target heatmaps; only
joints with a target weight > 0 count (paper: loss only on visible joints). Baseline: the squared
error in every branch.

Metric ``map``: the config's ``CocoMetric`` ``coco/AP`` (OKS AP over thresholds 0.50:0.05:0.95)
after the proxy schedule.

Loss rejection (the generic protocol; samples from ``mmlab.mmpose_samples``): one sample is one
training instance through the config's training pipeline; its raw prediction of branch X is what
the loss at X's slot gets in training: the heatmaps (1, K, h, w) of the stage or unit it is called
on, or, for a loss the head calls once per stage, every stage's heatmaps side by side (1, S·K, h, w);
its target the target heatmaps of the same calls (an MSPN unit's own level) and their keypoint
weights. ξ of a sample is the product over the searched branches of COCO keypoint AP of that one
instance, computed as the evaluator does on the branch's last K channels (the last stage or unit
it is called on, the one the head predicts from): the heatmaps decoded by the config's codec
(``head.decoder``), OKS with the dataset's sigmas, AP = the share of the 10 OKS thresholds cleared
(one ground truth, one prediction). It is evaluated in the crop's coordinates, which is exact for
OKS (see ``mmpose_samples``). Each factor is 1 at the ground truth (the branch's target heatmaps),
so with the other branches there (App. A.2) ξ is the checked branch's own; with one branch it is
today's ξ. Crops share one size, so the batched fast path applies.

One deviation, so that ξ = 1 at the ground truth as the protocol requires: the OKS reference is
the labelled joints *as the branch's target heatmaps encode them* (the codec's decoding of the
target), not the labelled joints themselves. A heatmap codec places a joint only on its grid (the
shipped config: 16×16 for a 64×64 crop, quarter-cell refinement), and against the labelled joints
the target heatmaps themselves scored OKS AP 0.6 on a shipped sample: ξ would then measure the
codec's resolution rather than how well a loss pulls the prediction to its target. The visibility
of each joint is the labelled one; the proxy training's metric is the evaluator's, unchanged.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from autoloss_worker.metrics.keypoints import oks
from autoloss_worker.tasks.base import DENSE, Sample
from autoloss_worker.tasks.losses import WEIGHT_KEY
from autoloss_worker.tasks.mmlab_proxy import SHIPPED_CONFIGS, MMLabConfigTask, MMLabOptions, branches_as_text
from autoloss_worker.tasks.pose import single_object_ap

DEFAULT_CONFIG = str(SHIPPED_CONFIGS / "pose_topdown_shapes.py")
BRANCH = "loss"
EVALUATOR_KEYS = {"map": "coco/AP"}
SQUARED_ERROR = ["square", ["add", "y_hat", ["neg", "y"]]]


def baseline_wire(branches: Sequence[str]) -> dict[str, Any]:
    """The squared error in every branch: the config's KeypointMSELoss (× K, see the class)."""
    return {"v": 1, "branches": [{"name": n, "kind": DENSE, "inputs": ["y_hat", "y", "one"], "tree": SQUARED_ERROR}
                                 for n in branches]}


@dataclass(frozen=True)
class MMPoseOptions(MMLabOptions):
    config: str = DEFAULT_CONFIG
    iterations: int = 200  # shipped config: see docs/mmlab.md for time and AP at this budget
    warmup_iters: int = 20
    # Comma-separated branches to search ("": every branch of the config, in config order); the
    # config keeps its own losses everywhere else. A JSON list is accepted too.
    branches: str = ""


@dataclass(frozen=True)
class PoseTarget:
    """Target of one branch of one rejection sample (one instance), in the crop's coordinates."""

    heatmaps: Tensor  # (1, S·K, h, w): the target heatmaps of the S calls of the branch's loss
    weight: Tensor  # (1, S·K, 1, 1) keypoint weights
    keypoints: np.ndarray  # (K, 3): x, y as the last call's target heatmaps encode them, labelled (0/1)
    area: float
    sigmas: np.ndarray  # (K,)


@dataclass(frozen=True)
class PoseSampleTarget:
    """Target of one rejection sample: every branch's own (an MSPN unit's level differs)."""

    branches: Mapping[str, PoseTarget]


class MMPoseTask(MMLabConfigTask):
    name = "mmpose"
    branches = {BRANCH: DENSE}  # the shipped config's; an instance holds the ones its config and option give
    all_branches: Mapping[str, str] = {BRANCH: DENSE}
    metrics = tuple(EVALUATOR_KEYS)
    default_metric = "map"
    # Heatmap squared error Σ (ŷ − y)² on visible joints: the shipped config's KeypointMSELoss
    # (which also averages over K; the branch value does not, a constant factor).
    baseline_loss = baseline_wire([BRANCH])

    options_class = MMPoseOptions
    library = "mmpose"
    evaluator_keys = EVALUATOR_KEYS
    metric_scale = 1.0

    def __init__(self, **options: Any) -> None:
        from autoloss_worker.mmlab.pose_layout import estimator_layout

        super().__init__(**branches_as_text(options))
        self.adopt_layout(estimator_layout(self.config), baseline_wire)

    def proxy_slots(self) -> Sequence[Any]:
        return self.slot_table

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

            # every branch of the config is recorded; those outside the option are only used at ground truth
            slots = {s.name: s.key for s in self.slot_table}
            self._samples[key] = [
                Sample(raw=dict(r.heatmaps), target=PoseSampleTarget({
                    name: PoseTarget(heatmaps=r.target[name], weight=r.weights[name][..., None, None],
                                     keypoints=self._encoded_joints(r.target[name], r.keypoints), area=r.area,
                                     sigmas=r.sigmas)
                    for name in slots}))
                for r in record_pose_samples(self.rejection_config, B, seed, slots)
            ]
        return self._samples[key]

    def _decode(self, heatmaps: Tensor, K: int) -> np.ndarray:
        """(K, 2) crop pixels: the codec's decoding of the last K channels of (1, S·K, h, w)."""
        xy, _ = self.codec.decode(heatmaps[0, -K:].detach().cpu().float().numpy())  # (1, K, 2)
        return xy[0].astype(np.float64)

    def _encoded_joints(self, target_heatmaps: Tensor, labelled: np.ndarray) -> np.ndarray:
        """The labelled joints (K, 3) as the target heatmaps encode them: x, y decoded by the codec
        (see the module docstring), the labelled flag kept, except where the codec cannot place the
        joint (MegviiHeatmap's blur decodes an all-zero target, a labelled joint outside the crop, as NaN)."""
        xy = self._decode(target_heatmaps, len(labelled))
        flag = labelled[:, 2:3] * np.isfinite(xy).all(axis=1, keepdims=True)
        return np.concatenate([np.nan_to_num(xy), flag], axis=1)

    def to_loss_inputs(self, branch: str, raw: Tensor, target: PoseSampleTarget, *, metric: str) -> dict[str, Tensor]:
        own = target.branches[branch]
        return {"y_hat": raw, "y": own.heatmaps, WEIGHT_KEY: own.weight}

    def ground_truth_raw(self, branch: str, target: PoseSampleTarget) -> Tensor:
        return target.branches[branch].heatmaps

    def sample_metric(self, raw: Mapping[str, Tensor], target: PoseSampleTarget, metric: str) -> float:
        """Π over the searched branches of the instance's OKS AP from the branch's prediction; a
        branch outside the ``branches`` option is at its ground truth, factor 1."""
        self.check_metric(metric)
        xi = 1.0
        for branch in self.branches:
            own = target.branches[branch]
            xi *= keypoint_ap(self._decode(raw[branch], len(own.keypoints)), own)
        return xi


def keypoint_ap(xy: np.ndarray, target: PoseTarget) -> float:
    """COCO keypoint AP of one predicted instance (K, 2) against its ground truth (both in crop
    pixels): the share of the OKS thresholds 0.50:0.05:0.95 that its OKS clears."""
    return single_object_ap(oks(xy, target.keypoints, target.area, target.sigmas))
