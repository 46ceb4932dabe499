"""Pretrained checkpoints cached outside the repository, built once, safe under concurrency.

    spec = Spec.of("mmdet", cfg.model.backbone, cfg.model.data_preprocessor)
    path = ensure_checkpoint(spec)   # ~/.cache/autoloss/pretrained/mmdet-ResNet-<hash>.pth

The file name's hash covers everything the weights depend on: the library, the backbone config
(without ``init_cfg``), the input normalisation, the recipe, the pretraining code and data
generator (their source) and the torch and library versions; change any and a new checkpoint is
built beside the old one. Builders take an exclusive lock on ``<name>.lock``, look again, train,
write a temporary file and rename it into place, so two workers starting at once train once and
nobody ever reads a half-written checkpoint. ``AUTOLOSS_PRETRAIN_CACHE`` moves the directory.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import importlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from autoloss_worker.mmlab.branch import plain
from autoloss_worker.pretrain.data import Normalisation
from autoloss_worker.pretrain.recipe import DEFAULT_RECIPE, Recipe

# The modules whose source decides the weights: edit one and every checkpoint is rebuilt.
CODE_MODULES = ("autoloss_worker.pretrain.recipe", "autoloss_worker.pretrain.data", "autoloss_worker.pretrain.train",
                "autoloss_worker.data.shapes")


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "autoloss" / "pretrained"
    return Path(os.environ.get("AUTOLOSS_PRETRAIN_CACHE", default))


@functools.cache
def code_version(modules: tuple[str, ...] = CODE_MODULES) -> str:
    """A hash of the modules' source, read once per process: the code this process runs, so that
    editing a file under a running worker does not make it build and train from another checkpoint
    mid-search (and no proxy training re-reads the sources)."""
    digest = hashlib.sha256()
    for name in modules:
        module = importlib.import_module(name)
        digest.update(Path(module.__file__).read_bytes())  # type: ignore[arg-type]
    return digest.hexdigest()[:16]


class Buildable(Protocol):
    """What the cache needs of a checkpoint's description: ``Spec`` (an MMLab backbone) and
    ``pretrain.native.NativeSpec`` (a native task's encoder)."""

    recipe: Recipe

    def name(self) -> str: ...
    def to_json(self) -> dict[str, Any]: ...
    def label(self) -> str: ...
    def train(self, progress: Callable[[float], None] | None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Spec:
    """One checkpoint: which backbone, seeing which inputs, trained how."""

    library: str  # "mmdet", "mmseg", "mmpose": the registry that builds the backbone
    backbone: Mapping[str, Any]  # plain dict, init_cfg removed
    norm: Normalisation
    recipe: Recipe = DEFAULT_RECIPE

    @classmethod
    def of(cls, library: str, backbone: Mapping[str, Any], preprocessor: Mapping[str, Any] | None,
           recipe: Recipe = DEFAULT_RECIPE) -> Spec:
        kept = {k: v for k, v in plain(backbone).items() if k not in ("init_cfg", "pretrained")}
        return cls(library, kept, Normalisation.of(plain(preprocessor)), recipe)

    def to_json(self) -> dict[str, Any]:
        return {"library": self.library, "backbone": self.backbone, "norm": dataclasses.asdict(self.norm),
                "recipe": dataclasses.asdict(self.recipe)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Spec:
        norm = data["norm"]
        return cls(data["library"], data["backbone"],
                   Normalisation(tuple(norm["mean"]), tuple(norm["std"]), norm["bgr_to_rgb"]), Recipe(**data["recipe"]))

    def name(self) -> str:
        """``<library>-<backbone type>-<hash>``: the checkpoint's file stem."""
        import torch

        library = importlib.import_module(self.library)
        keyed = {**self.to_json(), "code": code_version(), "torch": torch.__version__,
                 "library_version": getattr(library, "__version__", "")}
        digest = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]
        kind = str(self.backbone.get("type", "backbone")).replace("/", "_").replace(".", "_")
        return f"{self.library}-{kind}-{digest}"

    def label(self) -> str:
        return f"{self.library} {self.backbone.get('type')} backbone"

    def train(self, progress: Callable[[float], None] | None) -> dict[str, Any]:
        from autoloss_worker.pretrain.train import pretrain_backbone

        return pretrain_backbone(self.library, self.backbone, self.norm, self.recipe, progress)


def checkpoint_path(name: str) -> Path:
    return cache_dir() / f"{name}.pth"


def write_spec(spec: Buildable) -> str:
    """Record ``spec`` beside where its checkpoint goes (a loader in another process builds from
    it); returns the checkpoint's name. Cheap: no training."""
    name = spec.name()
    path = cache_dir() / f"{name}.json"
    if not path.is_file():
        _atomic_write(path, json.dumps(spec.to_json(), indent=1, sort_keys=True).encode())
    return name


def read_spec(name: str) -> Spec:
    path = cache_dir() / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no pretraining spec {path}: resolve the config's backbone again "
                                "(autoloss_worker.pretrain.resolve_pretrained, or python -m autoloss_worker.pretrain --config CFG)")
    return Spec.from_json(json.loads(path.read_text()))


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def ensure_checkpoint(spec: Buildable, *, quiet: bool = False) -> Path:
    """The checkpoint of ``spec``, trained now (one line on stderr) unless cached."""
    name = write_spec(spec)
    path = checkpoint_path(name)
    if path.is_file():
        return path
    with open(cache_dir() / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another builder of the same checkpoint: wait for it
        if path.is_file():
            return path
        _build(spec, path, quiet)
    return path


@contextlib.contextmanager
def _mmengine_warnings_only() -> Iterator[None]:
    """mmengine logs one INFO paragraph per parameter when a backbone initialises its weights (some
    300 lines for a ResNet-18), which buried the progress lines; warnings still show."""
    try:
        from mmengine.logging import MMLogger
    except ImportError:  # a toy backbone without MMLab (tests)
        yield
        return
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class _ProgressLine:
    """Prints `autoloss: pretraining 35% (1050/3000 iterations, 41 s)` at every tenth of the build:
    a build takes minutes, and a silent worker looks hung."""

    def __init__(self, start: float, iterations: int) -> None:
        self.start, self.iterations, self.next_tenth = start, iterations, 1

    def __call__(self, fraction: float) -> None:
        if fraction * 10 + 1e-9 < self.next_tenth:
            return
        self.next_tenth = int(fraction * 10 + 1e-9) + 1
        done = round(fraction * self.iterations)
        print(f"autoloss: pretraining {fraction:.0%} ({done}/{self.iterations} iterations, "
              f"{time.monotonic() - self.start:.0f} s)", file=sys.stderr, flush=True)


def _build(spec: Buildable, path: Path, quiet: bool) -> None:
    import io

    import torch

    r = spec.recipe
    start = time.monotonic()
    if not quiet:
        print(f"autoloss: pretraining the {spec.label()} on generated shapes "
              f"({r.iterations} iterations, once; cached as {path}) ...", file=sys.stderr, flush=True)
    with _mmengine_warnings_only():
        state = spec.train(None if quiet else _ProgressLine(start, r.iterations))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    _atomic_write(path, buffer.getvalue())
    if not quiet:
        print(f"autoloss: pretrained {path.name} in {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
