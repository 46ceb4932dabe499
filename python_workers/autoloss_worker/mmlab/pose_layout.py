"""Which loss slots the ``mmpose`` task searches in a given MMPose config.

    layout = estimator_layout(cfg)
    layout.slots       # rewrite.BranchSlot per branch (what proxy training replaces), config order
    layout.branches    # {"loss": "dense"} (SimpleBaseline, HRNet, ViPNAS, CPM with one loss),
                       # {"loss_0": ..., "loss_3": ...} (MSPN / RSN: a list of losses, one per unit)

The branches are the searchable heatmap slots that ``mmlab.slots`` discovers, named as ``autoloss
slots`` names them: the head's ``loss`` (``head.loss``), or, where the head takes a list of losses
(``CPMHead``: one per stage; ``MSPNHead``: one per stage and unit), every item on its own:
``loss_0``, ``loss_1``, ... Each keeps the config's ``loss_weight``. ``HeatmapHead`` (and its
``ViPNASHead``) builds a single loss module; a list there is refused by MMPose itself.

A slot becomes a branch only where the rejection recorder (``mmpose_samples``) sees what its loss
sees in training and ξ can decode it: a ``TopdownPoseEstimator`` whose head computes its losses in
``HeatmapHead.loss``, ``CPMHead.loss`` or ``MSPNHead.loss``, i.e. calls its loss module(s) on
predicted heatmaps (B, K, H, W) against the target heatmaps and keypoint weights, and decodes with
its ``decoder`` codec. Everything else keeps the config's loss and is refused by name when asked
for: a loss that is not a heatmap loss (SimCC/RTMCC's ``KLDiscretLoss``, RLE and other coordinate
regression, DSNT / integral regression, ...), a head that calls its loss another way (associative
embedding, CID, DEKR, the 3-D ``InternetHead``, a ``VisPredictHead``'s wrapped head), and
bottom-up or lifting estimators.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .slot_layout import SlotLayout, config_model, slot_layout
from .slots import Slot, SlotError, method_owner, registered_class

ESTIMATORS = ("TopdownPoseEstimator",)  # the owner of the estimator's `loss`
HEADS = ("HeatmapHead", "CPMHead", "MSPNHead")  # owners of the head's `loss` the recorder follows
LIST_HEADS = ("CPMHead", "MSPNHead")  # build a list of losses as one module per stage (and unit)
SLOT_KEY = re.compile(r"^head\.loss(\.\d+)?$")  # the head's own loss, or an item of its list
SUPPORTED = ("top-down heatmap heads (TopdownPoseEstimator with a HeatmapHead, ViPNASHead, CPMHead or MSPNHead, "
             "i.e. SimpleBaseline, HRNet, ViPNAS, Hourglass, CPM, MSPN and RSN configs) whose `head.loss` is a heatmap "
             "loss (KeypointMSELoss, KeypointOHKMMSELoss, AdaptiveWingLoss, FocalHeatmapLoss), one branch per item "
             "of a list of them")


def estimator_layout(cfg: Any) -> SlotLayout:
    model = config_model(cfg, "mmpose")
    _check_estimator(model)
    head_type = str((model.get("head") or {}).get("type", ""))
    head_owner, head_why = _head_loss_owner(head_type)

    def nothing_searchable(kept: dict[str, str]) -> str:
        first = next(iter(kept.values()), (
            f"Its model has no loss slots (no `loss`, `loss_*` or `*_loss` entry holding a loss type: {head_type or 'the head'} "
            f"uses the losses it defaults to, which the config does not name). The mmpose task searches {SUPPORTED}."))
        return f"mmpose: no loss of this config can be searched. {first}"

    return slot_layout(cfg, lambda slot: _slot_refusal(slot, head_owner, head_why), nothing_searchable)


def _paragraph(slot: Slot, why: str) -> str:
    return (f"the mmpose task cannot search the loss at model.{slot.key} ({slot.loss_type} in {slot.head_type or 'no head'}, "
            f"kind {slot.kind}): {why}. It searches {SUPPORTED}. Leave this slot out of `branches` to keep the "
            f"config's own {slot.loss_type} there.")


def _slot_refusal(slot: Slot, head_owner: str, head_why: str | None) -> str | None:
    """None for a slot the task searches; else the one-paragraph reason."""
    if not slot.searchable:
        return _paragraph(slot, slot.reason)
    if not SLOT_KEY.match(slot.key):
        return _paragraph(slot, f"the slot is not the estimator's head loss (model.head.loss or an item of it); the "
                                f"recorder follows only the head's own call of its loss module")
    if head_why is not None:
        return _paragraph(slot, head_why)
    if slot.key != "head.loss" and head_owner not in LIST_HEADS:
        return _paragraph(slot, f"{slot.head_type} takes one loss: MMPose builds a list there as one nn.Sequential, "
                                f"which cannot take the head's (heatmaps, targets, weights) call; only CPMHead and "
                                f"MSPNHead take a list (one loss per stage or unit)")
    return None


def _check_estimator(model: Mapping[str, Any]) -> None:
    cls = registered_class("mmpose", model.get("type"))
    if cls is None:
        raise SlotError(f"mmpose: the config's model type {model.get('type')!r} is not registered in mmpose; "
                        f"the mmpose task searches {SUPPORTED}")
    owner = method_owner(cls, "loss")
    if owner not in ESTIMATORS:
        raise SlotError(f"the mmpose task cannot search {cls.__name__}: it computes its losses in {owner or 'no'}.loss, "
                        f"not as a top-down estimator (one instance crop, its head's heatmaps against target heatmaps, "
                        f"scored by COCO OKS AP), which is what autoloss's rejection samples and ξ follow. "
                        f"It searches {SUPPORTED}.")


def _head_loss_owner(head_type: str) -> tuple[str, str | None]:
    """(the class whose ``loss`` the head runs, None) for a head whose losses the recorder
    follows; else (that class or "", why not, one clause)."""
    cls = registered_class("mmpose", head_type)
    if cls is None:
        return "", f"the head type {head_type!r} is not registered in mmpose"
    owner = method_owner(cls, "loss")
    if owner not in HEADS:
        return owner, (f"{head_type} computes its losses in {owner or 'no'}.loss, which does not call its loss on "
                       f"predicted against target heatmaps of one crop as HeatmapHead, CPMHead and MSPNHead do")
    return owner, None
