"""Contract of every ``Task``: one suite run over every implementation (in the spirit of Optuna's
tests parametrised over samplers), each with the cheapest options it offers.

What every task promises the protocol and the search: recorded samples with one prediction per
branch and loss inputs of the kind's shape, built alike one by one and jointly; ground truth that
scores ξ = 1; a hand-designed baseline that passes rejection at the paper's constants and whose
sign flip fails on every branch; proxy training that stops at the first non-finite loss; metrics
on a 0-1 scale. MMLab tasks are skipped, with the reason, where their library is not installed.
"""
from __future__ import annotations

import importlib.util
import math
from typing import Any

import pytest
import torch

from autoloss_worker.task_jobs import eval_loss_job, train_loss_job
from autoloss_worker.tasks import TASKS, Task, get_task
from autoloss_worker.tasks.base import BOX, DENSE
from autoloss_worker.tasks.mmlab_proxy import SHIPPED_CONFIGS

torch.set_num_threads(1)

# suite id -> (task options, the library it needs or None); an id "task-variant" runs the task
# with other options (det-retinanet, det-fcos: the shipped one-stage configs)
CHEAP: dict[str, tuple[dict[str, Any], str | None]] = {
    "seg": (dict(train_images=32, eval_images=8, threads=1, rejection_size=16), None),
    "pose": (dict(train_images=24, eval_images=8, threads=1), None),
    # random initialisation: a shapes-pretrained backbone would be built (minutes) on first use
    "det": (dict(pretrained=False), "mmdet"),
    "det-retinanet": (dict(pretrained=False, config=str(SHIPPED_CONFIGS / "det_retinanet_shapes.py")), "mmdet"),
    "det-fcos": (dict(pretrained=False, config=str(SHIPPED_CONFIGS / "det_fcos_shapes.py")), "mmdet"),
    "ins": (dict(pretrained=False), "mmdet"),
    "mmseg": (dict(pretrained=False), "mmseg"),
    "mmpose": (dict(pretrained=False), "mmpose"),
}
_OPTIONS: dict[int, dict[str, Any]] = {}  # id(task) -> its suite options
GT_LOGIT = 10.0
# A loss that is NaN at the first step on every kind: exp(exp(·)) overflows (inv(0) = 1e12 where
# y = 0; the enclosing area e is many pixels²), and inf − inf = NaN.
_INF = {DENSE: ["exp", ["exp", ["exp", ["inv", ["mul", "y_hat", "y"]]]]], BOX: ["exp", ["exp", "e"]]}
NAN = {kind: ["add", tree, ["neg", tree]] for kind, tree in _INF.items()}


def test_every_task_is_in_the_suite():
    assert {suite_id.split("-")[0] for suite_id in CHEAP} == set(TASKS)


@pytest.fixture(scope="module", params=sorted(CHEAP))
def task(request: pytest.FixtureRequest) -> Task:
    options, library = CHEAP[request.param]
    if library is not None and importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed (scripts/setup-mmlab.sh)")
    task = get_task(request.param.split("-")[0], **options)
    _OPTIONS[id(task)] = options
    return task


def job(task: Task, loss: Any, **extra: Any) -> dict[str, Any]:
    return {"task": task.name, "loss": loss, "seed": 0, "options": _OPTIONS[id(task)], **extra}


def with_trees(task: Task, tree_of: Any) -> dict[str, Any]:
    """The task's baseline with every branch's tree replaced by ``tree_of(branch)``."""
    return {**task.baseline_loss, "branches": [{**b, "tree": tree_of(b)} for b in task.baseline_loss["branches"]]}


def ground_truth(task: Task, branch: str, sample: Any) -> torch.Tensor:
    """A raw prediction equal to the ground truth: the task's own where it has one (multi-branch
    tasks must); for the single-branch ones the test knows the raw layout (logits over classes, or
    heatmaps)."""
    if type(task).ground_truth_raw is not Task.ground_truth_raw:
        return task.ground_truth_raw(branch, sample.target)
    target, raw = sample.target, sample.raw[branch]
    if hasattr(target, "labels"):  # seg / mmseg: logits GT_LOGIT · one-hot(label), ignored pixels anything
        labels = target.labels.clamp(0, raw.shape[1] - 1)
        return GT_LOGIT * torch.nn.functional.one_hot(labels, raw.shape[1]).permute(0, 3, 1, 2).to(raw.dtype)
    return target.heatmaps.to(raw.dtype)  # pose / mmpose: the target heatmaps


def test_samples_hold_every_branch_and_inputs_of_the_kinds_shape(task: Task):
    samples = task.rejection_samples(5, 0)
    assert len(samples) == 5
    metric = task.default_metric
    for branch, kind in task.branches.items():
        per_sample = []
        for s in samples:
            raw = s.raw[branch]
            assert raw.shape[0] == 1 and raw.dtype == torch.float64
            inputs = task.to_loss_inputs(branch, raw, s.target, metric=metric)
            keys = ("y_hat", "y") if kind == DENSE else ("i", "u", "e")
            assert all(inputs[k].dim() == 4 and inputs[k].shape == inputs[keys[0]].shape for k in keys), branch
            per_sample.append(inputs)
        joint = task.joint_loss_inputs(branch, [s.raw[branch] for s in samples], samples, metric=metric)
        for key in joint:
            assert torch.allclose(joint[key], torch.cat([d[key] for d in per_sample]), rtol=1e-12, atol=0), (branch, key)


def test_ground_truth_scores_one_and_recorded_predictions_score_in_range(task: Task):
    for s in task.rejection_samples(5, 0):
        gt = {b: ground_truth(task, b, s) for b in task.branches}
        assert task.sample_metric(gt, s.target, task.default_metric) == pytest.approx(1.0, abs=1e-5)
        for metric in task.metrics:
            assert 0.0 <= task.sample_metric(s.raw, s.target, metric) <= 1.0


def test_declared_fast_paths_equal_the_tasks_own_functions(task: Task):
    """``softmax_dense_inputs`` and ``confusion_metrics`` let the protocol bypass ``to_loss_inputs``
    and ``sample_metric``; where a task declares them, the bypass must give the task's own numbers
    (on perturbed predictions of every sample, several rows at once)."""
    from autoloss_worker.fastreject.metrics import exact_gain, metric_gain

    assert task.confusion_metrics <= {"miou", "fwiou", "gacc", "macc"} and task.confusion_metrics <= set(task.metrics)
    if task.softmax_dense_inputs or task.confusion_metrics:
        assert len(task.branches) == 1 and task.stackable_samples, "the fast paths stack one dense branch"
    samples = task.rejection_samples(5, 0)
    (branch,) = task.branches if len(task.branches) == 1 else (None,)
    generator = torch.Generator().manual_seed(0)
    for metric in task.metrics:
        if task.softmax_dense_inputs:
            for s in samples:
                raw = s.raw[branch] + torch.randn(s.raw[branch].shape, generator=generator, dtype=s.raw[branch].dtype)
                own = task.to_loss_inputs(branch, raw, s.target, metric=metric)
                assert set(own) - {"one"} == {"y_hat", "y"}
                torch.testing.assert_close(own["y_hat"], torch.softmax(raw, dim=1), rtol=0, atol=0)
                torch.testing.assert_close(own["y"], s.target.y[metric], rtol=0, atol=0)
        if metric in task.confusion_metrics:
            raw = torch.stack([s.raw[branch][0] for s in samples])[None]  # (1, B, C, H, W)
            rows = raw + 3 * torch.randn((4, *raw.shape[1:]), generator=generator, dtype=raw.dtype)
            before = [task.sample_metric(s.raw, s.target, metric) for s in samples]
            assert metric_gain(task, branch, rows, samples, metric, before) == pytest.approx(
                exact_gain(task, branch, rows, samples, metric, before), abs=1e-12)


def test_baseline_passes_rejection_at_the_papers_constants(task: Task):
    out = eval_loss_job(job(task, task.baseline_loss))
    assert out["passed"] and not out["invalid"], out["branches"]
    assert list(out["branches"]) == list(task.branches) and out["score"] >= 0.6


def test_sign_flipped_baseline_fails_on_every_branch(task: Task):
    flipped = with_trees(task, lambda b: ["neg", b["tree"]])
    out = eval_loss_job(job(task, flipped, branches=list(task.branches)))
    assert not out["passed"]
    assert [b["passed"] for b in out["branches"].values()] == [False] * len(task.branches)


def test_baseline_proxy_training_reports_every_metric_in_range(task: Task):
    small = {"iterations": 2, "warmup_iters": 1, "val_images": 4} if task.name in ("det", "ins") else \
        {"iterations": 2, "warmup_iters": 1} if task.name in ("mmseg", "mmpose") else {"iterations": 2}
    out = train_loss_job({**job(task, task.baseline_loss), "options": {**_OPTIONS[id(task)], **small}})
    assert not out["invalid"] and out["iterations"] == 2
    assert set(out["metrics"]) == set(task.metrics) and out["target"] == out["metrics"][task.default_metric]
    assert all(0.0 <= v <= 1.0 for v in out["metrics"].values())


def test_a_nan_loss_stops_proxy_training_at_its_first_step_with_metrics_in_range(task: Task):
    options = {"iterations": 5, "warmup_iters": 1} if task.name in ("det", "ins", "mmseg", "mmpose") else {}
    out = train_loss_job({**job(task, with_trees(task, lambda b: NAN[b["kind"]])),
                          "options": {**_OPTIONS[id(task)], **options}})
    assert out["invalid"] and out["iterations"] == 1
    assert set(out["metrics"]) == set(task.metrics)
    assert all(0.0 <= v <= 1.0 and not math.isnan(v) for v in out["metrics"].values())
