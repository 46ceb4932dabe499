"""The branches an MMLab task searches in a config: one dense branch per searchable slot, the rest
kept as the config has them. Shared by ``seg_layout`` and ``pose_layout``, which say which slots
their task can search.

    layout = slot_layout(cfg, refusal, nothing_searchable)
    layout.slots, layout.branches, layout.kept
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .rewrite import BranchSlot
from .slots import Slot, SlotError, branch_slots, discover_slots


@dataclass(frozen=True)
class SlotLayout:
    slots: tuple[BranchSlot, ...]  # what proxy training replaces, config order
    branches: dict[str, str]  # branch name -> kind
    # discovered slots that keep the config's own loss, with the paragraph saying why
    kept: dict[str, str] = field(default_factory=dict)

    def check_names(self, names: str) -> None:
        """A name in the ``branches`` option that is a kept slot (by branch name or key): SlotError
        saying why (other unknown names are ``select_branches``' to report)."""
        for name in (n.strip() for n in names.split(",")):
            if name in self.kept:
                raise SlotError(self.kept[name])


def slot_layout(cfg: Any, refusal: Callable[[Slot], str | None],
                nothing_searchable: Callable[[dict[str, str]], str]) -> SlotLayout:
    """Every slot ``discover_slots`` finds is a branch unless ``refusal(slot)`` gives the paragraph
    saying why not; with no branch at all, ``SlotError(nothing_searchable(kept))``."""
    branches: list[Slot] = []
    kept: dict[str, str] = {}
    for slot in discover_slots(cfg):
        why = refusal(slot)
        if why is None:
            branches.append(slot)
        else:
            kept[slot.name] = kept[slot.key] = why
    if not branches:
        raise SlotError(nothing_searchable(kept))
    return SlotLayout(branch_slots(branches), {s.name: "dense" for s in branches}, kept)


def config_model(cfg: Any, task: str) -> Mapping[str, Any]:
    """The config's ``model`` dict, or SlotError naming ``task``."""
    model = cfg.get("model")
    if not isinstance(model, Mapping):
        raise SlotError(f"{task}: the config has no `model` dict")
    return model
