"""Record what a randomly initialised MMPose top-down heatmap estimator predicts for a few training
instances, as each searched loss slot would see them: the loss-rejection samples of the ``mmpose`` task.

    records = record_pose_samples(cfg, B=5, seed=0)     # one PoseRecord per instance, branch "loss"
    records = record_pose_samples(cfg, 5, 0, {"loss_0": "head.loss.0", "loss_3": "head.loss.3"})   # MSPN
    records[0].heatmaps["loss_3"]    # (1, K, h, w): what head.loss.3 got for instance 0

The config's estimator is built from ``seed`` and put in eval mode (BatchNorm uses its initial
statistics). Training instances, in an order drawn with ``seed``, go through the config's own
training pipeline (its random transforms seeded here); an instance is kept when at least one joint
has a target weight > 0 (a visible joint on the heatmap), so the loss sees something. Then the
estimator's own ``loss`` runs on the instance with a recorder standing in every slot (the head's
``loss_module``, or item i of it), which keeps what the head passes its loss and returns 0. So each
branch gets exactly what its loss gets in training, whatever the head:

* ``heatmaps``: the predicted heatmaps the loss gets, (1, K, h, w); a loss the head calls more than
  once (CPMHead's or MSPNHead's single loss, shared by every stage) has all its calls side by side
  along the joint axis, (1, S·K, h, w), in call order, which sums the stages exactly as the head does
  (the branch's value is a sum over joints);
* ``target`` and ``weights``: the target heatmaps (1, S·K, h, w) (an MSPN unit's own level) and
  keypoint weights (1, S·K) of the same calls;
* ``keypoints`` (K, 3), ``area`` and ``sigmas``: the ground truth as the evaluator's OKS uses it, but in the
  crop's coordinates (the pipeline's ``transformed_keypoints``; column 2 is COCO's v > 0), and the
  instance's COCO ``area`` times the crop's scale squared. The crop is a similarity transform of the
  image (uniform scale, rotation, shift), so OKS computed here equals OKS in the image.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .seeded import first_records, quiet, seeded_model_and_dataset
from .slots import SlotError

SHIPPED_SLOTS = {"loss": "head.loss"}  # the shipped config's single slot


@dataclass(frozen=True)
class PoseRecord:
    index: int  # position in the training dataset (one instance)
    heatmaps: Mapping[str, Tensor]  # branch -> (1, S·K, h, w) float64, predicted (S calls of its loss)
    target: Mapping[str, Tensor]  # branch -> (1, S·K, h, w) float64, the target heatmaps of those calls
    weights: Mapping[str, Tensor]  # branch -> (1, S·K) float64 keypoint weights
    keypoints: np.ndarray  # (K, 3) float64: x, y in crop pixels, 1.0 where the joint is labelled
    area: float  # COCO area in crop pixels²
    sigmas: np.ndarray  # (K,) the dataset's OKS sigmas (its metainfo), as the evaluator uses them


class _LossRecorder(nn.Module):
    """Stands in a loss slot: keeps what the head passes its loss and returns 0."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Tensor, Tensor, Tensor | None]] = []

    def forward(self, output: Tensor, target: Tensor, target_weights: Tensor | None = None, *args: Any,
                **kwargs: Any) -> Tensor:
        self.calls.append((output.detach(), target.detach(), None if target_weights is None else target_weights.detach()))
        return output.new_zeros(())


def _install(model: nn.Module, key: str) -> _LossRecorder:
    """A recorder in place of the loss module of the slot at ``key``: ``head.loss`` is the head's
    ``loss_module`` (as every MMPose head names it), ``head.loss.i`` item i of its ModuleList."""
    parts = key.split(".")
    if parts[:2] != ["head", "loss"] or len(parts) > 3:
        raise SlotError(f"mmpose: the recorder follows model.head.loss (or an item of it), not model.{key}")
    recorder = _LossRecorder()
    if len(parts) == 2:
        model.head.loss_module = recorder
    else:
        model.head.loss_module[int(parts[2])] = recorder
    return recorder


def _pipeline_with_state(dataset: Any, index: int) -> tuple[dict, dict]:
    """(the pipeline's results just before packing, the packed sample) for one instance: what
    ``dataset[index]`` does, keeping the intermediate keys packing drops."""
    transforms = dataset.pipeline.transforms
    assert type(transforms[-1]).__name__.startswith("Pack"), (
        f"the training pipeline must end with a Pack* transform, ends with {type(transforms[-1]).__name__}")
    results = copy.deepcopy(dataset.get_data_info(index))
    for t in transforms[:-1]:
        results = t(results)
        if results is None:
            raise ValueError(f"the training pipeline dropped instance {index} at {type(t).__name__}")
    return results, transforms[-1](copy.copy(results))


def _record_one(model: Any, dataset: Any, index: int, slots: Mapping[str, str]) -> PoseRecord | None:
    results, packed = _pipeline_with_state(dataset, index)
    batch = model.data_preprocessor({"inputs": [packed["inputs"]], "data_samples": [packed["data_samples"]]}, True)
    sample = batch["data_samples"][0]
    if not bool((sample.gt_instance_labels.keypoint_weights > 0).any()):
        return None
    recorders = {name: _install(model, key) for name, key in slots.items()}
    model.loss(batch["inputs"], batch["data_samples"])
    xy = np.asarray(results["transformed_keypoints"], dtype=np.float64).reshape(-1, 2)  # (K, 2)
    seen = {name: _side_by_side(recorder.calls, slots[name], len(xy)) for name, recorder in recorders.items()}
    scale = float(results["input_size"][0]) / float(np.asarray(results["input_scale"]).reshape(-1)[0])
    labelled = (np.asarray(results["keypoints_visible"], dtype=np.float64).reshape(-1) > 0).astype(np.float64)
    return PoseRecord(
        index=index,
        heatmaps={name: s[0] for name, s in seen.items()},
        target={name: s[1] for name, s in seen.items()},
        weights={name: s[2] for name, s in seen.items()},
        keypoints=np.concatenate([xy, labelled[:, None]], axis=1),
        area=float(np.asarray(results["area"]).reshape(-1)[0]) * scale**2,
        sigmas=np.asarray(dataset.metainfo["sigmas"], dtype=np.float64),
    )


def _side_by_side(calls: list[tuple[Tensor, Tensor, Tensor | None]], key: str, K: int) -> tuple[Tensor, Tensor, Tensor]:
    """One slot's calls (predicted, target heatmaps (1, K, h, w), weights (1, K)) concatenated along
    the joint axis; a slot never called, or called with other shapes, is refused."""
    if not calls:
        raise SlotError(f"mmpose: the loss at model.{key} was not called in a training step")
    preds, targets, weights = [], [], []
    for pred, target, weight in calls:
        weight = torch.ones(pred.shape[:2], dtype=pred.dtype) if weight is None else weight
        if pred.dim() != 4 or pred.shape[:2] != (1, K) or target.shape != pred.shape or weight.shape != (1, K) \
                or pred.shape != calls[0][0].shape:
            raise SlotError(f"mmpose: the loss at model.{key} got heatmaps {tuple(pred.shape)}, targets "
                            f"{tuple(target.shape)} and weights {tuple(weight.shape)}; the mmpose task needs (1, K, H, W) "
                            f"heatmaps and targets of one size with (1, K) keypoint weights, K = {K} keypoints.")
        preds.append(pred.double())
        targets.append(target.double())
        weights.append(weight.double())
    return torch.cat(preds, dim=1), torch.cat(targets, dim=1), torch.cat(weights, dim=1)


def record_pose_samples(cfg: Any, B: int, seed: int, slots: Mapping[str, str] = SHIPPED_SLOTS) -> list[PoseRecord]:
    """B usable training instances (drawn with ``seed``) through the estimator initialised from
    ``seed``, the inputs of the loss at each of ``slots`` (branch -> key under ``model``).
    Deterministic for a (config, B, seed)."""
    with quiet(), torch.no_grad(), seeded_model_and_dataset(cfg, seed, "mmpose") as (model, dataset, order):
        records = first_records(order, lambda i: _record_one(model, dataset, i, slots), B)
    if len(records) < B:
        raise ValueError(f"only {len(records)} of the {len(dataset)} training instances have a visible joint; need B = {B}")
    return records
