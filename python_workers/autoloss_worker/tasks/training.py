"""Pieces shared by the proxy-training recipes: option parsing, data cache, the guarded loop."""
from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from autoloss_worker.data.shapes import ShapesSplit, generate_shapes, split_seed
from autoloss_worker.tasks.train_state import Continuation

O = TypeVar("O")


def parse_options(cls: type[O], options: Mapping[str, Any]) -> O:
    """Build the options dataclass ``cls``; unknown keys and mismatched types raise ``ValueError``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} (known: {', '.join(fields)})")
    defaults = cls()
    values: dict[str, Any] = {}
    for key, value in options.items():
        expected = type(getattr(defaults, key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # JSON does not distinguish 1 from 1.0
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            raise ValueError(f"option {key} must be {expected.__name__}, got {value!r}")
        values[key] = value
    return dataclasses.replace(defaults, **values)  # type: ignore[type-var]


@functools.lru_cache(maxsize=8)
def shapes_split(split: str, n: int, data_seed: int, size: int, num_classes: int) -> ShapesSplit:
    """Generated once per process: a long-lived worker serves many jobs from the same data."""
    return generate_shapes(n, split_seed(split, data_seed), size=size, num_classes=num_classes)


class BatchOrder:
    """Shuffled mini-batches of indices into a split of ``n`` items, addressed by step: ``order(i)``
    is step i's batch (epoch by epoch, seeded, the ragged tail dropped). A training resumed at step k
    asks for k, k+1, ... and gets exactly the batches a run from step 0 gets there."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size = n, batch_size
        self.per_epoch = n // batch_size
        self.rng = np.random.default_rng(seed)
        self.epoch, self.order = -1, np.empty(0, dtype=np.int64)

    def __call__(self, step: int) -> np.ndarray:
        epoch, slot = divmod(step, self.per_epoch)
        if epoch < self.epoch:
            raise ValueError(f"batch order is forward-only: step {step} is before epoch {self.epoch}")
        while self.epoch < epoch:  # the permutations of skipped epochs are still drawn, in order
            self.order, self.epoch = self.rng.permutation(self.n), self.epoch + 1
        return self.order[slot * self.batch_size : (slot + 1) * self.batch_size]


def poly_lr(base: float, step: int, total: int, power: float = 0.9, minimum: float = 1e-4) -> float:
    """Polynomial decay as in the paper's seg recipe (power 0.9, floor 1e-4)."""
    return max(base * (1 - step / total) ** power, minimum)


def cosine_lr(base: float, step: int, total: int, warmup: int) -> float:
    """Linear warm-up then cosine annealing to 0 (the paper's pose recipe)."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * progress))


class Trained(NamedTuple):
    invalid: bool
    iterations: int  # steps done, counted from step 0 (a resumed run included)
    resumed_from: int | None  # the cached step training continued from


def guarded_training(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    iterations: int,
    step_loss: Callable[[int], Tensor],
    lr_at: Callable[[int], float],
    progress: Callable[[float], None] | None = None,
    stop_on_invalid: bool = True,
    *,
    stop_at: int | None = None,
    states: Continuation | None = None,
) -> Trained:
    """Run the ``iterations``-step schedule; ``step_loss(i)`` returns the scalar training loss of
    step i (a function of i alone: a resumed run starts at a later i) and ``lr_at(i)`` its rate.

    Stops at the first non-finite loss or gradient (paper: stop training as soon as the loss is
    NaN or Inf) before any weight is touched.

    ``stop_at`` k (successive halving's lower rungs): the same schedule, stopped after step k. With
    ``states``, training first continues from the latest cached state before k, and the state at k
    is cached for a later, longer job (not at the schedule's end: nothing continues from there).

    ``stop_on_invalid=False`` is the search-efficiency ablation's naive trainer (paper Fig. 4): it
    notes the first non-finite value but keeps stepping for the whole budget, as a plain training
    loop would (the weights turn NaN), so an invalid loss costs a full training.
    """
    stop = iterations if stop_at is None else stop_at
    if not 1 <= stop <= iterations:
        raise ValueError(f"stop_at must be within 1..{iterations} (the schedule), got {stop}")
    params = [p for p in model.parameters() if p.requires_grad]
    resumed = states.resume(stop, model, optimizer) if states is not None else None
    start = 0 if resumed is None else resumed["step"]
    invalid = False if resumed is None else bool(resumed["invalid"])
    model.train()
    for i in range(start, stop):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(i) * group.get("lr_scale", 1.0)
        value = step_loss(i)
        if not bool(torch.isfinite(value)):
            if stop_on_invalid:
                return Trained(True, i + 1, start or None)
            invalid = True
        optimizer.zero_grad(set_to_none=True)
        if value.requires_grad:
            value.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, float("inf"))
        if not bool(torch.isfinite(grad_norm)):
            if stop_on_invalid:
                return Trained(True, i + 1, start or None)
            invalid = True
        optimizer.step()
        if progress is not None and (i + 1) % 10 == 0:
            progress((i + 1 - start) / (stop - start))
    if states is not None and stop < iterations:
        states.keep(stop, model, optimizer, invalid)
    return Trained(invalid, stop, start or None)


# The process's own intra-op threads, read once at import: a pool worker's --threads (OMP_NUM_THREADS,
# set before torch is imported), else torch's default. A job that asks for 0 gets these back even
# after an earlier job of the same worker asked for more.
_PROCESS_THREADS = torch.get_num_threads()


def set_threads(threads: int) -> None:
    """Intra-op threads for one proxy training: ``threads``, or the process's own with 0."""
    if threads < 0:
        raise ValueError(f"option 'threads' must be >= 0 (0: the process's own), got {threads}")
    torch.set_num_threads(threads if threads > 0 else _PROCESS_THREADS)
