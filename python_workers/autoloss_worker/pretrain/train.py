"""Pretrain one MMLab backbone on the generated shapes data (``Recipe``), deterministically.

    state = pretrain_backbone("mmdet", cfg.model.backbone, Normalisation.of(cfg.model.data_preprocessor))

The backbone is built from ``library``'s registry exactly as the config describes it (its
``init_cfg`` dropped: pretraining starts from the library's own initialisation). A throw-away dense
head -- one 1x1 convolution per backbone output to background + shape classes, upsampled to the
image and summed -- makes it a semantic segmenter, trained with class-weighted cross-entropy.
Only the backbone's ``state_dict`` is returned: the keys ``init_cfg=dict(type='Pretrained')``
loads. Same recipe, same library versions and thread count: the same tensors.
"""
from __future__ import annotations

import contextlib
import copy
import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoloss_worker.pretrain.data import Normalisation, pretraining_data
from autoloss_worker.pretrain.recipe import Recipe


def build_backbone(library: str, backbone: Mapping[str, Any]) -> nn.Module:
    """``backbone`` (a config dict, ``init_cfg`` ignored) built by ``library``'s MODELS registry."""
    importlib.import_module(f"{library}.utils").register_all_modules(init_default_scope=False)
    models = importlib.import_module(f"{library}.registry").MODELS
    cfg = copy.deepcopy(dict(backbone))
    cfg["init_cfg"] = None
    cfg.pop("pretrained", None)
    module = models.build(cfg)
    with contextlib.redirect_stdout(sys.stderr):  # mmengine prints each parameter's init; stdout may carry JSON
        module.init_weights()
    return module


class DenseHead(nn.Module):
    """Per-level 1x1 convolutions to ``classes`` logits, upsampled to ``size`` and summed."""

    def __init__(self, channels: list[int], classes: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, classes, 1) for c in channels)

    def forward(self, features: tuple[Tensor, ...], size: tuple[int, int]) -> Tensor:
        return sum(F.interpolate(conv(f), size=size, mode="bilinear", align_corners=False)
                   for conv, f in zip(self.convs, features))


def _levels(out: Tensor | tuple[Tensor, ...] | list[Tensor]) -> tuple[Tensor, ...]:
    return (out,) if isinstance(out, Tensor) else tuple(out)


def pretrain_backbone(library: str, backbone: Mapping[str, Any], norm: Normalisation, recipe: Recipe,
                      progress: Callable[[float], None] | None = None) -> dict[str, Tensor]:
    """The backbone's state_dict after ``recipe`` (see the module docstring)."""
    images, labels = pretraining_data(recipe, norm)
    net = train_dense(lambda: build_backbone(library, backbone), lambda net, x: _levels(net(x)), images, labels,
                      recipe, progress)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def train_dense(build: Callable[[], nn.Module], levels: Callable[[nn.Module, Tensor], tuple[Tensor, ...]],
                images: Tensor, labels: Tensor, recipe: Recipe,
                progress: Callable[[float], None] | None = None) -> nn.Module:
    """``build()``'s network trained in place as a shape-class segmenter: ``levels(net, x)`` are its
    feature maps, a throw-away ``DenseHead`` turns them into logits. Shared by the MMLab backbones
    and the native tasks' encoders (``pretrain.native``); seeded by ``recipe.seed`` alone."""
    n, size = images.shape[0], tuple(images.shape[-2:])
    rng = np.random.default_rng(recipe.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        net = build()
        net.eval()  # (mmdet's ResNet.train returns None: no chaining)
        with torch.no_grad():
            channels = [f.shape[1] for f in levels(net, images[:1])]
        head = DenseHead(channels, recipe.num_classes + 1)
    net.train()
    params = [*net.parameters(), *head.parameters()]
    optimiser = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum)
    weight = torch.tensor([recipe.background_weight] + [1.0] * recipe.num_classes)
    order = np.empty(0, dtype=np.int64)
    for step in range(recipe.iterations):
        if len(order) < recipe.batch_size:  # a fresh permutation per epoch, the ragged tail dropped
            order = rng.permutation(n)
        batch, order = order[:recipe.batch_size], order[recipe.batch_size:]
        x, y = images[batch], labels[batch]
        if recipe.flip:
            flip = torch.from_numpy(rng.random(len(batch)) < 0.5)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            y = torch.where(flip.view(-1, 1, 1), y.flip(-1), y)
        loss = F.cross_entropy(head(levels(net, x), size), y, weight=weight)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if progress is not None:
            progress((step + 1) / recipe.iterations)
    return net
