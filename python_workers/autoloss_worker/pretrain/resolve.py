"""The shipped configs' pretrained-backbone placeholder, and the checkpoint scheme that loads it.

A shipped config's backbone says

    init_cfg=dict(type='Pretrained', checkpoint='autoloss://shapes-pretrained')

(a dict, so a config inheriting it can point ``checkpoint`` at its own file or set
``init_cfg=None``). ``resolve_pretrained(cfg, library)`` turns that placeholder into
``autoloss://shapes-pretrained/<name>`` for the config's own (possibly inherited and edited)
backbone, recording the backbone and recipe in the cache (``pretrain.cache``); with
``enabled=False`` it sets ``init_cfg=None`` instead (random initialisation, as before pretraining
existed). Any other ``init_cfg`` -- a user's own checkpoint, ``None`` -- is left untouched.

Importing this module registers the ``autoloss://`` scheme with mmengine's ``CheckpointLoader``:
loading ``autoloss://shapes-pretrained/<name>`` trains the checkpoint first if it is not cached, in
whichever process builds the model (a worker, or MMLab's own ``tools/train.py`` through a fragment's
``custom_imports``).
"""
from __future__ import annotations

import copy
from typing import Any

from autoloss_worker.pretrain.cache import Spec, ensure_checkpoint, read_spec, write_spec
from autoloss_worker.pretrain.recipe import DEFAULT_RECIPE, Recipe

SCHEME = "autoloss://"
PLACEHOLDER = SCHEME + "shapes-pretrained"


def placeholder_backbone(cfg: Any) -> Any | None:
    """The config's ``model.backbone`` when its ``init_cfg`` is the placeholder, else None."""
    backbone = cfg.get("model", {}).get("backbone")
    init = backbone.get("init_cfg") if backbone is not None else None
    if isinstance(init, dict) and init.get("type") == "Pretrained" and init.get("checkpoint") == PLACEHOLDER:
        return backbone
    return None


def pretrained_spec(cfg: Any, library: str, recipe: Recipe | None = None) -> Spec:
    """The pretraining spec of ``cfg``'s backbone, normalised as ``cfg.model.data_preprocessor``
    (``recipe`` None: ``DEFAULT_RECIPE``, looked up when called so that tests can swap it)."""
    return Spec.of(library, cfg.model.backbone, cfg.model.get("data_preprocessor"), recipe or DEFAULT_RECIPE)


def resolve_pretrained(cfg: Any, library: str, *, enabled: bool = True, recipe: Recipe | None = None) -> Any:
    """``cfg`` itself when its backbone does not carry the placeholder; otherwise a copy whose
    placeholder names the checkpoint of this backbone (``enabled``) or whose ``init_cfg`` is None."""
    if placeholder_backbone(cfg) is None:
        return cfg
    cfg = copy.deepcopy(cfg)
    backbone = cfg.model.backbone
    if enabled:
        backbone.init_cfg.checkpoint = f"{PLACEHOLDER}/{write_spec(pretrained_spec(cfg, library, recipe))}"
    else:
        backbone.init_cfg = None
    return cfg


def load_autoloss_checkpoint(filename: str, map_location: Any = None) -> Any:
    """mmengine's loader for ``autoloss://shapes-pretrained/<name>`` (build if needed, then load) and
    for ``autoloss://warm-start/...`` (``pretrain.warm_start``)."""
    import torch

    from autoloss_worker.pretrain.warm_start import PREFIX as WARM_START, load_warm_start

    if filename.startswith(WARM_START):
        return load_warm_start(filename, map_location)
    prefix = PLACEHOLDER + "/"
    if not filename.startswith(prefix):
        raise ValueError(f"{filename}: not a resolved autoloss checkpoint. '{PLACEHOLDER}' is a placeholder that the "
                         "autoloss tasks resolve (autoloss_worker.pretrain.resolve_pretrained); outside them, run "
                         "`python -m autoloss_worker.pretrain --config CFG` and set the backbone's init_cfg.checkpoint "
                         "to the path it prints")
    path = ensure_checkpoint(read_spec(filename[len(prefix):]))
    return torch.load(path, map_location=map_location, weights_only=True)


def _register_scheme() -> None:
    try:
        from mmengine.runner.checkpoint import CheckpointLoader
    except ImportError:  # no mmengine: nothing can load MMLab configs either
        return
    CheckpointLoader.register_scheme(prefixes=SCHEME, loader=load_autoloss_checkpoint, force=True)


_register_scheme()
