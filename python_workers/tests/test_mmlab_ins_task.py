"""The ins task (Mask R-CNN inside an MMDetection config, 5 branches): task-info, the mask branch's
ξ factor, rejection per branch on recorded samples, a tiny 5-branch proxy run reporting segm mAP.
Run: .venv/bin/python -m pytest -q python_workers/tests/test_mmlab_ins_task.py"""
from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops is not installed (scripts/setup-mmlab.sh)")
pytest.importorskip("mmdet", reason="MMDetection is not installed (scripts/setup-mmlab.sh)")

from autoloss_worker.graph import loss_from_wire  # noqa: E402
from autoloss_worker.mmlab.inputs import mask_inputs  # noqa: E402
from autoloss_worker.fastreject import check_branch  # noqa: E402
from autoloss_worker.task_jobs import task_info_job, train_loss_job  # noqa: E402
from autoloss_worker.tasks import get_task  # noqa: E402
from autoloss_worker.tasks.det import CE, ONE_MINUS_GIOU  # noqa: E402
from autoloss_worker.mmlab.det_records import mask_factor  # noqa: E402
from autoloss_worker.tasks.losses import compile_loss  # noqa: E402

torch.set_num_threads(1)
FLIPPED_CE = ["mul", "y", ["log", "y_hat"]]
FLIPPED = {"rpn_cls": FLIPPED_CE, "rpn_reg": ["neg", ONE_MINUS_GIOU], "rcnn_cls": FLIPPED_CE,
           "rcnn_reg": ["neg", ONE_MINUS_GIOU], "mask": FLIPPED_CE}


@pytest.fixture(scope="module")
def task():
    return get_task("ins")


@pytest.fixture(scope="module")
def samples(task):
    return task.rejection_samples(5, 0)


def _loss(task, **trees):
    wire = task.baseline_loss
    wire = {**wire, "branches": [{**b, "tree": trees.get(b["name"], b["tree"])} for b in wire["branches"]]}
    return compile_loss(loss_from_wire(wire))


def test_task_info_lists_the_five_branches_and_segm_map():
    info = task_info_job({"task": "ins"})
    assert [(b["name"], b["kind"]) for b in info["branches"]] == [
        ("rpn_cls", "dense"), ("rpn_reg", "box"), ("rcnn_cls", "dense"), ("rcnn_reg", "box"), ("mask", "dense")]
    assert info["metric"] == info["defaultMetric"] == "segm_map"
    assert set(info["metrics"]) == {"segm_map", "segm_map_50", "bbox_map"}


def test_mask_factor_by_hand():
    # One RoI of 2 x 4 pixels, the object covers the left half: IoU0 (the all-on mask) = 4/8.
    target = torch.tensor([[[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]])
    all_on, exact = torch.ones(1, 2, 4), 10 * (2 * target - 1)
    three = torch.tensor([[[1.0, 1.0, 1.0, -1.0], [-1.0, -1.0, -1.0, -1.0]]])  # 2 of 4 object pixels + 1 extra: IoU 2/5
    assert mask_factor(all_on, target) == pytest.approx(0.0)
    assert mask_factor(exact, target) == pytest.approx(1.0)
    assert mask_factor(-all_on, target) == pytest.approx(0.0)  # nothing predicted: worse than the box, clamped
    left_only_top = torch.tensor([[[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, -1.0, -1.0]]])  # IoU 3/4
    assert mask_factor(left_only_top, target) == pytest.approx((3 / 4 - 1 / 2) / (1 / 2))
    assert mask_factor(three, target) == pytest.approx(0.0)  # IoU 2/5 < IoU0: clamped
    # Two RoIs: the factor is their mean.
    both = mask_factor(torch.cat([exact, all_on]), torch.cat([target, target]))
    assert both == pytest.approx(0.5)


def test_samples_score_one_at_ground_truth_and_about_zero_as_recorded(task, samples):
    for s in samples:
        record = s.target.branches["mask"]
        assert record.logits.shape == record.targets.shape and record.logits.shape[0] > 0
        fill = record.targets.flatten(1).mean(1)
        assert bool(((fill > 0) & (fill < 0.95)).all())  # RoIs the box alone cannot segment
        gt = {b: task.ground_truth_raw(b, s.target) for b in task.branches}
        assert mask_factor(gt["mask"][0], record.targets) == 1.0
        assert task.sample_metric(gt, s.target, "segm_map") == pytest.approx(1.0, abs=1e-5)
    raw_mask = [mask_factor(s.raw["mask"][0], s.target.branches["mask"].targets) for s in samples]
    assert sum(raw_mask) / len(raw_mask) < 0.1  # the random network's masks


def test_mask_loss_inputs_are_fg_bg_probabilities_of_the_raw_logits(task, samples):
    s = samples[0]
    record = s.target.branches["mask"]
    env = task.to_loss_inputs("mask", s.raw["mask"], s.target, metric="segm_map")
    want = mask_inputs(record.logits, record.targets)
    torch.testing.assert_close(env["y_hat"], want.y_hat)
    torch.testing.assert_close(env["y"], want.y)
    assert env["y_hat"].shape == (record.logits.shape[0], 2, *record.logits.shape[1:])  # (P, 2, h, w)


@pytest.mark.parametrize("branch", ["rpn_cls", "rpn_reg", "rcnn_cls", "rcnn_reg", "mask"])
def test_baseline_branch_passes_and_its_sign_flip_fails(task, samples, branch):
    ok = check_branch(task, _loss(task)[branch], branch, samples, "segm_map")
    assert ok.passed and not ok.invalid, (ok.score, ok.metric_after)
    flipped = check_branch(task, _loss(task, **{branch: FLIPPED[branch]})[branch], branch, samples, "segm_map")
    assert not flipped.passed and flipped.score < 0.1, (flipped.score, flipped.metric_after)


def test_five_branch_train_loss_reports_segm_map():
    task = get_task("ins")
    assert [b["tree"] for b in task.baseline_loss["branches"]][-1] == CE  # binary CE over fg/bg
    out = train_loss_job({"task": "ins", "loss": task.baseline_loss,
                          "options": {"iterations": 2, "warmup_iters": 1, "val_images": 4, "pretrained": False}})
    assert not out["invalid"] and out["iterations"] == 2
    assert set(out["metrics"]) == {"segm_map", "segm_map_50", "bbox_map"}
    assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in out["metrics"].values())
    assert out["target"] == out["metrics"]["segm_map"]


def test_mask_only_subset_searches_one_branch():
    task = get_task("ins", branches="mask")
    assert dict(task.branches) == {"mask": "dense"}
    assert [b["name"] for b in task.baseline_loss["branches"]] == ["mask"]
    info = task_info_job({"task": "ins", "options": {"branches": "mask"}})
    assert info["branches"] == [{"name": "mask", "kind": "dense"}]
