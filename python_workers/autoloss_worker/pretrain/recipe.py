"""What a pretraining run does (``Recipe``) and which shapes images it may see (``PRETRAIN_SPLIT``).

Seeds: every generated image in autoloss comes from ``data.shapes.split_seed(name, data_seed)``,
a 63-bit SHA-256 of the split's name and the data seed. Search and evaluation use the names
"train", "val" and "eval" (native tasks, ``mmlab.shapes_data``), at any data seed; pretraining uses
only the name ``PRETRAIN_SPLIT`` = "pretrain" (at ``Recipe.data_seed``, 0 by default), a name no
search or evaluation split uses, so its images come from a seed stream disjoint from theirs (two
names collide only if SHA-256 does on 63 bits).
"""
from __future__ import annotations

from dataclasses import dataclass

PRETRAIN_SPLIT = "pretrain"  # never a search/evaluation split name: see the module docstring


@dataclass(frozen=True)
class Recipe:
    """Dense shape-class segmentation (background + ``num_classes`` shapes) of the generated data,
    class-weighted cross-entropy, plain SGD with momentum, random horizontal flips. Every field is
    part of the cache key (``pretrain.cache``): changing one rebuilds the checkpoint."""

    images: int = 1024  # generated training images (seed split PRETRAIN_SPLIT)
    size: int = 128  # image side, px
    num_classes: int = 4  # shape classes (the shipped configs' 4), plus background
    data_seed: int = 0
    iterations: int = 3000
    batch_size: int = 16
    lr: float = 0.05
    momentum: float = 0.9
    background_weight: float = 0.2  # CE weight of the background class (the shapes cover little of an image)
    flip: bool = True  # random horizontal flips
    seed: int = 0  # head/backbone initialisation and batch order


# Measured (docs/mmlab.md, "Pretrained backbones"): det bbox mAP 0.066 -> 0.249 after the
# 150-iteration proxy; about 2 min on 2 idle cores.
DEFAULT_RECIPE = Recipe()
