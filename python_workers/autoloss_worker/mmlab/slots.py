"""Find the loss slots of an unchanged MMLab config and say which ones autoloss can search.

    from mmengine.config import Config
    from autoloss_worker.mmlab.slots import discover_slots
    for slot in discover_slots(Config.fromfile("retinanet_r50_fpn_1x_coco.py")):
        print(slot.key, slot.name, slot.kind, slot.loss_type, slot.searchable, slot.reason)
    # bbox_head.loss_cls   cls  cls_sigmoid  FocalLoss  True   sigmoid classification: ...
    # bbox_head.loss_bbox  reg  box          L1Loss     True   box regression on decoded boxes: ...

A *slot* is an entry of `model` whose key names a loss (`loss`, `loss_*`, `*_loss`) and whose value
is a loss config (a dict with `type`), or one item of a list of them (`loss_decode=[CE, Dice]`);
the walk goes through nested dicts and lists, so cascade stages (`roi_head.bbox_head.1.loss_cls`),
auxiliary heads and lists of decode heads (`decode_head.0.loss_decode`) are found too.

Two things decide a slot, and they come from different places:

* its *kind* (what the loss compares), from the loss type and its flags (`KINDS`, `_nominal_kind`):
  CrossEntropyLoss with `use_sigmoid` is sigmoid classification, QualityFocalLoss soft-target
  classification, GIoULoss box regression, ... This is what `autoloss slots` reports for any head.
* whether `AutoLossGraph` can stand in it, from the *head's contract*: how the head calls the loss
  (`HEAD_CONTRACTS`, looked up along the head class's MRO in the library's registry). mmdet's
  `AnchorHead` calls `loss_cls(scores (N, C), labels (N,), label_weights, avg_factor)` and, with
  `reg_decoded_bbox=True`, `loss_bbox` on decoded boxes; `GFLHead` passes `(labels, quality)` to
  `loss_cls`; `FCOSHead` always decodes. A head not in the table is reported, never guessed.

Input mapping per searchable kind (the paper's inputs, Sec. 3.1 / App. A):

* `cls_softmax`: y_hat = softmax over C + 1 columns (background last), y = one-hot (paper).
* `cls_sigmoid`: y_hat = sigmoid per class, y = one-hot; background is the all-zero row, exactly
  mmdet's `_expand_onehot_labels`. The paper uses softmax heads only; a sigmoid head keeps its
  sigmoid, since switching it would change the head's outputs and its inference.
* `box`: i, u, e of decoded (x0, y0, x1, y1) boxes and their targets. Heads that regress deltas
  are switched with `reg_decoded_bbox=True` where mmdet offers it (`head_settings`); a head that
  cannot be switched (L1 on normalised cx, cy, w, h in DETR, on raw offsets in YOLOX's `loss_l1`,
  which YOLOX adds only for its last epochs) is not searchable.
* `mask`: per-pixel (σ, 1 − σ) of each RoI's class channel against (t, 1 − t) (paper's mask branch).
* `segmentation`: softmax per pixel, one-hot labels, ignored pixels count 0 (paper).
* `heatmap`: predicted and target heatmaps as y_hat and y, visible joints only (paper).
* `cls_quality` (QualityFocalLoss in `GFLHead`, `RTMDetHead`: `loss_cls(scores, (labels, quality))`;
  YOLOX's sigmoid CrossEntropyLoss: `loss_cls(scores of the positives (P, C), rows (P, C))`, each row
  one-hot × the positive's IoU): y_hat = σ per class, y = the label's column holding the row's IoU
  quality instead of 1, background the all-zero row. The paper has one-hot targets only; this is
  the target the head's own loss compares with, in the paper's layout (`_QUALITY_LOSSES`).
* `score_bce` (FCOS / ATSS centerness, YOLOX objectness): one logit per prior (FCOS / ATSS: the
  positive ones; YOLOX: every one) against a score t in [0, 1], read as a one-pixel mask: y_hat =
  (σ, 1 − σ), y = (t, 1 − t), C = 2, H = W = 1. The paper has no such branch; the mask branch's
  mapping is the one its inputs offer for a binary target, and with it the paper's CE is exactly
  the BCE these heads train with. Searchable in `FCOSHead`, `ATSSHead` and `YOLOXHead`
  (`_SCORE_HEADS`).

Not covered by the paper's inputs, reported as not searchable (the reason says which):

* `cls_quality` elsewhere (VarifocalLoss in VFNet): the same mapping would do, but the head calls
  its loss differently.
* `score_bce` elsewhere (IoU prediction): the same mapping would do, but the heads holding them
  are not searchable here.
* `distribution` (GFL's DistributionFocalLoss), `simcc` (RTMPose's KL over x/y bins),
  `keypoint_regression` (RLE, L1 on coordinates), `center_heatmap` (CenterNet's Gaussian focal
  loss on a sigmoid heatmap), and anything else: no paper input describes them.

Pure functions over a loaded config; the only library use is the registry lookup of head classes
(`head_classes`), which imports `<library>.models` on first use.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

LIBRARIES = ("mmdet", "mmseg", "mmpose")

# What each kind compares; the first line of `autoloss slots --help`'s kind list.
KINDS: dict[str, str] = {
    "cls_softmax": "softmax classification, one-hot targets",
    "cls_sigmoid": "sigmoid classification, one-hot targets, background the all-zero row",
    "cls_quality": "soft-target classification (the target is an IoU-quality score)",
    "box": "box regression",
    "score_bce": "one score per prior trained with BCE (centerness, IoU prediction, objectness)",
    "mask": "per-RoI binary masks",
    "segmentation": "dense per-pixel classification",
    "heatmap": "keypoint heatmaps",
    "center_heatmap": "object-centre heatmaps (Gaussian focal loss)",
    "distribution": "discretised box-side distributions (distribution focal loss)",
    "simcc": "keypoint classification over x / y bins (SimCC)",
    "keypoint_regression": "keypoint coordinate regression",
    "other": "a loss autoloss does not recognise",
}

# The loss graph's branch kind a searchable slot takes.
BRANCH_KIND = {"cls_softmax": "dense", "cls_sigmoid": "dense", "box": "box", "mask": "dense",
               "segmentation": "dense", "heatmap": "dense", "score_bce": "dense", "cls_quality": "dense"}

BOX_LOSSES = frozenset({"L1Loss", "SmoothL1Loss", "BalancedL1Loss", "MSELoss", "IoULoss", "GIoULoss", "DIoULoss",
                        "CIoULoss", "EIoULoss", "SIoULoss", "BoundedIoULoss"})
SIGMOID_CLS_LOSSES = frozenset({"FocalLoss", "SigmoidFocalLoss"})
QUALITY_CLS_LOSSES = frozenset({"QualityFocalLoss", "VarifocalLoss"})
HEATMAP_LOSSES = frozenset({"KeypointMSELoss", "KeypointOHKMMSELoss", "AdaptiveWingLoss", "FocalHeatmapLoss",
                            "CombinedTargetMSELoss"})
KEYPOINT_REGRESSION_LOSSES = frozenset({"RLELoss", "SoftWingLoss", "WingLoss", "SemiSupervisionLoss", "BoneLoss",
                                        "MPJPELoss"})


# ----------------------------------------------------------------------------- head contracts

@dataclass(frozen=True)
class Contract:
    """How a head calls one of its losses, as far as AutoLossGraph is concerned."""

    kind: str  # what the call compares (overrides the loss type's nominal kind)
    boxes: str = ""  # box slots: "decoded" (always), "switch" (reg_decoded_bbox=True), "deltas" (cannot)
    note: str = ""  # why a non-searchable kind is not searchable here, beyond the kind itself


_CLS = Contract("cls")  # refined to cls_softmax / cls_sigmoid by the loss's use_sigmoid
_SWITCH = Contract("box", boxes="switch")
_DECODED = Contract("box", boxes="decoded")
_SCORE = Contract("score_bce")
_SCORE_HEADS = frozenset({"FCOSHead", "ATSSHead", "YOLOXHead"})  # whose score loss AutoLossGraph (use_score) stands in
_QUALITY = Contract("cls_quality")
# The soft-target classification losses AutoLossGraph (use_quality) stands in, by head: GFL / RTMDet
# call loss_cls(scores, (labels, quality), weights, avg_factor), YOLOX loss_cls(scores (P, C), rows (P, C)).
_QUALITY_LOSSES = {"GFLHead": "QualityFocalLoss", "RTMDetHead": "QualityFocalLoss", "YOLOXHead": "CrossEntropyLoss"}

# By head class name; a head's contract is the first entry along its MRO, so a subclass that
# changes a call (GFLHead < AnchorHead) has its own line. Sources: mmdet 3.3 / mmseg 1.2 / mmpose 1.3
# `loss_by_feat` implementations.
HEAD_CONTRACTS: dict[str, dict[str, dict[str, Contract]]] = {
    "mmdet": {
        # loss_cls(cls_score (N, C), labels (N,), label_weights (N,), avg_factor); box targets
        # decoded iff reg_decoded_bbox. RPNHead, RetinaHead, SSD-free anchor heads.
        "AnchorHead": {"loss_cls": _CLS, "loss_bbox": _SWITCH},
        "BBoxHead": {"loss_cls": _CLS, "loss_bbox": _SWITCH},  # R-CNN box heads, cascade stages
        # decodes before loss_bbox; loss_centerness(logits (P,), targets (P,) in [0, 1])
        "FCOSHead": {"loss_cls": _CLS, "loss_bbox": _DECODED, "loss_centerness": _SCORE},
        # decodes the prediction; the targets are boxes only with reg_decoded_bbox=True (its configs set it)
        "ATSSHead": {"loss_cls": _CLS, "loss_bbox": _SWITCH, "loss_centerness": _SCORE},
        # loss_cls(scores, (labels, IoU quality), ...): a soft target; DFL on side distributions
        "GFLHead": {"loss_cls": _QUALITY, "loss_bbox": _DECODED, "loss_dfl": Contract("distribution")},
        "RTMDetHead": {"loss_cls": _QUALITY, "loss_bbox": _DECODED},
        # loss_cls(positives' scores (P, C), one-hot × IoU rows (P, C)); loss_bbox on decoded boxes;
        # loss_obj(every prior's logit (N, 1), 0 / 1 (N, 1)); loss_l1 on raw offsets (last epochs only)
        "YOLOXHead": {"loss_cls": _QUALITY, "loss_bbox": _DECODED, "loss_obj": _SCORE,
                      "loss_l1": Contract("box", boxes="deltas", note="YOLOX's loss_l1 compares raw offsets")},
        "FCNMaskHead": {"loss_mask": Contract("mask")},  # loss_mask(mask_preds, targets, labels)
    },
    "mmseg": {
        # loss_decode(seg_logits (N, C, H, W), labels (N, H, W), weight, ignore_index)
        "BaseDecodeHead": {"loss_decode": Contract("segmentation")},
        "PointHead": {"loss_decode": Contract("segmentation", note="PointHead passes point logits (N, C, P), not maps")},
    },
    "mmpose": {
        # loss(heatmaps (B, K, H, W), targets, keypoint_weights)
        "HeatmapHead": {"loss": Contract("heatmap")},  # and ViPNASHead
        "Heatmap3DHead": {"loss": Contract("heatmap", note="Heatmap3DHead regresses 3-D heatmaps (B, K, D, H, W); AutoLossGraph takes 2-D maps")},
        # calls loss.keypoint_loss and loss.tag_loss of its AE loss, not the loss itself
        "AssociativeEmbeddingHead": {"loss": Contract("heatmap", note="AssociativeEmbeddingHead calls its loss's keypoint_loss and tag_loss methods")},
        # loss: one module, or a list of one per stage (CPM) / per stage and unit (MSPN, RSN), each
        # called (stage heatmaps (B, K, H, W), targets (of its level), keypoint_weights (B, K))
        "CPMHead": {"loss": Contract("heatmap")},
        "MSPNHead": {"loss": Contract("heatmap")},
        # loss(coordinates (B, K, 2), targets, weights): RLE, plain regression, soft-argmax of
        # heatmaps (integral regression; DSNT adds a JS term on the heatmaps in a MultipleLossWrapper)
        "RegressionHead": {"loss": Contract("keypoint_regression")},
        "RLEHead": {"loss": Contract("keypoint_regression")},
        "IntegralRegressionHead": {"loss": Contract("keypoint_regression")},
        "SimCCHead": {"loss": Contract("simcc")},
        "RTMCCHead": {"loss": Contract("simcc")},
    },
}


def registered_class(library: str, type_name: Any) -> type | None:
    """The class `type_name` names in `library`'s model registry (its modules registered); None
    when it names none."""
    try:
        models = importlib.import_module(f"{library}.registry").MODELS
        importlib.import_module(f"{library}.utils").register_all_modules(init_default_scope=False)
    except ImportError as err:
        raise SlotError(f"the config is for {library}, which cannot be imported here ({err}); "
                        "run scripts/setup-mmlab.sh") from err
    if not isinstance(type_name, str):
        return None
    try:
        return models.get(type_name)
    except Exception:  # mmengine raises on a scope-qualified name it cannot import
        return None


def method_owner(cls: type, method: str) -> str:
    """The name of the class along `cls`'s MRO that defines `method` ("" if none does)."""
    return next((c.__name__ for c in cls.__mro__ if method in vars(c)), "")


def head_classes(library: str, head_type: str) -> tuple[str, ...] | None:
    """Class names along `head_type`'s MRO in `library`'s model registry; None when not registered."""
    cls = registered_class(library, head_type)
    return None if cls is None else tuple(c.__name__ for c in cls.__mro__)


def contract_of(library: str, mro: tuple[str, ...] | None, loss_key: str) -> tuple[str | None, Contract | None]:
    """(the MRO class whose table line applies, its contract for `loss_key`), (None, None) if none."""
    table = HEAD_CONTRACTS.get(library, {})
    for name in mro or ():
        if name in table:
            return name, table[name].get(loss_key)
    return None, None


# ----------------------------------------------------------------------------- slots

@dataclass(frozen=True)
class Slot:
    key: str  # dotted path under `model`, list items by index: "roi_head.bbox_head.0.loss_cls"
    name: str  # branch name autoloss gives it ("rpn_cls", "rcnn0_reg", "aux", ...)
    kind: str  # a key of KINDS
    loss_type: str  # the config's own loss, e.g. "CrossEntropyLoss"
    head_type: str  # the `type` of the dict holding the loss, "" when none
    searchable: bool
    reason: str  # how the graph's inputs are made here, or why the slot cannot be searched
    branch_kind: str | None = None  # "dense" | "box" for a searchable slot
    loss_weight: float = 1.0  # the config's own
    use_sigmoid: bool = False  # classification: the head's reading of its loss config
    use_mask: bool = False  # mmdet mask heads: (pred, target, label) call
    use_score: bool = False  # mmdet score slots (centerness): one logit per prior against a score
    use_quality: bool = False  # mmdet QualityFocalLoss slots: (labels, IoU-quality scores) targets
    head_settings: Mapping[str, Any] = field(default_factory=dict)  # set on the head when searched
    reduction: str = "mean"  # the config's own, kept: a head that sums (YOLOX) divides by itself

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["head_settings"] = dict(self.head_settings)
        return out


_LOSS_KEY = re.compile(r"^(loss|loss_\w+|\w+_loss)$")


def _is_loss_config(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get("type"), str)


def loss_entries(model: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    """(dotted key, loss config, the dict holding it) for every loss slot under `model`, in config
    order; a loss config is not searched further (wrappers such as CombinedLoss are one slot)."""

    def walk(node: Any, path: tuple[str, ...], holder: Mapping[str, Any] | None) -> Iterator:
        if isinstance(node, Mapping):
            for key, value in node.items():
                key = str(key)
                if _LOSS_KEY.match(key) and _is_loss_config(value):
                    yield ".".join(path + (key,)), value, node
                elif _LOSS_KEY.match(key) and isinstance(value, (list, tuple)) and value and all(map(_is_loss_config, value)):
                    for i, item in enumerate(value):
                        yield ".".join(path + (key, str(i))), item, node
                else:
                    yield from walk(value, path + (key,), node)
        elif isinstance(node, (list, tuple)):
            for i, item in enumerate(node):
                yield from walk(item, path + (str(i),), holder)

    yield from walk(model, (), None)


def _nominal_kind(library: str, loss_key: str, loss: Mapping[str, Any]) -> str:
    """The kind the loss type says, whatever head holds it."""
    kind = loss["type"].split(".")[-1]
    if library == "mmseg" and loss_key == "loss_decode":
        return "segmentation"
    if library == "mmpose":
        if kind in HEATMAP_LOSSES:
            return "heatmap"
        if kind == "KLDiscretLoss":
            return "simcc"
        if kind in KEYPOINT_REGRESSION_LOSSES or kind in BOX_LOSSES:
            return "keypoint_regression"
        return "other"
    if kind == "CrossEntropyLoss":
        if loss.get("use_mask", False):
            return "mask"
        if loss.get("use_sigmoid", False):
            return "score_bce" if loss_key in ("loss_centerness", "loss_obj", "loss_iou", "loss_conf") else "cls_sigmoid"
        return "cls_softmax"
    if kind in SIGMOID_CLS_LOSSES:
        return "cls_sigmoid"
    if kind in QUALITY_CLS_LOSSES:
        return "cls_quality"
    if kind in BOX_LOSSES:
        return "box"
    if kind == "DistributionFocalLoss":
        return "distribution"
    if kind == "GaussianFocalLoss":
        return "center_heatmap"
    if kind == "DiceLoss":
        return "mask"
    return "other"


_SHORT = {"rpn_head": "rpn", "auxiliary_head": "aux"}  # head path parts kept, shortened
_DROPPED = {"bbox_head", "mask_head", "decode_head", "head", "roi_head"}  # implied by the loss's own name
_SUFFIX = {"loss_cls": "cls", "loss_bbox": "reg", "loss_mask": "mask", "loss_decode": "", "loss": ""}


def branch_name(key: str) -> str:
    """A branch name for the slot at `key`: the paper's names where it has them (rpn_cls, rpn_reg,
    rcnn_cls, rcnn_reg, mask; mmseg/mmpose's single `loss`), list indices appended (rcnn1_cls,
    mask2, aux0, loss1; the i-th of a list of losses: loss_1)."""
    parts = key.split(".")
    loss_at = max(i for i, p in enumerate(parts) if not p.isdigit())
    loss_key, head_path, loss_index = parts[loss_at], parts[:loss_at], "".join(parts[loss_at + 1:])
    tokens: list[str] = []
    pending = ""  # an index after a dropped part goes on the loss's own name: mask_head.2 -> mask2
    kept = False  # did the previous part give a token (then an index goes on it: bbox_head.1 -> rcnn1)
    for i, part in enumerate(head_path):
        if part.isdigit():
            if kept:
                tokens[-1] += part
            else:
                pending += part
            continue
        kept = True
        if part == "bbox_head" and i > 0 and head_path[i - 1] == "roi_head":
            tokens.append("rcnn")
        elif part in _DROPPED:
            kept = False
        else:
            tokens.append(_SHORT.get(part, part.removesuffix("_head")))
    suffix = _SUFFIX.get(loss_key, loss_key.removeprefix("loss_").removesuffix("_loss"))
    if suffix:
        tokens.append(suffix + pending)
    elif tokens:
        tokens[-1] += pending
    else:
        tokens.append("loss" + pending)
    name = "_".join(tokens) + (f"_{loss_index}" if loss_index else "")  # an item of a list of losses
    return name if re.fullmatch(r"[A-Za-z_]\w*", name) else "slot_" + re.sub(r"\W", "_", key)


def _library(cfg: Mapping[str, Any]) -> str:
    scope = cfg.get("default_scope")
    if scope in LIBRARIES:
        return scope
    raise SlotError(f"the config's default_scope is {scope!r}: autoloss reads MMDetection, MMSegmentation and "
                    f"MMPose configs (default_scope one of {', '.join(LIBRARIES)})")


class SlotError(ValueError):
    """A config autoloss cannot read or search; the message is one paragraph for the user."""


def _decide(library: str, loss_key: str, loss: Mapping[str, Any], head: Mapping[str, Any],
            mro: tuple[str, ...] | None) -> dict[str, Any]:
    """Kind, searchable, reason and the AutoLossGraph settings of one slot."""
    nominal = _nominal_kind(library, loss_key, loss)
    head_type = str(head.get("type", ""))
    use_sigmoid = bool(loss.get("use_sigmoid", False))
    if mro is None:
        why = f"head type '{head_type}' is not registered in {library}" if head_type else "the loss is not inside a head with a type"
        return dict(kind=nominal, searchable=False, reason=f"{why}, so how it calls its loss is unknown")
    owner, contract = contract_of(library, mro, loss_key)
    if contract is None:
        known = ", ".join(HEAD_CONTRACTS.get(library, {}))
        return dict(kind=nominal, searchable=False,
                    reason=f"autoloss does not know how {head_type} calls its {loss_key} (heads it knows: {known})")
    kind = contract.kind
    if kind == "cls":
        kind = "cls_sigmoid" if use_sigmoid else "cls_softmax"
    if contract.note:
        return dict(kind=kind, searchable=False, reason=contract.note)
    if kind == "cls_softmax":
        return dict(kind=kind, searchable=True, use_sigmoid=False,
                    reason="softmax classification: y_hat = softmax over the classes and background, y = one-hot (paper)")
    if kind == "cls_sigmoid":
        return dict(kind=kind, searchable=True, use_sigmoid=True,
                    reason="sigmoid classification: y_hat = sigmoid per class, y = one-hot, background the all-zero row (as mmdet)")
    if kind == "box":
        inputs = "box regression on decoded boxes: i, u, e of the predicted and target boxes"
        if contract.boxes == "decoded":
            return dict(kind=kind, searchable=True, reason=f"{inputs} ({owner} decodes before its loss)")
        if contract.boxes == "switch":
            return dict(kind=kind, searchable=True, head_settings={"reg_decoded_bbox": True},
                        reason=f"{inputs} ({owner} compares decoded boxes with reg_decoded_bbox=True, which autoloss sets)")
        return dict(kind=kind, searchable=False, reason=f"{owner} regresses deltas and has no switch to decoded boxes")
    if kind == "mask":
        return dict(kind=kind, searchable=True, use_mask=True,
                    reason="masks: y_hat = (σ, 1 − σ) of each RoI's class channel, y = (t, 1 − t) per pixel (paper)")
    if kind == "segmentation":
        if use_sigmoid:
            return dict(kind=kind, searchable=False, reason="a sigmoid segmentation loss (use_sigmoid=True): autoloss's mmseg loss is a softmax over classes (paper)")
        return dict(kind=kind, searchable=True,
                    reason="dense segmentation: y_hat = softmax per pixel, y = one-hot, ignored pixels count 0 (paper)")
    if kind == "cls_quality":
        loss_type = loss["type"].split(".")[-1]
        if owner not in _QUALITY_LOSSES or loss_type != _QUALITY_LOSSES[owner] or not use_sigmoid:
            why = (f"autoloss searches the {_QUALITY_LOSSES[owner]} (use_sigmoid=True) of {owner}"
                   if owner in _QUALITY_LOSSES else f"autoloss does not follow how {owner} calls it")
            return dict(kind=kind, searchable=False, reason=f"{KINDS[kind]}: {why}")
        return dict(kind=kind, searchable=True, use_sigmoid=True, use_quality=True,
                    reason="soft-target classification: y_hat = sigmoid per class, y = the IoU quality in the label's column, background all zero")
    if kind == "score_bce":
        if owner not in _SCORE_HEADS or nominal != "score_bce":
            why = (f"{loss['type']} is not a sigmoid CrossEntropyLoss" if nominal != "score_bce"
                   else f"autoloss searches the score losses of {', '.join(sorted(_SCORE_HEADS))} only")
            return dict(kind=kind, searchable=False, reason=f"{KINDS[kind]}: {why}")
        return dict(kind=kind, searchable=True, use_score=True,
                    reason="one score per prior: y_hat = (σ, 1 − σ), y = (t, 1 − t), a one-pixel mask; CE is then the head's BCE")
    if kind == "heatmap":
        loss_type = loss["type"].split(".")[-1]
        if loss_type in NOT_PLAIN_HEATMAP:
            return dict(kind=kind, searchable=False, reason=NOT_PLAIN_HEATMAP[loss_type])
        if nominal != "heatmap":
            return dict(kind=nominal, searchable=False,
                        reason=f"{loss_type} is not a heatmap loss ({KINDS[nominal]}); AutoLossGraph takes heatmaps here")
        return dict(kind=kind, searchable=True,
                    reason="heatmaps: y_hat, y = predicted and target heatmaps, visible joints only (paper)")
    return dict(kind=kind, searchable=False, reason=f"{KINDS[kind]}: {NOT_COVERED[kind]}")


# mmpose heatmap losses whose call is not (heatmaps, target heatmaps, keypoint weights)
NOT_PLAIN_HEATMAP = {
    "CombinedTargetMSELoss": "CombinedTargetMSELoss compares UDP's combined targets (a heatmap and x / y offset maps "
                             "per joint, 3K channels), not heatmaps alone",
    "MultipleLossWrapper": "MultipleLossWrapper takes lists of predictions and targets, one per wrapped loss",
}

NOT_COVERED = {
    "cls_quality": "the target is an IoU-quality score, not one-hot; searchable as QualityFocalLoss in GFLHead and RTMDetHead and as YOLOXHead's sigmoid CrossEntropyLoss",
    "score_bce": "one logit per prior against a score in [0, 1]; searchable in FCOSHead, ATSSHead and YOLOXHead only",
    "distribution": "no paper input describes a distribution over box sides",
    "simcc": "the head passes x and y bin logits as a pair; AutoLossGraph takes heatmaps",
    "keypoint_regression": "no paper input describes keypoint coordinates",
    "center_heatmap": "a sigmoid centre heatmap with Gaussian targets; no AutoLossGraph mode for it",
    "other": "no paper input describes it",
}


def discover_slots(cfg: Mapping[str, Any], classes: Callable[[str, str], tuple[str, ...] | None] = head_classes) -> list[Slot]:
    """Every loss slot under `cfg.model`, in config order (see the module docstring). `classes`
    maps (library, head type) to the head's MRO class names (tests may pass a table)."""
    library = _library(cfg)
    model = cfg.get("model")
    if not isinstance(model, Mapping):
        raise SlotError("the config has no `model` dict")
    slots: list[Slot] = []
    seen: set[str] = set()
    for key, loss, head in loss_entries(model):
        loss_key = next(p for p in reversed(key.split(".")) if not p.isdigit())
        head_type = str(head.get("type", ""))
        mro = classes(library, head_type) if head_type else None
        decided = _decide(library, loss_key, loss, head, mro)
        name = branch_name(key)
        while name in seen:  # two keys that shorten alike: keep both, distinctly
            name += "_"
        seen.add(name)
        searchable = decided.pop("searchable")
        slots.append(Slot(key=key, name=name, loss_type=str(loss["type"]), head_type=head_type, searchable=searchable,
                          branch_kind=BRANCH_KIND[decided["kind"]] if searchable else None,
                          loss_weight=float(loss.get("loss_weight", 1.0)), reduction=str(loss.get("reduction", "mean")),
                          **decided))
    return slots


SUPPORTED = ("softmax and sigmoid classification in mmdet anchor, R-CNN, FCOS and ATSS heads; box regression on "
             "decoded boxes (heads that decode, or take reg_decoded_bbox=True); FCOS and ATSS centerness and YOLOX "
             "objectness (sigmoid CrossEntropyLoss); GFL and RTMDet QualityFocalLoss and YOLOX's soft-target "
             "classification; mmdet FCNMaskHead masks; mmseg "
             "decode-head segmentation with a softmax; mmpose heatmap heads")


def unsupported_error(slot: Slot) -> str:
    """One paragraph: the slot, its loss type, why not, and what autoloss can search."""
    return (f"autoloss cannot search the loss at model.{slot.key} ({slot.loss_type} in {slot.head_type or 'no head'}, "
            f"kind {slot.kind}): {slot.reason}. It searches {SUPPORTED}. Leave this slot out of `branches` "
            f"to keep the config's own {slot.loss_type} there.")


def select_slots(slots: list[Slot], names: list[str] | None) -> list[Slot]:
    """The slots to search: `names` (branch names or key paths; None: every searchable slot).
    A named slot that cannot be searched, an unknown name or a config with none raises SlotError."""
    if names is None:
        chosen = [s for s in slots if s.searchable]
        if not chosen:
            if not slots:
                raise SlotError("the config's model has no loss slots (no `loss`, `loss_*` or `*_loss` entry holding a loss type)")
            raise SlotError(" ".join(unsupported_error(s) for s in slots[:1]) + f" (none of its {len(slots)} slots is searchable)")
        return chosen
    by_name = {s.name: s for s in slots} | {s.key: s for s in slots}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SlotError(f"no loss slot named {', '.join(unknown)} in the config (it has {', '.join(s.name for s in slots)})")
    chosen = [by_name[n] for n in names]
    for slot in chosen:
        if not slot.searchable:
            raise SlotError(unsupported_error(slot))
    return chosen


def load_config(path: Any) -> Any:
    """`Config.fromfile(path)`, every failure as a SlotError naming the file."""
    if not isinstance(path, str) or not path:
        raise SlotError(f"'config' must be the path of an MMLab config file, got {path!r}")
    try:
        from mmengine.config import Config
    except ImportError as err:
        raise SlotError(f"mmengine is not installed ({err}); run scripts/setup-mmlab.sh") from err
    try:
        return Config.fromfile(path)
    except Exception as err:  # FileNotFoundError, SyntaxError in the file, a bad _base_ ...: one line for the user
        raise SlotError(f"cannot read the config {path}: {type(err).__name__}: {err}") from err


def slots_job(payload: Any) -> dict[str, Any]:
    """The worker's `slots` job. Payload `{"config": path, "branches"?: [name or key, ...]}`; result
    `{"config", "library", "slots": [Slot.as_json()], "selected": [names], "problem"}`: `selected` is
    what a search would take (the named slots, else every searchable one); `problem` is null, or the
    paragraph saying why a config has nothing to search. Raises SlotError (one paragraph) for an
    unreadable config or a named slot that is unknown or cannot be searched."""
    if not isinstance(payload, Mapping):
        raise SlotError(f"job payload must be a map, got {type(payload).__name__}")
    unknown = sorted(set(payload) - {"config", "branches"})
    if unknown:
        raise SlotError(f"slots job payload has unknown key(s) {', '.join(unknown)}")
    names = payload.get("branches")
    if names is not None and not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise SlotError(f"'branches' must be a non-empty list of slot names, got {names!r}")
    cfg = load_config(payload.get("config"))
    slots = discover_slots(cfg)
    try:
        selected = [s.name for s in select_slots(slots, names)]
        problem = None
    except SlotError as err:
        if names is not None:
            raise
        selected, problem = [], str(err)  # nothing searchable: still list what is there
    return {"config": payload["config"], "library": _library(cfg), "slots": [s.as_json() for s in slots],
            "selected": selected, "problem": problem}


# mmdet's own weight for an IoU-type loss in a head that regressed deltas (faster-rcnn_r50_fpn_giou:
# GIoULoss loss_weight=10) and the paper's regression weight; slots already on decoded boxes keep theirs.
DELTA_BOX_WEIGHT = 10.0
DELTA_LOSSES = frozenset({"L1Loss", "SmoothL1Loss", "BalancedL1Loss", "MSELoss"})


def search_weight(slot: Slot) -> float:
    """The loss weight of the searched graph in `slot`: the config's own, except a box slot whose
    loss compared deltas (L1 / smooth L1 on offsets), which gets the IoU-loss weight 10."""
    if slot.kind == "box" and slot.loss_type.split(".")[-1] in DELTA_LOSSES:
        return DELTA_BOX_WEIGHT
    return slot.loss_weight


def branch_slots(slots: list[Slot], weight: Callable[[Slot], float] = search_weight) -> tuple[Any, ...]:
    """`rewrite.BranchSlot`s for searchable `slots`: what `rewrite_config` replaces."""
    from .rewrite import BranchSlot

    wrong = [s for s in slots if not s.searchable]
    if wrong:
        raise SlotError(unsupported_error(wrong[0]))
    return tuple(BranchSlot(s.name, s.key, s.branch_kind, weight(s), use_mask=s.use_mask, use_sigmoid=s.use_sigmoid, use_score=s.use_score, use_quality=s.use_quality,
                            head_settings=dict(s.head_settings), reduction=s.reduction) for s in slots)
