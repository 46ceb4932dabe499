"""The eval-loss / eval-losses jobs' rejection: one Screener (with its verdict cache) per screening
context, kept for the life of the worker process, so repeated losses cost nothing."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Optional

from autoloss_worker.graph import LossGraph
from autoloss_worker.rejection import RejectionConfig, summarise
from autoloss_worker.tasks.base import Task

from .screen import Screener, fast_config_for

_screeners: dict[tuple[Any, ...], Screener] = {}
MAX_CONTEXTS = 16  # a worker serves a handful of (task, metric, seed) contexts at a time

# One loss of a batch: the graph and the branches to check (None: the whole loss).
Entry = tuple[LossGraph, Optional[Sequence[str]]]


def screener_for(task: Task, metric: str, seed: int, config: RejectionConfig) -> Screener:
    """The worker's screener for this context. The static stage is off so that every verdict
    carries B gradient norms per branch (the exact exits make it cheap); tasks whose samples do
    not stack run engine ``tree`` on per-sample tensors."""
    key = (task.name, repr(getattr(task, "options", None)), metric, seed, config)
    screener = _screeners.get(key)
    if screener is None:
        if len(_screeners) >= MAX_CONTEXTS:
            _screeners.pop(next(iter(_screeners)))
        engine = "closed" if task.stackable_samples else "tree"
        fast = dataclasses.replace(fast_config_for(task, config), static=False, engine=engine)
        screener = _screeners[key] = Screener(task, metric, seed, config, fast)
    return screener


def eval_losses(task: Task, entries: Sequence[Entry], metric: str, seed: int,
                config: RejectionConfig) -> list[dict[str, Any] | Exception]:
    """The eval-loss result (``rejection.summarise``) of every entry, in order: exactly its
    branches if given, else every branch in the task's order up to the first failing one.

    Entries asking for the same branches are screened together (the batched engine steps their
    rows side by side; per row the arithmetic does not depend on its neighbours, which
    ``tests/test_eval_losses_batch.py`` checks bit for bit). Should a group raise, its losses are
    screened one by one, so that only the loss that raises gets its exception as its entry."""
    screener = screener_for(task, metric, seed, config)
    groups: dict[tuple[str, ...] | None, list[int]] = {}
    for i, (_, branches) in enumerate(entries):
        groups.setdefault(None if branches is None else tuple(branches), []).append(i)
    out: list[dict[str, Any] | Exception | None] = [None] * len(entries)
    for key, members in groups.items():
        branches = None if key is None else list(key)
        try:
            verdicts = screener.screen([entries[i][0] for i in members], branches)
            for i, v in zip(members, verdicts):
                out[i] = summarise(v.branches)
        except Exception:  # noqa: BLE001 - find the loss that raises; the others still get verdicts
            for i in members:
                try:
                    out[i] = summarise(screener.screen([entries[i][0]], branches)[0].branches)
                except Exception as exc:  # noqa: BLE001 - reported in that loss's entry
                    out[i] = exc
    return out  # type: ignore[return-value]


def eval_loss(task: Task, graph: LossGraph, metric: str, seed: int, config: RejectionConfig,
              branches: Sequence[str] | None = None) -> dict[str, Any]:
    """``eval_losses`` for one loss; raises what screening it raised."""
    out = eval_losses(task, [(graph, branches)], metric, seed, config)[0]
    if isinstance(out, Exception):
        raise out
    return out
