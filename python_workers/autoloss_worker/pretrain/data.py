"""The pretraining images, normalised exactly as the config's data preprocessor normalises what it
is given: 0-255 pixels (as written to the PNGs the configs load), channel order as the model sees
it, then ``(x - mean) / std``.

    images, labels = pretraining_data(recipe, Normalisation.of(cfg.model.data_preprocessor))
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from autoloss_worker.data.shapes import generate_shapes, split_seed
from autoloss_worker.pretrain.recipe import PRETRAIN_SPLIT, Recipe


@dataclass(frozen=True)
class Normalisation:
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    # The configs load PNGs as BGR; bgr_to_rgb=True hands the model RGB. False: the model sees BGR.
    bgr_to_rgb: bool = False

    @classmethod
    def of(cls, preprocessor: Mapping[str, Any] | None) -> Normalisation:
        """The normalisation of an MMLab ``data_preprocessor`` config (absent keys: the
        preprocessors' own defaults, no normalisation and no channel swap)."""
        p = dict(preprocessor or {})
        mean, std = p.get("mean"), p.get("std")
        return cls(mean=tuple(float(v) for v in mean) if mean is not None else cls.mean,
                   std=tuple(float(v) for v in std) if std is not None else cls.std,
                   bgr_to_rgb=bool(p.get("bgr_to_rgb", p.get("rgb_to_bgr", False))))

    def apply(self, rgb01: np.ndarray) -> Tensor:
        """(n, 3, H, W) RGB in [0, 1] -> the float32 tensor the backbone gets."""
        pixels = np.round(rgb01 * 255.0)  # the PNGs' uint8 values (data.coco.write_coco)
        if not self.bgr_to_rgb:
            pixels = pixels[:, ::-1]  # the model sees the loaded BGR order
        x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        return (x - mean) / std


def pretraining_data(recipe: Recipe, norm: Normalisation) -> tuple[Tensor, Tensor]:
    """(images (n, 3, S, S) float32 normalised, labels (n, S, S) int64: 0 background, 1..C shapes)."""
    split = generate_shapes(recipe.images, split_seed(PRETRAIN_SPLIT, recipe.data_seed), size=recipe.size,
                            num_classes=recipe.num_classes)
    return norm.apply(split.images), torch.from_numpy(split.semantic)
