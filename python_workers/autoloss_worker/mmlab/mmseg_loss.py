"""`AutoLossGraph` for MMSegmentation decode and auxiliary heads (`decode_head.loss_decode`,
`auxiliary_head.loss_decode`, `decode_head.<k>.loss_decode` of a cascade, an item of a list of losses).

    loss_decode=dict(type='AutoLossGraph', graph=["neg", ["mul", "y", ["log", "y_hat"]]],
                     branch_kind='dense', loss_weight=1.0, loss_name='loss_autoloss')

mmseg's call: `forward(cls_score, label, weight=None, avg_factor=None, reduction_override=None,
ignore_index=255)` with cls_score (N, C, H, W) logits already resized to the label, label
(N, H, W), weight (N, H, W) from a pixel sampler. Inputs: softmax probabilities and one-hot labels
(ignored pixels: all-zero target). Per pixel Σ_c o, ignored pixels contribute 0, then mmseg's
`weight_reduce_loss`; the default mean is Σ o / (N·H·W), the paper's branch value.
"""

from __future__ import annotations

from typing import Any

import torch
from mmseg.models.losses.utils import weight_reduce_loss
from torch import Tensor, nn

from autoloss_worker.graph import compile_branch

from .branch import resolve_branch
from .inputs import segmentation_inputs


class AutoLossGraph(nn.Module):
    def __init__(self, graph: Any, branch_kind: str = "dense", branch: str | None = None, loss_weight: float = 1.0,
                 reduction: str = "mean", loss_name: str = "loss_autoloss", use_sigmoid: bool = False,
                 use_mask: bool = False) -> None:
        super().__init__()
        assert loss_name.startswith("loss_"), f"mmseg only back-propagates losses named loss_*, got {loss_name!r}"
        # `rewrite.slot_edits` writes both keys into every AutoLossGraph; here only the paper's softmax exists.
        assert not use_sigmoid, "mmseg AutoLossGraph: y_hat is the softmax over classes (paper); use_sigmoid=True is not supported"
        assert not use_mask, "mmseg AutoLossGraph: use_mask is for mmdet mask heads"
        self.branch = resolve_branch(graph, branch=branch, branch_kind=branch_kind)
        assert self.branch.kind == "dense", f"branch '{self.branch.name}': segmentation needs a dense branch"
        self.fn = compile_branch(self.branch)
        self.loss_weight = loss_weight
        self.reduction = reduction
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(self, cls_score: Tensor, label: Tensor, weight: Tensor | None = None, avg_factor: float | None = None,
                reduction_override: str | None = None, ignore_index: int = 255, **kwargs: Any) -> Tensor:
        reduction = reduction_override or self.reduction
        inputs = segmentation_inputs(cls_score, label, ignore_index)
        out = self.fn(inputs.as_env())  # (N, C, H, W)
        per_pixel = torch.where(inputs.valid, out, torch.zeros_like(out)).sum(dim=1)  # (N, H, W)
        if weight is not None:
            weight = weight.to(per_pixel.dtype)
        return self.loss_weight * weight_reduce_loss(per_pixel, weight, reduction, avg_factor)
