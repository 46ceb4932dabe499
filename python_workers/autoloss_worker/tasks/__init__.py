"""Built-in proxy tasks, looked up by name: ``get_task("seg")``, ``get_task("pose", iterations=50)``.

Every task module is imported here, explicitly, so a broken task fails at import time instead of
surfacing later as "unknown task".
"""
from __future__ import annotations

from typing import Any

from autoloss_worker.tasks.base import Sample, Task, TrainResult
from autoloss_worker.tasks.det import DetTask  # MMDetection is imported only when a det job runs
from autoloss_worker.tasks.losses import BranchLoss, as_branch_losses, compile_loss, elementwise
from autoloss_worker.tasks.pose import PoseTask
from autoloss_worker.tasks.seg import SegTask

TASKS: dict[str, type[Task]] = {"seg": SegTask, "pose": PoseTask, "det": DetTask}

_cache: dict[tuple[str, tuple[tuple[str, Any], ...]], Task] = {}


def get_task(name: str, **options: Any) -> Task:
    """The task ``name`` configured with ``options`` (unknown names or options raise ``ValueError``).

    Instances are cached per (name, options), so the data and recorded rejection samples of a task
    are built once per process.
    """
    if name not in TASKS:
        raise ValueError(f"unknown task '{name}' (known: {', '.join(sorted(TASKS))})")
    key = (name, tuple(sorted(options.items())))
    if key not in _cache:
        _cache[key] = TASKS[name](**options)
    return _cache[key]


__all__ = ["TASKS", "BranchLoss", "DetTask", "PoseTask", "Sample", "SegTask", "Task", "TrainResult",
           "as_branch_losses", "compile_loss", "elementwise", "get_task"]
