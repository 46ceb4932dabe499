"""The det and ins tasks' rejection records: what one training image's random detector predicts
for one loss branch (``det_samples`` records them), and everything the protocol asks of such a
prediction, by the record itself: the raw tensor it optimises (``leaf``), its loss inputs, its
ground truth and its ξ factor (``tasks/det.py`` and ``tasks/ins.py`` explain the factors).

    record.loss_inputs(raw)       # raw: (n, *leaf.shape), n predictions of this image stacked
    record.ground_truth()         # (1, *leaf.shape): the raw prediction equal to the ground truth
    record.factor(pred)           # ξ factor of pred (leaf's shape), 1 at the ground truth
    type(r).joint_loss_inputs(records, preds)   # several images' loss inputs in one call
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .inputs import box_inputs, classification_inputs, mask_inputs, score_inputs

GT_LOGIT = 10.0  # ground-truth logits: 10 on the label, 0 elsewhere (softmax ≥ 0.998 on the label for C ≤ 21)


def ap_101(scores: Tensor, positive: Tensor) -> float:
    """COCO-style average precision of one ranking: precision made non-increasing, sampled at
    recall 0, 0.01, …, 1 (pycocotools' ``accumulate``); 0 when nothing is positive."""
    n_pos = int(positive.sum())
    if n_pos == 0:
        return 0.0
    order = torch.argsort(-scores, stable=True)
    tp = positive[order].double().cumsum(0)
    precision = tp / torch.arange(1, len(tp) + 1, dtype=torch.float64)
    recall = tp / n_pos
    precision = torch.flip(torch.cummax(torch.flip(precision, [0]), 0).values, [0])
    thresholds = torch.linspace(0, 1, 101, dtype=torch.float64)
    idx = torch.searchsorted(recall, thresholds, side="left")
    hit = idx < len(precision)
    return float(torch.where(hit, precision[idx.clamp(max=len(precision) - 1)], torch.zeros_like(thresholds)).mean())


def cls_factor(logits: Tensor, labels: Tensor, others: Tensor, sigmoid: bool = False) -> float:
    """Mean AP over the foreground classes present (``tasks/det.py``); ``others`` are the
    fixed logits of the anchors / RoIs outside the sample, all negatives. Softmax heads rank by
    the softmax probability (background the last column), sigmoid heads by σ of the class's
    logit (no background column; background is label C)."""
    fg = logits.shape[-1] if sigmoid else logits.shape[-1] - 1
    both = torch.cat([logits.double(), others.double()])
    probs = both.sigmoid() if sigmoid else torch.softmax(both, dim=-1)
    labels = torch.cat([labels, labels.new_full((len(others),), fg)])
    present = [c for c in range(fg) if bool((labels == c).any())]
    return sum(ap_101(probs[:, c], labels == c) for c in present) / len(present) if present else 0.0


WH_CLIP = abs(math.log(16 / 1000))  # mmdet's delta2bbox clamps dw, dh at |log(wh_ratio_clip = 16/1000)|


def decode(offsets: Tensor, priors: Tensor) -> Tensor:
    """Boxes from offsets in units of the prior's size: mmdet's ``delta2bbox`` with means 0 and
    stds 1, written out with fewer operations (it runs at every rejection step)."""
    pxy = (priors[:, :2] + priors[:, 2:]) / 2
    pwh = priors[:, 2:] - priors[:, :2]
    xy = pxy + pwh * offsets[:, :2]
    half = pwh * offsets[:, 2:].clamp(-WH_CLIP, WH_CLIP).exp() / 2
    return torch.cat([xy - half, xy + half], dim=1)


def encode(boxes: Tensor, priors: Tensor) -> Tensor:
    """The offsets that ``decode`` maps to ``boxes`` (mmdet's ``bbox2delta`` with means 0, stds 1)."""
    pxy, pwh = (priors[:, :2] + priors[:, 2:]) / 2, priors[:, 2:] - priors[:, :2]
    gxy, gwh = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]
    return torch.cat([(gxy - pxy) / pwh, torch.log(gwh / pwh)], dim=1)


def aligned_iou(a: Tensor, b: Tensor) -> Tensor:
    parts = box_inputs(a, b)
    return (parts["i"] / parts["u"]).flatten()


def decode_distances(raw: Tensor, points: Tensor, strides: Tensor) -> Tensor:
    """Boxes from a point head's raw (pre-activation) outputs (p, 4): distances to the left, top,
    right and bottom sides exp(raw) · stride, i.e. mmdet's FCOS decoding without ``norm_on_bbox``
    (``exp``, ``DistancePointBBoxCoder``) in units of the point's stride; raw 0 is the point's
    *unit box*, 2 strides a side. ``raw`` is clipped as ``decode`` clips dw, dh."""
    return distances_to_boxes(raw.clamp(-WH_CLIP, WH_CLIP).exp(), points, strides)


def unit_boxes(points: Tensor, strides: Tensor) -> Tensor:
    """The boxes raw 0 decodes to: the point ± its stride (the prior of a point head's box factor)."""
    return torch.cat([points - strides[:, None], points + strides[:, None]], dim=1)


def distances_to_boxes(d: Tensor, points: Tensor, strides: Tensor) -> Tensor:
    """Boxes (p, 4) from the distances (p, 4) of each point to the left, top, right and bottom
    sides, in units of the point's stride (mmdet's ``distance2bbox`` in pixels)."""
    d = d * strides[:, None]
    return torch.cat([points - d[:, :2], points + d[:, 2:]], dim=1)


def _removed_share(boxes: Tensor, priors: Tensor, targets: Tensor) -> float:
    iou = aligned_iou(boxes, targets)
    iou0 = aligned_iou(priors, targets)
    return float(((iou - iou0) / (1 - iou0)).clamp(min=0).mean())


def box_factor(offsets: Tensor, priors: Tensor, targets: Tensor) -> float:
    """Mean over boxes of max(0, (IoU − IoU₀)/(1 − IoU₀)) (``tasks/det.py``)."""
    return _removed_share(decode(offsets, priors), priors, targets)


def mask_factor(logits: Tensor, targets: Tensor) -> float:
    """Mean over RoIs of max(0, (IoU − IoU₀)/(1 − IoU₀)) (``tasks/ins.py``).
    logits, targets: (P, h, w); every target covers some but not all of its RoI (``det_samples``)."""
    pred = logits > 0  # σ > 0.5
    fg = targets > 0.5
    inter = (pred & fg).flatten(1).sum(1).double()
    union = (pred | fg).flatten(1).sum(1).double()
    iou = inter / union
    iou0 = fg.flatten(1).double().mean(1)
    return float(((iou - iou0) / (1 - iou0)).clamp(min=0).mean())


SCORE_TOLERANCE = 1 / (1 + math.exp(GT_LOGIT))  # σ(−10): how far the ground truth's clamped logits may miss


def score_factor(logits: Tensor, targets: Tensor) -> float:
    """The share of a constant σ = 0.5 prediction's absolute error that σ(logits) removes:
    max(0, 1 − Σ|σ − t| / Σ|0.5 − t|) over the positive priors (``tasks/det.py``), each error less
    ``SCORE_TOLERANCE`` (at least 0), so that the ground truth (logits clamped at ±10) scores exactly
    1 and the constant exactly 0."""
    def error(pred: Tensor) -> Tensor:
        return ((pred - targets.double()).abs() - SCORE_TOLERANCE).clamp(min=0).sum()

    err, constant = error(logits.double().sigmoid()), error(torch.full_like(targets, 0.5, dtype=torch.float64))
    if float(constant) == 0.0:  # every target 0.5: only an exact prediction removes "all" of nothing
        return 1.0 if float(err) == 0.0 else 0.0
    return float((1 - err / constant).clamp(min=0))


def _repeat(t: Tensor, n: int) -> Tensor:
    """``t`` for n predictions of one image stacked along the first dimension."""
    return t.repeat(n, *([1] * (t.dim() - 1))) if n > 1 else t


class Record:
    """What every record answers; the per-image tensors are the subclasses' fields."""

    @property
    def leaf(self) -> Tensor:
        """The recorded raw prediction the protocol optimises."""
        raise NotImplementedError

    def loss_inputs(self, raw: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    @classmethod
    def joint_loss_inputs(cls, records: Sequence[Record], preds: Sequence[Tensor]) -> dict[str, Tensor]:
        """``loss_inputs`` of several images (``preds[i]`` a raw prediction of ``records[i]``)
        concatenated along N."""
        per_image = [r.loss_inputs(p) for r, p in zip(records, preds)]
        return {key: torch.cat([inputs[key] for inputs in per_image]) for key in per_image[0]}

    def ground_truth(self) -> Tensor:
        raise NotImplementedError

    def factor(self, pred: Tensor) -> float:
        raise NotImplementedError

    def usable(self) -> bool:
        """Something to optimise and a foreground sample to score."""
        raise NotImplementedError

    def as_double(self) -> Record:
        """On the CPU, floating tensors in float64 (the protocol's numbers must not depend on the machine)."""
        raise NotImplementedError


def _cpu64(t: Tensor) -> Tensor:
    return t.detach().cpu().double()


@dataclass(frozen=True)
class ClsRecord(Record):
    """Sampled anchors / RoIs of one image: logits (n, C), labels (n,) in [0, C); column C − 1 is
    background (mmdet's softmax layout; the RPN has C = 2, column 0 = object). ``others`` (m, C):
    the logits of the image's anchors / candidate RoIs outside the sample, which get no loss in
    training; they stay fixed and compete with the samples when the image is scored."""

    logits: Tensor
    labels: Tensor
    others: Tensor
    # A sigmoid head (RetinaNet, FCOS, ATSS): logits (n, C) of the C classes only, background is
    # label C, and the loss inputs are σ per class against one-hot rows, all zero for background.
    sigmoid: bool = False
    # Soft targets (RTMDet's QualityFocalLoss): the label's entry of each row is its IoU quality
    # (n,) instead of 1. The ground truth and the factor stay the label's: AP of σ's ranking.
    scores: Tensor | None = None

    @property
    def leaf(self) -> Tensor:
        return self.logits

    def loss_inputs(self, raw: Tensor) -> dict[str, Tensor]:
        n = raw.shape[0]
        return classification_inputs(raw.reshape(-1, raw.shape[-1]), _repeat(self.labels, n), use_sigmoid=self.sigmoid,
                                     scores=None if self.scores is None else _repeat(self.scores, n)).as_env()

    @classmethod
    def joint_loss_inputs(cls, records: Sequence[Record], preds: Sequence[Tensor]) -> dict[str, Tensor]:
        rs: Sequence[ClsRecord] = records  # type: ignore[assignment]
        logits = torch.cat([p.reshape(-1, p.shape[-1]) for p in preds])
        scores = None if rs[0].scores is None else torch.cat([r.scores for r in rs])  # type: ignore[misc]
        return classification_inputs(logits, torch.cat([r.labels for r in rs]), use_sigmoid=rs[0].sigmoid, scores=scores).as_env()

    def ground_truth(self) -> Tensor:
        """Softmax: GT_LOGIT on the label, 0 elsewhere. Sigmoid: ±GT_LOGIT, + on the label only
        (σ(−10) = 5e-5: background rows are all but zero)."""
        logits = torch.full_like(self.logits, -GT_LOGIT if self.sigmoid else 0.0)
        fg = (self.labels < self.logits.shape[1]).nonzero(as_tuple=True)[0]
        logits[fg, self.labels[fg]] = GT_LOGIT
        return logits[None]

    def factor(self, pred: Tensor) -> float:
        return cls_factor(pred, self.labels, self.others, sigmoid=self.sigmoid)

    def usable(self) -> bool:
        background = self.logits.shape[1] if self.sigmoid else self.logits.shape[1] - 1
        return bool((self.labels < background).any())

    def as_double(self) -> ClsRecord:
        return ClsRecord(logits=_cpu64(self.logits), labels=self.labels.detach().cpu().long(), others=_cpu64(self.others),
                         sigmoid=self.sigmoid, scores=None if self.scores is None else _cpu64(self.scores))


@dataclass(frozen=True)
class BoxRecord(Record):
    """Positive anchors / RoIs of one image: offsets (p, 4) (in units of the prior's size, see
    ``det_samples``), their priors and target boxes (p, 4), (x0, y0, x1, y1) in pixels of the
    network input."""

    offsets: Tensor
    priors: Tensor
    targets: Tensor

    @property
    def leaf(self) -> Tensor:
        return self.offsets

    def loss_inputs(self, raw: Tensor) -> dict[str, Tensor]:
        n = raw.shape[0]
        return box_inputs(decode(raw.reshape(-1, 4), _repeat(self.priors, n)), _repeat(self.targets, n))

    @classmethod
    def joint_loss_inputs(cls, records: Sequence[Record], preds: Sequence[Tensor]) -> dict[str, Tensor]:
        offsets = torch.cat([p.reshape(-1, 4) for p in preds])
        priors = torch.cat([r.priors for r in records])  # type: ignore[attr-defined]
        return box_inputs(decode(offsets, priors), torch.cat([r.targets for r in records]))  # type: ignore[attr-defined]

    def ground_truth(self) -> Tensor:
        return encode(self.targets, self.priors)[None]

    def factor(self, pred: Tensor) -> float:
        return box_factor(pred, self.priors, self.targets)

    def usable(self) -> bool:
        return self.targets.shape[0] > 0

    def as_double(self) -> BoxRecord:
        return BoxRecord(_cpu64(self.offsets), _cpu64(self.priors), _cpu64(self.targets))


@dataclass(frozen=True)
class PointBoxRecord(Record):
    """Positive points of one image of a point-based head (FCOS): the head's raw box outputs
    (p, 4) before its activation (``decode_distances``), the points (p, 2), their strides (p,) and
    target boxes (p, 4) in pixels. The factor is the box factor with the point's unit box as the
    prior (``unit_boxes``): the share of the unit box's localisation error the prediction removes."""

    raw: Tensor
    points: Tensor
    strides: Tensor
    targets: Tensor

    @property
    def leaf(self) -> Tensor:
        return self.raw

    # How raw outputs become boxes, the raw output of a box and the boxes raw 0 gives (the factor's
    # prior): FCOS's distances here, YOLOX's centre and size in CenterSizeBoxRecord.
    decode = staticmethod(decode_distances)
    prior_boxes = staticmethod(unit_boxes)

    @staticmethod
    def encode(boxes: Tensor, points: Tensor, strides: Tensor) -> Tensor:
        lt, rb = points - boxes[:, :2], boxes[:, 2:] - points
        return torch.log(torch.cat([lt, rb], dim=1).clamp(min=1e-6) / strides[:, None])

    def loss_inputs(self, raw: Tensor) -> dict[str, Tensor]:
        n = raw.shape[0]
        boxes = self.decode(raw.reshape(-1, 4), _repeat(self.points, n), _repeat(self.strides, n))
        return box_inputs(boxes, _repeat(self.targets, n))

    @classmethod
    def joint_loss_inputs(cls, records: Sequence[Record], preds: Sequence[Tensor]) -> dict[str, Tensor]:
        rs: Sequence[PointBoxRecord] = records  # type: ignore[assignment]
        boxes = cls.decode(torch.cat([p.reshape(-1, 4) for p in preds]), torch.cat([r.points for r in rs]),
                           torch.cat([r.strides for r in rs]))
        return box_inputs(boxes, torch.cat([r.targets for r in rs]))

    def ground_truth(self) -> Tensor:
        return self.encode(self.targets, self.points, self.strides)[None]

    def factor(self, pred: Tensor) -> float:
        return _removed_share(self.decode(pred, self.points, self.strides), self.prior_boxes(self.points, self.strides),
                              self.targets)

    def usable(self) -> bool:
        return self.targets.shape[0] > 0

    def as_double(self) -> PointBoxRecord:
        return type(self)(_cpu64(self.raw), _cpu64(self.points), _cpu64(self.strides), _cpu64(self.targets))


def decode_center_size(raw: Tensor, points: Tensor, strides: Tensor) -> Tensor:
    """Boxes from YOLOX's raw box outputs (p, 4): centre point + raw[:2] · stride, size
    exp(raw[2:]) · stride (``YOLOXHead._bbox_decode``); raw[2:] clipped as ``decode`` clips dw, dh."""
    xy = points + raw[:, :2] * strides[:, None]
    half = raw[:, 2:].clamp(-WH_CLIP, WH_CLIP).exp() * strides[:, None] / 2
    return torch.cat([xy - half, xy + half], dim=1)


def encode_center_size(boxes: Tensor, points: Tensor, strides: Tensor) -> Tensor:
    """The raw outputs that ``decode_center_size`` maps to ``boxes``."""
    s = strides[:, None]
    centre, size = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-6)
    return torch.cat([(centre - points) / s, torch.log(size / s)], dim=1)


def stride_boxes(points: Tensor, strides: Tensor) -> Tensor:
    """The boxes YOLOX's raw 0 decodes to: one stride a side, centred on the point."""
    return torch.cat([points - strides[:, None] / 2, points + strides[:, None] / 2], dim=1)


@dataclass(frozen=True)
class CenterSizeBoxRecord(PointBoxRecord):
    """Positive priors of one image of a YOLOX head: its raw box outputs (p, 4) (centre offset and
    log size in units of the prior's stride, ``decode_center_size``), the priors' points (p, 2),
    strides (p,) and target boxes (p, 4). The factor's prior is the box raw 0 gives (``stride_boxes``)."""

    decode = staticmethod(decode_center_size)
    encode = staticmethod(encode_center_size)
    prior_boxes = staticmethod(stride_boxes)


@dataclass(frozen=True)
class _LogitsAndTargets(Record):
    """Logits of one image's positives and their targets, the same shape: what mask and score
    records share."""

    logits: Tensor
    targets: Tensor

    @property
    def leaf(self) -> Tensor:
        return self.logits

    def usable(self) -> bool:
        return self.targets.shape[0] > 0

    def as_double(self) -> _LogitsAndTargets:
        return type(self)(logits=_cpu64(self.logits), targets=_cpu64(self.targets))


@dataclass(frozen=True)
class MaskRecord(_LogitsAndTargets):
    """Positive RoIs of one image: mask logits (p, h, w) of the RoI's class channel and the binary
    targets (p, h, w) in the RoI's frame."""

    def loss_inputs(self, raw: Tensor) -> dict[str, Tensor]:
        # (P, 2, h, w) fg/bg probabilities, as AutoLossGraph in mask mode gets them in training
        return mask_inputs(raw.reshape(-1, *raw.shape[-2:]), _repeat(self.targets, raw.shape[0])).as_env()

    def ground_truth(self) -> Tensor:
        return (GT_LOGIT * (2 * self.targets - 1))[None]  # σ(±10): the target to 5e-5

    def factor(self, pred: Tensor) -> float:
        return mask_factor(pred, self.targets)


@dataclass(frozen=True)
class ScoreRecord(_LogitsAndTargets):
    """Positive priors of one image of a head with a score branch (FCOS / ATSS centerness): the
    score logits (p,) and their targets (p,) in [0, 1], as the head's ``centerness_target`` makes
    them. Loss inputs: each prior a one-pixel mask, (σ, 1 − σ) against (t, 1 − t)."""

    def loss_inputs(self, raw: Tensor) -> dict[str, Tensor]:
        return score_inputs(raw.reshape(-1), _repeat(self.targets, raw.shape[0])).as_env()

    def ground_truth(self) -> Tensor:
        return torch.logit(self.targets.clamp(SCORE_TOLERANCE, 1 - SCORE_TOLERANCE))[None]

    def factor(self, pred: Tensor) -> float:
        return score_factor(pred, self.targets)


@dataclass(frozen=True)
class ObjectnessRecord(ScoreRecord):
    """Every prior of one image of a head with an objectness branch (YOLOX): the logits (n,) and
    targets (n,), 1 for the priors the assigner made positive, 0 for the others. The loss inputs
    are the score record's; the factor is the AP of the positives when all priors are ranked by
    σ (``ap_101``): objectness ranks detections, and with a few dozen positives among thousands of
    priors the score factor's absolute error would be near 1 from the start."""

    def factor(self, pred: Tensor) -> float:
        return ap_101(pred.double(), self.targets > 0.5)

    def usable(self) -> bool:
        return bool((self.targets > 0.5).any())


@dataclass(frozen=True)
class DetRecord:
    """One training image: its record per loss branch."""

    image_index: int
    branches: dict[str, Record]

    def usable(self) -> bool:
        return all(r.usable() for r in self.branches.values())
