"""Which loss slots the ``det`` / ``ins`` tasks search in a given MMDetection config.

    layout = detector_layout("det", cfg, two_stage_branches=BRANCHES)
    layout.slots       # rewrite.BranchSlot per searched branch (what proxy training replaces)
    layout.branches    # {name: "dense" | "box"} in config order (task-info's branches)

* Two-stage configs (a ``rpn_head`` or a ``roi_head``): the task's fixed slot table
  (``rewrite.SLOTS_BY_TASK``: Faster R-CNN's four, + Mask R-CNN's mask for ``ins``), RPN switched
  to softmax as in the paper. A slot of the table the config lacks is a ``SlotError`` listing
  what the config has.
* Cascade R-CNN (a ``CascadeRoIHead``, only ``det``): the same four branches. ``rpn_cls`` and
  ``rpn_reg`` as above; ``rcnn_cls`` and ``rcnn_reg`` are *shared by every stage*: the one
  searched graph of each goes into ``roi_head.bbox_head.<k>.loss_cls`` / ``.loss_bbox`` of every
  stage k (one slot when the config gives one ``bbox_head`` dict for all stages), each stage
  switched to decoded boxes and softmax classification as Faster R-CNN's box head. mmdet still
  weighs stage k's losses by the config's ``stage_loss_weights[k]``. Why shared: the paper
  searches one loss per branch kind (its R-CNN branch is one classification and one regression
  loss), and a loss per stage would multiply the search space (six R-CNN branches instead of
  two, each needing its own rejection check) for heads that differ only in their IoU thresholds.
  Rejection records every stage's RoIs (``det_samples``). Cascade subclasses that compute their
  losses another way (HTC, SCNet, Sparse R-CNN) are refused.
* One-stage configs (only ``det``): the searchable slots that ``mmlab.slots`` discovers in
  ``bbox_head`` (``cls``, ``reg``; GFL's, RTMDet's and YOLOX's ``cls`` with their soft IoU-quality
  targets; FCOS / ATSS ``centerness`` and YOLOX ``obj``, score branches), with their own
  classification (a sigmoid head stays sigmoid) and boxes switched to decoded ones where the head
  needs it. Slots autoloss cannot search keep the config's loss. The head must compute its losses
  in ``AnchorHead``'s, ``ATSSHead``'s, ``FCOSHead``'s, ``GFLHead``'s, ``RTMDetHead``'s or
  ``YOLOXHead``'s ``loss_by_feat``: the rejection recorder (``det_samples``) follows those calls.

Every refusal is one paragraph naming the slot or head, what it is, and what is supported.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .rewrite import FASTER_RCNN, SLOTS_BY_TASK, BranchSlot, _lookup
from .slots import Slot, SlotError, branch_slots, discover_slots, registered_class, unsupported_error

ONE_STAGE_HEADS = ("AnchorHead", "ATSSHead", "FCOSHead", "GFLHead", "RTMDetHead", "YOLOXHead")  # whose loss_by_feat the recorder follows
ONE_STAGE_KEYS = ("bbox_head.loss_cls", "bbox_head.loss_bbox", "bbox_head.loss_centerness", "bbox_head.loss_obj")  # what it records
SUPPORTED_DETECTORS = ("two-stage configs shaped as Faster R-CNN (rpn_head.loss_cls, rpn_head.loss_bbox and one "
                       "roi_head.bbox_head with loss_cls and loss_bbox; + roi_head.mask_head.loss_mask for ins) and, "
                       "for det, Cascade R-CNN (a CascadeRoIHead whose stage box heads have loss_cls and loss_bbox; "
                       "rcnn_cls and rcnn_reg shared by the stages) and one-stage configs whose bbox_head computes "
                       "its losses as AnchorHead (RetinaNet), ATSSHead, FCOSHead, GFLHead, RTMDetHead or YOLOXHead do")
# CascadeRoIHead's methods the rejection recorder follows; a subclass overriding one is refused
CASCADE_METHODS = ("loss", "bbox_loss", "_bbox_forward")


@dataclass(frozen=True)
class DetLayout:
    slots: tuple[BranchSlot, ...]
    branches: dict[str, str]
    # loss configs of the one-stage sigmoid classification and box slots (the task's baseline
    # follows them where a graph can write them)
    own_losses: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    kept: tuple[Slot, ...] = ()  # discovered slots that keep the config's own loss

    def check_names(self, names: str) -> None:
        """A name in the ``branches`` option that is a slot autoloss cannot search: SlotError
        saying why (other unknown names are the task's ``select_branches``' to report)."""
        for name in (n.strip() for n in names.split(",")):
            slot = next((s for s in self.kept if name in (s.name, s.key)), None)
            if slot is not None:
                raise SlotError(unsupported_error(slot))


def one_stage_family(head_class: type) -> str:
    """"point" (FCOSHead's loss_by_feat), "rtmdet" (RTMDetHead's), "gfl" (GFLHead's), "yolox"
    (YOLOXHead's) or "anchor" (AnchorHead's, ATSSHead's), from the class whose ``loss_by_feat`` the
    head runs; SlotError for any other."""
    owner = next((c for c in head_class.__mro__ if "loss_by_feat" in vars(c)), None)
    name = owner.__name__ if owner is not None else ""
    if name not in ONE_STAGE_HEADS:
        raise SlotError(f"the det task cannot search {head_class.__name__}: it computes its losses in "
                        f"{name or 'no'}.loss_by_feat, whose calls autoloss's rejection samples do not follow. "
                        f"det searches {SUPPORTED_DETECTORS} (RetinaHead and other subclasses that keep that method).")
    return {"FCOSHead": "point", "RTMDetHead": "rtmdet", "GFLHead": "gfl", "YOLOXHead": "yolox"}.get(name, "anchor")


def _head_class(head_type: str) -> type:
    cls = registered_class("mmdet", head_type)
    if cls is None:
        raise SlotError(f"the config's bbox_head type '{head_type}' is not registered in mmdet")
    return cls


def is_cascade(task: str, roi_head: Any) -> bool:
    """Whether the config's ``roi_head`` dict is a CascadeRoIHead (or a subclass); a subclass that
    computes its losses in its own ``loss``/``bbox_loss``/``_bbox_forward`` (HTC, SCNet, Sparse
    R-CNN) is a SlotError, since the rejection recorder follows CascadeRoIHead's calls. An
    unregistered type is not a cascade here (building the model reports it)."""
    cls = registered_class("mmdet", roi_head["type"]) if isinstance(roi_head, Mapping) and isinstance(roi_head.get("type"), str) else None
    if cls is None or "CascadeRoIHead" not in [c.__name__ for c in cls.__mro__]:
        return False
    for method in CASCADE_METHODS:
        owner = next(c for c in cls.__mro__ if method in vars(c))
        if owner.__name__ != "CascadeRoIHead":
            raise SlotError(f"the {task} task cannot search {cls.__name__}: it computes its cascade losses in "
                            f"{owner.__name__}.{method}, whose calls autoloss's rejection samples do not follow. "
                            f"{task} searches {SUPPORTED_DETECTORS}.")
    return True


def _slot_list(slots: Sequence[Slot]) -> str:
    return ", ".join(f"{s.name} (model.{s.key}, {s.loss_type}: {'searchable' if s.searchable else 'not searchable'})"
                     for s in slots) or "none"


def detector_layout(task: str, cfg: Any, two_stage_branches: Mapping[str, str]) -> DetLayout:
    model = cfg.get("model")
    if not isinstance(model, Mapping):
        raise SlotError(f"{task}: the config has no `model` dict")
    discovered = discover_slots(cfg)
    if "rpn_head" in model or "roi_head" in model:
        cascade = is_cascade(task, model.get("roi_head"))
        table = _cascade_table(task, model, discovered) if cascade else SLOTS_BY_TASK[task]
        table = tuple(s for s in table if s.name in two_stage_branches)
        keys = {s.key for s in discovered}
        missing = [s for s in table if s.key not in keys]
        if missing:
            raise SlotError(f"{task}: this two-stage config has no loss at model.{missing[0].key} (branch {missing[0].name}). "
                            f"{task} searches {SUPPORTED_DETECTORS}. The config's loss slots: {_slot_list(discovered)}.")
        if cascade:  # stage heads are the config's choice; Faster R-CNN's table is trusted as before
            _check_searchable(table, discovered)
        return DetLayout(table, dict(two_stage_branches))
    if task != "det":
        raise SlotError(f"{task}: the config has no rpn_head / roi_head; {task} searches {SUPPORTED_DETECTORS}")
    head = model.get("bbox_head")
    if not isinstance(head, Mapping) or not isinstance(head.get("type"), str):
        raise SlotError(f"det: the config's model has neither rpn_head/roi_head nor a bbox_head; det searches {SUPPORTED_DETECTORS}. "
                        f"The config's loss slots: {_slot_list(discovered)}.")
    searchable = [s for s in discovered if s.searchable]
    if not searchable:
        raise SlotError(" ".join(unsupported_error(s) for s in discovered[:1]) or "det: the config's model has no loss slots")
    outside = [s for s in searchable if s.key not in ONE_STAGE_KEYS]
    if outside:
        raise SlotError(f"det: the one-stage config has a searchable loss at model.{outside[0].key} ({outside[0].loss_type}); "
                        f"the det task searches {', '.join(ONE_STAGE_KEYS)} of one-stage heads. "
                        f"The config's loss slots: {_slot_list(discovered)}.")
    one_stage_family(_head_class(head["type"]))
    own = {s.name: dict(_loss_at(model, s.key)) for s in searchable if s.kind in ("cls_sigmoid", "cls_quality", "box")}
    return DetLayout(branch_slots(searchable), {s.name: str(s.branch_kind) for s in searchable}, own,
                     tuple(s for s in discovered if not s.searchable))


def _cascade_table(task: str, model: Mapping[str, Any], discovered: Sequence[Slot]) -> tuple[BranchSlot, ...]:
    """Faster R-CNN's four slots with rcnn_cls / rcnn_reg repeated at every stage's box head:
    the same branch (name, kind, paper weight, head settings) in each (module docstring)."""
    if task != "det":
        raise SlotError(f"{task}: the config's roi_head is a cascade ({model['roi_head']['type']}); cascades are searched "
                        f"by the det task only (ins searches Mask R-CNN-shaped configs: rpn_head, one roi_head.bbox_head "
                        f"and roi_head.mask_head). The config's loss slots: {_slot_list(discovered)}.")
    heads = model["roi_head"].get("bbox_head")
    prefixes = [f"roi_head.bbox_head.{k}" for k in range(len(heads))] if isinstance(heads, list) else ["roi_head.bbox_head"]
    rpn = [s for s in FASTER_RCNN if s.key.startswith("rpn_head.")]
    rcnn = [s for s in FASTER_RCNN if s.key.startswith("roi_head.bbox_head.")]
    stages = [dataclasses.replace(s, key=f"{prefix}.{s.key.rsplit('.', 1)[1]}") for prefix in prefixes for s in rcnn]
    return tuple(rpn + stages)


def _check_searchable(table: Sequence[BranchSlot], discovered: Sequence[Slot]) -> None:
    """A slot of the table that discovery found but cannot search (a stage head autoloss does not
    know): the slot's own one-paragraph reason."""
    by_key = {s.key: s for s in discovered}
    for slot in table:
        found = by_key.get(slot.key)
        if found is not None and not found.searchable:
            raise SlotError(unsupported_error(found))


def _loss_at(model: Any, key: str) -> Mapping[str, Any]:
    parent, name = _lookup(model, key)
    return parent[name]
