"""Job handlers: plain functions `handler(payload, ctx) -> result payload`, in one registry.

A handler raises to fail its job: the worker answers with an `error` message carrying the exception
type, message and traceback. Heavy modules (torch, the graph interpreter, task code) are imported
inside the handlers, so the worker says hello quickly.
"""

from __future__ import annotations

import importlib.util
import inspect
import time
from dataclasses import dataclass, field
from typing import Any, Callable


class JobCancelled(BaseException):
    """Raised by `JobContext.progress` once the pool cancelled the job. A BaseException (like
    asyncio.CancelledError) so that a handler's `except Exception` does not swallow it; let it pass."""


@dataclass
class JobContext:
    """What a handler may use besides its payload."""

    device: str = "cpu"
    # Called by handlers with a fraction in [0, 1]; the heartbeat reports the latest value. It is also
    # the cancellation point: it raises `JobCancelled` once the pool cancelled the job, so a long
    # loop should call it every iteration (a call costs a flag check).
    progress: Callable[[float], None] = field(default=lambda fraction: None)


Handler = Callable[[dict, JobContext], dict]


def ping(payload: dict, ctx: JobContext) -> dict:
    return {"pong": True}


def echo(payload: dict, ctx: JobContext) -> dict:
    return payload


def sleep(payload: dict, ctx: JobContext) -> dict:
    """Sleeps `payload["seconds"]` (for tests of timeouts, heartbeats and cancellation during long jobs),
    reporting progress every 50 ms; with `"progress": false` it never reports, so it cannot be cancelled
    (it stands for a handler stuck in a long call)."""
    seconds = payload.get("seconds")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds <= 3600:
        raise ValueError(f"sleep: 'seconds' must be a number in [0, 3600], got {seconds!r}")
    reports = payload.get("progress", True)
    if not isinstance(reports, bool):
        raise ValueError(f"sleep: 'progress' must be true or false, got {reports!r}")
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        time.sleep(min(seconds - elapsed, 0.05))
        if reports:
            ctx.progress(min(1.0, (time.monotonic() - start) / seconds))
    return {"slept": seconds}


def eval_graph(payload: dict, ctx: JobContext) -> dict:
    """Evaluates a loss graph on given input tensors.

    payload: `{"loss": <graph wire obj>, "inputs": {name: tensor}, "branch_inputs"?: {branch: {name: tensor}}}`
    (`branch_inputs` overrides `inputs` per branch; `one` may be omitted).
    result: `{"total": float, "branches": {name: {"value": float, "grad_norms": {input: [‖∂L/∂x_n‖₂ per sample n]}}}}`
    for every given input except `one`. The graph is validated and interpreted, never executed as code.
    """
    import torch

    from ..graph import branch_value, compile_branch, loss_from_wire
    from .tensors import tensor_to_torch

    graph = loss_from_wire(payload.get("loss"))
    shared = _tensor_map(payload.get("inputs", {}), "inputs")
    overrides = payload.get("branch_inputs", {})
    if not isinstance(overrides, dict):
        raise ValueError("eval-graph: 'branch_inputs' must be a map from branch name to input tensors")
    branches: dict[str, Any] = {}
    total = 0.0
    for branch in graph.branches:
        wire_inputs = {**shared, **_tensor_map(overrides.get(branch.name, {}), f"branch_inputs.{branch.name}")}
        missing = [n for n in branch.inputs if n != "one" and n not in wire_inputs]
        if missing:
            raise ValueError(f"eval-graph: branch {branch.name!r} needs inputs {missing}")
        inputs = {}
        for name in branch.inputs:
            if name in wire_inputs:
                x = tensor_to_torch(wire_inputs[name], ctx.device).to(torch.float64)
                if x.dim() != 4:
                    raise ValueError(f"eval-graph: input {name!r} must have shape (N, C, H, W), got {list(x.shape)}")
                inputs[name] = x.requires_grad_(name != "one")
        value = branch_value(compile_branch(branch)(inputs))
        grads = [x for x in inputs.values() if x.requires_grad]
        norms: dict[str, list[float]] = {}
        if grads:
            # allow_unused: a leaf the tree never reads has gradient 0
            got = torch.autograd.grad(value, grads, allow_unused=True)
            for (name, x), g in zip(((n, x) for n, x in inputs.items() if x.requires_grad), got):
                g = torch.zeros_like(x) if g is None else g
                norms[name] = [float(v) for v in g.flatten(1).norm(dim=1)]  # (N,)
        branches[branch.name] = {"value": float(value.detach()), "grad_norms": norms}
        total += float(value.detach())
    return {"total": total, "branches": branches}


def _tensor_map(obj: Any, where: str) -> dict:
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise ValueError(f"eval-graph: {where!r} must be a map from input name to tensor")
    return obj


def _task_job(function_name: str, module: str = "autoloss_worker.task_jobs") -> Handler:
    """Adapts `<module>.<function_name>(payload)`; passes `device`/`progress` when accepted."""

    def handler(payload: dict, ctx: JobContext) -> dict:
        fn = getattr(importlib.import_module(module), function_name)
        accepted = inspect.signature(fn).parameters
        extra = {k: v for k, v in (("device", ctx.device), ("progress", ctx.progress)) if k in accepted}
        return fn(payload, **extra)

    handler.__name__ = function_name
    return handler


def slots(payload: dict, ctx: JobContext) -> dict:
    """The loss slots of an MMLab config and which ones autoloss can search (`mmlab.slots.slots_job`)."""
    from ..mmlab.slots import slots_job

    return slots_job(payload)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def default_registry() -> dict[str, Handler]:
    """The job kinds this worker serves; optional ones only when their module is installed."""
    registry: dict[str, Handler] = {"ping": ping, "echo": echo, "sleep": sleep}
    if _importable("autoloss_worker.graph"):
        registry["eval-graph"] = eval_graph
    if _importable("autoloss_worker.task_jobs"):
        registry["eval-loss"] = _task_job("eval_loss_job")
        registry["eval-losses"] = _task_job("eval_losses_job")
        registry["train-loss"] = _task_job("train_loss_job")
        registry["baseline"] = _task_job("baseline_job")
        registry["task-info"] = _task_job("task_info_job")
    if _importable("autoloss_worker.mmlab.export"):
        registry["export-mmlab"] = _task_job("export_mmlab_job", "autoloss_worker.mmlab.export")
    if _importable("autoloss_worker.mmlab.slots"):
        registry["slots"] = slots
    return registry
