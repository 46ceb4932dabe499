"""Record what a randomly initialised MMSegmentation segmentor predicts for a few training images,
as each searched loss slot would see them: the loss-rejection samples of the ``mmseg`` task.

    records = record_seg_samples(cfg, B=5, seed=0, slots={"loss": "decode_head.loss_decode",
                                                          "aux": "auxiliary_head.loss_decode"})
    records[0].logits["aux"]    # (1, C, H, W): what auxiliary_head.loss_decode got for image 0

The config's segmentor is built from ``seed`` and put in eval mode (BatchNorm uses its initial
statistics, dropout is off). B training images, drawn with ``seed``, go through the config's own
training pipeline and, as one batch, through its data preprocessor, which pads images and labels to
a common size exactly as in training (padded label pixels are ``ignore_index``).

Then the segmentor's own ``loss`` runs on that batch with a recorder standing in every slot. So each
slot gets exactly what its loss gets in training, whatever the layout: the decode head's logits
resized to the label size (``BaseDecodeHead.loss_by_feat``), an auxiliary head's on its own
features, and in a ``CascadeEncoderDecoder`` the later heads' logits computed from the earlier
heads' outputs as mmseg's ``_decode_head_forward_train`` passes them (OCRNet's OCRHead on the
FCNHead's logits). The recorder returns 0; no weights change.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .seeded import quiet, seeded_model_and_dataset
from .slots import SlotError

SHIPPED_SLOTS = {"loss": "decode_head.loss_decode"}  # the shipped config's single slot


@dataclass(frozen=True)
class SegRecord:
    index: int  # position in the training dataset
    logits: Mapping[str, Tensor]  # branch -> (1, C, H, W) float64, at the label's resolution
    labels: Tensor  # (1, H, W) int64 in [0, C) or ignore_index, shared by every slot
    ignore_index: int


class _LossRecorder(nn.Module):
    """Stands in a loss slot: keeps what the head passes its loss and returns 0."""

    def __init__(self, loss_name: str) -> None:
        super().__init__()
        self._loss_name = loss_name  # the head keys its loss dict by it; two items of one name add up
        self.calls: list[tuple[Tensor, Tensor, int]] = []

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(self, cls_score: Tensor, label: Tensor, weight: Tensor | None = None, ignore_index: int = 255,
                **kwargs: Any) -> Tensor:
        self.calls.append((cls_score.detach(), label, int(ignore_index)))
        return cls_score.new_zeros(())


def _install(model: nn.Module, key: str) -> _LossRecorder:
    """A recorder in place of the loss module at ``key`` (the slot's path under ``model``; list
    items by index, as nn.ModuleList holds them)."""
    *path, last = key.split(".")
    parent: Any = model
    for part in path:
        parent = parent[int(part)] if part.isdigit() else getattr(parent, part)
    original = parent[int(last)] if last.isdigit() else getattr(parent, last)
    recorder = _LossRecorder(getattr(original, "loss_name", f"loss_{key}"))
    if last.isdigit():
        parent[int(last)] = recorder
    else:
        setattr(parent, last, recorder)
    return recorder


def record_seg_samples(cfg: Any, B: int, seed: int, slots: Mapping[str, str] = SHIPPED_SLOTS) -> list[SegRecord]:
    """B training images (drawn with ``seed``) through the segmentor initialised from ``seed``, the
    inputs of the loss at each of ``slots`` (branch -> key under ``model``). Deterministic for a
    (config, B, seed): the pipeline's random transforms and the weights are seeded here."""
    with quiet(), torch.no_grad(), seeded_model_and_dataset(cfg, seed, "mmseg") as (model, dataset, order):
        if len(dataset) < B:
            raise ValueError(f"the config's training set has {len(dataset)} images; need B = {B}")
        order = order[:B]
        items = [dataset[i] for i in order]
        batch = model.data_preprocessor({"inputs": [d["inputs"] for d in items],
                                         "data_samples": [d["data_samples"] for d in items]}, True)
        recorders = {name: _install(model, key) for name, key in slots.items()}
        model.loss(batch["inputs"], batch["data_samples"])
    seen = _one_call_each(recorders, slots)
    logits, labels, ignore_index = seen[next(iter(seen))]
    for name, (other_logits, other_labels, other_ignore) in seen.items():
        if other_logits.shape[1] != logits.shape[1] or not torch.equal(other_labels, labels) or other_ignore != ignore_index:
            first = next(iter(slots))
            raise SlotError(f"mmseg: the losses at model.{slots[first]} and model.{slots[name]} see different labels "
                            f"or class counts ({logits.shape[1]} vs {other_logits.shape[1]} classes, ignore_index "
                            f"{ignore_index} vs {other_ignore}); the mmseg task needs one segmentation target per image "
                            f"for all its branches. Search one of them with the option `branches`.")
    return [SegRecord(index=i, logits={name: s[0][b : b + 1].double() for name, s in seen.items()},
                      labels=labels[b : b + 1].long(), ignore_index=ignore_index)
            for b, i in enumerate(order)]


def _one_call_each(recorders: Mapping[str, _LossRecorder], slots: Mapping[str, str]) -> dict[str, tuple[Tensor, Tensor, int]]:
    """Each recorder's single call; a slot the training step skipped or called twice is refused."""
    out = {}
    for name, recorder in recorders.items():
        if len(recorder.calls) != 1:
            raise SlotError(f"mmseg: the loss at model.{slots[name]} was called {len(recorder.calls)} times in one "
                            f"training step; the mmseg task records one call per slot (BaseDecodeHead.loss_by_feat).")
        logits, labels, ignore_index = recorder.calls[0]
        if logits.dim() != 4 or labels.shape != (logits.shape[0], *logits.shape[2:]):
            raise SlotError(f"mmseg: the loss at model.{slots[name]} got logits {tuple(logits.shape)} and labels "
                            f"{tuple(labels.shape)}; the mmseg task needs (N, C, H, W) logits against (N, H, W) labels.")
        out[name] = (logits, labels, ignore_index)
    return out
