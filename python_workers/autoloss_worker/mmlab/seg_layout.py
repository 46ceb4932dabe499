"""Which loss slots the ``mmseg`` task searches in a given MMSegmentation config.

    layout = segmentor_layout(cfg)
    layout.slots       # rewrite.BranchSlot per branch (what proxy training replaces), config order
    layout.branches    # {"loss": "dense", "aux": "dense"} (PSPNet), {"loss0": ..., "loss1": ...} (OCRNet)

The branches are the searchable slots that ``mmlab.slots`` discovers, named as ``autoloss slots``
names them: the decode head's ``loss`` (a list of decode heads, as in CascadeEncoderDecoder:
``loss0``, ``loss1``, ...), an auxiliary head's ``aux`` (a list of them: ``aux0``, ``aux1``, ...),
and every item of a list of losses on its own (``loss_decode=[CE, Dice]``: ``loss_0``,
``loss_1``). Each keeps the config's ``loss_weight`` and ``reduction``.

A slot becomes a branch only where the rejection recorder (``mmseg_samples``) sees what its loss
sees in training, i.e. where the head computes its losses in ``BaseDecodeHead.loss_by_feat``: one
call of each loss on the head's logits resized to the label, against the segmentation labels.
Heads with their own ``loss_by_feat`` (STDCHead's boundary labels, PIDHead's four different
inputs, DAHead's three outputs, EncHead, PointHead's point logits, ...) keep the config's loss,
as do slots ``mmlab.slots`` cannot search (``use_sigmoid=True``); naming one in the ``branches``
option is a ``SlotError`` saying why. The segmentor must be an ``EncoderDecoder`` or a
``CascadeEncoderDecoder`` (or a subclass computing its losses as they do).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .slot_layout import SlotLayout, config_model, slot_layout
from .slots import Slot, SlotError, method_owner, registered_class, unsupported_error

SEGMENTORS = ("EncoderDecoder", "CascadeEncoderDecoder")
SEGMENTOR_METHODS = ("loss", "_decode_head_forward_train", "_auxiliary_head_forward_train")
# BaseCascadeDecodeHead.loss only adds the previous head's output to the forward; both end in
# BaseDecodeHead.loss_by_feat.
HEAD_LOSS_OWNERS = {"loss": ("BaseDecodeHead", "BaseCascadeDecodeHead"), "loss_by_feat": ("BaseDecodeHead",)}
SUPPORTED = ("segmentors built as EncoderDecoder or CascadeEncoderDecoder whose decode and auxiliary heads "
             "compute their losses in BaseDecodeHead.loss_by_feat with a softmax loss (FCN, PSP, ASPP, "
             "DeepLabV3+, UPer, OCR, ... heads)")


def segmentor_layout(cfg: Any) -> SlotLayout:
    model = config_model(cfg, "mmseg")
    _check_segmentor(model)
    return slot_layout(cfg, _refusal, _nothing_searchable)


def _refusal(slot: Slot) -> str | None:
    return unsupported_error(slot) if not slot.searchable else _head_refusal(slot)


def _nothing_searchable(kept: dict[str, str]) -> str:
    first = next(iter(kept.values()), "the config's model has no loss slots")
    return f"mmseg: no loss of this config can be searched. {first}"


def _check_segmentor(model: Mapping[str, Any]) -> None:
    cls = registered_class("mmseg", model.get("type"))
    if cls is None:
        raise SlotError(f"mmseg: the config's model type {model.get('type')!r} is not registered in mmseg; "
                        f"the mmseg task searches {SUPPORTED}")
    for method in SEGMENTOR_METHODS:
        owner = method_owner(cls, method)
        if owner not in SEGMENTORS:
            raise SlotError(f"the mmseg task cannot search {cls.__name__}: it computes its losses in {owner or 'no'}.{method}, "
                            f"whose calls autoloss's rejection samples do not follow. It searches {SUPPORTED}.")


def _head_refusal(slot: Slot) -> str | None:
    """None for a head whose losses ``BaseDecodeHead.loss_by_feat`` computes; else the paragraph."""
    cls = registered_class("mmseg", slot.head_type)
    if cls is None:  # discovery found the head registered; an import failure here is unexpected
        return f"mmseg: the head type {slot.head_type!r} of model.{slot.key} is not registered in mmseg"
    for method, owners in HEAD_LOSS_OWNERS.items():
        owner = method_owner(cls, method)
        if owner not in owners:
            return (f"the mmseg task cannot search the loss at model.{slot.key} ({slot.loss_type} in {slot.head_type}): "
                    f"{slot.head_type} computes its losses in {owner or 'no'}.{method}, so what its loss sees is not "
                    f"the head's logits against the segmentation labels that autoloss's rejection samples record. "
                    f"It searches {SUPPORTED}. Leave this slot out of `branches` to keep the config's own "
                    f"{slot.loss_type} there.")
    return None
