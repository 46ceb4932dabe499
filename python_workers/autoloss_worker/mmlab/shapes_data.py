"""The generated shapes data as an MMLab-readable COCO dataset, written once into a cache dir.

    root = ensure_shapes_coco()    # ~/.cache/autoloss/shapes-coco/<params>/{train,val}.json + PNGs

Shipped configs call this (through `__import__`, which keeps mmengine's config parser in its
classic mode) so that they train in a plain MMLab checkout too. The directory name encodes every
parameter, and a finished dataset is renamed into place atomically, so concurrent workers either
reuse it or each write their own temporary copy.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autoloss_worker.data.coco import write_coco
from autoloss_worker.data.shapes import generate_shapes, split_seed

DEFAULT_CACHE = Path(os.environ.get("AUTOLOSS_DATA_CACHE", Path.home() / ".cache" / "autoloss" / "shapes-coco"))


def ensure_shapes_coco(
    n_train: int = 256, n_val: int = 64, size: int = 128, num_classes: int = 4, seed: int = 0, cache: str | Path | None = None,
    stream: str = "",
) -> str:
    """Directory holding train.json/train/ and val.json/val/ (COCO instances with keypoints and
    label PNGs under *_seg/); train and val are drawn from different seeds. ``stream`` "": the
    search and evaluation images; another name (``pretrain.recipe.PRETRAIN_SPLIT``) draws both
    splits from seed streams of that name, which no search or evaluation split uses."""
    base = Path(cache) if cache is not None else DEFAULT_CACHE
    root = base / (f"n{n_train}-{n_val}_s{size}_c{num_classes}_seed{seed}" + (f"_{stream}" if stream else ""))
    if (root / "val.json").is_file():
        return str(root)
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=base))
    try:
        for name, n in (("train", n_train), ("val", n_val)):
            split = generate_shapes(n, split_seed(f"{stream}/{name}" if stream else name, seed), size=size, num_classes=num_classes)
            write_coco(split, tmp, name)
        try:
            tmp.rename(root)
        except OSError:  # another process finished first: use theirs
            if not (root / "val.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return str(root)


def shapes_classes(num_classes: int = 4) -> tuple[str, ...]:
    """Category names in id order (ids 1..num_classes), for a dataset's `metainfo`."""
    from autoloss_worker.data.shapes import SHAPE_KINDS

    return tuple(SHAPE_KINDS[:num_classes])


# The directory name ensure_shapes_coco gives every parameter set.
_ROOT_NAME = re.compile(r"^n(\d+)-(\d+)_s(\d+)_c(\d+)_seed(\d+)$")


def _shapes_root(cfg: Any) -> tuple[Path, tuple[int, int, int, int, int]] | None:
    """The generated-shapes directory a config trains on (its train dataloader's ``data_root``, as
    the shipped configs set it) with the sizes and seed its name encodes, or None on other data."""
    try:
        root = cfg["train_dataloader"]["dataset"]["data_root"]
    except (KeyError, TypeError):
        return None
    if not isinstance(root, str):
        return None
    path = Path(root.rstrip("/"))
    match = _ROOT_NAME.match(path.name)
    return None if match is None else (path, tuple(int(g) for g in match.groups()))  # type: ignore[return-value]


def shapes_root_of(cfg: Any) -> Path | None:
    """The generated-shapes directory a config trains on, or None when it trains on other data."""
    found = _shapes_root(cfg)
    return None if found is None else found[0]


def shapes_seed_of(cfg: Any) -> int | None:
    """The seed of the shapes data a config trains on, or None (not on generated shapes data)."""
    found = _shapes_root(cfg)
    return None if found is None else found[1][4]


def reseed_shapes_data(cfg: Any, seed: int, stream: str = "") -> Any:
    """A copy of ``cfg`` whose train, val and test data are the same shapes data set drawn from
    ``seed`` (of the seed stream ``stream``, ``ensure_shapes_coco``) instead (same sizes and classes;
    written now if not cached): the held-out trainings of a search see images it never saw. Every
    string under the data loaders and evaluators that starts with the config's shapes directory is
    redirected. ValueError when the config is not on shapes data."""
    found = _shapes_root(cfg)
    if found is None:
        raise ValueError("option data_seed: the config does not train on autoloss's generated shapes data "
                         "(its train_dataloader.dataset.data_root is not an ensure_shapes_coco directory), so there is no "
                         "other seed to draw it from; leave data_seed at -1 for a config on your own data")
    old, (n_train, n_val, size, classes, _) = found
    new = ensure_shapes_coco(n_train, n_val, size, classes, seed=seed, cache=old.parent, stream=stream)
    cfg = copy.deepcopy(cfg)
    for key in ("train_dataloader", "val_dataloader", "test_dataloader", "val_evaluator", "test_evaluator"):
        if key in cfg:
            cfg[key] = _redirect(cfg[key], str(old), new)
    return cfg


def _redirect(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return new + value[len(old):] if value.startswith(old) else value
    if isinstance(value, Mapping):
        for k in list(value):
            value[k] = _redirect(value[k], old, new)
        return value
    if isinstance(value, list):
        return [_redirect(v, old, new) for v in value]
    if isinstance(value, tuple):
        return tuple(_redirect(v, old, new) for v in value)
    return value
