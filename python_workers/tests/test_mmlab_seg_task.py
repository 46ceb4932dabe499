"""The mmseg task (an MMSegmentation config behind the generic Task interface): task-info, the
per-image metric against mmseg's own IoUMetric, rejection verdicts, rejection inputs against the
training loss module, and tiny proxy runs.
Run: .venv/bin/python -m pytest -q python_workers/tests/test_mmlab_seg_task.py"""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops is not installed (scripts/setup-mmlab.sh)")
pytest.importorskip("mmseg", reason="MMSegmentation is not installed (scripts/setup-mmlab.sh)")

from autoloss_worker.graph import loss_from_wire  # noqa: E402
from autoloss_worker.fastreject import check_loss  # noqa: E402
from autoloss_worker.rejection import RejectionConfig  # noqa: E402
from autoloss_worker.task_jobs import eval_loss_job, task_info_job, train_loss_job  # noqa: E402
from autoloss_worker.tasks import get_task  # noqa: E402
from autoloss_worker.tasks.losses import branch_output, compile_loss, training_value  # noqa: E402
from autoloss_worker.tasks.mmseg_task import SegTarget, _target  # noqa: E402

torch.set_num_threads(1)
CE = ["neg", ["mul", "y", ["log", "y_hat"]]]
# The paper's searched mIoU loss (Table 8): −½·log(tanh(y/(1+y)·√ŷ)·(ŷ² + y)).
PAPER_MIOU = ["mul", ["neg", ["mul", "one", ["inv", ["add", "one", "one"]]]],
              ["log", ["mul", ["tanh", ["mul", ["mul", "y", ["inv", ["add", "one", "y"]]], ["sqrt", "y_hat"]]],
                       ["add", ["square", "y_hat"], "y"]]]]
EXPLODES = ["exp", ["exp", ["exp", ["inv", ["mul", "y_hat", "y"]]]]]  # inv(0) = 1e12 where y = 0: Inf at once


def _wire(tree):
    return {"v": 1, "branches": [{"name": "loss", "kind": "dense", "inputs": ["y_hat", "y", "one"], "tree": tree}]}


@pytest.fixture(scope="module")
def task():
    return get_task("mmseg")


@pytest.fixture(scope="module")
def samples(task):
    return task.rejection_samples(5, 0)


def test_task_info_names_the_branch_and_metrics():
    info = task_info_job({"task": "mmseg"})
    assert info["branches"] == [{"name": "loss", "kind": "dense"}]
    assert info["metrics"] == ["miou", "macc", "gacc"] and info["defaultMetric"] == "miou"


def test_unknown_config_is_named():
    with pytest.raises(ValueError, match="nope.py"):
        get_task("mmseg", config="/nope.py")


def test_samples_are_the_configs_images_at_label_resolution(task, samples):
    assert len({s.raw["loss"].shape for s in samples}) == 1  # one padded size: the fast path can batch them
    assert samples[0].raw["loss"].shape == (1, 5, 64, 64)  # 4 shapes + background, 64 × 64 images
    for s in samples:
        gt = {"loss": s.target.y * 10.0}  # logits 10 on the label
        assert task.sample_metric(gt, s.target, "miou") == 1.0
        assert task.sample_metric(s.raw, s.target, "miou") < 0.3  # a random network


def _mmseg_iou_metric(pred: torch.Tensor, labels: torch.Tensor, classes: int, ignore_index: int) -> dict[str, float]:
    """mmseg's IoUMetric on one image (its own intersect_and_union and total_area_to_metrics), 0-1."""
    from mmseg.evaluation.metrics import IoUMetric

    areas = IoUMetric.intersect_and_union(pred, labels, classes, ignore_index)
    m = IoUMetric.total_area_to_metrics(*areas, ["mIoU"])
    return {"miou": float(np.nanmean(m["IoU"])), "macc": float(np.nanmean(m["Acc"])), "gacc": float(m["aAcc"])}


@pytest.mark.parametrize("metric", ["miou", "macc", "gacc"])
def test_sample_metric_is_mmsegs_iou_metric_on_the_image_with_ignored_pixels(task, samples, metric):
    gen = torch.Generator().manual_seed(0)
    for s in samples[:3]:
        labels = s.target.labels.clone()
        labels[:, :10] = 255  # an unlabelled band
        target = _target(s.raw["loss"], labels, 255)
        # A prediction between random and right: the label's logit raised by a random margin.
        raw = s.raw["loss"] + 0.02 * torch.rand(s.raw["loss"].shape, generator=gen, dtype=torch.float64) * target.y
        ours = task.sample_metric({"loss": raw}, target, metric)
        theirs = _mmseg_iou_metric(raw.argmax(1)[0], labels[0], 5, 255)[metric]
        assert ours == pytest.approx(theirs, abs=1e-6)


def test_rejection_inputs_give_the_training_modules_value_with_ignored_pixels(samples):
    """The rejection objective (per pixel, weighted) and AutoLossGraph in the config agree: the
    rejection value ×1/(N·H·W) is what mmseg's decode head gets from loss_decode."""
    from autoloss_worker.mmlab import registry  # noqa: F401  (registers and self-checks)
    from autoloss_worker.mmlab.mmseg_loss import AutoLossGraph

    s = samples[0]
    labels = s.target.labels.clone()
    labels[:, 40:] = 255
    target: SegTarget = _target(s.raw["loss"], labels, 255)
    logits = s.raw["loss"].clone().requires_grad_(True)
    fn = compile_loss(loss_from_wire(_wire(PAPER_MIOU)))["loss"]
    ours = training_value(branch_output(fn, get_task("mmseg").to_loss_inputs("loss", logits, target, metric="miou")))
    theirs = AutoLossGraph(graph=PAPER_MIOU)(logits, labels, ignore_index=255)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_cross_entropy_passes_rejection_and_its_negation_fails():
    ce = eval_loss_job({"task": "mmseg", "loss": _wire(CE)})
    assert ce["passed"] and ce["score"] > 0.9 and len(ce["gradNorms"]) == 5
    flipped = eval_loss_job({"task": "mmseg", "loss": _wire(["neg", CE])})
    assert not flipped["passed"] and flipped["score"] < 0.1


def test_fast_path_score_equals_the_reference_protocol(task):
    reference = check_loss(task, loss_from_wire(_wire(CE)), "miou", 0, RejectionConfig())["loss"]
    fast = eval_loss_job({"task": "mmseg", "loss": _wire(CE)})
    assert fast["score"] == pytest.approx(reference.score, abs=1e-9)
    assert fast["gradNorms"] == pytest.approx(reference.grad_norms, rel=1e-9)


def test_two_iteration_proxy_with_a_searched_loss_reports_the_evaluators_metrics():
    out = train_loss_job({"task": "mmseg", "loss": _wire(PAPER_MIOU), "options": {"iterations": 2, "warmup_iters": 1, "pretrained": False}})
    assert not out["invalid"] and out["iterations"] == 2
    assert set(out["metrics"]) == {"miou", "macc", "gacc"}
    assert all(0.0 <= v <= 1.0 for v in out["metrics"].values())
    assert out["target"] == out["metrics"]["miou"] and out["metrics"]["gacc"] > 0.0


def test_an_exploding_loss_stops_proxy_training_at_once():
    out = train_loss_job({"task": "mmseg", "loss": _wire(EXPLODES), "options": {"iterations": 50, "pretrained": False}})
    assert out["invalid"] and out["iterations"] == 1
    assert out["metrics"] == {"miou": 0.0, "macc": 0.0, "gacc": 0.0}
