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
