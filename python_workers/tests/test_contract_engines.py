"""Contract of every rejection engine: on a seeded set of losses it decides as the reference protocol
(``rejection_reference.py``: one candidate, ``torch.optim.SGD``, every step, its own objective).

One suite, parametrised over the engines and the layouts they run on (in the spirit of Optuna's
sampler tests): ``tree`` on stacked samples and on per-sample tensors, ``closed``, ``levels`` in
lockstep and as a refilled stream, the ``Screener`` (static check, cache, the task's engine), and
``check_loss`` (the sample-by-sample path); and over tasks: seg, native pose and det (4 branches,
each checked with the others at ground truth; its samples do not stack, so only the per-sample
engines apply). A short protocol (30 steps, η lowered so that some losses pass) keeps it cheap;
the decisions it compares do not depend on the constants.
"""
from __future__ import annotations

import random
from collections.abc import Callable

import pytest
import torch

from autoloss_worker.fastreject import FastConfig, Screener, check_loss, run_batch, run_stream
from autoloss_worker.graph import ARITY, OP_NAMES, LossGraph, loss_from_wire
from autoloss_worker.tasks.base import BOX
from autoloss_worker.rejection import BranchVerdict, RejectionConfig, combine
from autoloss_worker.tasks import Task, get_task
from autoloss_worker.tasks.losses import compile_loss
from rejection_reference import ReferenceVerdict, reference_check

torch.set_num_threads(1)

CONFIG = RejectionConfig(samples=3, iterations=30, threshold=0.15)
CE = ["neg", ["mul", "y", ["log", "y_hat"]]]
MSE = ["square", ["add", "y_hat", ["neg", "y"]]]
TASKS = {  # name -> (options, metric, library needed)
    "seg": (dict(train_images=32, eval_images=8, threads=1, rejection_size=16), "miou", None),
    "pose": (dict(train_images=24, eval_images=8, threads=1), "map", None),
    "det": ({}, "bbox_map", "mmdet"),
}
LEAVES = {"dense": ("y_hat", "y", "one"), BOX: ("i", "u", "e", "one")}


def random_tree(rng: random.Random, depth: int, kind: str = "dense"):
    if depth == 0 or (depth < 3 and rng.random() < 0.2):
        return rng.choice(LEAVES[kind])
    op = rng.choice(OP_NAMES)
    return [op] + [random_tree(rng, depth - 1, kind) for _ in range(ARITY[op])]


def losses(task: Task) -> list[LossGraph]:
    """Single-branch tasks: passing, failing, non-finite (inv(0) = 1e12 → exp overflows),
    zero-gradient, sample-mixing (mean_nhw) and 12 seeded random trees. Multi-branch: the baseline,
    its sign flip, and 6 with seeded random trees on some branches."""
    rng = random.Random(13)
    base = task.baseline_loss
    if len(task.branches) > 1:
        variants = [{}, {b["name"]: ["neg", b["tree"]] for b in base["branches"]}]
        variants += [{b["name"]: random_tree(rng, rng.randint(1, 3), b["kind"]) for b in base["branches"] if rng.random() < 0.6}
                     for _ in range(6)]
        return [loss_from_wire({**base, "branches": [{**b, "tree": v.get(b["name"], b["tree"])} for b in base["branches"]]})
                for v in variants]
    trees = [CE, MSE, ["neg", CE], ["mul", "y_hat", ["exp", ["inv", "y"]]], ["exp", "one"],
             ["square", ["mean_nhw", ["add", "y_hat", ["neg", "y"]]]]]
    trees += [random_tree(rng, rng.randint(1, 3)) for _ in range(12)]
    return [loss_from_wire({"v": 1, "branches": [{"name": "loss", "kind": "dense", "inputs": ["y_hat", "y", "one"],
                                                   "tree": t}]}) for t in trees]


def _tree(graph: LossGraph, branch: str):
    return next(b.tree for b in graph.branches if b.name == branch)


def _every_branch(run: Callable[..., list[BranchVerdict]]) -> Callable[..., list[BranchVerdict]]:
    """An engine run on one branch -> the whole-loss verdicts over every branch of the task."""
    def whole(task: Task, graphs: list[LossGraph], metric: str) -> list[BranchVerdict]:
        samples = task.rejection_samples(CONFIG.samples, 0)
        per_branch = [run(task, branch, graphs, samples, metric) for branch in task.branches]
        return [combine(list(vs)) for vs in zip(*per_branch)]
    return whole


def _batch(engine: str, stacked: bool) -> Callable[..., list[BranchVerdict]]:
    def run(task: Task, branch: str, graphs: list[LossGraph], samples: list, metric: str) -> list[BranchVerdict]:
        if stacked and not task.stackable_samples:
            pytest.skip(f"task '{task.name}' has per-sample shapes: stacked engines do not apply")
        compiled = [compile_loss(g)[branch] for g in graphs] if engine == "tree" else None
        return run_batch(task, branch, compiled, samples, metric, CONFIG, engine=engine,
                         trees=[_tree(g, branch) for g in graphs], stacked=stacked)
    return _every_branch(run)


def _stream(task: Task, branch: str, graphs: list[LossGraph], samples: list, metric: str) -> list[BranchVerdict]:
    if not task.stackable_samples:
        pytest.skip(f"task '{task.name}' has per-sample shapes: stacked engines do not apply")
    return run_stream(task, branch, [_tree(g, branch) for g in graphs], samples, metric, CONFIG, width=4)


def _screener(task: Task, graphs: list[LossGraph], metric: str) -> list[BranchVerdict]:
    engine = "closed" if task.stackable_samples else "tree"
    screener = Screener(task, metric, 0, CONFIG, FastConfig(batch=5, engine=engine))
    return screener.screen(graphs, branches=list(task.branches))  # type: ignore[return-value]


def _check_loss(task: Task, graphs: list[LossGraph], metric: str) -> list[BranchVerdict]:
    return [combine(list(check_loss(task, g, metric, 0, CONFIG).values())) for g in graphs]


ENGINES: dict[str, Callable[..., list[BranchVerdict]]] = {
    "tree-stacked": _batch("tree", True),
    "tree-per-sample": _batch("tree", False),
    "closed": _batch("closed", True),
    "levels": _batch("levels", True),
    "levels-stream": _every_branch(_stream),
    "screener": _screener,
    "check_loss": _check_loss,
}

_reference: dict[str, list[ReferenceVerdict]] = {}


def reference(name: str, task: Task, graphs: list[LossGraph], metric: str) -> list[ReferenceVerdict]:
    if name not in _reference:
        _reference[name] = [reference_check(task, g, metric, 0, CONFIG) for g in graphs]
    return _reference[name]


@pytest.mark.parametrize("task_name", sorted(TASKS))
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_engine_decides_as_the_reference(engine: str, task_name: str):
    options, metric, library = TASKS[task_name]
    if library is not None:
        pytest.importorskip(library, reason=f"{library} is not installed (scripts/setup-mmlab.sh)")
    task = get_task(task_name, **options)
    graphs = losses(task)
    ref = reference(task_name, task, graphs, metric)
    got = ENGINES[engine](task, graphs, metric)
    assert [(v.passed, v.invalid) for v in got] == [(r.passed, r.invalid) for r in ref]
    for v, r in zip(got, ref):
        if getattr(v, "stage", "protocol") == "protocol":  # a static reject reports g = 0 without running
            assert v.score == pytest.approx(r.score, abs=1e-9)
    assert {r.passed for r in ref} == {True, False}  # the set tells engines apart
    assert task.name == "det" or any(r.invalid for r in ref)
