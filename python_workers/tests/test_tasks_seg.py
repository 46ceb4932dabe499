"""The segmentation proxy task: loss inputs, boundary targets, per-sample metrics, proxy training."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from autoloss_worker.task_jobs import baseline_job, train_loss_job
from autoloss_worker.tasks import elementwise, get_task
from autoloss_worker.tasks.seg import SEG_METRICS, SegNet, boundary_band, training_target

torch.set_num_threads(1)

SMALL = {"train_images": 64, "eval_images": 16, "threads": 1}
EPS = 1e-12


def ce(sign: float):
    return {"loss": elementwise(lambda t: -sign * t["y"] * torch.log(t["y_hat"] + EPS), mixes_samples=False)}


def square_labels() -> torch.Tensor:
    labels = torch.zeros((1, 12, 12), dtype=torch.long)
    labels[0, 4:8, 4:8] = 1  # a 4×4 square of class 1 on background
    return labels


def test_boundary_targets_cover_exactly_the_pixels_each_metric_scores():
    labels = square_labels()
    ring = np.zeros((12, 12), bool)
    ring[3:9, 3:9] = True
    ring[5:7, 5:7] = False  # pixels whose 3×3 window holds the other label: 2 px across the edge
    assert (boundary_band(labels.numpy(), "bf1")[0] == ring).all()
    trimap = np.zeros((12, 12), bool)
    trimap[2:10, 2:10] = True  # the ring dilated by the 1-px trimap radius of a 12×12 image
    assert (boundary_band(labels.numpy(), "biou")[0] == trimap).all()
    y = training_target(labels, "bf1", classes=5, dtype=torch.float64)  # (1, 5, 12, 12)
    assert y.shape == (1, 5, 12, 12)
    assert (y.sum(1)[0].numpy() == ring).all()  # one-hot on the ring, zero elsewhere
    assert y[0, 1, 4, 4] == 1 and y[0, 0, 3, 3] == 1 and y[0, 1, 5, 5] == 0
    assert torch.equal(training_target(labels, "miou", 5, torch.float64).argmax(1), labels)


def test_loss_inputs_are_softmax_probabilities_and_metric_targets():
    task = get_task("seg", **SMALL)
    s = task.rejection_samples(5, 0)[0]
    inputs = task.to_loss_inputs("loss", s.raw["loss"], s.target, metric="miou")
    assert set(inputs) == {"y_hat", "y"}
    assert inputs["y_hat"].shape == inputs["y"].shape == (1, 5, 32, 32)  # rejection at 32×32
    assert torch.allclose(inputs["y_hat"].sum(1), torch.ones(1, 32, 32, dtype=torch.float64))
    assert torch.equal(inputs["y"].sum(1), torch.ones(1, 32, 32, dtype=torch.float64))
    boundary = task.to_loss_inputs("loss", s.raw["loss"], s.target, metric="bf1")["y"]
    assert 0 < boundary.sum() < inputs["y"].sum()


def test_sample_metric_is_one_for_perfect_logits_for_every_metric():
    task = get_task("seg", **SMALL)
    for s in task.rejection_samples(5, 0):
        perfect = {"loss": 10.0 * s.target.y["miou"]}
        for metric in SEG_METRICS:
            assert task.sample_metric(perfect, s.target, metric) == 1.0, metric


def test_rejection_samples_are_cached_and_seeded():
    task = get_task("seg", **SMALL)
    a, b = task.rejection_samples(5, 0), task.rejection_samples(5, 1)
    assert task.rejection_samples(5, 0) is a
    assert not torch.equal(a[0].raw["loss"], b[0].raw["loss"])


def test_model_maps_images_to_full_resolution_logits():
    out = SegNet(classes=5, width=4)(torch.zeros(2, 3, 64, 64))
    assert out.shape == (2, 5, 64, 64)


def test_cross_entropy_beats_sign_flipped_cross_entropy_on_miou():
    task = get_task("seg", **SMALL)
    good = task.proxy_train(ce(+1.0), seed=0, metric="miou", budget=15)
    bad = task.proxy_train(ce(-1.0), seed=0, metric="miou", budget=15)
    assert not good.invalid and not bad.invalid and good.iterations == bad.iterations == 15
    assert set(good.metrics) == set(SEG_METRICS) and good.target == good.metrics["miou"]
    assert good.metrics["miou"] > bad.metrics["miou"] + 0.1
    assert good.metrics["gacc"] > 0.5 > bad.metrics["gacc"]


def test_nan_loss_stops_training_at_once():
    task = get_task("seg", **SMALL)
    r = task.proxy_train({"loss": elementwise(lambda t: t["y_hat"] * math.nan)}, seed=0, metric="miou", budget=50)
    assert r.invalid and r.iterations == 1
    assert r.metrics == {m: 0.0 for m in SEG_METRICS} and r.target == 0.0


def test_loss_that_turns_nan_later_stops_at_that_iteration():
    calls = []

    def nan_on_fourth(t):
        calls.append(1)
        out = -t["y"] * torch.log(t["y_hat"] + EPS)
        return out * math.nan if len(calls) == 4 else out

    r = get_task("seg", **SMALL).proxy_train({"loss": elementwise(nan_on_fourth)}, seed=0, metric="gacc", budget=50)
    assert r.invalid and r.iterations == 4


def test_train_and_baseline_jobs_report_the_cli_shape():
    wire = {"v": 1, "branches": [{"name": "loss", "kind": "dense", "inputs": ["y_hat", "y", "one"],
                                  "tree": ["neg", ["mul", "y", ["log", "y_hat"]]]}]}
    options = {**SMALL, "iterations": 3}
    r = train_loss_job({"task": "seg", "metric": "bf1", "loss": wire, "seed": 1, "options": options})
    assert set(r) == {"metrics", "target", "invalid", "iterations", "resumedFrom", "elapsedMs"}
    assert r["resumedFrom"] is None
    assert r["iterations"] == 3 and r["target"] == r["metrics"]["bf1"] and set(r["metrics"]) == set(SEG_METRICS)
    # The baseline is the same cross-entropy: same seed, metric and options give the same numbers.
    assert baseline_job({"task": "seg", "metric": "bf1", "seed": 1, "options": options})["metrics"] == r["metrics"]


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"task": "segm"}, "unknown task 'segm'"),
        ({"task": "seg", "metric": "map"}, "no metric 'map'"),
        ({"task": "seg", "options": {"itrations": 3}}, "unknown option"),
        ({"task": "seg", "options": {"iterations": "3"}}, "iterations must be int"),
        ({"task": "seg", "options": {"rejection": {"eta": 0.5}}}, "unknown option"),
    ],
)
def test_bad_jobs_fail_with_a_clear_message(payload, message):
    with pytest.raises(ValueError, match=message):
        baseline_job(payload)


def test_a_loss_with_other_branches_is_refused():
    wire = {"v": 1, "branches": [{"name": "rpn_cls", "kind": "dense", "inputs": ["y_hat", "y", "one"], "tree": "y"}]}
    with pytest.raises(ValueError, match=r"takes branches loss \(dense\); the loss has rpn_cls \(dense\)"):
        train_loss_job({"task": "seg", "loss": wire, "options": SMALL})
