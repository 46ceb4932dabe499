"""The loss-rejection protocol: paper constants, verdicts on known losses, invalid losses, gradient norms."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from autoloss_worker.graph import loss_from_wire
from autoloss_worker.fastreject import check_branch, check_loss
from autoloss_worker.rejection import PAPER_REJECTION, RejectionConfig
from autoloss_worker.task_jobs import eval_loss_job
from autoloss_worker.tasks import elementwise, get_task
from autoloss_worker.tasks.base import DENSE, Sample, Task
from autoloss_worker.tasks.losses import compile_loss

torch.set_num_threads(1)

SMALL_SEG = {"train_images": 48, "eval_images": 8, "threads": 1}
CE = ["neg", ["mul", "y", ["log", "y_hat"]]]


def wire(tree) -> dict:
    return {"v": 1, "branches": [{"name": "loss", "kind": "dense", "inputs": ["y_hat", "y", "one"], "tree": tree}]}


def eval_seg(tree, metric="miou", **rejection) -> dict:
    return eval_loss_job({"task": "seg", "metric": metric, "loss": wire(tree), "seed": 0,
                          "options": {**SMALL_SEG, "rejection": rejection}})


def test_defaults_are_the_papers_constants():
    c = RejectionConfig()
    assert (c.samples, c.iterations, c.lr, c.momentum, c.weight_decay, c.threshold) == (5, 500, 1e-3, 0.9, 0.0, 0.6)
    assert PAPER_REJECTION == c


def test_cross_entropy_passes_for_miou_at_paper_constants():
    r = eval_seg(CE)
    assert set(r) == {"passed", "score", "gradNorms", "fingerprint", "iterations", "invalid", "elapsedMs", "branches"}
    assert len(r["fingerprint"]) == len(r["gradNorms"]) and all(len(row) == 4 for row in r["fingerprint"])
    assert r["passed"] and not r["invalid"]
    assert r["score"] >= 0.6
    assert r["iterations"] == 500
    assert len(r["gradNorms"]) == 5 and all(n > 0 for n in r["gradNorms"])


@pytest.mark.parametrize(
    "name, tree",
    [
        ("sign-flipped CE", ["mul", "y", ["log", "y_hat"]]),
        ("constant one", "one"),
        ("no y: entropy of the prediction", ["neg", ["mul", "y_hat", ["log", "y_hat"]]]),
    ],
)
def test_poor_losses_are_rejected(name, tree):
    r = eval_seg(tree)
    assert not r["passed"], name
    assert not r["invalid"], name
    assert r["score"] < 0.6, name


def test_constant_loss_stops_after_one_step_with_zero_gain():
    results = check_loss(get_task("seg", **SMALL_SEG), compile_loss(loss_from_wire(wire("one"))), "miou")
    r = results["loss"]
    assert r.iterations == 1 and r.score == 0.0 and r.grad_norms == [0.0] * 5
    assert r.metric_after == r.metric_before


def test_gradient_norms_match_the_analytic_cross_entropy_gradient():
    # For L = Σ −y·log(softmax(z)), ∂L/∂z = softmax(z) − y at every pixel (Σ_c y = 1): an
    # independent reference for the norms the protocol reports (raw logits, summed objective).
    task = get_task("seg", **SMALL_SEG)
    r = check_loss(task, compile_loss(loss_from_wire(wire(CE))), "miou", config=RejectionConfig(iterations=1))["loss"]
    for norm, sample in zip(r.grad_norms, task.rejection_samples(5, 0)):
        z, y = sample.raw["loss"], sample.target.y["miou"]
        assert norm == pytest.approx(float((torch.softmax(z, 1) - y).norm()), rel=1e-9)


def test_fingerprint_tells_a_loss_from_its_negation():
    task = get_task("seg", **SMALL_SEG)
    one_step = RejectionConfig(iterations=1)
    a = check_loss(task, compile_loss(loss_from_wire(wire(CE))), "miou", config=one_step)["loss"]
    b = check_loss(task, compile_loss(loss_from_wire(wire(CE[1]))), "miou", config=one_step)["loss"]
    assert a.grad_norms == pytest.approx(b.grad_norms)  # equal norms: the paper's check alone would merge them
    assert len(a.fingerprint) == 5 and all(len(f) == 4 for f in a.fingerprint)
    flat_a = [x for f in a.fingerprint for x in f]
    flat_b = [x for f in b.fingerprint for x in f]
    assert [-x for x in flat_a] == pytest.approx(flat_b)
    assert any(abs(x) > 1e-6 for x in flat_a)


def test_a_loss_that_turns_nan_is_invalid_at_that_iteration():
    calls = []

    def nan_on_third_step(t):
        calls.append(1)
        out = -(t["y"] * torch.log(t["y_hat"]))
        return out * math.nan if len(calls) == 3 else out

    r = check_loss(get_task("seg", **SMALL_SEG), {"loss": elementwise(nan_on_third_step, mixes_samples=False)}, "miou")["loss"]
    assert r.invalid and not r.passed
    assert r.iterations == 3 and r.score == -1.0
    assert "iteration 3" in r.reason


def test_overflow_is_rejected_at_the_step_a_plain_sgd_reference_overflows():
    # −exp(exp(ŷ)) pushes pose heatmaps up until exp overflows. Replay the protocol with
    # torch.optim.SGD on the same objective to find, independently, the first non-finite step.
    task = get_task("pose", train_images=24, eval_images=8, threads=1)
    tree = ["neg", ["exp", ["exp", "y_hat"]]]
    samples = task.rejection_samples(5, 0)
    preds = [s.raw["loss"].clone().requires_grad_(True) for s in samples]
    opt = torch.optim.SGD(preds, lr=1e-3, momentum=0.9, weight_decay=0.0)
    expected = None
    for step in range(1, 501):
        value = sum((-torch.exp(torch.exp(p)) * s.target.weight).sum() for p, s in zip(preds, samples))
        if not torch.isfinite(value):
            expected = step
            break
        opt.zero_grad()
        value.backward()
        if not all(torch.isfinite(p.grad).all() for p in preds):
            expected = step
            break
        opt.step()
    assert expected is not None and 1 < expected < 500
    r = eval_loss_job({"task": "pose", "loss": wire(tree), "options": {"train_images": 24, "eval_images": 8, "threads": 1}})
    assert r["invalid"] and not r["passed"]
    assert r["iterations"] == expected


def test_samples_never_interact_through_mean_nhw():
    # mean_nhw averages over N: with the samples batched, sample b's objective would depend on the
    # others. compile_loss marks such graphs, and the protocol then runs each sample alone, so a
    # sample's gradient norm is what it is when that sample is checked by itself.
    task = get_task("seg", **SMALL_SEG)
    tree = ["square", ["mean_nhw", ["mul", "y", ["log", "y_hat"]]]]
    loss = compile_loss(loss_from_wire(wire(tree)))["loss"]
    assert loss.mixes_samples
    samples = task.rejection_samples(5, 0)
    one_step = RejectionConfig(iterations=1)
    together = check_branch(task, loss, "loss", samples, "miou", one_step)
    alone = [check_branch(task, loss, "loss", [s], "miou", one_step).grad_norms[0] for s in samples]
    assert together.grad_norms == pytest.approx(alone, rel=1e-12)
    batched = check_branch(task, dataclasses.replace(loss, mixes_samples=False), "loss", samples, "miou", one_step)
    assert batched.grad_norms != pytest.approx(alone, rel=1e-3)  # what batching would have done


def test_batching_elementwise_losses_changes_nothing():
    task = get_task("seg", **SMALL_SEG)
    loss = compile_loss(loss_from_wire(wire(CE)))["loss"]
    assert not loss.mixes_samples
    samples = task.rejection_samples(5, 0)
    short = RejectionConfig(iterations=50)
    a = check_branch(task, loss, "loss", samples, "miou", short)
    b = check_branch(task, dataclasses.replace(loss, mixes_samples=True), "loss", samples, "miou", short)
    assert a.grad_norms == pytest.approx(b.grad_norms, rel=1e-12)
    assert a.metric_after == b.metric_after and a.score == b.score


class TwoBranchToy(Task):
    """Two branches whose metric needs both right: the protocol must set the unchecked one to truth."""

    name = "toy"
    branches = {"a": DENSE, "b": DENSE}
    metrics = ("both",)
    default_metric = "both"
    baseline_loss = {}

    def build_model(self, seed):
        raise NotImplementedError

    def rejection_samples(self, B, seed):
        gen = torch.Generator().manual_seed(seed)
        return [Sample(raw={"a": -torch.rand((1, 1, 2, 2), generator=gen, dtype=torch.float64),
                            "b": -torch.rand((1, 1, 2, 2), generator=gen, dtype=torch.float64)},
                       target=torch.ones((1, 1, 2, 2), dtype=torch.float64)) for _ in range(B)]

    def to_loss_inputs(self, branch, raw, target, *, metric):
        return {"y_hat": raw, "y": target}

    def sample_metric(self, raw, target, metric):
        self.seen.append({k: v.clone() for k, v in raw.items()})
        return float(((raw["a"] > 0.5) & (raw["b"] > 0.5)).double().mean())

    def proxy_train(self, loss, seed, *, metric, budget=None, progress=None):
        raise NotImplementedError

    def ground_truth_raw(self, branch, target):
        return target


def test_other_branches_sit_at_ground_truth_while_one_is_checked():
    toy = TwoBranchToy()
    toy.seen = []
    mse = elementwise(lambda t: (t["y_hat"] - t["y"]) ** 2, mixes_samples=False)
    results = check_loss(toy, {"a": mse, "b": mse}, config=RejectionConfig(samples=2, iterations=500, lr=1e-2))
    assert set(results) == {"a", "b"}
    for r in results.values():
        assert r.passed and r.score == 1.0  # starts at 0 (own branch wrong), ends at 1
    first_a, first_b = toy.seen[0], toy.seen[4]  # 2 before + 2 after for branch a, then branch b
    assert torch.equal(first_a["b"], torch.ones((1, 1, 2, 2), dtype=torch.float64))
    assert torch.equal(first_b["a"], torch.ones((1, 1, 2, 2), dtype=torch.float64))
    with pytest.raises(ValueError, match="missing: b"):
        check_loss(toy, {"a": mse})
