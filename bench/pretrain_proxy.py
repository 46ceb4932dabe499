"""Proxy scores with and without the shapes-pretrained backbone -> bench/results/pretrain-proxy.json.

    .venv/bin/python bench/pretrain_proxy.py --run det:150 --run det:750 [--run mmseg:1000 ...]

For each --run TASK:ITERATIONS it runs, in a fresh process each,
`npx autoloss baseline --task TASK --seed 0 --options '{"iterations": N, "pretrained": P}' --json`
for P = false then true, timing each and recording the load average around it. The checkpoint is
built first (`python -m autoloss_worker.pretrain --config <the task's config>`, timed; 0 s when
cached). Results are rewritten after every command, so an interrupted bench keeps what finished;
rows already in the file (same command) are kept and not rerun.
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
OUT = ROOT / "bench" / "results" / "pretrain-proxy.json"


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess, list[float], list[float]]:
    before = load()
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    return round(time.monotonic() - start, 1), done, before, load()


def task_config(task: str) -> str:
    from autoloss_worker.tasks import get_task

    return get_task(task).options.config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, metavar="TASK:ITERATIONS")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() else {
        "bench": "det/ins/mmseg/mmpose baseline proxy score, random init vs shapes-pretrained backbone, seed 0",
        "machine": f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), shared with other jobs",
        "pretraining": [], "runs": []}

    def save() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")

    for spec in args.run:
        task, iterations = spec.split(":")
        config = task_config(task)
        cmd = [sys.executable, "-m", "autoloss_worker.pretrain", "--config", config]
        if not any(p["config"] == os.path.relpath(config, ROOT) for p in result["pretraining"]):
            seconds, done, before, after = timed(cmd)
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            result["pretraining"].append({"config": os.path.relpath(config, ROOT), "command": " ".join(cmd[1:]),
                                          "checkpoint": os.path.basename(done.stdout.split(": ")[-1].strip()),
                                          "seconds": seconds, "load_before": before, "load_after": after,
                                          "log": done.stderr.strip().splitlines()[-1:] })
            save()
        for pretrained in (False, True):
            options = json.dumps({"iterations": int(iterations), "pretrained": pretrained})
            cmd = ["npx", "autoloss", "baseline", "--task", task, "--seed", "0", "--options", options, "--json"]
            shown = " ".join(cmd[:-2]) + f" '{options}' --json"
            if any(r["command"] == shown for r in result["runs"]):
                continue
            print(f"{shown} ...", file=sys.stderr, flush=True)
            seconds, done, before, after = timed(cmd)
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            report = json.loads(done.stdout)
            result["runs"].append({"task": task, "iterations": int(iterations), "pretrained": pretrained,
                                   "command": shown, "seconds": seconds, "load_before": before, "load_after": after,
                                   "target": report.get("target"), "metrics": report.get("metrics")})
            print(f"  {seconds} s, target {report.get('target')}, load {before} -> {after}", file=sys.stderr, flush=True)
            save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
