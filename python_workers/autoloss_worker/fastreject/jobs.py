"""The eval-loss job's rejection: one Screener (with its verdict cache) per screening context,
kept for the life of the worker process, so repeated losses cost nothing."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from autoloss_worker.graph import LossGraph
from autoloss_worker.rejection import RejectionConfig, summarise
from autoloss_worker.tasks.base import Task

from .screen import Screener, fast_config_for

_screeners: dict[tuple[Any, ...], Screener] = {}
MAX_CONTEXTS = 16  # a worker serves a handful of (task, metric, seed) contexts at a time


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
        fast = dataclasses.replace(fast_config_for(task.name, config), static=False, engine=engine)
        screener = _screeners[key] = Screener(task, metric, seed, config, fast)
    return screener


def eval_loss(task: Task, graph: LossGraph, metric: str, seed: int, config: RejectionConfig,
              branches: Sequence[str] | None = None) -> dict[str, Any]:
    """The eval-loss result (``rejection.summarise``) for ``graph``: exactly ``branches`` if given,
    else every branch in the task's order up to the first failing one."""
    verdict = screener_for(task, metric, seed, config).screen([graph], branches)[0]
    return summarise(verdict.branches)
