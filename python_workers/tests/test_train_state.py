"""Stopping early on the full schedule and continuing from a cached state (successive halving's
rungs): ``fidelity.stop_at`` in train-loss jobs, ``tasks/train_state.py``, ``training.BatchOrder``.

The central property: 0 -> k1 -> k2 through the state cache ends in exactly the state (bitwise,
CPU, same threads) and metrics of one training 0 -> k2, on both native tasks.
Run: .venv/bin/python -m pytest -q python_workers/tests/test_train_state.py"""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch

from autoloss_worker.task_jobs import task_info_job, train_loss_job
from autoloss_worker.tasks.train_state import CACHE_ENV, CACHE_MB_ENV, StateCache, state_key
from autoloss_worker.tasks.training import BatchOrder, poly_lr

torch.set_num_threads(1)

CE = {"v": 1, "branches": [{"name": "loss", "kind": "dense", "inputs": ["y_hat", "y", "one"],
                            "tree": ["neg", ["mul", "y", ["log", "y_hat"]]]}]}
MSE = {"v": 1, "branches": [{"name": "loss", "kind": "dense", "inputs": ["y_hat", "y", "one"],
                             "tree": ["square", ["add", "y_hat", ["neg", "y"]]]}]}
# 40 train images in batches of 8: 5 batches per epoch, so 12 steps cross two epoch boundaries
SEG = {"task": "seg", "loss": CE, "seed": 3, "options": {"train_images": 40, "eval_images": 8, "threads": 1,
                                                          "batch_size": 8, "iterations": 12, "width": 4}}
POSE = {"task": "pose", "loss": MSE, "seed": 1, "options": {"train_images": 24, "eval_images": 8, "threads": 1,
                                                             "batch_size": 8, "iterations": 12, "width": 4, "warmup": 5}}


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "states"))
    return tmp_path / "states"


def _job(payload, stop_at=None):
    return train_loss_job(payload if stop_at is None else {**payload, "fidelity": {"stop_at": stop_at}})


def _state(cache_dir, payload, step):
    key = state_key(payload, "cpu")
    return torch.load(cache_dir / f"{key}-{step}.pt", weights_only=True)


def _assert_same_state(a, b):
    assert a["step"] == b["step"]
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    for p, s in a["optimizer"]["state"].items():
        for k, v in s.items():
            assert torch.equal(v, b["optimizer"]["state"][p][k]) if torch.is_tensor(v) else v == b["optimizer"]["state"][p][k]
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]


# ----------------------------------------------------------------- the data order


def test_batch_order_by_step_is_the_old_endless_shuffle():
    def old_batches(n, batch_size, seed):  # the generator BatchOrder replaced, verbatim
        rng = np.random.default_rng(seed)
        while True:
            order = rng.permutation(n)
            for start in range(0, n - batch_size + 1, batch_size):
                yield order[start : start + batch_size]

    reference = old_batches(23, 5, 7)
    expected = [next(reference) for _ in range(30)]
    whole = BatchOrder(23, 5, 7)
    assert all(np.array_equal(whole(i), expected[i]) for i in range(30))
    late = BatchOrder(23, 5, 7)  # a resumed run asks for step 13 first
    assert all(np.array_equal(late(i), expected[i]) for i in range(13, 30))
    with pytest.raises(ValueError, match="forward-only"):
        late(2)


# ----------------------------------------------------------------- native tasks: continuation


@pytest.mark.parametrize("payload", [SEG, POSE], ids=["seg", "pose"])
def test_continuing_through_rungs_equals_one_training(payload, cache_dir, monkeypatch):
    r4 = _job(payload, 4)
    r9 = _job(payload, 9)
    assert (r4["resumedFrom"], r4["iterations"]) == (None, 4)
    assert (r9["resumedFrom"], r9["iterations"]) == (4, 9)
    continued = _state(cache_dir, payload, 9)

    monkeypatch.setenv(CACHE_ENV, str(cache_dir.parent / "fresh"))
    straight = _job(payload, 9)
    assert straight["resumedFrom"] is None and straight["metrics"] == r9["metrics"]
    _assert_same_state(continued, _state(cache_dir.parent / "fresh", payload, 9))

    # ... and on to the schedule's end, which equals today's job without fidelity
    full = _job(payload, 12)
    assert full["resumedFrom"] == 9 and full["metrics"] == _job(payload)["metrics"]
    assert not (cache_dir.parent / "fresh" / f"{state_key(payload, 'cpu')}-12.pt").exists()


def test_stop_at_keeps_the_full_schedule(cache_dir):
    """The state at step 4 of a 12-step seg run was stepped with the 12-step poly rate of step 3."""
    _job(SEG, 4)
    groups = _state(cache_dir, SEG, 4)["optimizer"]["param_groups"]
    lr = 0.05  # SegOptions.lr
    assert groups[0]["lr"] == pytest.approx(poly_lr(lr, 3, 12))
    assert groups[1]["lr"] == pytest.approx(poly_lr(lr, 3, 12) * 10.0)  # head
    assert poly_lr(lr, 3, 12) != pytest.approx(poly_lr(lr, 3, 4))  # the test could tell them apart


def test_a_different_payload_or_device_does_not_continue(cache_dir):
    _job(SEG, 4)
    assert _job({**SEG, "seed": 4}, 8)["resumedFrom"] is None
    assert _job({**SEG, "metric": "bf1"}, 8)["resumedFrom"] is None
    assert _job(SEG, 8)["resumedFrom"] == 4
    assert state_key(SEG, "cpu") != state_key(SEG, "cuda:0")
    assert state_key(SEG, "cpu") == state_key({**SEG, "fidelity": {"stop_at": 3}}, "cpu")


def test_a_corrupt_state_is_ignored_with_a_warning(cache_dir):
    straight = _job(SEG, 8)
    _job(SEG, 4)
    os.remove(cache_dir / f"{state_key(SEG, 'cpu')}-8.pt")
    (cache_dir / f"{state_key(SEG, 'cpu')}-4.pt").write_bytes(b"not a torch file")
    with pytest.warns(RuntimeWarning, match="unreadable training state"):
        again = _job(SEG, 8)
    assert again["resumedFrom"] is None and again["metrics"] == straight["metrics"]


def test_a_state_that_does_not_fit_the_model_is_ignored_and_leaves_it_fresh(cache_dir):
    straight = _job(SEG, 6)
    key = state_key(SEG, "cpu")
    state = _state(cache_dir, SEG, 6)
    state["model"] = {k: v[..., :1] if v.dim() else v for k, v in state["model"].items()}  # wrong shapes
    os.remove(cache_dir / f"{key}-6.pt")
    state["step"] = 3
    torch.save(state, cache_dir / f"{key}-3.pt")
    with pytest.warns(RuntimeWarning, match="does not fit"):
        again = _job(SEG, 6)
    assert again["resumedFrom"] is None and again["metrics"] == straight["metrics"]


def test_invalid_training_keeps_no_state(cache_dir):
    nan = {"v": 1, "branches": [{"name": "loss", "kind": "dense", "inputs": ["y_hat", "y", "one"],
                                 "tree": ["exp", ["inv", ["add", "y_hat", ["neg", "y_hat"]]]]}]}  # e^(1e12)
    out = _job({**SEG, "loss": nan}, 6)
    assert out["invalid"] and out["iterations"] == 1 and out["resumedFrom"] is None
    assert not cache_dir.exists() or not list(cache_dir.glob("*.pt"))


# ----------------------------------------------------------------- the cache itself


def test_cache_evicts_least_recently_used_above_its_bound(tmp_path):
    cache = StateCache(tmp_path, max_bytes=10**9)
    blob = {"step": 0, "x": torch.zeros(25_000)}  # ~100 kB each
    for step in (1, 2, 3):
        cache.save("k", step, {**blob, "step": step})
        os.utime(cache.path("k", step), (1000 + step, 1000 + step))  # 1 oldest
    size = cache.path("k", 1).stat().st_size
    assert cache.load("k", 1) is not None  # a load makes 1 the most recently used
    cache.max_bytes = 3 * size  # room for three: the fourth write evicts the least recently used, 2
    cache.save("k", 4, {**blob, "step": 4})
    assert cache.steps("k") == [1, 3, 4]
    assert not list(tmp_path.glob("*.tmp"))  # written atomically, nothing left behind
    cache.max_bytes = 0  # the state just written is never evicted
    cache.save("k", 5, {**blob, "step": 5})
    assert cache.steps("k") == [5]


def test_cache_size_bound_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.setenv(CACHE_MB_ENV, "2.5")
    assert StateCache.from_env().max_bytes == int(2.5 * 2**20)
    monkeypatch.setenv(CACHE_MB_ENV, "lots")
    with pytest.raises(ValueError, match=CACHE_MB_ENV):
        StateCache.from_env()


# ----------------------------------------------------------------- payload and task-info


@pytest.mark.parametrize(("fidelity", "message"), [
    (5, "'fidelity' must be a map"),
    ({"stop_at": 4, "eta": 3}, "unknown key.*eta"),
    ({"stop_at": 0}, "fidelity.stop_at.*1 to the task's iterations \\(12\\)"),
    ({"stop_at": 13}, "fidelity.stop_at"),
    ({"stop_at": 4.0}, "fidelity.stop_at"),
    ({"stop_at": True}, "fidelity.stop_at"),
    ({}, "fidelity.stop_at"),
])
def test_bad_fidelity_is_a_clear_error(fidelity, message, cache_dir):
    with pytest.raises(ValueError, match=message):
        train_loss_job({**SEG, "fidelity": fidelity})


def test_task_info_says_which_tasks_continue():
    assert task_info_job({"task": "seg"})["continues"] is True
    assert task_info_job({"task": "pose"})["continues"] is True


# ----------------------------------------------------------------- MMLab tasks: continuation

# Tiny proxies (random backbones, 2 warm-up steps so that 0 -> 2 -> 4 crosses the end of the warm-up
# inside a continued run); det/ins score 4 validation images.
MMLAB = {
    "mmseg": {"warmup_iters": 3, "pretrained": False},
    "det": {"warmup_iters": 3, "val_images": 4, "pretrained": False},
    "ins": {"warmup_iters": 3, "val_images": 4, "pretrained": False},
    "mmpose": {"warmup_iters": 3, "pretrained": False},
}


def _mmlab_payload(task):
    pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops is not installed (scripts/setup-mmlab.sh)")
    from autoloss_worker.tasks import get_task

    options = {**MMLAB[task], "iterations": 6, "threads": 1}
    return {"task": task, "loss": get_task(task, **options).baseline_loss, "seed": 2, "options": options}


def _assert_same_mmlab_state(a, b):
    """The native tasks' state, and the schedulers and random states an mmengine run also keeps."""
    _assert_same_state(a, b)
    assert a["invalid"] == b["invalid"] and a["model"].keys() == b["model"].keys()
    assert a["schedulers"] == b["schedulers"]
    ra, rb = a["random"], b["random"]
    assert ra["python"] == rb["python"] and torch.equal(ra["torch"], rb["torch"])
    assert ra["numpy"][0] == rb["numpy"][0] and torch.equal(ra["numpy"][1], rb["numpy"][1]) and ra["numpy"][2:] == rb["numpy"][2:]


@pytest.mark.parametrize("task", list(MMLAB))
def test_mmlab_continuing_through_rungs_equals_one_training(task, cache_dir, monkeypatch):
    """0 -> 2 -> 4 through the cache ends in the state (weights, momentum, schedulers, random
    states) and metrics of one training 0 -> 4, and 4 -> 6 in those of a plain 6-step job: mmengine's
    loop skips the batches already trained (drawing them again), then the saved random states go back."""
    payload = _mmlab_payload(task)
    r2 = _job(payload, 2)
    r4 = _job(payload, 4)
    assert (r2["resumedFrom"], r2["iterations"], r4["resumedFrom"], r4["iterations"]) == (None, 2, 2, 4)
    continued = _state(cache_dir, payload, 4)

    monkeypatch.setenv(CACHE_ENV, str(cache_dir.parent / "fresh"))
    straight = _job(payload, 4)
    assert straight["resumedFrom"] is None and straight["metrics"] == r4["metrics"]
    _assert_same_mmlab_state(continued, _state(cache_dir.parent / "fresh", payload, 4))

    full = _job(payload, 6)  # the schedule's end: continued, and nothing kept
    assert full["resumedFrom"] == 4 and full["metrics"] == _job(payload)["metrics"]
    assert not (cache_dir.parent / "fresh" / f"{state_key(payload, 'cpu')}-6.pt").exists()
    assert task_info_job({"task": task, "options": payload["options"]})["continues"] is True


def test_mmlab_stop_at_keeps_the_full_warm_up():
    pytest.importorskip("mmengine", reason="MMEngine is not installed (scripts/setup-mmlab.sh)")
    from mmengine.config import Config

    from autoloss_worker.mmlab.rewrite import ProxySchedule, apply_proxy_schedule

    def schedule(**kw):
        cfg = apply_proxy_schedule(Config(dict(optim_wrapper=dict(optimizer=dict(lr=0.1)))), ProxySchedule(**kw))
        return cfg.train_cfg, cfg.param_scheduler

    loop, warm = schedule(max_iters=90, warmup_iters=20, stop_at=10)
    assert loop == dict(type="IterBasedTrainLoop", max_iters=10, val_interval=10)
    assert warm[0]["end"] == 20  # the warm-up of the 90-step schedule, not squeezed into 10 steps
    assert schedule(max_iters=90, warmup_iters=20) == schedule(max_iters=90, warmup_iters=20, stop_at=90)
    with warnings.catch_warnings(), pytest.raises(AssertionError, match="stop_at"):
        schedule(max_iters=90, stop_at=91)


def test_mmlab_stop_at_trains_the_first_steps_of_the_longer_run(cache_dir):
    """mmseg without warm-up has a constant rate, so the first 2 steps of a 3-step schedule are a
    2-step training: same metrics. Its state at 2 is kept for a longer job."""
    pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops is not installed (scripts/setup-mmlab.sh)")
    pytest.importorskip("mmseg", reason="MMSegmentation is not installed (scripts/setup-mmlab.sh)")
    job = {"task": "mmseg", "loss": CE, "options": {"warmup_iters": 0, "pretrained": False}}
    stopped = train_loss_job({**job, "options": {**job["options"], "iterations": 3}, "fidelity": {"stop_at": 2}})
    short = train_loss_job({**job, "options": {**job["options"], "iterations": 2}})
    assert (stopped["iterations"], stopped["resumedFrom"]) == (2, None)
    assert stopped["metrics"] == short["metrics"]
    assert [p.name.rsplit("-", 1)[1] for p in cache_dir.glob("*.pt")] == ["2.pt"]
