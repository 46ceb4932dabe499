"""Job kinds the worker runs for the search: check a loss (rejection) and proxy-train with it.

Payload (msgpack/JSON map), for both kinds:

    {"task": "seg", "metric": "miou" | null, "loss": <graph wire obj>, "seed": 0,
     "options": {<task option>: value, ..., "rejection": {<RejectionConfig field>: value}},
     "branches": ["rpn_cls", ...]}   # eval-loss only, optional

``eval-losses`` screens many losses in one job (what the search sends): the same map with
``"losses": [{"loss": <graph wire obj>, "branches"?: [...]}, ...]`` in place of ``loss`` and
``branches``. Its result is ``{"results": [<one eval-loss result or {"error": text}>, ...],
"elapsedMs"}`` in request order; an entry that does not decode or whose screening raises gets
``{"error": ...}`` and the others their verdicts (a bad context, e.g. an unknown task, fails the
job). ``eval-loss`` is a batch of one (its error raised). A loss's verdict does not depend on the
batch it is screened in.

``branches`` (eval-loss): check exactly these branches, each with the other branches'
predictions at ground truth (paper, App. A.2), every one of them even after a failure — the search
screens branch by branch and redraws only the failing ones. Without it the whole loss is checked
(a multi-branch loss stops at its first failing branch, which is enough for a yes/no answer).

``options`` configures the task (``SegOptions`` / ``PoseOptions``: data size, budget ``iterations``,
``device`` ...) and, under ``rejection``, the protocol's constants (defaults: the paper's). Unknown
keys raise. Results are exactly what ``autoloss eval-loss|train-loss --json`` print:

    eval-loss:  {"passed", "score", "gradNorms": [B per branch], "fingerprint": [B rows per branch],
                 "iterations", "invalid", "elapsedMs",
                 "branches": {name: {"passed", "score", "gradNorms", "fingerprint", "iterations", "invalid"}}}
    train-loss: {"metrics": {name: 0-1}, "target", "invalid", "iterations", "resumedFrom", "elapsedMs"}

train-loss also takes ``"fidelity": {"stop_at": k}`` (1 <= k <= ``options.iterations``): the full
schedule, stopped and evaluated after step k (successive halving's lower rungs). A task that
``continues`` (task-info) continues from the largest cached step below k of the same payload and
device and caches its state at k (``tasks/train_state.py``); ``resumedFrom`` is that step or null,
``iterations`` the steps done counted from 0. The result equals a training from step 0 to k.

Every branch entry and the whole-loss fields are ``rejection.BranchVerdict.wire()``; the
whole-loss one is the branches' ``combine``. ``gradNorms`` entries are null where non-finite (JSON
has no NaN). ``score`` is −1 when invalid. A loss rejected at an early checkpoint (``fastreject``,
verified rules only) reports g at that iteration as ``score`` and that iteration as ``iterations``.
Rejection always runs on CPU in float64 (B small tensors; the numbers must not depend on the
machine); proxy training runs on ``options.device``, else on the worker's device.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from autoloss_worker.fastreject.jobs import Entry, eval_losses
from autoloss_worker.graph import LossGraph, loss_from_wire
from autoloss_worker.rejection import RejectionConfig
from autoloss_worker.tasks import Task, get_task
from autoloss_worker.tasks.train_state import Continuation, StateCache, state_key
from autoloss_worker.tasks.training import parse_options

Progress = Callable[[float], None]


@dataclasses.dataclass(frozen=True)
class Job:
    task: Task
    metric: str
    seed: int
    rejection: RejectionConfig


def _job(payload: Any, *, device: str | None, train: bool) -> Job:
    if not isinstance(payload, dict):
        raise ValueError(f"job payload must be a map, got {type(payload).__name__}")
    unknown = sorted(set(payload) - {"task", "metric", "loss", "seed", "options", "branches", "fidelity"})
    if unknown:
        raise ValueError(f"job payload has unknown key(s) {', '.join(unknown)}")
    name = payload.get("task")
    if not isinstance(name, str):
        raise ValueError("job payload needs 'task' (a task name such as 'seg')")
    seed = payload.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"'seed' must be a non-negative integer, got {seed!r}")
    options = dict(payload.get("options") or {})
    rejection = parse_options(RejectionConfig, options.pop("rejection", None) or {})
    if train and device is not None and "device" not in options:
        options["device"] = device
    task = get_task(name, **options)
    metric = payload.get("metric")
    if metric is not None and not isinstance(metric, str):
        raise ValueError(f"'metric' must be a metric name or null, got {metric!r}")
    return Job(task=task, metric=task.check_metric(metric), seed=seed, rejection=rejection)


def loss_for_task(task: Task, wire: Any, required: list[str] | None = None) -> LossGraph:
    """Decode and validate the wire graph, and check its branches are the task's (names and kinds);
    with ``required``, a loss holding just those branches (and maybe others of the task) will do."""
    graph = loss_from_wire(wire)
    got = {b.name: b.kind for b in graph.branches}
    if required is not None:
        wrong = [f"{n} ({k})" for n, k in got.items() if task.branches.get(n) != k]
        missing = [n for n in required if n not in got]
        if wrong or missing:
            want = ", ".join(f"{n} ({k})" for n, k in task.branches.items())
            raise ValueError(f"task '{task.name}' takes branches {want}; the loss "
                             + (f"has {', '.join(wrong)}" if wrong else f"lacks {', '.join(missing)}"))
        return graph
    if got != dict(task.branches):
        want = ", ".join(f"{n} ({k})" for n, k in task.branches.items())
        have = ", ".join(f"{n} ({k})" for n, k in got.items())
        raise ValueError(f"task '{task.name}' takes branches {want}; the loss has {have}")
    return graph


def _requested_branches(task: Task, requested: Any) -> list[str] | None:
    """``payload["branches"]`` checked against the task's branches (None: not given)."""
    if requested is None:
        return None
    if not isinstance(requested, list) or not requested or not all(isinstance(b, str) for b in requested):
        raise ValueError(f"'branches' must be a non-empty list of branch names, got {requested!r}")
    unknown = [b for b in requested if b not in task.branches]
    if unknown:
        raise ValueError(f"'branches' names {', '.join(unknown)}, not branches of task '{task.name}' "
                         f"({', '.join(task.branches)})")
    if len(set(requested)) != len(requested):
        raise ValueError(f"'branches' lists a branch twice: {requested!r}")
    return requested


def _entry(task: Task, raw: Any) -> Entry:
    """One loss to screen, ``{"loss": wire, "branches"?: [...]}``, decoded and checked."""
    if not isinstance(raw, dict):
        raise ValueError(f"a loss to screen must be a map with 'loss' (and maybe 'branches'), got {type(raw).__name__}")
    unknown = sorted(set(raw) - {"loss", "branches"})
    if unknown:
        raise ValueError(f"a loss to screen has unknown key(s) {', '.join(unknown)}")
    requested = _requested_branches(task, raw.get("branches"))
    return loss_for_task(task, raw.get("loss"), requested), requested


def _screen(job: Job, raws: list[Any]) -> list[dict[str, Any] | Exception]:
    """The eval-loss result of every raw entry, in order, or the exception that entry raised."""
    out: list[dict[str, Any] | Exception | None] = [None] * len(raws)
    decoded: list[tuple[int, Entry]] = []
    for i, raw in enumerate(raws):
        try:
            decoded.append((i, _entry(job.task, raw)))
        except ValueError as exc:
            out[i] = exc
    screened = eval_losses(job.task, [e for _, e in decoded], job.metric, job.seed, job.rejection)
    for (i, _), result in zip(decoded, screened):
        out[i] = result
    return out  # type: ignore[return-value]


MAX_BATCH = 4096  # losses per eval-losses job (the search sends a few dozen)


def eval_loss_job(payload: Any, device: str | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """The loss-rejection protocol for ``payload["loss"]`` (see ``rejection.py``): ``eval-losses``
    with one entry."""
    start = time.perf_counter()
    job = _job(payload, device=device, train=False)
    out = _screen(job, [{k: payload[k] for k in ("loss", "branches") if k in payload}])[0]
    if isinstance(out, Exception):
        raise out
    return {**out, "elapsedMs": (time.perf_counter() - start) * 1000}


def eval_losses_job(payload: Any, device: str | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """The loss-rejection protocol for every entry of ``payload["losses"]``, one result each."""
    start = time.perf_counter()
    if not isinstance(payload, dict):
        raise ValueError(f"job payload must be a map, got {type(payload).__name__}")
    misplaced = sorted({"loss", "branches"} & set(payload))
    if misplaced:
        raise ValueError(f"eval-losses takes {', '.join(misplaced)} per entry of 'losses', not at the top")
    raws = payload.get("losses")
    if not isinstance(raws, list) or not raws or len(raws) > MAX_BATCH:
        got = f"{len(raws)} entries" if isinstance(raws, list) else repr(raws)
        raise ValueError(f"'losses' must be a list of 1 to {MAX_BATCH} losses to screen, got {got}")
    job = _job({k: v for k, v in payload.items() if k != "losses"}, device=device, train=False)
    results = [{"error": str(r) if isinstance(r, ValueError) else f"{type(r).__name__}: {r}"}
               if isinstance(r, Exception) else r for r in _screen(job, raws)]
    return {"results": results, "elapsedMs": (time.perf_counter() - start) * 1000}


def train_loss_job(payload: Any, device: str | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Proxy training with ``payload["loss"]``; all the task's metrics on its eval split."""
    start = time.perf_counter()
    job = _job(payload, device=device, train=True)
    graph = loss_for_task(job.task, payload.get("loss"))
    stop_at = _stop_at(payload.get("fidelity"), getattr(job.task.options, "iterations", None))  # type: ignore[attr-defined]
    if stop_at is None:
        result = job.task.proxy_train(graph, job.seed, metric=job.metric, progress=progress)
    else:
        states = None
        if job.task.continues:
            key = state_key(payload, str(getattr(job.task.options, "device", device)))  # type: ignore[attr-defined]
            states = Continuation(StateCache.from_env(), key)
        result = job.task.proxy_train(graph, job.seed, metric=job.metric, progress=progress, stop_at=stop_at,
                                      states=states)
    return {
        "metrics": result.metrics,
        "target": result.target,
        "invalid": result.invalid,
        "iterations": result.iterations,
        "resumedFrom": result.resumed_from,
        "elapsedMs": (time.perf_counter() - start) * 1000,
    }


def _stop_at(fidelity: Any, iterations: int | None) -> int | None:
    """``payload["fidelity"]`` = ``{"stop_at": k}``, 1 <= k <= the task's ``iterations`` (None: absent)."""
    if fidelity is None:
        return None
    if not isinstance(fidelity, dict):
        raise ValueError(f"'fidelity' must be a map such as {{\"stop_at\": 100}}, got {fidelity!r}")
    unknown = sorted(set(fidelity) - {"stop_at"})
    if unknown:
        raise ValueError(f"'fidelity' has unknown key(s) {', '.join(map(str, unknown))} (known: stop_at)")
    k = fidelity.get("stop_at")
    if not isinstance(k, int) or isinstance(k, bool) or iterations is None or not 1 <= k <= iterations:
        raise ValueError(f"'fidelity.stop_at' must be an integer from 1 to the task's iterations ({iterations}), got {k!r}")
    return k


def baseline_job(payload: Any, device: str | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """``train_loss_job`` with the task's hand-designed loss (seg: cross-entropy, pose: heatmap MSE)."""
    if isinstance(payload, dict) and "loss" in payload:
        raise ValueError("baseline jobs take no 'loss': the task's baseline is used")
    job = _job(payload, device=device, train=True)
    return train_loss_job({**payload, "loss": job.task.baseline_loss}, device=device, progress=progress)


def task_info_job(payload: Any, device: str | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """What the control plane needs to search a task: its branches (name, kind), metrics and the
    default metric, the metric this payload resolves to, the proxy's ``iterations``, and ``dataSeed``:
    the seed the task's data is drawn from (``Task.data_seed``: the native tasks' ``data_seed``
    option; an MMLab config on the generated shapes data, its seed; null for a data set on disk),
    which held-out trainings replace through the option ``data_seed``; ``baseline``: the task's
    hand-designed loss in wire form over the searched branches (the selection sets aside losses
    gradient-equivalent to it). Payload: ``{task, metric?, options?}``."""
    if not isinstance(payload, dict):
        raise ValueError(f"job payload must be a map, got {type(payload).__name__}")
    job = _job({k: v for k, v in payload.items() if k != "loss"}, device=device, train=False)
    return {
        "task": job.task.name,
        "branches": [{"name": n, "kind": k} for n, k in job.task.branches.items()],
        "metrics": list(job.task.metrics),
        "defaultMetric": job.task.default_metric,
        "metric": job.metric,
        "dataSeed": job.task.data_seed(),
        # the proxy budget these options give (a fidelity measurement trains at multiples of it)
        "iterations": getattr(getattr(job.task, "options", None), "iterations", None),
        # a train-loss job with fidelity.stop_at continues from a lower rung's cached state
        "continues": job.task.continues,
        "baseline": job.task.baseline_loss,
    }
