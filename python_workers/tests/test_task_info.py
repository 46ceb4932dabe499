"""The task-info job: what the control plane learns about a task before searching it."""
import pytest

from autoloss_worker.task_jobs import task_info_job


def test_seg_task_info_names_its_branch_metrics_and_default():
    r = task_info_job({"task": "seg"})
    assert r["branches"] == [{"name": "loss", "kind": "dense"}]
    assert set(r["metrics"]) == {"miou", "fwiou", "gacc", "macc", "biou", "bf1"}
    assert r["metric"] == r["defaultMetric"] == "miou"


def test_task_info_resolves_the_requested_metric():
    assert task_info_job({"task": "seg", "metric": "bf1"})["metric"] == "bf1"


def test_task_info_rejects_unknown_metric_and_task():
    with pytest.raises(ValueError, match="no metric 'nope'"):
        task_info_job({"task": "seg", "metric": "nope"})
    with pytest.raises(ValueError):
        task_info_job({"task": "no-such-task"})


def test_task_info_names_the_data_seed_held_out_trainings_replace():
    import numpy as np

    from autoloss_worker.tasks import get_task

    assert task_info_job({"task": "seg"})["dataSeed"] == 0
    assert task_info_job({"task": "seg", "options": {"data_seed": 7}})["dataSeed"] == 7
    assert task_info_job({"task": "pose"})["dataSeed"] == 0
    # the option really draws other data: held-out trainings see images the search never did
    a = get_task("seg", train_images=4, eval_images=2)._split("train", 4)
    b = get_task("seg", train_images=4, eval_images=2, data_seed=101)._split("train", 4)
    assert not np.array_equal(np.asarray(a.images), np.asarray(b.images))


def test_task_info_sends_the_baseline_over_the_searched_branches():
    from autoloss_worker.graph import loss_from_wire

    seg = task_info_job({"task": "seg"})
    assert [b["name"] for b in seg["baseline"]["branches"]] == ["loss"]
    # the wire form the control plane gets is a loss the worker itself accepts
    loss_from_wire(seg["baseline"])
    # the pose baseline is heatmap MSE, not seg's cross-entropy
    assert task_info_job({"task": "pose"})["baseline"]["branches"][0]["tree"] != seg["baseline"]["branches"][0]["tree"]
