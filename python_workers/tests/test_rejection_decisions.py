"""The rejection code decides as it did before the protocol core replaced its four copies of the
protocol: the eval-loss job (production path: closed engine, verified early reject) and
``check_loss`` (sample by sample) on a recorded stream give the recorded decisions, iteration
counts and scores (``fixtures/rejection_decisions.json``, recorded with the old code; scores to
1e-12 so that a machine whose float64 kernels round differently in the last bit still passes)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autoloss_worker.fastreject import check_loss
from autoloss_worker.graph import loss_from_wire
from autoloss_worker.rejection import RejectionConfig
from autoloss_worker.task_jobs import eval_loss_job
from autoloss_worker.tasks import get_task

torch.set_num_threads(1)
RECORDED = json.loads((Path(__file__).parent / "fixtures" / "rejection_decisions.json").read_text())


def assert_same(got: list[dict], want: list[dict]) -> None:
    assert [(g["passed"], g["invalid"], g["iterations"]) for g in got] == \
        [(w["passed"], w["invalid"], w["iterations"]) for w in want]
    assert [g["score"] for g in got] == pytest.approx([w["score"] for w in want], abs=1e-12)


def test_eval_loss_jobs_decide_as_recorded():
    options = {"train_images": 48, "eval_images": 8, "threads": 1}
    got = [eval_loss_job({"task": "seg", "loss": w, "seed": 0, "options": options}) for w in RECORDED["losses"]]
    assert_same(got, RECORDED["job_seg"])
    assert {g["iterations"] for g in got} >= {1, 10, 50, 500}  # every exit: zero gradient, both early rejects, the end


def test_check_loss_decides_as_recorded():
    task = get_task("seg", train_images=48, eval_images=8, threads=1, rejection_size=16)
    config = RejectionConfig(iterations=60, threshold=0.3)
    got = [check_loss(task, loss_from_wire(w), "miou", 0, config)["loss"].__dict__
           for w in RECORDED["losses"][: len(RECORDED["check_loss"])]]
    assert_same(got, RECORDED["check_loss"])
