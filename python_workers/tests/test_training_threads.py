"""Proxy-training threads: the native tasks train with the worker's own threads unless told otherwise.

A pool worker is started with ``--threads N`` (1 per local worker), which sets OMP_NUM_THREADS
before torch is imported. The native seg and pose tasks used to force 2 intra-op threads per
training, so two pool workers on 2 cores ran 4 spinning threads (60 seg steps: 61 s instead of
10.5 s on the loaded machine). Their default is now 0: the process's own count, also after an
earlier job of the same worker asked for more.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoloss_worker.graph import loss_from_wire
from autoloss_worker.tasks import get_task

WORKERS_ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter so OMP_NUM_THREADS is read before torch is imported, as in a worker.
PROBE = """
import json, torch
from autoloss_worker.tasks import get_task, training
seen = []
real = torch.set_num_threads
def spy(n):
    real(n)
    seen.append(torch.get_num_threads())
training.torch.set_num_threads = spy
training.set_threads(3)
after_three = torch.get_num_threads()
training.set_threads(0)
print(json.dumps({"start": training._PROCESS_THREADS, "after_three": after_three,
                  "after_zero": torch.get_num_threads()}))
"""


def test_zero_threads_restores_the_workers_own_count_after_a_job_that_asked_for_more():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(WORKERS_ROOT)}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"start": 1, "after_three": 3, "after_zero": 1}


@pytest.mark.parametrize("name", ["seg", "pose"])
def test_native_tasks_default_to_the_process_threads(name, monkeypatch):
    task = get_task(name, train_images=16, eval_images=4, iterations=1, batch_size=8)
    assert task.options.threads == 0
    module = sys.modules[type(task).__module__]
    asked: list[int] = []
    monkeypatch.setattr(module, "set_threads", asked.append)
    task.proxy_train(loss_from_wire(task.baseline_loss), 0, metric=task.default_metric)
    assert asked == [0]


def test_negative_threads_are_refused_with_the_option_named():
    from autoloss_worker.tasks.training import set_threads

    with pytest.raises(ValueError, match="'threads' must be >= 0"):
        set_threads(-1)
