"""Record what a randomly initialised MMPose top-down heatmap estimator predicts for a few training
instances, as its head's loss would see them: the loss-rejection samples of the ``mmpose`` task.

    records = record_pose_samples(cfg, B=5, seed=0)     # one PoseRecord per instance

The config's estimator is built from ``seed`` and put in eval mode (BatchNorm uses its initial
statistics). Training instances, in an order drawn with ``seed``, go through the config's own
training pipeline (its random transforms seeded here); an instance is kept when at least one joint
has a target weight > 0 (a visible joint on the heatmap), so the loss sees something. For each:

* ``heatmaps``: ``head.forward`` of the preprocessed crop, (1, K, h, w): what ``head.loss`` gets;
* ``target`` and ``weights``: the pipeline's target heatmaps (1, K, h, w) and keypoint weights (1, K);
* ``keypoints`` (K, 3), ``area`` and ``sigmas``: the ground truth as the evaluator's OKS uses it, but in the
  crop's coordinates (the pipeline's ``transformed_keypoints``; column 2 is COCO's v > 0), and the
  instance's COCO ``area`` times the crop's scale squared. The crop is a similarity transform of the
  image (uniform scale, rotation, shift), so OKS computed here equals OKS in the image.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .seeded import first_records, quiet, seeded_model_and_dataset


@dataclass(frozen=True)
class PoseRecord:
    index: int  # position in the training dataset (one instance)
    heatmaps: Tensor  # (1, K, h, w) float64, predicted
    target: Tensor  # (1, K, h, w) float64, the pipeline's target heatmaps
    weights: Tensor  # (1, K) float64 keypoint weights
    keypoints: np.ndarray  # (K, 3) float64: x, y in crop pixels, 1.0 where the joint is labelled
    area: float  # COCO area in crop pixels²
    sigmas: np.ndarray  # (K,) the dataset's OKS sigmas (its metainfo), as the evaluator uses them


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


def _record_one(model: Any, dataset: Any, index: int) -> PoseRecord | None:
    results, packed = _pipeline_with_state(dataset, index)
    batch = model.data_preprocessor({"inputs": [packed["inputs"]], "data_samples": [packed["data_samples"]]}, True)
    sample = batch["data_samples"][0]
    weights = sample.gt_instance_labels.keypoint_weights.double()  # (1, K)
    if not bool((weights > 0).any()):
        return None
    heatmaps = model.head(model.extract_feat(batch["inputs"]))  # (1, K, h, w)
    scale = float(results["input_size"][0]) / float(np.asarray(results["input_scale"]).reshape(-1)[0])
    xy = np.asarray(results["transformed_keypoints"], dtype=np.float64).reshape(-1, 2)  # (K, 2)
    labelled = (np.asarray(results["keypoints_visible"], dtype=np.float64).reshape(-1) > 0).astype(np.float64)
    return PoseRecord(
        index=index,
        heatmaps=heatmaps.double(),
        target=sample.gt_fields.heatmaps[None].double(),
        weights=weights,
        keypoints=np.concatenate([xy, labelled[:, None]], axis=1),
        area=float(np.asarray(results["area"]).reshape(-1)[0]) * scale**2,
        sigmas=np.asarray(dataset.metainfo["sigmas"], dtype=np.float64),
    )


def record_pose_samples(cfg: Any, B: int, seed: int) -> list[PoseRecord]:
    """B usable training instances (drawn with ``seed``) through the estimator initialised from
    ``seed``. Deterministic for a (config, B, seed)."""
    with quiet(), torch.no_grad(), seeded_model_and_dataset(cfg, seed, "mmpose") as (model, dataset, order):
        records = first_records(order, lambda i: _record_one(model, dataset, i), B)
    if len(records) < B:
        raise ValueError(f"only {len(records)} of the {len(dataset)} training instances have a visible joint; need B = {B}")
    return records
