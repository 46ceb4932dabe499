"""Record what a randomly initialised MMSegmentation segmentor predicts for a few training images,
as its decode head's loss would see them: the loss-rejection samples of the ``mmseg`` task.

    records = record_seg_samples(cfg, B=5, seed=0)     # one SegRecord per image

The config's segmentor is built from ``seed`` and put in eval mode (BatchNorm uses its initial
statistics, dropout is off). B training images, drawn with ``seed``, go through the config's own
training pipeline and, as one batch, through its data preprocessor, which pads images and labels to
a common size exactly as in training (padded label pixels are ``ignore_index``). The decode head's
logits are resized to the label size as ``BaseDecodeHead.loss_by_feat`` does before calling
``loss_decode``, so a record's logits are what ``AutoLossGraph`` gets, one image at a time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .seeded import quiet, seeded_model_and_dataset


@dataclass(frozen=True)
class SegRecord:
    index: int  # position in the training dataset
    logits: Tensor  # (1, C, H, W) float64, at the label's resolution
    labels: Tensor  # (1, H, W) int64 in [0, C) or ignore_index
    ignore_index: int


def record_seg_samples(cfg: Any, B: int, seed: int) -> list[SegRecord]:
    """B training images (drawn with ``seed``) through the segmentor initialised from ``seed``.
    Deterministic for a (config, B, seed): the pipeline's random transforms and the weights are
    seeded here."""
    with quiet(), torch.no_grad(), seeded_model_and_dataset(cfg, seed, "mmseg") as (model, dataset, order):
        if len(dataset) < B:
            raise ValueError(f"the config's training set has {len(dataset)} images; need B = {B}")
        order = order[:B]
        items = [dataset[i] for i in order]
        batch = model.data_preprocessor({"inputs": [d["inputs"] for d in items],
                                         "data_samples": [d["data_samples"] for d in items]}, True)
        head = model.decode_head
        logits = head(model.extract_feat(batch["inputs"]))  # (B, C, h, w)
        labels = torch.stack([s.gt_sem_seg.data for s in batch["data_samples"]])[:, 0].long()  # (B, H, W)
        logits = torch.nn.functional.interpolate(logits, size=labels.shape[-2:], mode="bilinear",
                                                 align_corners=head.align_corners)
    return [SegRecord(index=i, logits=logits[b : b + 1].double(), labels=labels[b : b + 1], ignore_index=int(head.ignore_index))
            for b, i in enumerate(order)]
