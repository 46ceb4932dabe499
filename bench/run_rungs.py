"""How a shorter proxy would have ranked the losses a finished search trained -> bench/results/run-rungs-<name>.json.

    PYTHONPATH=python_workers .venv/bin/python bench/run_rungs.py --run runs/det-s0 --stops 50,75 --name det-s0

Every loss the run trained itself (a proxy score, not reused) is trained again through the worker's
own ``train_loss_job`` with the run's task, seed and options, stopped at each of ``--stops`` on the
full schedule (``fidelity.stop_at``: what an asha rung of that length trains; each stop continues
from the one below through a private state cache). Per stop: the scores and Kendall tau-b (scipy)
against the run's full-proxy scores. Use it to pick asha's lowest rung for a task before paying for
searches with it (``make bench-allocation``): a rung whose tau is near 0 promotes at random.
Results are written after every training; a rerun skips what is there.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from scipy.stats import kendalltau

from autoloss_worker.task_jobs import train_loss_job

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a finished search's directory (run.json, search.db)")
    parser.add_argument("--stops", required=True, help="comma-separated proxy iterations, each below the full proxy")
    parser.add_argument("--name", required=True, help="names bench/results/run-rungs-<name>.json")
    args = parser.parse_args()
    run = Path(args.run)
    config = json.loads((run / "run.json").read_text())
    stops = sorted(int(s) for s in args.stops.split(","))
    db = sqlite3.connect(f"file:{run / 'search.db'}?mode=ro", uri=True)
    losses = db.execute("SELECT id, text, wire, score FROM candidates WHERE score IS NOT NULL AND reused_from IS NULL ORDER BY id").fetchall()
    out = ROOT / "bench" / "results" / f"run-rungs-{args.name}.json"
    done = json.loads(out.read_text())["trainings"] if out.exists() else []
    have = {(t["candidate"], t["stop"]) for t in done}
    cache = Path(tempfile.gettempdir()) / f"autoloss-run-rungs-{args.name}"
    for candidate, text, wire, _ in losses:
        os.environ["AUTOLOSS_STATE_CACHE"] = str(cache / str(candidate))  # stops of one loss continue each other
        for stop in stops:
            if (candidate, stop) in have:
                continue
            started = time.perf_counter()
            result = train_loss_job({"task": config["task"], "loss": json.loads(wire), "seed": config["seed"],
                                     "options": config["options"], "fidelity": {"stop_at": stop}})
            done.append({"candidate": candidate, "loss": text, "stop": stop, "score": result["target"],
                         "resumed_from": result["resumedFrom"], "seconds": round(time.perf_counter() - started, 1)})
            write(out, args, config, losses, stops, done)
    write(out, args, config, losses, stops, done)
    print(out.read_text())


def write(out: Path, args: argparse.Namespace, config: dict, losses: list, stops: list[int], done: list[dict]) -> None:
    full = {candidate: score for candidate, _, _, score in losses}
    per_stop = []
    for stop in stops:
        pairs = [(t["score"], full[t["candidate"]]) for t in done if t["stop"] == stop]
        tau = kendalltau([p[0] for p in pairs], [p[1] for p in pairs]).statistic if len(pairs) >= 2 else None
        per_stop.append({"stop": stop, "n": len(pairs), "kendall_tau": None if tau is None or tau != tau else float(tau)})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "bench": "run-rungs", "run": str(args.run), "task": config["task"], "seed": config["seed"], "options": config["options"],
        "full_scores": [{"candidate": c, "loss": t, "score": s} for c, t, _, s in losses], "per_stop": per_stop, "trainings": done,
        "command": f"PYTHONPATH=python_workers .venv/bin/python bench/run_rungs.py --run {args.run} --stops {args.stops} --name {args.name}",
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
