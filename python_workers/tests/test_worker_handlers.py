"""Job handlers called directly (no sockets)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autoloss_worker.worker.handlers import JobCancelled, JobContext, default_registry, echo, eval_graph, ping, sleep
from autoloss_worker.worker.messages import MessageError
from autoloss_worker.worker.tensors import numpy_to_tensor, tensor_to_numpy

torch.set_num_threads(1)


def test_registry_serves_the_builtin_kinds():
    reg = default_registry()
    assert {"ping", "echo", "sleep", "eval-graph"} <= set(reg)


def test_ping_echo_sleep():
    ctx = JobContext()
    assert ping({}, ctx) == {"pong": True}
    assert echo({"a": 1}, ctx) == {"a": 1}
    seen = []
    assert sleep({"seconds": 0.12}, JobContext(progress=seen.append)) == {"slept": 0.12}
    assert seen and seen == sorted(seen) and seen[-1] == 1.0
    for bad in (-1, "1", True, None, 4000):
        with pytest.raises(ValueError, match="seconds"):
            sleep({"seconds": bad}, ctx)


def test_sleep_stops_at_a_cancelled_progress_report_unless_it_never_reports():
    def cancelled(fraction):
        raise JobCancelled("cancelled by the pool")

    with pytest.raises(JobCancelled):
        sleep({"seconds": 60}, JobContext(progress=cancelled))  # first report after 50 ms
    assert not issubclass(JobCancelled, Exception), "a handler's `except Exception` must not swallow it"
    assert sleep({"seconds": 0.12, "progress": False}, JobContext(progress=cancelled)) == {"slept": 0.12}
    with pytest.raises(ValueError, match="'progress'"):
        sleep({"seconds": 0, "progress": 1}, JobContext())


def test_tensor_round_trip_and_size_check():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)
    t = numpy_to_tensor(a)
    assert t["shape"] == [2, 3, 2, 2] and len(t["data"]) == 96
    assert np.array_equal(tensor_to_numpy(t), a)
    with pytest.raises(MessageError, match="needs 96 bytes"):
        tensor_to_numpy({**t, "data": t["data"][:-1]})


def _graph(tree, name="loss"):
    return {"v": 1, "branches": [{"name": name, "kind": "dense", "inputs": ["y_hat", "y", "one"], "tree": tree}]}


def test_eval_graph_value_and_gradient_norms_match_a_hand_computation():
    rng = np.random.default_rng(0)
    y_hat = rng.random((3, 2, 4, 5))
    y = rng.random((3, 2, 4, 5))
    # square(y_hat + neg(y)): L = Σ (ŷ − y)² / (N·H·W), ∂L/∂ŷ = 2 (ŷ − y) / (N·H·W), ∂L/∂y = −∂L/∂ŷ
    loss = _graph(["square", ["add", "y_hat", ["neg", "y"]]])
    out = eval_graph({"loss": loss, "inputs": {"y_hat": numpy_to_tensor(y_hat), "y": numpy_to_tensor(y)}}, JobContext())
    nhw = 3 * 4 * 5
    expected = ((y_hat - y) ** 2).sum() / nhw
    grad = 2 * (y_hat - y) / nhw
    norms = np.sqrt((grad ** 2).reshape(3, -1).sum(axis=1))
    b = out["branches"]["loss"]
    assert b["value"] == pytest.approx(expected, rel=1e-12) and out["total"] == pytest.approx(expected, rel=1e-12)
    assert b["grad_norms"]["y_hat"] == pytest.approx(norms.tolist(), rel=1e-12)
    assert b["grad_norms"]["y"] == pytest.approx(norms.tolist(), rel=1e-12)


def test_eval_graph_unused_input_has_zero_gradient_and_branches_sum():
    y_hat = np.full((1, 1, 1, 2), 2.0)
    loss = {"v": 1, "branches": [
        {"name": "a", "kind": "dense", "inputs": ["y_hat", "y", "one"], "tree": ["mul", "y_hat", "one"]},
        {"name": "b", "kind": "dense", "inputs": ["y_hat", "y", "one"], "tree": ["neg", "y"]},
    ]}
    inputs = {"y_hat": numpy_to_tensor(y_hat), "y": numpy_to_tensor(np.ones((1, 1, 1, 2)))}
    out = eval_graph({"loss": loss, "inputs": inputs}, JobContext())
    assert out["branches"]["a"]["value"] == pytest.approx(2.0)  # (2 + 2) / (1·1·2)
    assert out["branches"]["b"]["value"] == pytest.approx(-1.0)
    assert out["branches"]["a"]["grad_norms"]["y"] == [0.0]
    assert out["total"] == pytest.approx(1.0)


def test_eval_graph_rejects_bad_graphs_and_missing_inputs():
    from autoloss_worker.graph import GraphError

    x = numpy_to_tensor(np.ones((1, 1, 1, 1)))
    with pytest.raises(GraphError):
        eval_graph({"loss": _graph(["os.system", "y"]), "inputs": {"y_hat": x, "y": x}}, JobContext())
    with pytest.raises(ValueError, match="needs inputs"):
        eval_graph({"loss": _graph(["neg", "y"]), "inputs": {"y_hat": x}}, JobContext())


def test_task_jobs_are_registered_and_get_device_and_progress(monkeypatch):
    import autoloss_worker.task_jobs as task_jobs

    calls = []

    def fake_eval(payload, device=None, progress=None):
        calls.append((payload, device, progress))
        return {"score": 1.0}

    def fake_train(payload):  # accepts neither extra: gets none
        return {"trained": payload["n"]}

    monkeypatch.setattr(task_jobs, "eval_loss_job", fake_eval)
    monkeypatch.setattr(task_jobs, "train_loss_job", fake_train)
    reg = default_registry()
    seen = []
    ctx = JobContext(device="cuda:1", progress=seen.append)
    assert reg["eval-loss"]({"loss": 1}, ctx) == {"score": 1.0}
    assert calls == [({"loss": 1}, "cuda:1", seen.append)]
    assert reg["train-loss"]({"n": 3}, ctx) == {"trained": 3}
