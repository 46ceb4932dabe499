"""Shapes-pretrained encoders for the native tasks (seg, pose), as the MMLab configs' backbones have.

    spec = NativeSpec("seg", {"width": 16}, encoder=SegEncoder(...))
    state = native_encoder_state(spec)   # built once (~1000 SGD steps), cached beside the MMLab checkpoints

The paper's proxies start from ImageNet-pretrained backbones; without one the native seg proxy
leaves the all-background solution only late (``shared/notes/seg-proxy-rungs.md``: every loss but
one at mIoU 0.1861 after 33 of its 300 iterations), so short trainings cannot rank losses. The
encoder of the task's own network is pretrained with the MMLab backbones' recipe (``train_dense``:
shape-class segmentation with a throw-away head, class-weighted CE) on 64x64 images of the
"pretrain" split, a seed stream no search or evaluation uses (``pretrain.recipe``); only the
encoder's weights are kept, the decoder and classifier still start from the seed's initialisation.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from autoloss_worker.data.shapes import generate_shapes, split_seed
from autoloss_worker.pretrain.cache import CODE_MODULES, code_version, ensure_checkpoint
from autoloss_worker.pretrain.recipe import PRETRAIN_SPLIT, Recipe

# 64x64 like the native tasks' images; 1000 steps of batch 32 over 2,048 images (~16 epochs).
NATIVE_RECIPE = Recipe(images=2048, size=64, iterations=1000, batch_size=32)


@dataclass(frozen=True)
class Encoder:
    """How a task exposes the part of its network that is pretrained: ``build()`` the whole
    network (its own initialisation), ``levels(net, x)`` its encoder's feature maps, and
    ``prefixes`` the state_dict keys that belong to the encoder."""

    build: Callable[[], nn.Module]
    levels: Callable[[nn.Module, Tensor], tuple[Tensor, ...]]
    prefixes: tuple[str, ...]
    code: tuple[str, ...]  # modules whose source defines the network (part of the cache key)

    def owns(self, key: str) -> bool:
        return key.split(".", 1)[0] in self.prefixes


@dataclass(frozen=True)
class NativeSpec:
    """One native encoder checkpoint: the task, its network's arguments, the recipe."""

    task: str
    model: Mapping[str, Any]
    encoder: Encoder = field(compare=False, repr=False)
    recipe: Recipe = NATIVE_RECIPE

    @classmethod
    def of(cls, task: str, model: Mapping[str, Any], encoder: Encoder) -> NativeSpec:
        """With ``NATIVE_RECIPE`` as it is when called (tests swap in a tiny one)."""
        return cls(task, model, encoder, NATIVE_RECIPE)

    def to_json(self) -> dict[str, Any]:
        return {"native": self.task, "model": dict(self.model), "recipe": dataclasses.asdict(self.recipe)}

    def name(self) -> str:
        keyed = {**self.to_json(), "code": code_version((*CODE_MODULES, "autoloss_worker.pretrain.native", *self.encoder.code)),
                 "torch": torch.__version__}
        digest = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]
        return f"native-{self.task}-{digest}"

    def label(self) -> str:
        return f"native {self.task} encoder"

    def train(self, progress: Callable[[float], None] | None) -> dict[str, Tensor]:
        from autoloss_worker.pretrain.train import train_dense

        r = self.recipe
        split = generate_shapes(r.images, split_seed(PRETRAIN_SPLIT, r.data_seed), size=r.size, num_classes=r.num_classes)
        net = train_dense(self.encoder.build, self.encoder.levels, torch.from_numpy(split.images),
                          torch.from_numpy(split.semantic), r, progress)
        return {k: v.detach().clone() for k, v in net.state_dict().items() if self.encoder.owns(k)}


_LOADED: dict[str, dict[str, Tensor]] = {}  # per process: a worker loads each checkpoint once


def native_encoder_state(spec: NativeSpec) -> dict[str, Tensor]:
    """The encoder weights of ``spec``: from the cache, trained now (progress on stderr) if absent."""
    name = spec.name()
    if name not in _LOADED:
        _LOADED[name] = torch.load(ensure_checkpoint(spec), map_location="cpu", weights_only=True)
    return _LOADED[name]


def load_encoder(model: nn.Module, spec: NativeSpec) -> nn.Module:
    """``model`` with its encoder replaced by the pretrained one; every other weight untouched."""
    state = native_encoder_state(spec)
    missing, unexpected = model.load_state_dict(state, strict=False)
    stray = [k for k in missing if spec.encoder.owns(k)]
    if stray or unexpected:
        raise ValueError(f"the cached {spec.label()} does not fit the network (missing {stray}, unexpected {unexpected})")
    return model
