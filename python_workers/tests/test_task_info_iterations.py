"""task-info reports the proxy's iterations: the task's default, or the one the options set."""
import pytest

from autoloss_worker.task_jobs import task_info_job


@pytest.mark.parametrize(("task", "default"), [("seg", 300), ("pose", 300)])
def test_task_info_reports_the_proxy_iterations(task, default):
    assert task_info_job({"task": task})["iterations"] == default
    assert task_info_job({"task": task, "options": {"iterations": 7}})["iterations"] == 7
