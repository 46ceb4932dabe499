"""The ``stop_on_invalid`` toggle of proxy training (the search-efficiency ablation's naive trainer).

Default (the paper): training stops at the first NaN/Inf. ``stop_on_invalid=False``: the loop runs
the whole budget through NaN/Inf, calling the loss once per step, and still reports ``invalid``.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from autoloss_worker.task_jobs import train_loss_job
from autoloss_worker.tasks import elementwise, get_task
from autoloss_worker.tasks.seg import SEG_METRICS
from autoloss_worker.tasks.training import guarded_training

torch.set_num_threads(1)

SMALL = {"train_images": 32, "eval_images": 8, "threads": 1, "batch_size": 8}


def _loop(values: list[float], stop_on_invalid: bool) -> tuple[tuple[bool, int], int, nn.Linear]:
    """guarded_training over a 1-weight model whose step i has loss ``values[i] * w``."""
    model = nn.Linear(1, 1, bias=False)
    nn.init.constant_(model.weight, 1.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []

    def step_loss(i: int) -> torch.Tensor:
        calls.append(i)
        return values[i] * model.weight.sum()

    invalid, done, _ = guarded_training(model, optimizer, len(values), step_loss, lambda _: 0.1, stop_on_invalid=stop_on_invalid)
    return (invalid, done), len(calls), model


def test_default_stops_at_the_first_non_finite_loss_before_touching_weights():
    (invalid, done), calls, model = _loop([1.0, 1.0, math.inf, 1.0, 1.0], stop_on_invalid=True)
    assert (invalid, done, calls) == (True, 3, 3)
    # two SGD steps of lr 0.1 on d(w)/dw = 1: 1 - 0.2
    assert model.weight.item() == pytest.approx(0.8)


def test_without_stop_the_whole_budget_runs_and_the_result_is_still_invalid():
    (invalid, done), calls, model = _loop([1.0, 1.0, math.nan, 1.0, 1.0], stop_on_invalid=False)
    assert (invalid, done, calls) == (True, 5, 5)
    assert math.isnan(model.weight.item()), "a plain loop steps on the NaN gradient, as the naive baseline would"


def test_without_stop_a_finite_run_is_unchanged():
    assert _loop([1.0] * 4, stop_on_invalid=False)[0] == (False, 4)
    assert _loop([1.0] * 4, stop_on_invalid=True)[0] == (False, 4)


def test_seg_option_pays_the_full_budget_and_reports_worst_metrics():
    nan_loss = {"loss": elementwise(lambda t: t["y_hat"] * math.nan)}
    stopped = get_task("seg", **SMALL).proxy_train(nan_loss, seed=0, metric="miou", budget=6)
    naive = get_task("seg", **SMALL, stop_on_invalid=False).proxy_train(nan_loss, seed=0, metric="miou", budget=6)
    assert stopped.invalid and stopped.iterations == 1
    assert naive.invalid and naive.iterations == 6
    assert naive.metrics == {m: 0.0 for m in SEG_METRICS} and naive.target == 0.0


def test_train_job_accepts_the_option_and_rejects_a_wrong_type():
    wire = {"v": 1, "branches": [{"name": "loss", "kind": "dense", "inputs": ["y_hat", "y", "one"],
                                  "tree": ["inv", ["add", "y_hat", ["neg", "y_hat"]]]}]}  # 1/(0 + ε): finite but huge
    nan_wire = {"v": 1, "branches": [{"name": "loss", "kind": "dense", "inputs": ["y_hat", "y", "one"],
                                      "tree": ["exp", ["inv", ["add", "y_hat", ["neg", "y_hat"]]]]}]}  # e^(1e12) = inf
    base = {"task": "seg", "seed": 0, "metric": "miou"}
    stopped = train_loss_job({**base, "loss": nan_wire, "options": {**SMALL, "iterations": 5}})
    naive = train_loss_job({**base, "loss": nan_wire, "options": {**SMALL, "iterations": 5, "stop_on_invalid": False}})
    assert stopped["invalid"] and stopped["iterations"] == 1
    assert naive["invalid"] and naive["iterations"] == 5
    with pytest.raises(ValueError, match="stop_on_invalid must be bool"):
        train_loss_job({**base, "loss": wire, "options": {**SMALL, "iterations": 1, "stop_on_invalid": "no"}})
