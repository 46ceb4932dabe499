"""What the rejection-sample recorders of the MMLab tasks share: the config's randomly initialised
model and its training data, reproducible from a seed, with the libraries' log and prints silenced.

    with quiet(), seeded_model_and_dataset(cfg, seed, "mmseg") as (model, dataset, order):
        ...  # model in eval mode, dataset[order[0]], dataset[order[1]], ...
"""
from __future__ import annotations

import contextlib
import importlib
import io
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np
import torch

R = TypeVar("R")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """mmengine's INFO log (a line per initialised weight) and pycocotools' prints go nowhere:
    a worker's stdout/stderr are for its own messages."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def seeded_model_and_dataset(cfg: Any, seed: int, library: str) -> Iterator[tuple[Any, Any, list[int]]]:
    """(model, training dataset, a permutation of its indices), all drawn from ``seed``.

    The model comes from ``library``'s registry ("mmdet", "mmseg", "mmpose") with ``init_weights()``
    and in eval mode (BatchNorm keeps its initial statistics). Inside the block torch's and NumPy's
    global generators are seeded, because the training pipeline's random transforms draw from them;
    both are restored on leaving it, so a recorder never disturbs the worker's other jobs."""
    from mmengine.utils import import_modules_from_strings

    importlib.import_module(f"{library}.utils").register_all_modules(init_default_scope=True)
    registry = importlib.import_module(f"{library}.registry")
    if cfg.get("custom_imports"):
        import_modules_from_strings(**cfg.custom_imports)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np_state = np.random.get_state()
        np.random.seed(seed)
        try:
            model = registry.MODELS.build(cfg.model)
            model.init_weights()
            model.eval()
            dataset = registry.DATASETS.build(cfg.train_dataloader.dataset)
            yield model, dataset, [int(i) for i in np.random.default_rng(seed).permutation(len(dataset))]
        finally:
            np.random.set_state(np_state)


def first_records(order: Iterable[int], record: Callable[[int], R | None], B: int) -> list[R]:
    """``record(i)`` along ``order`` until B of them are usable (not None); fewer if ``order`` ends."""
    records: list[R] = []
    for i in order:
        if (r := record(i)) is not None:
            records.append(r)
            if len(records) == B:
                break
    return records
