"""Warm-started proxy training (the MMLab tasks' option ``warm_start``): start from the whole model
pretrained with the config's own losses (``pretrain.whole_model``), with the layers that produce the
searched branches' predictions at their initialisation again.

    url = warm_start_url("mmdet", proxy_cfg, slots)   # builds the checkpoint once (cached)
    cfg.load_from = url   # autoloss://warm-start/<name>?without=roi_head.bbox_head.fc_reg

The searched branch's output layer must start again because it learned the handcrafted loss's
answer; every layer before it keeps what the handcrafted losses taught it (the shared features,
the other branches' heads), as a detector fine-tuned from a trained model would. mmengine loads
``load_from`` after the model's own ``init_weights`` and non-strictly, so the layers left out of the
loaded state keep exactly the initialisation the config gives them (mmdet's normal(0, 0.001) for
``fc_reg``, ...) from the training's seed. Caveat, measured in docs/fidelity.md, *Warm-started det proxy*:
the shared layers learned under the config's own gradients, which may favour losses like them.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from autoloss_worker.pretrain.cache import checkpoint_path, ensure_checkpoint

PREFIX = "autoloss://warm-start/"

# A head's loss attribute -> the names its head gives the layer producing what that loss reads
# (mmdet's two-stage, cascade, mask and one-stage heads; mmseg's decode heads; mmpose's heads).
# A head has at most one of them per loss.
OUTPUT_LAYERS: dict[str, tuple[str, ...]] = {
    "loss_cls": ("fc_cls", "rpn_cls", "retina_cls", "conv_cls", "atss_cls", "gfl_cls", "rtm_cls", "multi_level_conv_cls"),
    "loss_bbox": ("fc_reg", "rpn_reg", "retina_reg", "conv_reg", "atss_reg", "gfl_reg", "rtm_reg", "multi_level_conv_reg"),
    "loss_centerness": ("conv_centerness", "atss_centerness"),
    "loss_obj": ("multi_level_conv_obj",),
    "loss_mask": ("conv_logits",),
    "loss_decode": ("conv_seg",),
    "loss": ("final_layer",),
}


def output_layers(slots: Sequence[Any], state_keys: Iterable[str]) -> list[str]:
    """The module paths (under ``model``) of the layers that produce the ``slots``' predictions
    (``mmlab.rewrite.BranchSlot``s, their ``key`` the loss's dotted path), found among the
    checkpoint's ``state_keys``; ValueError naming the branch when its head has none of the known
    layers (or more than one)."""
    keys = list(state_keys)
    found: list[str] = []
    for slot in slots:
        parts = slot.key.split(".")
        at = max((i for i, p in enumerate(parts) if p.startswith("loss")), default=None)
        if at is None or at == 0 or parts[at] not in OUTPUT_LAYERS:
            raise ValueError(f"option warm_start: branch {slot.name} (model.{slot.key}) is not a loss of a head autoloss "
                             f"knows the output layer of (loss names: {', '.join(OUTPUT_LAYERS)})")
        head = ".".join(parts[:at])
        here = [f"{head}.{name}" for name in OUTPUT_LAYERS[parts[at]]
                if any(k.startswith(f"{head}.{name}.") for k in keys)]
        if len(here) != 1:
            raise ValueError(f"option warm_start: branch {slot.name}: the head at model.{head} has "
                             f"{'none' if not here else 'more than one'} of the layers {', '.join(OUTPUT_LAYERS[parts[at]])} "
                             f"that produce a {parts[at]}'s prediction{'' if not here else ': ' + ', '.join(here)}; "
                             "train this config without warm_start")
        if here[0] not in found:
            found.append(here[0])
    return found


_STATE_KEYS: dict[str, list[str]] = {}  # per process: each checkpoint file's keys, read once


def warm_start_url(library: str, cfg: Any, slots: Sequence[Any]) -> str:
    """``load_from`` for a proxy of ``cfg`` searching ``slots``: the whole-model checkpoint of
    ``cfg`` (trained now, progress on stderr, unless cached) without the slots' output layers."""
    import torch

    from autoloss_worker.pretrain.whole_model import ModelSpec

    path = ensure_checkpoint(ModelSpec.of(library, cfg))
    if str(path) not in _STATE_KEYS:
        _STATE_KEYS[str(path)] = list(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])
    return f"{PREFIX}{path.stem}?without={','.join(output_layers(slots, _STATE_KEYS[str(path)]))}"


def load_warm_start(url: str, map_location: Any = None) -> dict[str, Any]:
    """mmengine's loader for ``warm_start_url``'s URLs: the cached checkpoint, the named layers' weights left out."""
    import torch

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    path = checkpoint_path(name)
    if parts.netloc != "warm-start" or not name or not path.is_file():
        raise ValueError(f"{url}: no warm-start checkpoint {path}; the MMLab tasks build it (option warm_start=true)")
    without = [p for p in parse_qs(parts.query).get("without", [""])[0].split(",") if p]
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    state = {k: v for k, v in checkpoint["state_dict"].items() if not any(k.startswith(p + ".") for p in without)}
    return {**checkpoint, "state_dict": state}
