"""Proxy-training throughput in the search's own layout: torch threads per training x trainings at once.

    PYTHONPATH=python_workers .venv/bin/python bench/train_threads.py [--task seg] [--iterations 300]
                                                                      [--trainings 4] [--out FILE]

Each worker is a fresh process started as the pool starts a local worker (OMP_NUM_THREADS=1 and
MKL_NUM_THREADS=1 before torch is imported: `--threads 1`), warmed by a 2-step training, then runs
the worker's own ``train_loss_job`` with the task's baseline loss (distinct seeds) when told to go.
Three layouts, each timed from "go" to the last result:

* ``one_at_a_time_2_threads``: the former default search (``--train-concurrency 1``; the native
  tasks forced 2 threads per training): ``--trainings`` one after another in one process;
* ``two_at_once_2_threads``: the former held-out selection (as many trainings at once as workers,
  2 threads each): two processes, half the trainings each;
* ``two_at_once_own_threads``: the default now (``--train-concurrency 2``, option ``threads`` 0 = the
  worker's 1 thread): two processes, half the trainings each.

Prints and writes trainings per minute per layout (default ``bench/results/train-threads-<task>.json``)
with the 1-minute load average before and after: on a loaded machine the forced 2 threads spin
against the other processes, which is what the search's screening worker does to its trainings.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys
from autoloss_worker.task_jobs import train_loss_job
from autoloss_worker.tasks import get_task
task, iterations, threads, seeds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
loss = get_task(task).baseline_loss
def job(seed, its):
    return train_loss_job({"task": task, "loss": loss, "seed": seed, "options": {"iterations": its, "threads": threads}})
job(999, 2)  # imports, data generation, first allocations: not timed
print("ready", flush=True)
sys.stdin.readline()
print(json.dumps([job(s, iterations)["target"] for s in seeds]), flush=True)
"""


def run_layout(task: str, iterations: int, threads: int, seed_groups: list[list[int]]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT / "python_workers")}
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, task, str(iterations), str(threads), json.dumps(seeds)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
             for seeds in seed_groups]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    start = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    targets = [json.loads(p.stdout.readline()) for p in procs if p.stdout is not None]
    wall = time.perf_counter() - start
    for p in procs:
        p.wait()
    n = sum(len(s) for s in seed_groups)
    return {"processes": len(procs), "threads_option": threads, "trainings": n, "wall_s": round(wall, 2),
            "trainings_per_min": round(60 * n / wall, 3), "targets": targets}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="seg", choices=("seg", "pose"))
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--trainings", type=int, default=4, help="per layout (even)")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.trainings < 2 or a.trainings % 2:
        ap.error("--trainings must be even and >= 2")
    seeds = list(range(a.trainings))
    halves = [seeds[0::2], seeds[1::2]]
    load_before = os.getloadavg()[0]
    layouts = {
        "one_at_a_time_2_threads": run_layout(a.task, a.iterations, 2, [seeds]),
        "two_at_once_2_threads": run_layout(a.task, a.iterations, 2, halves),
        "two_at_once_own_threads": run_layout(a.task, a.iterations, 0, halves),
    }
    base = layouts["one_at_a_time_2_threads"]["trainings_per_min"]
    out = {
        "bench": "train-threads", "task": a.task, "iterations": a.iterations, "layouts": layouts,
        "speedup_vs_one_at_a_time_2_threads": {k: round(v["trainings_per_min"] / base, 2) for k, v in layouts.items()},
        "load_average_1m_before": round(load_before, 2), "load_average_1m_after": round(os.getloadavg()[0], 2),
        "machine": {"cpus": os.cpu_count(), "platform": platform.machine()},
        "command": " ".join(["bench/train_threads.py", *sys.argv[1:]]),
    }
    path = Path(a.out) if a.out else ROOT / "bench" / "results" / f"train-threads-{a.task}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
