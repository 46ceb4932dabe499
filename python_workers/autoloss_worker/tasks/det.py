"""Object detection inside an unchanged MMDetection config: the ``det`` task (Faster R-CNN or Cascade
R-CNN, 4 branches; or a one-stage detector, 2 or 3 branches).

    task = get_task("det")                            # options: see DetOptions
    task.proxy_train(loss, seed=0, metric="bbox_map")   # mmengine Runner, the config's CocoMetric
    get_task("det", config="my_faster_rcnn.py", branches="rcnn_cls,rcnn_reg")  # search two branches

``DetTask`` is also the base of the ``ins`` task (``tasks.ins``: Mask R-CNN, a fifth, mask branch):
everything below holds for both; the branch set, metrics and default config are class attributes.

Branches (paper, App. A.2), in this order: ``rpn_cls`` (dense), ``rpn_reg`` (box), ``rcnn_cls``
(dense), ``rcnn_reg`` (box). Classification inputs are softmax probabilities and one-hot labels,
box inputs the intersection, union and enclosing areas of predicted and target boxes, with the
paper's loss weights 1 (cls) and 10 (reg); see ``docs/mmlab.md`` for how mmdet's heads feed them.

Proxy training (``tasks.mmlab_proxy``): ``mmlab.rewrite`` puts the searched branches into the
config (``config`` option, default the shipped ``det_faster_rcnn_shapes.py``), shortens the
schedule to ``iterations`` and reports the config's own evaluator: ``bbox_map`` =
``coco/bbox_mAP``, ``bbox_map_50`` = ``coco/bbox_mAP_50``.

Branch subset (``branches`` option, comma-separated names or a list): only those branches are
searched (task-info lists them, losses carry them, rejection checks them, proxy training replaces
their slots); every other loss of the config stays the config's own. Rejection samples are still
recorded with every branch in the searched layout (softmax RPN, decoded boxes); the branches left
out are only ever used at their ground truth, where their ξ factor is 1.

Loss rejection (the generic protocol of ``rejection.py``; samples from ``mmlab.det_samples``).
One rejection *sample* is one training image; its raw predictions per branch are

* ``rpn_cls`` / ``rcnn_cls``: the logits (1, n, C) of the image's *sampled* anchors / RoIs
  (background is the last column); loss inputs: softmax and one-hot, (n, C, 1, 1) — the layout
  ``AutoLossGraph`` gets in training, so ``max_pool``/``min_pool`` act on 1×1 maps there and here;
* ``rpn_reg`` / ``rcnn_reg``: the box offsets (1, p, 4) of the image's positive anchors / RoIs, in
  units of the prior's size (``det_samples``); loss inputs: i, u, e of the decoded boxes and their
  targets, (p, 1, 1, 1).

Per-sample metric ξ (a documented proxy of COCO bbox AP, computed per image; 0-1, higher is
better). ξ = Π over the searched branches (all four by default) of a factor that is exactly 1 at
the ground truth, so with the other branches at ground truth (paper, App. A.2) ξ is the tested
branch's factor:

* classification factor: COCO-style AP (101 recall points, precision made monotone) of the
  sampled anchors / RoIs ranked by their softmax probability of a foreground class, averaged over
  the foreground classes with a positive sample in the image. This is the image's COCO AP when
  every sampled anchor / RoI is a detection whose box is exact (regression at ground truth) and
  every positive sample counts as its own ground-truth object (duplicates on one object are not
  suppressed by NMS). Random logits give about the fraction of positives; CE drives it to 1.
* regression factor: the mean over positive anchors / RoIs of max(0, (IoU − IoU₀) / (1 − IoU₀)),
  IoU₀ being the prior's own IoU with the target: the part of the localisation error that the
  predicted offsets remove (0 for the random network's near-zero offsets, 1 for an exact box).
  COCO's AP over IoU thresholds 0.5:0.95 would start at 0.3-0.6 for boxes the assigners already
  call positive (IoU ≥ 0.5 / 0.7), leaving too little room for the paper's η = 0.6.

The ground-truth raw predictions: logits 10·one-hot(label); offsets that decode exactly to the
target box.

Cascade R-CNN configs (a ``CascadeRoIHead``; ``mmlab.det_layout``, shipped:
``det_cascade_rcnn_shapes.py``): the same four branches; ``rcnn_cls`` and ``rcnn_reg`` are shared by
the stages, one searched graph each in every stage's box head (the config's ``stage_loss_weights``
still weigh them). A sample's ``rcnn_cls`` / ``rcnn_reg`` predictions are the RoIs of every stage
concatenated (``mmlab.det_samples``), so their factors are the AP / removed localisation error over
all stages' sampled / positive RoIs, 1 at ground truth as above.

One-stage configs (no ``rpn_head`` / ``roi_head``; ``mmlab.det_layout``): the branches are the
searchable slots ``mmlab.slots`` discovers in ``bbox_head``, ``cls`` (``loss_cls``), ``reg``
(``loss_bbox``), FCOS's / ATSS's ``centerness`` (``loss_centerness``) and YOLOX's ``obj``
(``loss_obj``), in config order, with the config's own loss weights (an L1 on deltas becomes the
paper's 10). Heads whose ``loss_by_feat`` is ``AnchorHead``'s (RetinaNet), ``ATSSHead``'s,
``FCOSHead``'s, ``GFLHead``'s, ``RTMDetHead``'s or ``YOLOXHead``'s. Other slots keep the config's
loss (GFL's distribution focal loss, YOLOX's L1 on raw offsets). The baseline of a box slot is
the config's own IoULoss in its mode (1 − IoU, 1 − IoU², −log IoU: ``box_baseline``), else 1 − GIoU.
Per kind:

* ``cls`` of a sigmoid head: one sample per anchor / point with label weight > 0 (RetinaNet and
  ATSS: all but the ignored anchors; FCOS: every point), logits (1, n, C) of the C classes; loss
  inputs σ per class and one-hot rows, background the all-zero row (mmdet's
  ``_expand_onehot_labels``). Ground truth: logits +10 on the label, −10 elsewhere. Factor: the
  classification factor above with σ of the class's logit as the score. Baseline: the config's
  FocalLoss as a graph when it has γ = 2, α = 0.25 (``FOCAL``; equal to mmdet's inside the heads,
  tested), else binary CE (``BCE``).
* ``reg`` of an anchor head (RetinaNet, ATSS, ``DeltaXYWHBBoxCoder``): as ``rpn_reg``, positives
  whose anchor already fits (IoU ≥ 0.95) left out; the head is switched to decoded boxes
  (``reg_decoded_bbox=True``). Same factor.
* ``reg`` of a point head (FCOS): the head's box outputs *before* its activation, decoded as
  distances exp(raw) · stride (``det_records.decode_distances``: FCOS's own decoding without
  ``norm_on_bbox``, in stride units). The ReLU of ``norm_on_bbox`` leaves the random network's
  boxes often of zero size, where an IoU-type loss has zero gradient, so they could never move.
  Factor: the box factor with the point's *unit box* (raw 0: the point ± its stride) as the prior,
  i.e. the share of the unit box's localisation error removed; 1 at ground truth, ≈ 0 for the
  random network (whose raw outputs are near 0).

* RTMDet: ``cls`` as a sigmoid ``cls`` whose target rows hold the dynamic soft-label assigner's
  IoU quality in the label's column (QualityFocalLoss's target; baseline ``QFL``), every prior a
  sample; ``reg`` as FCOS's, the leaf ``rtm_reg``'s output before the exp.
* GFL: ``cls`` as RTMDet's, the quality of a positive the IoU of its box with its object
  (``GFLHead.loss_by_feat_single``'s target), the box at ``reg``'s ground truth as the protocol
  holds every other branch; ``reg`` as an anchor head's, offsets starting at 0 (the positive
  anchors), not at the random head's own integral boxes (``det_samples._gfl_records`` says why).
  Same factor.
* YOLOX (``det_samples._yolox_records``; SimOTA on the random network's own scores and boxes):
  ``cls`` one sample per positive prior (the rows YOLOX's ``loss_cls`` sees), one-hot targets
  (YOLOX's one-hot × IoU with the box at ``reg``'s ground truth), every other prior's logits the
  fixed ``others`` of the classification factor; baseline BCE (its sigmoid CrossEntropyLoss).
  ``reg``: the positives' raw outputs decoded as YOLOX does, centre + raw · stride and size
  exp(raw) · stride (``det_records.decode_center_size``); the box factor with raw 0's box (one
  stride a side) as the prior. ``obj``: every prior, target 1 for the positives, inputs as
  ``centerness``'s (CE is its BCE); factor: the AP of the positives among all priors ranked by σ
  (``det_records.ObjectnessRecord``), 1 at ground truth (logits ±9.2).
* ``centerness`` (FCOS, ATSS; a branch the paper does not have): one sample per positive prior,
  its centerness logit against the head's own ``centerness_target``; loss inputs (σ, 1 − σ) and
  (t, 1 − t) per prior, a one-pixel mask (so CE is the heads' BCE, the baseline). Ground truth:
  logit(t), clamped at ±10. Factor: the share of a constant σ = 0.5 prediction's absolute error
  removed, max(0, 1 − Σ|σ − t| / Σ|0.5 − t|), errors less σ(−10) (``det_records.score_factor``):
  exactly 1 at ground truth, 0 for the constant.

ξ is the product of the searched branches' factors, as for two-stage configs. Rejection keeps each sample's own tensors (``stackable_samples = False``): the
anchors and RoIs of an image vary in number, and laying them out along H would let the pooling
operators mix neighbouring RoIs, which they never do in training.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from autoloss_worker.mmlab.det_layout import detector_layout
from autoloss_worker.mmlab.det_records import DetRecord
from autoloss_worker.mmlab.det_samples import record_det_samples
from autoloss_worker.tasks.base import BOX, DENSE, Sample
from autoloss_worker.tasks.mmlab_proxy import SHIPPED_CONFIGS, MMLabConfigTask, MMLabOptions, branches_as_text, select_branches

DEFAULT_CONFIG = str(SHIPPED_CONFIGS / "det_faster_rcnn_shapes.py")
DET_METRICS = ("bbox_map", "bbox_map_50")
EVALUATOR_KEYS = {"bbox_map": "coco/bbox_mAP", "bbox_map_50": "coco/bbox_mAP_50"}

CE = ["neg", ["mul", "y", ["log", "y_hat"]]]
# 1 − GIoU = 1 − i/u + (e − u)/e: the box loss of the paper's regression baseline [48] (the shipped
# config's own L1 on deltas cannot be written with i, u, e).
ONE_MINUS_GIOU = ["add", "one", ["add", ["neg", ["mul", "i", ["inv", "u"]]], ["mul", ["add", "e", ["neg", "u"]], ["inv", "e"]]]]
_ONE_MINUS = lambda t: ["add", "one", ["neg", t]]  # noqa: E731
# Binary CE per class of a sigmoid head: −y·log ŷ − (1 − y)·log(1 − ŷ) (mmdet's sigmoid CrossEntropyLoss).
BCE = ["neg", ["add", ["mul", "y", ["log", "y_hat"]], ["mul", _ONE_MINUS("y"), ["log", _ONE_MINUS("y_hat")]]]]
# mmdet's sigmoid FocalLoss with γ = 2, α = 0.25 (RetinaNet's, FCOS's, ATSS's):
# α·y·(1 − ŷ)²·(−log ŷ) + (1 − α)·(1 − y)·ŷ²·(−log(1 − ŷ)), α written 1/(1+1+1+1) (inv's ε: 1e-12 off).
_QUARTER = ["inv", ["add", ["add", "one", "one"], ["add", "one", "one"]]]
FOCAL = ["add",
         ["mul", _QUARTER, ["mul", "y", ["mul", ["square", _ONE_MINUS("y_hat")], ["neg", ["log", "y_hat"]]]]],
         ["mul", _ONE_MINUS(_QUARTER), ["mul", _ONE_MINUS("y"), ["mul", ["square", "y_hat"], ["neg", ["log", _ONE_MINUS("y_hat")]]]]]]
_IOU = ["mul", "i", ["inv", "u"]]
# mmdet's IoULoss by mode (its eps 1e-6 clamp aside)
IOU_LOSSES = {"linear": _ONE_MINUS(_IOU), "square": _ONE_MINUS(["square", _IOU]), "log": ["neg", ["log", _IOU]]}
# mmdet's QualityFocalLoss with β = 2 (GFL's, RTMDet's): BCE against the soft target times (y − ŷ)².
QFL = ["mul", BCE, ["square", ["add", "y", ["neg", "y_hat"]]]]
BRANCHES = {"rpn_cls": DENSE, "rpn_reg": BOX, "rcnn_cls": DENSE, "rcnn_reg": BOX}
INPUTS = {DENSE: ["y_hat", "y", "one"], BOX: ["i", "u", "e", "one"]}


def baseline_wire(branches: Mapping[str, str] = BRANCHES, trees: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The baseline in wire form: ``trees[name]`` where given, else CE for the dense branches
    (softmax classification; for a mask, CE over its fg/bg channels is binary CE) and 1 − GIoU for
    the box branches."""
    trees = trees or {}
    return {"v": 1, "branches": [{"name": n, "kind": k, "inputs": INPUTS[k],
                                  "tree": trees.get(n, CE if k == DENSE else ONE_MINUS_GIOU)} for n, k in branches.items()]}


def sigmoid_baseline(loss: Mapping[str, Any]) -> Any:
    """The baseline tree of a sigmoid classification slot: the config's own loss where the graph
    can write it (FocalLoss with γ = 2, α = 0.25; QualityFocalLoss with β = 2), binary CE otherwise
    (mmdet's sigmoid CrossEntropyLoss, also against YOLOX's soft rows)."""
    if loss.get("type") == "FocalLoss" and float(loss.get("gamma", 2.0)) == 2.0 and float(loss.get("alpha", 0.25)) == 0.25:
        return FOCAL
    if loss.get("type") == "QualityFocalLoss" and float(loss.get("beta", 2.0)) == 2.0:
        return QFL
    return BCE


def box_baseline(loss: Mapping[str, Any]) -> Any:
    """The baseline tree of a one-stage box slot: mmdet's IoULoss in the config's mode (``linear``
    1 − IoU, ``square`` 1 − IoU² as YOLOX has it, ``log`` −log IoU, mmdet's default), else 1 − GIoU
    (GIoULoss itself; and the paper's reference for losses i, u, e cannot write, L1 on deltas)."""
    if str(loss.get("type", "")).split(".")[-1] == "IoULoss":
        mode = "linear" if loss.get("linear", False) else str(loss.get("mode", "log"))
        return IOU_LOSSES.get(mode, ONE_MINUS_GIOU)
    return ONE_MINUS_GIOU


def own_baseline(kind: str, loss: Mapping[str, Any]) -> Any:
    return box_baseline(loss) if kind == BOX else sigmoid_baseline(loss)


@dataclass(frozen=True)
class DetOptions(MMLabOptions):
    # a two-stage config with the Faster R-CNN loss keys, a Cascade R-CNN, or a one-stage one (module docstring)
    config: str = DEFAULT_CONFIG
    iterations: int = 150  # proxy schedule (mmlab.rewrite.ProxySchedule.max_iters)
    warmup_iters: int = 50
    # > 0: predict only the first val_images validation images (smoke tests). CocoMetric still scores
    # against its whole ann_file, so the other images' objects count as missed: not for searching.
    val_images: int = 0
    # Comma-separated branches to search ("": all, in the task's order); the config keeps its own
    # losses everywhere else. A JSON list is accepted too.
    branches: str = ""


class DetTask(MMLabConfigTask):
    name = "det"
    branches = BRANCHES  # all of them; an instance holds the ones its ``branches`` option selects
    all_branches: Mapping[str, str] = BRANCHES
    metrics = DET_METRICS
    default_metric = "bbox_map"
    evaluator_keys: Mapping[str, str] = EVALUATOR_KEYS
    options_class: type[DetOptions] = DetOptions
    library = "mmdet"
    metric_scale = 1.0
    baseline_loss = baseline_wire()
    stackable_samples = False  # see the module docstring

    def __init__(self, **options: Any) -> None:
        super().__init__(**branches_as_text(options))
        layout = detector_layout(self.name, self.config, type(self).all_branches)
        self.slot_table, self.all_branches = layout.slots, layout.branches
        self._trees = {name: own_baseline(layout.branches[name], loss) for name, loss in layout.own_losses.items()}
        layout.check_names(self.options.branches)
        self.branches = select_branches(self.name, self.all_branches, self.options.branches)
        self.baseline_loss = baseline_wire(self.branches, self._trees)

    def proxy_slots(self) -> Sequence[Any]:
        return self.slot_table

    # ------------------------------------------------------------------ rejection
    # A sample's target is its ``DetRecord``; each branch's record (``mmlab.det_records``) builds its
    # own loss inputs, ground truth and ξ factor, so ``InsTask``'s mask record needs nothing here.

    def rejection_samples(self, B: int, seed: int) -> list[Sample]:
        key = (B, seed)
        if key not in self._samples:
            # recorded with every branch in the searched layout (softmax RPN, decoded boxes)
            records = record_det_samples(self.rejection_config, B, seed, layout=baseline_wire(self.all_branches, self._trees),
                                         slots=self.slot_table)
            self._samples[key] = [Sample(raw={n: r.leaf[None] for n, r in record.branches.items()}, target=record)
                                  for record in records]
        return self._samples[key]

    def to_loss_inputs(self, branch: str, raw: Tensor, target: DetRecord, *, metric: str) -> dict[str, Tensor]:
        return target.branches[branch].loss_inputs(raw)

    def joint_loss_inputs(self, branch: str, preds: Sequence[Tensor], samples: Sequence[Sample], *,
                          metric: str) -> dict[str, Tensor]:
        records = [s.target.branches[branch] for s in samples]
        return type(records[0]).joint_loss_inputs(records, preds)

    def ground_truth_raw(self, branch: str, target: DetRecord) -> Tensor:
        return target.branches[branch].ground_truth()

    def sample_metric(self, raw: Mapping[str, Tensor], target: DetRecord, metric: str) -> float:
        """Π of the searched branches' factors; a branch outside the ``branches`` option is at its
        ground truth, factor 1."""
        self.check_metric(metric)
        xi = 1.0
        for branch in self.branches:
            xi *= target.branches[branch].factor(raw[branch][0])
        return xi

    # ------------------------------------------------------------------ proxy training

    def proxy_config(self) -> Any:
        cfg = super().proxy_config()
        if self.options.val_images > 0:
            cfg = copy.deepcopy(cfg)
            cfg.merge_from_dict({"val_dataloader.dataset.indices": self.options.val_images})
        return cfg
