"""Which loss slots the ``det`` / ``ins`` tasks search in a given MMDetection config.

    layout = detector_layout("det", cfg, two_stage_branches=BRANCHES)
    layout.slots       # rewrite.BranchSlot per searched branch (what proxy training replaces)
    layout.branches    # {name: "dense" | "box"} in config order (task-info's branches)

* Two-stage configs (a ``rpn_head`` or a ``roi_head``): the task's fixed slot table
  (``rewrite.SLOTS_BY_TASK``: Faster R-CNN's four, + Mask R-CNN's mask for ``ins``), RPN switched
  to softmax as in the paper. A slot of the table the config lacks (a cascade's list of box heads)
  is a ``SlotError`` listing what the config has.
* One-stage configs (only ``det``): the searchable slots that ``mmlab.slots`` discovers in
  ``bbox_head`` (``cls``, ``reg``), with their own classification (a sigmoid head stays sigmoid)
  and boxes switched to decoded ones where the head needs it. Slots autoloss cannot search
  (FCOS/ATSS centerness, ...) keep the config's loss. The head must compute its losses in
  ``AnchorHead``'s, ``ATSSHead``'s or ``FCOSHead``'s ``loss_by_feat``: the rejection recorder
  (``det_samples``) follows those calls.

Every refusal is one paragraph naming the slot or head, what it is, and what is supported.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .rewrite import SLOTS_BY_TASK, BranchSlot, _lookup
from .slots import Slot, SlotError, branch_slots, discover_slots, unsupported_error

ONE_STAGE_HEADS = ("AnchorHead", "ATSSHead", "FCOSHead")  # whose loss_by_feat the recorder follows
SUPPORTED_DETECTORS = ("two-stage configs shaped as Faster R-CNN (rpn_head.loss_cls, rpn_head.loss_bbox and one "
                       "roi_head.bbox_head with loss_cls and loss_bbox; + roi_head.mask_head.loss_mask for ins) and, "
                       "for det, one-stage configs whose bbox_head computes its losses as AnchorHead (RetinaNet), "
                       "ATSSHead or FCOSHead do")


@dataclass(frozen=True)
class DetLayout:
    slots: tuple[BranchSlot, ...]
    branches: dict[str, str]
    # loss configs of the sigmoid classification slots (the task picks their baseline tree)
    sigmoid_losses: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    kept: tuple[Slot, ...] = ()  # discovered slots that keep the config's own loss

    def check_names(self, names: str) -> None:
        """A name in the ``branches`` option that is a slot autoloss cannot search: SlotError
        saying why (other unknown names are the task's ``select_branches``' to report)."""
        for name in (n.strip() for n in names.split(",")):
            slot = next((s for s in self.kept if name in (s.name, s.key)), None)
            if slot is not None:
                raise SlotError(unsupported_error(slot))


def one_stage_family(head_class: type) -> str:
    """"point" (FCOSHead's loss_by_feat) or "anchor" (AnchorHead's, ATSSHead's), from the class
    whose ``loss_by_feat`` the head runs; SlotError for any other."""
    owner = next((c for c in head_class.__mro__ if "loss_by_feat" in vars(c)), None)
    name = owner.__name__ if owner is not None else ""
    if name not in ONE_STAGE_HEADS:
        raise SlotError(f"the det task cannot search {head_class.__name__}: it computes its losses in "
                        f"{name or 'no'}.loss_by_feat, whose calls autoloss's rejection samples do not follow. "
                        f"det searches {SUPPORTED_DETECTORS} (RetinaHead and other subclasses that keep that method).")
    return "point" if name == "FCOSHead" else "anchor"


def _head_class(head_type: str) -> type:
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    cls = MODELS.get(head_type)
    if cls is None:
        raise SlotError(f"the config's bbox_head type '{head_type}' is not registered in mmdet")
    return cls


def _slot_list(slots: Sequence[Slot]) -> str:
    return ", ".join(f"{s.name} (model.{s.key}, {s.loss_type}: {'searchable' if s.searchable else 'not searchable'})"
                     for s in slots) or "none"


def detector_layout(task: str, cfg: Any, two_stage_branches: Mapping[str, str]) -> DetLayout:
    model = cfg.get("model")
    if not isinstance(model, Mapping):
        raise SlotError(f"{task}: the config has no `model` dict")
    discovered = discover_slots(cfg)
    if "rpn_head" in model or "roi_head" in model:
        table = tuple(s for s in SLOTS_BY_TASK[task] if s.name in two_stage_branches)
        keys = {s.key for s in discovered}
        missing = [s for s in table if s.key not in keys]
        if missing:
            raise SlotError(f"{task}: this two-stage config has no loss at model.{missing[0].key} (branch {missing[0].name}). "
                            f"{task} searches {SUPPORTED_DETECTORS}; cascade stages are not searched by the task yet. "
                            f"The config's loss slots: {_slot_list(discovered)}.")
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
    outside = [s for s in searchable if s.key not in ("bbox_head.loss_cls", "bbox_head.loss_bbox")]
    if outside:
        raise SlotError(f"det: the one-stage config has a searchable loss at model.{outside[0].key} ({outside[0].loss_type}); "
                        f"the det task searches bbox_head.loss_cls and bbox_head.loss_bbox of one-stage heads. "
                        f"The config's loss slots: {_slot_list(discovered)}.")
    one_stage_family(_head_class(head["type"]))
    sigmoid = {s.name: dict(_loss_at(model, s.key)) for s in searchable if s.kind == "cls_sigmoid"}
    return DetLayout(branch_slots(searchable), {s.name: str(s.branch_kind) for s in searchable}, sigmoid,
                     tuple(s for s in discovered if not s.searchable))


def _loss_at(model: Any, key: str) -> Mapping[str, Any]:
    parent, name = _lookup(model, key)
    return parent[name]
