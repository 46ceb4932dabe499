"""`AutoLossGraph`: a loss-graph branch behind MMDetection's loss contract.

    loss_cls=dict(type='AutoLossGraph', graph=["neg", ["mul", "y", ["log", "y_hat"]]],
                  branch_kind='dense', use_sigmoid=False, loss_weight=1.0)
    loss_bbox=dict(type='AutoLossGraph', graph=["neg", ["log", ["mul", "i", ["inv", "e"]]]],
                   branch_kind='box', loss_weight=10.0)      # head needs reg_decoded_bbox=True

Same call as mmdet's own losses, `forward(pred, target, weight=None, avg_factor=None,
reduction_override=None)`, and same reduction: an element-wise core gives one value per sample
(anchor, RoI or mask), then mmdet's `weight_reduce_loss` applies `weight`, `reduction` and
`avg_factor` (+ eps) and the module scales by `loss_weight`.

Per-sample value: the graph output o (n, C, H, W) of the sample's inputs, Σ_{c,h,w} o / (H·W), so
that the mean over samples is the paper's branch value Σ o / (N·H·W) (no normalisation over C).

Samples whose weight is 0 (anchors not sampled, ignored labels, negatives of a box branch) are
dropped *before* the graph runs: mmdet hands the box loss every anchor, and a graph such as log(i)
is -inf on them, which 0·(-inf) would turn into NaN. Consequence: `mean_nhw` averages over the
samples that count, not over all anchors.

Modes (from the branch kind and the head's flags):
- classification (`dense`): pred (N, C) logits, target (N,) labels, weight (N,) label weights;
  `use_sigmoid` as the head expects it (`AnchorHead` reads it from this config).
- box (`box`): pred, target (N, 4) decoded (x0, y0, x1, y1) boxes, weight (N, 4) or (N,).
- mask (`dense` + `use_mask=True`, mmdet's FCNMaskHead contract): pred (N, C, H, W) logits,
  target (N, H, W), third argument the class index of each RoI's mask channel.
- quality (`dense` + `use_sigmoid=True` + `use_quality=True`, QualityFocalLoss's contract in GFL /
  RTMDet heads): pred (N, C) logits, target the pair (labels (N,), scores (N,)); y_hat = σ per
  class, y = the label's column holding the row's score (an IoU quality), background all zero.
  YOLOX's contract, the same inputs: pred (P, C) logits of the positives, target the rows (P, C)
  themselves (one-hot × IoU); y = the rows.
- score (`dense` + `use_score=True`, FCOS / ATSS centerness, YOLOX objectness): pred (P,) or (P, 1) logits, target
  the same shape, scores in [0, 1]; each prior is a one-pixel mask, y_hat = (σ, 1 − σ), y = (t, 1 − t),
  so the paper's CE is mmdet's sigmoid CrossEntropyLoss (BCE).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from mmdet.models.losses.utils import weight_reduce_loss
from torch import Tensor, nn

from autoloss_worker.graph import compile_branch

from .branch import resolve_branch
from .inputs import box_inputs, classification_inputs, mask_inputs, score_inputs, soft_row_inputs


class AutoLossGraph(nn.Module):
    def __init__(
        self,
        graph: Any,
        branch_kind: str | None = None,
        branch: str | None = None,
        use_sigmoid: bool = False,
        use_mask: bool = False,
        use_score: bool = False,
        use_quality: bool = False,
        loss_weight: float = 1.0,
        reduction: str = "mean",
        ignore_index: int | None = None,
    ) -> None:
        super().__init__()
        assert reduction in ("none", "mean", "sum"), f"reduction must be none|mean|sum, got {reduction!r}"
        self.branch = resolve_branch(graph, branch=branch, branch_kind=branch_kind)
        self.fn = compile_branch(self.branch)
        if self.branch.kind == "box":
            assert not (use_sigmoid or use_mask or use_score or use_quality), \
                f"branch '{self.branch.name}': use_sigmoid/use_mask/use_score/use_quality make no sense for a box branch"
            self.mode = "box"
        else:
            assert use_sigmoid + use_mask + use_score <= 1, f"branch '{self.branch.name}': use_sigmoid, use_mask and use_score exclude each other"
            assert not use_quality or use_sigmoid, f"branch '{self.branch.name}': use_quality needs use_sigmoid (soft targets per class)"
            self.mode = "mask" if use_mask else "score" if use_score else "cls"
        self.use_sigmoid = use_sigmoid
        self.use_mask = use_mask
        self.use_score = use_score
        self.use_quality = use_quality
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.ignore_index = ignore_index

    def extra_repr(self) -> str:
        from autoloss_worker.graph import to_text

        return f"branch={self.branch.name}, mode={self.mode}, loss={to_text(self.branch.tree)}, loss_weight={self.loss_weight}"

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | None = None,
        reduction_override: str | None = None,
        ignore_index: int | None = None,
    ) -> Tensor:
        assert reduction_override in (None, "none", "mean", "sum"), f"bad reduction_override {reduction_override!r}"
        reduction = reduction_override or self.reduction
        if self.mode == "mask":
            # FCNMaskHead passes the RoIs' class labels where other heads pass weights.
            per_sample, weight = self._mask(pred, target, labels=weight), None
        elif self.mode == "score":
            weight = None if weight is None else weight.reshape(-1)
            per_sample = self._score(pred, target, weight)
        elif self.mode == "box":
            if weight is not None and weight.dim() > 1:
                assert weight.shape == pred.shape, f"box weights must be (N,) or {tuple(pred.shape)}, got {tuple(weight.shape)}"
                weight = weight.mean(-1)  # (N, 4) -> (N,), as mmdet's GIoULoss does
            per_sample = self._box(pred, target, weight)
        else:
            index = self.ignore_index if ignore_index is None else ignore_index
            if self.use_quality and isinstance(target, Tensor) and target.shape == pred.shape and target.is_floating_point():
                per_sample = self._soft_rows(pred, target, weight)  # YOLOX
            else:
                scores = None
                if self.use_quality:
                    assert isinstance(target, (tuple, list)) and len(target) == 2, \
                        "quality mode takes the target pair (labels, scores) or soft rows shaped as the scores"
                    target, scores = target
                per_sample = self._cls(pred, target, weight, index, scores)
        if weight is not None:
            weight = weight.to(per_sample.dtype)
        return self.loss_weight * weight_reduce_loss(per_sample, weight, reduction, avg_factor)

    # -- element-wise cores: one value per sample, zero (but still attached to pred) where dropped --

    def _run(self, env: dict[str, Tensor]) -> Tensor:
        out = self.fn(env)  # (n, C, H, W)
        return out.sum(dim=(1, 2, 3)) / (out.shape[2] * out.shape[3])

    def _on_kept(self, pred: Tensor, keep: Tensor, env_of: Callable[[Tensor], dict[str, Tensor]]) -> Tensor:
        """The graph on the kept samples only (`env_of(keep)` builds their inputs), one value per
        sample: 0 where dropped, but still attached to pred so that backward reaches it."""
        values = self._run(env_of(keep)) if keep.any() else pred.new_zeros(0)
        base = pred.new_zeros(keep.shape[0]) + 0.0 * pred.sum()
        return base.index_put((keep.nonzero(as_tuple=True)[0],), values.to(base.dtype))

    @staticmethod
    def _weighted(pred: Tensor, weight: Tensor | None) -> Tensor:
        """The samples a weight counts: those above 0, every one without a weight."""
        if weight is None:
            return torch.ones(pred.shape[0], dtype=torch.bool, device=pred.device)
        return weight.reshape(-1) > 0

    def _cls(self, pred: Tensor, labels: Tensor, weight: Tensor | None, ignore_index: int | None,
             scores: Tensor | None = None) -> Tensor:
        inputs = classification_inputs(pred, labels, use_sigmoid=self.use_sigmoid, ignore_index=ignore_index, scores=scores)
        keep = inputs.valid & self._weighted(pred, weight)
        return self._on_kept(pred, keep, lambda k: {"y_hat": inputs.y_hat[k], "y": inputs.y[k]})

    def _soft_rows(self, pred: Tensor, rows: Tensor, weight: Tensor | None) -> Tensor:
        return self._on_kept(pred, self._weighted(pred, weight), lambda k: soft_row_inputs(pred[k], rows[k]).as_env())

    def _box(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        return self._on_kept(pred, self._weighted(pred, weight), lambda k: box_inputs(pred[k], target[k]))

    def _score(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        assert pred.numel() == pred.shape[0] and target.numel() == pred.shape[0], \
            f"score predictions and targets must be (P,) or (P, 1), got {tuple(pred.shape)} and {tuple(target.shape)}"
        pred, target = pred.reshape(-1), target.reshape(-1)
        return self._on_kept(pred, self._weighted(pred, weight), lambda k: score_inputs(pred[k], target[k]).as_env())

    def _mask(self, pred: Tensor, target: Tensor, labels: Tensor | None) -> Tensor:
        assert pred.dim() == 4, f"mask predictions must be (N, C, H, W), got {tuple(pred.shape)}"
        assert labels is not None and labels.shape == pred.shape[:1], "mask mode needs each RoI's class label (N,)"
        chosen = pred[torch.arange(pred.shape[0], device=pred.device), labels.long()]  # (N, H, W)
        return self._run(mask_inputs(chosen, target).as_env()) if pred.shape[0] else pred.sum() * 0.0
