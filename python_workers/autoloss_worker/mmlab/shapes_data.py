"""The generated shapes data as an MMLab-readable COCO dataset, written once into a cache dir.

    root = ensure_shapes_coco()    # ~/.cache/autoloss/shapes-coco/<params>/{train,val}.json + PNGs

Shipped configs call this (through `__import__`, which keeps mmengine's config parser in its
classic mode) so that they train in a plain MMLab checkout too. The directory name encodes every
parameter, and a finished dataset is renamed into place atomically, so concurrent workers either
reuse it or each write their own temporary copy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from autoloss_worker.data.coco import write_coco
from autoloss_worker.data.shapes import generate_shapes, split_seed

DEFAULT_CACHE = Path(os.environ.get("AUTOLOSS_DATA_CACHE", Path.home() / ".cache" / "autoloss" / "shapes-coco"))


def ensure_shapes_coco(
    n_train: int = 256, n_val: int = 64, size: int = 128, num_classes: int = 4, seed: int = 0, cache: str | Path | None = None
) -> str:
    """Directory holding train.json/train/ and val.json/val/ (COCO instances with keypoints and
    label PNGs under *_seg/); train and val are drawn from different seeds."""
    base = Path(cache) if cache is not None else DEFAULT_CACHE
    root = base / f"n{n_train}-{n_val}_s{size}_c{num_classes}_seed{seed}"
    if (root / "val.json").is_file():
        return str(root)
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=base))
    try:
        for name, n in (("train", n_train), ("val", n_val)):
            split = generate_shapes(n, split_seed(name, seed), size=size, num_classes=num_classes)
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
