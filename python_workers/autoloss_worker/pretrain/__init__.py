"""Pretrained backbones for the shipped MMLab configs, trained here on generated shapes data.

    cfg = resolve_pretrained(Config.fromfile(path), "mmdet")   # the placeholder -> this backbone's checkpoint
    path = ensure_checkpoint(pretrained_spec(cfg, "mmdet"))     # built once, cached (~/.cache/autoloss/pretrained)
    python -m autoloss_worker.pretrain [--config CFG ...]      # build ahead of time (make pretrain)

The paper's proxies start from ImageNet-pretrained backbones; nothing can be downloaded here, so
each shipped config's backbone is pretrained as a shape-class segmenter (``recipe``: images from
a seed split no search or evaluation uses; ``data``: normalised as the config's preprocessor;
``train``: the loop; ``cache``: keys, locking, atomic writes; ``resolve``: the placeholder in the
configs and mmengine's ``autoloss://`` checkpoint scheme).
"""
from autoloss_worker.pretrain.cache import Spec, checkpoint_path, ensure_checkpoint
from autoloss_worker.pretrain.recipe import DEFAULT_RECIPE, PRETRAIN_SPLIT, Recipe
from autoloss_worker.pretrain.resolve import PLACEHOLDER, placeholder_backbone, pretrained_spec, resolve_pretrained

__all__ = ["DEFAULT_RECIPE", "PLACEHOLDER", "PRETRAIN_SPLIT", "Recipe", "Spec", "checkpoint_path", "ensure_checkpoint",
           "placeholder_backbone", "pretrained_spec", "resolve_pretrained"]
