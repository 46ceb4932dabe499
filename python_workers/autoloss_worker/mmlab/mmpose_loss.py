"""`AutoLossGraph` for MMPose heatmap heads (`head.loss`).

    loss=dict(type='AutoLossGraph', graph=[...], branch_kind='dense', loss_weight=1.0)

mmpose's call: `forward(output, target, target_weights=None, mask=None)`, output and target
(B, K, H, W) heatmaps, target_weights (B, K) or (B, K, H, W), mask broadcastable to the target.
Inputs: y_hat = predicted heatmaps, y = target heatmaps (paper: pose branch on heatmaps). Only
visible joints count (weight > 0, paper: "loss only on visible joints"); the value is
Σ w·o / (B·H·W) times `loss_weight` (no normalisation over K, unlike KeypointMSELoss's mean).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from autoloss_worker.graph import compile_branch

from .branch import resolve_branch


class AutoLossGraph(nn.Module):
    def __init__(self, graph: Any, branch_kind: str = "dense", branch: str | None = None, loss_weight: float = 1.0,
                 use_sigmoid: bool = False, use_mask: bool = False) -> None:
        super().__init__()
        # `rewrite.slot_edits` writes both keys into every AutoLossGraph; heatmaps are regressed as they are.
        assert not use_sigmoid, "mmpose AutoLossGraph: y_hat is the predicted heatmap itself; use_sigmoid=True is not supported"
        assert not use_mask, "mmpose AutoLossGraph: use_mask is for mmdet mask heads"
        self.branch = resolve_branch(graph, branch=branch, branch_kind=branch_kind)
        assert self.branch.kind == "dense", f"branch '{self.branch.name}': pose needs a dense branch"
        self.fn = compile_branch(self.branch)
        self.loss_weight = loss_weight

    def forward(self, output: Tensor, target: Tensor, target_weights: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        assert output.dim() == 4 and target.shape == output.shape, (
            f"output and target must be equal (B, K, H, W), got {tuple(output.shape)} and {tuple(target.shape)}"
        )
        w = torch.ones_like(output)
        if target_weights is not None:
            assert target_weights.shape == output.shape[: target_weights.dim()] and target_weights.dim() in (2, 4), (
                f"target_weights must be (B, K) or (B, K, H, W), got {tuple(target_weights.shape)}"
            )
            w = w * target_weights.reshape(target_weights.shape + (1,) * (4 - target_weights.dim())).to(output.dtype)
        if mask is not None:
            w = w * mask.to(output.dtype)
        out = self.fn({"y_hat": output, "y": target.to(output.dtype)})
        # where, not multiply: an invisible joint's o may be inf, and 0 * inf is NaN.
        weighted = torch.where(w > 0, out * w, torch.zeros_like(out))
        b, _, h, wd = output.shape
        return self.loss_weight * weighted.sum() / (b * h * wd)
