"""eval-losses: many losses in one job (what the search sends), each with the verdict it gets alone.

The batched engine steps the rows of a batch side by side; a verdict must not depend on which
other losses share its batch, bit for bit (scores, gradient norms, fingerprints), or a search's
results would depend on timing. Checked on the 75 recorded losses of
``test_rejection_decisions.py`` (every exit: zero gradient, invalid, both early rejects, the end),
in shuffled batches of varying size, on seg (closed-form engine) and pose."""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch

from autoloss_worker.fastreject import jobs
from autoloss_worker.graph import loss_to_wire
from autoloss_worker.task_jobs import eval_loss_job, eval_losses_job
from autoloss_worker.worker.handlers import JobContext, default_registry

torch.set_num_threads(1)
LOSSES = json.loads((Path(__file__).parent / "fixtures" / "rejection_decisions.json").read_text())["losses"]
OPTIONS = {"seg": {"train_images": 48, "eval_images": 8, "threads": 1},
           "pose": {"train_images": 24, "eval_images": 8, "threads": 1}}
CE = {"v": 1, "branches": [{"name": "loss", "kind": "dense", "inputs": ["y_hat", "y", "one"],
                            "tree": ["neg", ["mul", "y", ["log", "y_hat"]]]}]}


def context(task: str) -> dict[str, Any]:
    return {"task": task, "seed": 0, "options": OPTIONS[task]}


def exact(result: dict[str, Any]) -> str:
    """Everything a verdict says, bit for bit (repr of a float is exact; NaN-safe)."""
    return repr(sorted((k, v) for k, v in result.items() if k != "elapsedMs"))


@pytest.fixture(autouse=True)
def fresh_screeners(monkeypatch):
    """No verdict cache carried over from another test."""
    monkeypatch.setattr(jobs, "_screeners", {})


@pytest.mark.parametrize("task", ["seg", "pose"])
def test_a_verdict_does_not_depend_on_its_batch(task, monkeypatch):
    alone = [exact(eval_loss_job({**context(task), "loss": w})) for w in LOSSES]
    assert len(set(alone)) > 20  # the stream's verdicts differ: the comparison below can fail
    rng = random.Random(task)
    for round_ in range(3):
        monkeypatch.setattr(jobs, "_screeners", {})  # recompute, in other company
        got: dict[int, str] = {}
        order = list(range(len(LOSSES)))
        rng.shuffle(order)
        sizes = []
        while order:
            n = rng.randint(2, 24)
            batch, order = order[:n], order[n:]
            sizes.append(len(batch))
            # half the entries name the branch: screened in a group of their own
            entries = [{"loss": LOSSES[i], **({"branches": ["loss"]} if (i + round_) % 2 else {})} for i in batch]
            out = eval_losses_job({**context(task), "losses": entries})
            assert len(out["results"]) == len(batch) and out["elapsedMs"] > 0
            for i, r in zip(batch, out["results"]):
                got[i] = exact(r)
        assert len(sizes) > 3
        mismatched = [i for i in range(len(LOSSES)) if got[i] != alone[i]]
        assert mismatched == [], f"round {round_} (batch sizes {sizes}): losses {mismatched} differ from alone"


def test_a_bad_entry_gets_its_own_error_and_the_others_their_verdicts():
    bad_op = {"v": 1, "branches": [{**CE["branches"][0], "tree": ["frobnicate", "y_hat"]}]}
    entries = [{"loss": CE}, {"loss": bad_op}, {"loss": CE, "branches": ["rpn_cls"]}, "not a map",
               {"loss": CE, "extra": 1}, {"loss": LOSSES[3]}]
    out = eval_losses_job({**context("seg"), "losses": entries})["results"]
    assert [("error" in r) for r in out] == [False, True, True, True, True, False]
    assert "frobnicate" in out[1]["error"]
    assert "rpn_cls" in out[2]["error"] and "not branches of task 'seg'" in out[2]["error"]
    assert "must be a map" in out[3]["error"] and "unknown key(s) extra" in out[4]["error"]
    jobs._screeners.clear()
    assert exact(out[0]) == exact(eval_loss_job({**context("seg"), "loss": CE}))
    assert exact(out[5]) == exact(eval_loss_job({**context("seg"), "loss": LOSSES[3]}))
    with pytest.raises(ValueError, match="frobnicate"):  # eval-loss: the same check, raised
        eval_loss_job({**context("seg"), "loss": bad_op})


def test_a_loss_whose_screening_raises_fails_only_its_entry(monkeypatch):
    """Should the protocol raise on one loss, the batch is screened loss by loss: that entry names
    the error, the others get the verdicts they get alone."""
    poison = json.dumps(LOSSES[5], sort_keys=True)
    real = jobs.Screener.run_protocol

    def run_protocol(self, graphs, branches=None):
        if any(json.dumps(loss_to_wire(g), sort_keys=True) == poison for g in graphs):
            raise RuntimeError("boom")
        return real(self, graphs, branches)

    monkeypatch.setattr(jobs.Screener, "run_protocol", run_protocol)
    picked = [3, 5, 7, 0]
    out = eval_losses_job({**context("seg"), "losses": [{"loss": LOSSES[i]} for i in picked]})["results"]
    assert out[1] == {"error": "RuntimeError: boom"}
    monkeypatch.setattr(jobs, "_screeners", {})
    for i, r in zip(picked, out):
        if i != 5:
            assert exact(r) == exact(eval_loss_job({**context("seg"), "loss": LOSSES[i]}))


@pytest.mark.parametrize("payload, message", [
    ({"losses": []}, "'losses' must be a list of 1 to"),
    ({"losses": {"loss": CE}}, "'losses' must be a list"),
    ({"losses": [{"loss": CE}], "loss": CE}, "eval-losses takes loss per entry"),
    ({"losses": [{"loss": CE}], "task": "nope"}, "nope"),
])
def test_a_bad_batch_fails_the_job_with_a_clear_error(payload, message):
    with pytest.raises(ValueError, match=message):
        eval_losses_job({**context("seg"), **payload})


def test_eval_losses_is_a_registered_job_kind():
    out = default_registry()["eval-losses"]({**context("seg"), "losses": [{"loss": CE}, {"loss": CE}]}, JobContext())
    assert [r["passed"] for r in out["results"]] == [True, True]


def test_the_job_log_records_kind_seconds_and_losses(tmp_path, monkeypatch):
    """AUTOLOSS_JOB_LOG (bench/screening.ts): one line per finished job; nothing without it."""
    import time

    from autoloss_worker.worker import loop

    log = tmp_path / "jobs.jsonl"
    loop._log_job("eval-losses", {"losses": [1, 2, 3]}, time.perf_counter())  # not set: no file
    assert not log.exists()
    monkeypatch.setenv(loop.JOB_LOG, str(log))
    loop._log_job("eval-losses", {"losses": [1, 2, 3]}, time.perf_counter() - 0.5)
    loop._log_job("train-loss", {"loss": CE}, time.perf_counter())
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(x["kind"], x["losses"]) for x in lines] == [("eval-losses", 3), ("train-loss", 1)]
    assert lines[0]["s"] >= 0.5
