"""Record what a randomly initialised two-stage detector predicts for a few training images, per
loss branch, exactly as its losses would see them in training: the loss-rejection samples of the
``det`` and ``ins`` tasks.

    records = record_det_samples(cfg, B=5, seed=0, layout=baseline_wire())   # one DetRecord per image

For each image (the config's own training pipeline, its model built from ``seed``, in eval mode
so that BatchNorm uses its initial statistics):

* RPN: anchors, objectness logits and box deltas of every level; labels and box targets from the
  config's RPN assigner and sampler (``rpn_head.get_targets``). The *sampled* anchors (label
  weight > 0) form ``rpn_cls``; the positive ones form ``rpn_reg``.
* R-CNN: proposals from the random RPN (``train_cfg.rpn_proposal``), assigned and sampled with the
  config's R-CNN assigner and sampler (ground truth added as proposals when the config says so),
  then the box head on those RoIs. All sampled RoIs form ``rcnn_cls``; the positive ones form
  ``rcnn_reg`` (their class's delta column, as ``BBoxHead`` picks it), except the RoIs that *are*
  a ground-truth box (prior IoU ≥ ``MAX_PRIOR_IOU``): they have nothing left to localise.
* Cascade R-CNN (a ``CascadeRoIHead``): the R-CNN records of *every* stage, concatenated into
  ``rcnn_cls`` / ``rcnn_reg`` (the det task shares those branches across the stages,
  ``det_layout``). Stage k assigns and samples, with its own assigner, sampler and
  ``train_cfg.rcnn[k]``, the boxes stage k − 1's box head refined (``refine_bboxes``), exactly as
  ``CascadeRoIHead.loss`` runs them; each stage's offsets are in prior-size units with its own
  coder's stds. All stages rather than stage 0 alone: the searched loss is trained on all of them,
  and the later stages are where its positives have high IoU (≥ 0.6, 0.7), a regime stage 0
  rarely shows. ξ needs no change: its factors are means / AP over the recorded RoIs, still 1 at
  ground truth. A cascade's mask head is not recorded (det does not search it).
* Mask (when the config's RoI head has a mask head, Mask R-CNN): the mask head on the positive
  RoIs, as ``StandardRoIHead.mask_loss`` runs it, the label's channel (channel 0 if class-agnostic),
  with the targets of ``mask_head.get_targets`` (the ground-truth mask cropped to the RoI and
  resized to the head's mask size). RoIs whose target fills ``MAX_PRIOR_IOU`` or more of the RoI
  (or none of it) are left out: the RoI box alone is already (or can never be) the mask.

Box records hold the deltas as *offsets in units of the prior's size*: mmdet's raw deltas
times the coder's ``target_stds`` plus its means (for the RPN, stds 1, that is the raw output;
for the R-CNN, stds (0.1, 0.1, 0.2, 0.2), it is 10×/5× smaller than the raw output). The
rejection protocol optimises these offsets; in these units the paper's learning rate moves RPN and
R-CNN boxes at the same rate, whereas the R-CNN's raw deltas would barely move in 500 steps.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .det_layout import one_stage_family
from .det_records import (BoxRecord, CenterSizeBoxRecord, ClsRecord, DetRecord, MaskRecord, ObjectnessRecord,
                          PointBoxRecord, Record, ScoreRecord, distances_to_boxes, stride_boxes)
from .rewrite import FASTER_RCNN, BranchSlot, replace_losses
from .seeded import first_records, quiet, seeded_model_and_dataset
from .slots import branch_name

MAX_PRIOR_IOU = 0.95  # positives whose prior already fits their target this well are not recorded
CENTERNESS = branch_name("bbox_head.loss_centerness")  # the branch FCOS / ATSS centerness records go under


def _searched_heads(cfg: Any, layout: Mapping[str, Any], slots: Sequence[BranchSlot]) -> Any:
    """The config with the losses of ``layout`` (a wire graph: only its branches' kinds matter, not
    its trees) put in at ``slots``, so that the recorded heads have the output layout the search
    trains them with (the slots' classification, decoded boxes)."""
    return replace_losses(copy.deepcopy(cfg), layout, slots)


def _flat_levels(maps: Sequence[Tensor], width: int) -> Tensor:
    """Per-level head outputs (1, A·width, H, W) -> (Σ H·W·A, width), mmdet's anchor order."""
    return torch.cat([m.permute(0, 2, 3, 1).reshape(-1, width) for m in maps])


def _offsets(coder: Any, raw: Tensor) -> Tensor:
    means = raw.new_tensor(coder.means)
    stds = raw.new_tensor(coder.stds)
    return raw * stds + means


def _aligned_iou(a: Tensor, b: Tensor) -> Tensor:
    from mmdet.structures.bbox import bbox_overlaps

    return bbox_overlaps(a, b, is_aligned=True)


@dataclass(frozen=True)
class _AnchorTargets:
    """What an anchor head's own ``get_targets`` assigns to image 0's anchors, flattened over the
    levels in mmdet's anchor order; ``sampled``: label weight > 0, ``pos``: sampled and foreground."""
    level_anchors: list[Tensor]
    anchors: Tensor
    labels: Tensor
    box_targets: Tensor
    logits: Tensor
    sampled: Tensor
    pos: Tensor

    def cls_record(self, *, sigmoid: bool, scores: Tensor | None = None) -> ClsRecord:
        """The sampled anchors as the classification record (the others as ``others``)."""
        s = self.sampled
        return ClsRecord(logits=self.logits[s], labels=self.labels[s], others=self.logits[~s], sigmoid=sigmoid,
                         **({} if scores is None else {"scores": scores[s]}))

    def located(self) -> Tensor:
        """The positive anchors that do not already fit their target (IoU < MAX_PRIOR_IOU)."""
        return self.pos & (_aligned_iou(self.anchors, self.box_targets) < MAX_PRIOR_IOU)


def _anchor_targets(head: Any, cls_maps: Sequence[Tensor], gts: Any, metas: Any, gts_ignore: Any) -> _AnchorTargets:
    """Labels and box targets from the head's own ``get_targets`` (assigner, sampler): RPN,
    RetinaNet, ATSS and GFL heads alike (ATSS's and GFL's return the anchors first)."""
    sizes = [m.shape[-2:] for m in cls_maps]
    anchors, valid = head.get_anchors(sizes, metas, device=cls_maps[0].device)
    level_anchors = list(anchors[0])
    anchors_all = torch.cat(level_anchors)  # before get_targets, which ATSSHead concatenates in place
    targets = head.get_targets(anchors, valid, gts, metas, gts_ignore)
    labels, label_w, box_t = targets[-5:-2] if len(targets) == 6 else targets[:3]
    labels_all, weights_all = torch.cat([t[0] for t in labels]), torch.cat([t[0] for t in label_w])
    sampled = weights_all > 0
    return _AnchorTargets(level_anchors=level_anchors, anchors=anchors_all, labels=labels_all,
                          box_targets=torch.cat([t[0] for t in box_t]), logits=_flat_levels(cls_maps, head.cls_out_channels),
                          sampled=sampled, pos=sampled & (labels_all < head.num_classes))


def _anchor_records(head: Any, cls_maps: Sequence[Tensor], box_maps: Sequence[Tensor], gts: Any, metas: Any,
                    gts_ignore: Any, *, drop_exact: bool,
                    score_maps: Sequence[Tensor] | None = None) -> tuple[ClsRecord, BoxRecord, ScoreRecord | None]:
    """An anchor head's records (RPN, RetinaNet, ATSS): the sampled anchors (label weight > 0) form
    the classification record, the positive ones the box record (``drop_exact``: without those whose
    anchor already fits the target, IoU ≥ MAX_PRIOR_IOU). With ``score_maps`` (ATSS's centerness),
    every positive anchor's score logit against ``head.centerness_target`` (as ATSSHead's loss)."""
    if type(head.bbox_coder).__name__ != "DeltaXYWHBBoxCoder":
        raise ValueError(f"det rejection samples: {type(head).__name__} encodes boxes with {type(head.bbox_coder).__name__}; "
                         "autoloss records anchor heads with DeltaXYWHBBoxCoder (offsets in units of the anchor's size)")
    t = _anchor_targets(head, cls_maps, gts, metas, gts_ignore)
    deltas = _flat_levels(box_maps, 4)
    box = t.located() if drop_exact else t.pos
    sigmoid = bool(head.use_sigmoid_cls) and head.cls_out_channels == head.num_classes
    reg = BoxRecord(offsets=_offsets(head.bbox_coder, deltas[box]), priors=t.anchors[box], targets=t.box_targets[box])
    score = None
    if score_maps is not None:
        score = ScoreRecord(logits=_flat_levels(score_maps, 1)[t.pos, 0],
                            targets=head.centerness_target(t.anchors[t.pos], t.box_targets[t.pos]))
    return t.cls_record(sigmoid=sigmoid), reg, score


def _run_catching(head: Any, x: Any, modules: Sequence[Any]) -> tuple[Any, list[Tensor]]:
    """``head(x)`` and the outputs of ``modules`` during that call, in call order (forward hooks,
    removed afterwards): a box branch's raw output before the head's activation."""
    caught: list[Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: caught.append(out)) for m in modules]
    try:
        return head(x), caught
    finally:
        for hook in hooks:
            hook.remove()


def _point_records(head: Any, x: Any, gts: Any) -> tuple[ClsRecord, PointBoxRecord, ScoreRecord]:
    """A point head's records (FCOS): every point is a classification sample (FCOS weighs them
    all), the positive ones the box record. The box leaf is the head's output before its
    activation (the ``Scale`` modules' outputs, caught with hooks): with ``norm_on_bbox`` the
    random network's ReLU'd distances are often exactly 0, boxes of zero size where the gradient
    of an IoU-type loss is exactly 0, so they could never move (``det_records.decode_distances``)."""
    (cls_maps, _, score_maps), caught = _run_catching(head, x, head.scales)
    sizes = [m.shape[-2:] for m in cls_maps]
    points = head.prior_generator.grid_priors(sizes, dtype=cls_maps[0].dtype, device=cls_maps[0].device)
    labels, box_t = head.get_targets(points, gts)
    strides = torch.cat([p.new_full((len(p),), float(s[0])) for p, s in zip(points, head.prior_generator.strides)])
    points_all, labels_all = torch.cat(points), torch.cat(labels)
    logits = _flat_levels(cls_maps, head.cls_out_channels)
    raw = _flat_levels(caught, 4)
    target_dist = torch.cat(box_t) * (strides[:, None] if head.norm_on_bbox else 1.0)  # pixels
    pos = labels_all < head.num_classes
    p_pts, p_t = points_all[pos], target_dist[pos]
    targets = torch.cat([p_pts - p_t[:, :2], p_pts + p_t[:, 2:]], dim=1)
    cls = ClsRecord(logits=logits, labels=labels_all, others=logits[:0], sigmoid=True)
    # FCOSHead's centerness targets: from the (l, t, r, b) distances, whose scale cancels out
    score = ScoreRecord(logits=_flat_levels(score_maps, 1)[pos, 0], targets=head.centerness_target(torch.cat(box_t)[pos]))
    return cls, PointBoxRecord(raw=raw[pos], points=p_pts, strides=strides[pos], targets=targets), score


def _rtmdet_records(head: Any, x: Any, gts: Any, metas: Any, gts_ignore: Any) -> tuple[ClsRecord, PointBoxRecord]:
    """An RTMDet head's records, as ``RTMDetHead.loss_by_feat`` computes its targets: the dynamic
    soft-label assigner matches the random network's own scores and decoded boxes to the objects,
    giving labels and IoU-quality scores (``assign_metrics``). Every prior is a classification
    sample (label weight 1) with its soft target; the positive ones the box record, whose leaf is
    the box branch's output before its activation (``rtm_reg``, caught with hooks), decoded as
    exp(raw) · stride like FCOS's (``_point_records``; RTMDet's own decoding with its Scale at 1,
    or instead of ``exp_on_reg=False``'s linear one)."""
    from mmdet.structures.bbox import distance2bbox

    convs = head.rtm_reg if isinstance(head.rtm_reg, torch.nn.ModuleList) else [head.rtm_reg]
    (cls_maps, dist_maps), caught = _run_catching(head, x, convs)
    sizes = [m.shape[-2:] for m in cls_maps]
    anchors, valid = head.get_anchors(sizes, metas, device=cls_maps[0].device)  # (x, y, stride, stride) per prior
    priors = torch.cat(anchors[0])
    logits = _flat_levels(cls_maps, head.cls_out_channels)
    boxes = distance2bbox(priors[:, :2], _flat_levels(dist_maps, 4))
    targets = head.get_targets(logits[None], boxes[None], anchors, valid, gts, metas, batch_gt_instances_ignore=gts_ignore)
    _, labels, label_w, box_t, metrics, _ = targets
    labels_all, weights_all = torch.cat([t[0] for t in labels]), torch.cat([t[0] for t in label_w])
    targets_all, metrics_all = torch.cat([t[0] for t in box_t]), torch.cat([t[0] for t in metrics])
    sampled = weights_all > 0
    pos = sampled & (labels_all < head.num_classes)
    cls = ClsRecord(logits=logits[sampled], labels=labels_all[sampled], others=logits[~sampled], sigmoid=True,
                    scores=metrics_all[sampled])
    raw = _flat_levels(caught, 4)
    return cls, PointBoxRecord(raw=raw[pos], points=priors[pos, :2], strides=priors[pos, 2], targets=targets_all[pos])


def _gfl_records(head: Any, x: Any, gts: Any, metas: Any, gts_ignore: Any) -> tuple[ClsRecord, BoxRecord]:
    """A GFL head's records, as ``GFLHead.loss_by_feat_single`` computes its targets: labels and
    box targets from the head's ``get_targets`` (its ATSS assigner); every valid anchor is a
    classification sample with GFL's soft target: for a positive, the IoU of its box with its
    object (0 for the others); the positive anchors form the box record, as ATSS's do.

    Two choices (docs/mmlab.md, *One-stage detectors*). The box record starts at the anchors
    (offsets 0, anchors already fitting their object left out), as the random RetinaNet and ATSS
    heads predict them, not at the random GFL head's own boxes: its near-uniform distributions
    decode, by the integral, to boxes 2R strides wide (IoU ≈ 0.05), which in training its
    distribution focal loss (not searched) brings into range; from there even 1 − GIoU moves them
    a fraction of a stride in the protocol's 500 steps at lr 10⁻³ (g 0.003, as 68 logits or as
    log-distances). And the quality is that of the box at the ``reg`` branch's ground truth (the
    protocol holds every other branch there; 1 unless the object lies beyond the R bins), not the
    random network's, IoU ≈ 0.05: a target so near the 0.01 prior that QualityFocalLoss, whose
    gradient scales with (σ − q)², cannot move the scores (g 0.007)."""
    cls_maps, _ = head(x)
    t = _anchor_targets(head, cls_maps, gts, metas, gts_ignore)
    strides = torch.cat([a.new_full((len(a),), float(s[0])) for a, s in zip(t.level_anchors, head.prior_generator.strides)])
    centers, p_targets = (t.anchors[t.pos, :2] + t.anchors[t.pos, 2:]) / 2, t.box_targets[t.pos]
    reach = torch.cat([centers - p_targets[:, :2], p_targets[:, 2:] - centers], dim=1) / strides[t.pos, None]
    quality = torch.zeros_like(t.labels, dtype=p_targets.dtype)
    quality[t.pos] = _aligned_iou(distances_to_boxes(reach.clamp(0, head.reg_max), centers, strides[t.pos]), p_targets)
    located = t.located()
    reg = BoxRecord(offsets=torch.zeros_like(t.box_targets[located]), priors=t.anchors[located], targets=t.box_targets[located])
    return t.cls_record(sigmoid=True, scores=quality), reg


def _yolox_records(head: Any, x: Any, gts: Any, gts_ignore: Any) -> dict[str, Record]:
    """A YOLOX head's records, as ``YOLOXHead.loss_by_feat`` and ``_get_targets_single`` compute
    their targets: SimOTA matches the random network's own scores (√(σ(cls) · σ(obj))) and decoded
    boxes to the objects. ``cls``: the positives' class logits (the only rows YOLOX's ``loss_cls``
    sees), every other prior's as the fixed ``others`` they are ranked against; their targets
    one-hot, which is YOLOX's one-hot × IoU with the box at the ``reg`` branch's ground truth (IoU 1),
    as the protocol holds the other branches. ``reg``: the positives' raw box outputs, decoded as
    YOLOX decodes them (``det_records.decode_center_size``), without those whose raw-0 box already
    fits the object. ``obj``: every prior's objectness logit, target 1 for the positives."""
    from mmengine.structures import InstanceData

    cls_maps, box_maps, obj_maps = head(x)
    sizes = [m.shape[-2:] for m in cls_maps]
    priors = torch.cat(head.prior_generator.grid_priors(sizes, dtype=cls_maps[0].dtype, device=cls_maps[0].device,
                                                        with_stride=True))  # (x, y, stride_w, stride_h)
    logits, raw, obj = _flat_levels(cls_maps, head.cls_out_channels), _flat_levels(box_maps, 4), _flat_levels(obj_maps, 1)[:, 0]
    # YOLOXHead._get_targets_single: assigned on priors offset by half a stride, scores √(σ(cls) · σ(obj))
    offset_priors = torch.cat([priors[:, :2] + priors[:, 2:] * 0.5, priors[:, 2:]], dim=-1)
    pred = InstanceData(bboxes=head._bbox_decode(priors, raw[None])[0], scores=(logits.sigmoid() * obj[:, None].sigmoid()).sqrt(),
                        priors=offset_priors)
    assigned = head.assigner.assign(pred_instances=pred, gt_instances=gts[0], gt_instances_ignore=gts_ignore[0])
    sampling = head.sampler.sample(assigned, pred, gts[0])
    pos_inds, labels, targets = sampling.pos_inds, sampling.pos_gt_labels, sampling.pos_gt_bboxes
    pos = torch.zeros(len(priors), dtype=torch.bool, device=priors.device)
    pos[pos_inds] = True
    points, strides = priors[pos_inds, :2], priors[pos_inds, 2]
    located = _aligned_iou(stride_boxes(points, strides), targets) < MAX_PRIOR_IOU
    return {
        "cls": ClsRecord(logits=logits[pos_inds], labels=labels, others=logits[~pos], sigmoid=True),
        "reg": CenterSizeBoxRecord(raw=raw[pos_inds][located], points=points[located], strides=strides[located],
                                   targets=targets[located]),
        "obj": ObjectnessRecord(logits=obj, targets=pos.to(obj.dtype)),
    }


def _record_one_stage(model: Any, x: Any, gts: Any, metas: Any, gts_ignore: Any, index: int) -> DetRecord:
    """A one-stage detector's records, under the branch names of its slots (``cls``, ``reg`` and,
    for FCOS / ATSS, ``centerness``; for YOLOX, ``obj``)."""
    head = model.bbox_head
    family = one_stage_family(type(head))
    score: Record | None = None
    if family == "yolox":
        records = _yolox_records(head, x, gts, gts_ignore)
    else:
        if family == "point":
            cls, reg, score = _point_records(head, x, gts)
        elif family == "rtmdet":
            cls, reg = _rtmdet_records(head, x, gts, metas, gts_ignore)
        elif family == "gfl":
            cls, reg = _gfl_records(head, x, gts, metas, gts_ignore)
        else:
            maps = head(x)
            score_maps = maps[2] if len(maps) == 3 and hasattr(head, "centerness_target") else None  # ATSS
            cls, reg, score = _anchor_records(head, maps[0], maps[1], gts, metas, gts_ignore, drop_exact=True, score_maps=score_maps)
        records = {"cls": cls, "reg": reg} | ({} if score is None else {CENTERNESS: score})
    return DetRecord(index, {name: r.as_double() for name, r in records.items()})


@torch.no_grad()
def _record_one(model: Any, data: dict, index: int) -> DetRecord:
    from mmdet.models.utils import unpack_gt_instances

    batch = model.data_preprocessor({"inputs": [data["inputs"]], "data_samples": [data["data_samples"]]}, True)
    inputs, samples = batch["inputs"], batch["data_samples"]
    gts, gts_ignore, metas = unpack_gt_instances(samples)
    x = model.extract_feat(inputs)
    if not hasattr(model, "rpn_head"):
        return _record_one_stage(model, x, gts, metas, gts_ignore, index)
    # The RPN is class-agnostic: its targets label every object 0 (as TwoStageDetector.loss does).
    rpn_gts = [copy.copy(g) for g in gts]
    for g in rpn_gts:
        g.labels = torch.zeros_like(g.labels)

    rpn = model.rpn_head
    cls_maps, box_maps = rpn(x)
    rpn_cls, rpn_reg, _ = _anchor_records(rpn, cls_maps, box_maps, rpn_gts, metas, gts_ignore, drop_exact=False)

    proposals = rpn.predict_by_feat(cls_maps, box_maps, batch_img_metas=metas, cfg=model.train_cfg.rpn_proposal)
    prop = proposals[0]
    prop.priors = prop.pop("bboxes")
    branches: dict[str, Record] = {"rpn_cls": rpn_cls, "rpn_reg": rpn_reg, **_rcnn_records(model, x, prop, gts, gts_ignore, metas)}
    return DetRecord(index, {k: v.as_double() for k, v in branches.items()})


def _rcnn_records(model: Any, x: Any, prop: Any, gts: Any, gts_ignore: Any, metas: Any) -> dict[str, Record]:
    """``rcnn_cls``, ``rcnn_reg`` (every stage's, for a cascade) and, for Mask R-CNN, ``mask``."""
    roi = model.roi_head
    if isinstance(roi, _cascade_class()):
        rcnn_cls, rcnn_reg = _cascade_records(model, x, prop, gts[0], gts_ignore[0], metas)
        return {"rcnn_cls": rcnn_cls, "rcnn_reg": rcnn_reg}
    stage = _Stage(roi.bbox_assigner, roi.bbox_sampler, roi.bbox_head, model.train_cfg.rcnn, roi._bbox_forward)
    rcnn_cls, rcnn_reg, sampling, _ = _stage_records(stage, x, prop, gts[0], gts_ignore[0])
    branches: dict[str, Record] = {"rcnn_cls": rcnn_cls, "rcnn_reg": rcnn_reg}
    if roi.with_mask:
        branches["mask"] = _mask_record(model, x, sampling, gts[0])
    return branches


@dataclass(frozen=True)
class _Stage:
    """One R-CNN box stage as its RoI head trains it: StandardRoIHead's only one, or stage k of a
    CascadeRoIHead (its own assigner, sampler, box head and train_cfg.rcnn[k])."""

    assigner: Any
    sampler: Any
    head: Any
    train_cfg: Any
    forward: Callable[[Any, Tensor], dict]  # (features, rois) -> {"cls_score", "bbox_pred", ...}


def _stage_records(stage: _Stage, x: Any, prop: Any, gt: Any, gt_ignore: Any) -> tuple[ClsRecord, BoxRecord, Any, dict]:
    """One stage's R-CNN records on the proposals ``prop`` (priors), assigned and sampled as the
    stage's loss does; also its sampling result and what ``refine_bboxes`` reads (``bbox_results``)."""
    from mmdet.structures.bbox import bbox2roi, get_box_tensor

    with_gt = stage.sampler.add_gt_as_proposals and len(gt.bboxes) > 0
    candidates = torch.cat([get_box_tensor(gt.bboxes), prop.priors]) if with_gt else prop.priors
    assigned = stage.assigner.assign(prop, gt, gt_ignore)
    sampling = stage.sampler.sample(assigned, prop, gt, feats=[f[0][None] for f in x])
    rois = bbox2roi([sampling.priors])
    out = stage.forward(x, rois)
    head = stage.head
    targets = head.get_targets([sampling], stage.train_cfg, concat=True)
    r_labels, _, r_targets, _ = targets
    r_pos = r_labels < head.num_classes
    box_pred = out["bbox_pred"].view(len(r_labels), -1, 4)
    pos_idx = r_pos.nonzero(as_tuple=True)[0]
    col = torch.zeros_like(pos_idx) if head.reg_class_agnostic else r_labels[pos_idx]
    priors, box_targets = sampling.priors[pos_idx], r_targets[pos_idx]
    keep = _aligned_iou(priors, box_targets) < MAX_PRIOR_IOU
    cls = ClsRecord(logits=out["cls_score"], labels=r_labels, others=_unsampled_logits(stage, x, candidates, sampling))
    reg = BoxRecord(offsets=_offsets(head.bbox_coder, box_pred[pos_idx, col][keep]), priors=priors[keep],
                    targets=box_targets[keep])
    return cls, reg, sampling, dict(out, rois=rois, bbox_targets=targets)


def _cascade_class() -> type:
    from mmdet.models.roi_heads import CascadeRoIHead

    return CascadeRoIHead


def _cascade_records(model: Any, x: Any, prop: Any, gt: Any, gt_ignore: Any, metas: Any) -> tuple[ClsRecord, BoxRecord]:
    """Every stage's R-CNN records, concatenated (``rcnn_cls``/``rcnn_reg`` are shared by the
    stages, ``det_layout``): stage k assigns and samples the boxes stage k − 1 refined, as
    ``CascadeRoIHead.loss`` runs them; each stage's offsets in units of the prior's size with its
    own coder's stds. A mask head of a Cascade Mask R-CNN is not recorded: det does not search it."""
    roi = model.roi_head
    cls_parts, reg_parts = [], []
    for k in range(roi.num_stages):
        roi.current_stage = k  # what samplers built with context=roi (OHEM) read
        stage = _Stage(roi.bbox_assigner[k], roi.bbox_sampler[k], roi.bbox_head[k], model.train_cfg.rcnn[k],
                       functools.partial(roi._bbox_forward, k))
        cls, reg, sampling, results = _stage_records(stage, x, prop, gt, gt_ignore)
        cls_parts.append(cls)
        reg_parts.append(reg)
        if k + 1 < roi.num_stages:
            refined = stage.head.refine_bboxes([sampling], results, metas)
            if refined is None:  # no RoI left (as CascadeRoIHead.loss, which stops there too)
                break
            prop = refined[0]
            prop.priors = prop.pop("bboxes")
    return _joined(cls_parts), _joined(reg_parts)


def _joined(records: Sequence[Record]) -> Any:
    """One record of the stages' records: tensor fields concatenated, the others the first's."""
    first = records[0]
    return type(first)(**{f.name: torch.cat([getattr(r, f.name) for r in records]) if isinstance(getattr(first, f.name), Tensor)
                          else getattr(first, f.name) for f in dataclasses.fields(first)})


def _mask_record(model: Any, x: Any, sampling: Any, gt: Any) -> MaskRecord:
    """The mask head on the image's positive RoIs (``StandardRoIHead.mask_loss`` with its own RoI
    extractor; a config that shares the box head's features is not supported here)."""
    from mmdet.structures.bbox import bbox2roi

    roi = model.roi_head
    if roi.share_roi_extractor:
        raise ValueError("ins rejection samples: the config's mask head shares the box head's RoI features "
                         "(no roi_head.mask_roi_extractor); give it its own mask_roi_extractor")
    preds = roi._mask_forward(x, bbox2roi([sampling.pos_priors]))["mask_preds"]  # (p, K, h, w)
    targets = roi.mask_head.get_targets([sampling], [gt], model.train_cfg.rcnn)  # (p, h, w) in {0, 1}
    labels = sampling.pos_gt_labels
    channel = torch.zeros_like(labels) if roi.mask_head.class_agnostic else labels
    logits = preds[torch.arange(len(labels), device=preds.device), channel.long()]
    fill = targets.flatten(1).mean(1)  # the share of the RoI the mask covers = the RoI box's own mask IoU
    keep = (fill > 0) & (fill < MAX_PRIOR_IOU)
    return MaskRecord(logits=logits[keep], targets=targets[keep])


def _unsampled_logits(stage: _Stage, x: Any, candidates: Tensor, sampling: Any) -> Tensor:
    """R-CNN logits of the candidate RoIs (``candidates``: what the stage's sampler drew from,
    indexed by its ``pos_inds`` / ``neg_inds``) that the sampler left out."""
    from mmdet.structures.bbox import bbox2roi

    left = torch.ones(len(candidates), dtype=torch.bool, device=candidates.device)
    left[sampling.pos_inds] = False
    left[sampling.neg_inds] = False
    if not bool(left.any()):
        return candidates.new_zeros(0, stage.head.num_classes + 1)
    return stage.forward(x, bbox2roi([candidates[left]]))["cls_score"]


def record_det_samples(cfg: Any, B: int, seed: int, layout: Mapping[str, Any],
                       slots: Sequence[BranchSlot] = FASTER_RCNN) -> list[DetRecord]:
    """B usable training images (drawn with ``seed``) through the detector initialised from
    ``seed``, its heads in the output layout of ``layout`` (a wire graph of the searched branches,
    e.g. the task's baseline) put in at ``slots``. A config without ``rpn_head`` is a one-stage
    detector (``bbox_head``: AnchorHead, ATSSHead, FCOSHead and subclasses that keep their
    ``loss_by_feat``), recorded as branches ``cls`` and ``reg``. Deterministic for a (config, B,
    seed): the pipeline's random flip, the samplers and the weights are all seeded here."""
    from mmdet.utils import register_all_modules

    import autoloss_worker.mmlab.registry  # noqa: F401  (AutoLossGraph in mmdet's MODELS)

    register_all_modules(init_default_scope=True)
    with quiet():
        return _record(_searched_heads(cfg, layout, slots), B, seed)


def _record(cfg: Any, B: int, seed: int) -> list[DetRecord]:
    def record(i: int) -> DetRecord | None:
        r = _record_one(model, dataset[i], i)
        return r if r.usable() else None

    with seeded_model_and_dataset(cfg, seed, "mmdet") as (model, dataset, order):
        records = first_records(order, record, B)
    if len(records) < B:
        raise ValueError(f"only {len(records)} of the {len(dataset)} training images have samples in every branch; need B = {B}")
    return records
