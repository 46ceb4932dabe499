"""The mmpose task (an MMPose top-down heatmap config behind the generic Task interface):
task-info, the per-instance OKS AP, rejection verdicts, rejection inputs against the training loss
module, and tiny proxy runs.
Run: .venv/bin/python -m pytest -q python_workers/tests/test_mmlab_pose_task.py"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops is not installed (scripts/setup-mmlab.sh)")
pytest.importorskip("mmpose", reason="MMPose is not installed (scripts/setup-mmlab.sh)")

from autoloss_worker.graph import loss_from_wire  # noqa: E402
from autoloss_worker.fastreject import check_loss  # noqa: E402
from autoloss_worker.rejection import RejectionConfig  # noqa: E402
from autoloss_worker.task_jobs import eval_loss_job, task_info_job, train_loss_job  # noqa: E402
from autoloss_worker.tasks import get_task  # noqa: E402
from autoloss_worker.tasks.losses import branch_output, compile_loss, training_value  # noqa: E402
from autoloss_worker.tasks.mmpose_task import PoseTarget, keypoint_ap  # noqa: E402

torch.set_num_threads(1)
SQUARED_ERROR = ["square", ["add", "y_hat", ["neg", "y"]]]
# The paper's searched pose loss (Table 8): (ŷ − 16y⁴)² + ŷ⁴.
SIXTEEN = ["square", ["square", ["add", "one", "one"]]]
PAPER_POSE = ["add", ["square", ["add", "y_hat", ["neg", ["mul", SIXTEEN, ["square", ["square", "y"]]]]]],
              ["square", ["square", "y_hat"]]]
EXPLODES = ["exp", ["exp", ["exp", ["inv", ["mul", "y_hat", "y"]]]]]  # inv(0) = 1e12 where y = 0: Inf at once


def _wire(tree):
    return {"v": 1, "branches": [{"name": "loss", "kind": "dense", "inputs": ["y_hat", "y", "one"], "tree": tree}]}


@pytest.fixture(scope="module")
def task():
    return get_task("mmpose")


@pytest.fixture(scope="module")
def samples(task):
    return task.rejection_samples(5, 0)


def test_task_info_names_the_branch_and_metric():
    info = task_info_job({"task": "mmpose"})
    assert info["branches"] == [{"name": "loss", "kind": "dense"}]
    assert info["metrics"] == ["map"] and info["defaultMetric"] == "map"


def test_unknown_config_is_named():
    with pytest.raises(ValueError, match="nope.py"):
        get_task("mmpose", config="/nope.py")


def test_keypoint_ap_by_hand():
    # Area 100, σ = 0.1 for every joint: OKS = exp(−d² / (2 · 100 · 0.2²)) = exp(−d²/8) when every
    # labelled joint is off by d. d² = 1.6 gives OKS 0.8187, which clears 0.50 … 0.80: 7 of 10.
    truth = np.array([[10.0, 10.0, 1.0], [20.0, 10.0, 1.0], [20.0, 20.0, 1.0], [10.0, 20.0, 0.0], [15.0, 15.0, 1.0]])
    target = PoseTarget(heatmaps=torch.zeros(1), weight=torch.zeros(1), keypoints=truth, area=100.0, sigmas=np.full(5, 0.1))
    assert keypoint_ap(truth[:, :2], target) == 1.0
    moved = truth[:, :2] + math.sqrt(1.6)  # along x only
    moved[:, 1] = truth[:, 1]
    moved[3] = [500.0, 500.0]  # an unlabelled joint does not count
    assert keypoint_ap(moved, target) == pytest.approx(0.7)


def test_samples_are_visible_instances_in_crop_coordinates(task, samples):
    assert len({s.raw["loss"].shape for s in samples}) == 1 and samples[0].raw["loss"].shape == (1, 5, 16, 16)
    for s in samples:
        own = s.target.branches["loss"]
        w = own.weight.flatten()
        assert bool((w > 0).any()) and bool(((w > 0) <= (torch.from_numpy(own.keypoints[:, 2]) > 0)).all())
        assert keypoint_ap(own.keypoints[:, :2], own) == 1.0  # the exact keypoints
        assert task.sample_metric(s.raw, s.target, "map") == 0.0  # a random network
    # The target heatmaps decode to the keypoints up to the 16 × 16 grid (the codec's quarter-cell
    # refinement): ξ there is what the evaluator can give at best, below 1 for small objects.
    at_truth = [task.sample_metric({"loss": s.target.branches["loss"].heatmaps}, s.target, "map") for s in samples]
    assert min(at_truth) >= 0.5 and np.mean(at_truth) >= 0.8


def test_rejection_inputs_give_the_training_modules_value_on_visible_joints(task, samples):
    from autoloss_worker.mmlab import registry  # noqa: F401  (registers and self-checks)
    from autoloss_worker.mmlab.mmpose_loss import AutoLossGraph

    s = next(s for s in samples if bool((s.target.branches["loss"].weight == 0).any()))  # one with an invisible joint
    heatmaps = s.raw["loss"].clone().requires_grad_(True)
    fn = compile_loss(loss_from_wire(_wire(PAPER_POSE)))["loss"]
    ours = training_value(branch_output(fn, task.to_loss_inputs("loss", heatmaps, s.target, metric="map")))
    own = s.target.branches["loss"]
    theirs = AutoLossGraph(graph=PAPER_POSE)(heatmaps, own.heatmaps, own.weight[:, :, 0, 0])
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_heatmap_mse_passes_rejection_and_its_negation_fails():
    mse = eval_loss_job({"task": "mmpose", "loss": _wire(SQUARED_ERROR)})
    assert mse["passed"] and mse["score"] >= 0.8 and len(mse["gradNorms"]) == 5
    negated = eval_loss_job({"task": "mmpose", "loss": _wire(["neg", SQUARED_ERROR])})
    assert not negated["passed"] and negated["score"] < 0.1


def test_fast_path_score_equals_the_reference_protocol(task):
    reference = check_loss(task, loss_from_wire(_wire(PAPER_POSE)), "map", 0, RejectionConfig())["loss"]
    fast = eval_loss_job({"task": "mmpose", "loss": _wire(PAPER_POSE)})
    assert fast["passed"] == reference.passed and fast["score"] == pytest.approx(reference.score, abs=1e-9)


def test_two_iteration_proxy_with_a_searched_loss_reports_coco_ap():
    out = train_loss_job({"task": "mmpose", "loss": _wire(PAPER_POSE), "options": {"iterations": 2, "warmup_iters": 1, "pretrained": False}})
    assert not out["invalid"] and out["iterations"] == 2
    assert set(out["metrics"]) == {"map"} and 0.0 <= out["target"] == out["metrics"]["map"] <= 1.0


def test_an_exploding_loss_stops_proxy_training_at_once():
    out = train_loss_job({"task": "mmpose", "loss": _wire(EXPLODES), "options": {"iterations": 50, "pretrained": False}})
    assert out["invalid"] and out["iterations"] == 1 and out["metrics"] == {"map": 0.0}


def test_the_headline_metric_of_the_shipped_pose_config_is_coco_keypoint_ap():
    # mmpose's CocoMetric has no `metric` key: without the scope check this read as bbox mAP
    from mmengine.config import Config

    from autoloss_worker.mmlab.rewrite import default_metric_key
    from autoloss_worker.tasks.mmpose_task import DEFAULT_CONFIG

    assert default_metric_key(Config.fromfile(DEFAULT_CONFIG)) == "coco/AP"
