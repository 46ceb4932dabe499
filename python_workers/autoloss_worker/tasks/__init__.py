"""Built-in proxy tasks, looked up by name: ``get_task("seg")``, ``get_task("pose", iterations=50)``.

Every task module is imported here, explicitly, so a broken task fails at import time instead of
surfacing later as "unknown task".
"""
from __future__ import annotations

from typing import Any

from autoloss_worker.tasks.base import Sample, Task, TrainResult
from autoloss_worker.tasks.det import DetTask  # MMDetection is imported only when a det job runs
from autoloss_worker.tasks.ins import InsTask
from autoloss_worker.tasks.losses import BranchLoss, as_branch_losses, compile_loss, elementwise
from autoloss_worker.tasks.mmpose_task import MMPoseTask  # MMPose / MMSegmentation: imported when a job runs
from autoloss_worker.tasks.mmseg_task import MMSegTask
from autoloss_worker.tasks.pose import PoseTask
from autoloss_worker.tasks.seg import SegTask

TASKS: dict[str, type[Task]] = {"seg": SegTask, "pose": PoseTask, "det": DetTask, "ins": InsTask,
                                "mmpose": MMPoseTask, "mmseg": MMSegTask}

_cache: dict[tuple[str, tuple[tuple[str, Any], ...]], Task] = {}


def get_task(name: str, **options: Any) -> Task:
    """The task ``name`` configured with ``options`` (unknown names or options raise ``ValueError``).

    Instances are cached per (name, options), so the data and recorded rejection samples of a task
    are built once per process.
    """
    if name not in TASKS:
        raise ValueError(f"unknown task '{name}' (known: {', '.join(sorted(TASKS))})")
    # lists (e.g. branches=[...] from JSON) are unhashable: key them as tuples
    key = (name, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items())))
    if key not in _cache:
        _cache[key] = TASKS[name](**options)
    return _cache[key]


__all__ = ["TASKS", "BranchLoss", "DetTask", "MMPoseTask", "MMSegTask", "PoseTask", "Sample", "SegTask", "Task", "TrainResult",
           "as_branch_losses", "compile_loss", "elementwise", "get_task"]
