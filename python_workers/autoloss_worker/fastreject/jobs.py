"""The eval-loss job on the fast path: one Screener (with its verdict cache) per screening
context, kept for the life of the worker process, so repeated losses cost nothing."""
from __future__ import annotations

import dataclasses
from typing import Any

from autoloss_worker.graph import LossGraph
from autoloss_worker.rejection import RejectionConfig, finite_or_none
from autoloss_worker.tasks.base import Task

from .screen import Screener, fast_config_for

_screeners: dict[tuple[Any, ...], Screener] = {}
MAX_CONTEXTS = 16  # a worker serves a handful of (task, metric, seed) contexts at a time


def fast_eval_loss(task: Task, graph: LossGraph, metric: str, seed: int, config: RejectionConfig) -> dict[str, Any]:
    """``summarise(check_loss(...))``'s fields from the fast path. The static stage is skipped so
    that every verdict carries B gradient norms per branch (the exact exits make it cheap)."""
    options = getattr(task, "options", None)
    key = (task.name, repr(options), metric, seed, config)
    screener = _screeners.get(key)
    if screener is None:
        if len(_screeners) >= MAX_CONTEXTS:
            _screeners.pop(next(iter(_screeners)))
        fast = dataclasses.replace(fast_config_for(task.name, config), static=False)
        screener = _screeners[key] = Screener(task, metric, seed, config, fast)
    v = screener.screen([graph])[0]
    return {
        "passed": v.passed,
        "score": v.score,
        "gradNorms": [finite_or_none(n) for n in v.grad_norms],
        "fingerprint": [[finite_or_none(x) for x in row] for row in v.fingerprint],
        "iterations": v.iterations,
        "invalid": v.invalid,
    }
