"""A whole MMLab model pretrained with its config's own losses: the starting point of a warm-started
proxy (the MMLab tasks' option ``warm_start``, ``pretrain.warm_start``).

    spec = ModelSpec.of("mmdet", proxy_cfg)   # the config as proxy training gets it, its own losses
    path = ensure_checkpoint(spec)            # ~/.cache/autoloss/pretrained/mmdet-model-FasterRCNN-<hash>.pth

Why: from a pretrained backbone alone, det's heads learn from random weights in every proxy run, so
at a third of the 150-iteration proxy no box loss has a detector to improve yet (the R-CNN
classifier has not learned) and the short rung ranks nothing (README, *Successive halving*). Here
the config is trained as its authors wrote it (every loss its own, the backbone from its usual
start) for ``WarmStartRecipe.iterations`` on shapes images of the ``PRETRAIN_SPLIT`` seed stream,
which no search or evaluation draws from; ``pretrain.warm_start`` then starts every proxy training
from these weights with the searched branches' output layers at their initialisation again.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from autoloss_worker.pretrain.cache import CODE_MODULES, code_version
from autoloss_worker.pretrain.recipe import PRETRAIN_SPLIT


@dataclass(frozen=True)
class WarmStartRecipe:
    """The proxy schedule of ``mmlab.rewrite`` at a longer length, on the pretraining images. Every
    field is part of the cache key."""

    iterations: int = 300  # det: bbox mAP 0.341 on its own validation images (the checkpoint's meta)
    warmup_iters: int = 50
    data_seed: int = 0  # of the PRETRAIN_SPLIT stream
    seed: int = 0  # initialisation and batch order


WARM_START_RECIPE = WarmStartRecipe()

# The modules whose source decides the weights, besides the backbone pretraining's.
WHOLE_MODEL_CODE = (*CODE_MODULES, "autoloss_worker.pretrain.whole_model", "autoloss_worker.mmlab.rewrite",
                    "autoloss_worker.mmlab.shapes_data")


@dataclass(frozen=True)
class ModelSpec:
    """One whole-model checkpoint: which library, which config (Python text, its own losses), which recipe."""

    library: str
    config: str  # the config as Python text (mmengine's pretty_text: tuples stay tuples, as mmcv needs)
    recipe: WarmStartRecipe = WARM_START_RECIPE

    @classmethod
    def of(cls, library: str, cfg: Any, recipe: WarmStartRecipe | None = None) -> ModelSpec:
        """``cfg`` as proxy training starts from it (placeholders resolved, before any data reseed)."""
        return cls(library, cfg.pretty_text, recipe or WARM_START_RECIPE)

    def to_json(self) -> dict[str, Any]:
        return {"library": self.library, "config": self.config, "recipe": asdict(self.recipe)}

    def name(self) -> str:
        """``<library>-model-<model type>-<hash>``: the checkpoint's file stem."""
        import torch

        library = importlib.import_module(self.library)
        keyed = {**self.to_json(), "code": code_version(WHOLE_MODEL_CODE), "torch": torch.__version__,
                 "library_version": getattr(library, "__version__", "")}
        digest = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]
        kind = str(self._config().model.get("type", "model")).replace("/", "_").replace(".", "_")
        return f"{self.library}-model-{kind}-{digest}"

    def label(self) -> str:
        return f"whole {self.library} {self._config().model.get('type')} (the config's own losses)"

    def _config(self) -> Any:
        from mmengine.config import Config

        return Config.fromstring(self.config, ".py")

    def train(self, progress: Callable[[float], None] | None) -> dict[str, Any]:
        import torch

        from autoloss_worker.mmlab.rewrite import ProxySchedule, rewrite_config, train_proxy
        from autoloss_worker.mmlab.shapes_data import reseed_shapes_data

        r = self.recipe
        cfg = reseed_shapes_data(self._config(), r.data_seed, stream=PRETRAIN_SPLIT)
        cfg = rewrite_config(cfg, None, (), ProxySchedule(max_iters=r.iterations, warmup_iters=r.warmup_iters,
                                                          seed=r.seed, checkpoint=True))
        # pycocotools prints its summary on stdout, which may carry a CLI's output: send it to stderr
        with tempfile.TemporaryDirectory(prefix="autoloss-warm-start-") as work, contextlib.redirect_stdout(sys.stderr):
            result = train_proxy(cfg, work, progress=progress)
            if result["invalid"]:
                raise RuntimeError(f"pretraining the {self.label()} failed: {result['reason']}")
            saved = torch.load(Path(work) / f"iter_{r.iterations}.pth", map_location="cpu", weights_only=False)
        # a plain state dict (loadable with torch.load's weights_only) and the score on its own images
        return {"state_dict": saved["state_dict"], "meta": {"metrics": {k: float(v) for k, v in result["metrics"].items()}}}

