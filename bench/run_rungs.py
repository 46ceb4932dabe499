"""How a shorter proxy would have ranked the losses a finished search trained -> bench/results/run-rungs-<name>.json.

    PYTHONPATH=python_workers .venv/bin/python bench/run_rungs.py --run runs/det-s0 --stops 50,75 --name det-s0

Every loss the run trained itself (a proxy score, not reused) is trained again through the worker's
own ``train_loss_job`` with the run's task, seed and options, stopped at each of ``--stops`` on the
full schedule (``fidelity.stop_at``: what an asha rung of that length trains; each stop continues
from the one below through a private state cache). Per stop: the scores and Kendall tau-b (scipy)
against the run's full-proxy scores. Use it to pick asha's lowest rung for a task before paying for
searches with it (``make bench-allocation``): a rung whose tau is near 0 promotes at random.
Results are written after every training; a rerun skips what is there.

``--options '{"warmup_iters": 20}'`` goes over the run's options to try another proxy on the same
losses; the run's scores then belong to a different proxy, so the reference is the longest stop
(give the full proxy's length as the last stop) and each shorter stop's tau is taken against it.
``--jobs N`` trains N losses at once, one process each (each process one torch thread, as a worker).
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from scipy.stats import kendalltau

from autoloss_worker.task_jobs import train_loss_job

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a finished search's directory (run.json, search.db)")
    parser.add_argument("--stops", required=True, help="comma-separated proxy iterations, at most the full proxy")
    parser.add_argument("--name", required=True, help="names bench/results/run-rungs-<name>.json")
    parser.add_argument("--options", default=None, help="JSON map over the run's task options (the longest stop becomes the reference)")
    parser.add_argument("--jobs", type=int, default=1, help="losses trained at once (processes)")
    args = parser.parse_args()
    run = Path(args.run)
    config = json.loads((run / "run.json").read_text())
    override = json.loads(args.options) if args.options else {}
    if not isinstance(override, dict):
        parser.error(f"--options must be a JSON map, got {args.options!r}")
    config["options"] = {**config["options"], **override}
    stops = sorted(int(s) for s in args.stops.split(","))
    losses = trained_losses(run)
    out = ROOT / "bench" / "results" / f"run-rungs-{args.name}.json"
    done = json.loads(out.read_text())["trainings"] if out.exists() else []
    have = {(t["candidate"], t["stop"]) for t in done}
    cache = Path(tempfile.gettempdir()) / f"autoloss-run-rungs-{args.name}"
    todo = [(candidate, text, wire, [s for s in stops if (candidate, s) not in have], config, str(cache / str(candidate)))
            for candidate, text, wire, _ in losses]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for trainings in pool.map(train_stops, [t for t in todo if t[3]]):
            done.extend(trainings)
            write(out, args, config, override, losses, stops, done)
    write(out, args, config, override, losses, stops, done)
    print(out.read_text())


def trained_losses(run: Path) -> list[tuple[int, str, str, float]]:
    """(id, text, wire, proxy score) of every loss ``run`` trained itself (a score not reused), by id."""
    db = sqlite3.connect(f"file:{run / 'search.db'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT id, text, wire, score FROM candidates WHERE score IS NOT NULL AND reused_from IS NULL ORDER BY id").fetchall()
    finally:
        db.close()


def train_stops(item: tuple) -> list[dict]:
    """One loss trained at each of its stops in turn, each continuing the one below."""
    candidate, text, wire, stops, config, cache = item
    os.environ["AUTOLOSS_STATE_CACHE"] = cache
    trainings = []
    for stop in stops:
        started = time.perf_counter()
        result = train_loss_job({"task": config["task"], "loss": json.loads(wire), "seed": config["seed"],
                                 "options": config["options"], "fidelity": {"stop_at": stop}})
        trainings.append({"candidate": candidate, "loss": text, "stop": stop, "score": result["target"],
                          "resumed_from": result["resumedFrom"], "seconds": round(time.perf_counter() - started, 1)})
    return trainings


def write(out: Path, args: argparse.Namespace, config: dict, override: dict, losses: list, stops: list[int], done: list[dict]) -> None:
    if override:  # another proxy than the run's: rank against this bench's own longest stop
        full = {t["candidate"]: t["score"] for t in done if t["stop"] == stops[-1]}
    else:
        full = {candidate: score for candidate, _, _, score in losses}
    per_stop = []
    for stop in stops:
        pairs = [(t["score"], full[t["candidate"]]) for t in done if t["stop"] == stop and t["candidate"] in full]
        tau = kendalltau([p[0] for p in pairs], [p[1] for p in pairs]).statistic if len(pairs) >= 2 else None
        per_stop.append({"stop": stop, "n": len(pairs), "kendall_tau": None if tau is None or tau != tau else float(tau)})
    out.parent.mkdir(parents=True, exist_ok=True)
    options = f" --options '{json.dumps(override)}'" if override else ""
    out.write_text(json.dumps({
        "bench": "run-rungs", "run": str(args.run), "task": config["task"], "seed": config["seed"], "options": config["options"],
        "reference": f"stop {stops[-1]} of this bench" if override else "the run's own proxy scores",
        "full_scores": [{"candidate": c, "loss": t, "score": s} for c, t, _, s in losses], "per_stop": per_stop, "trainings": done,
        "command": f"PYTHONPATH=python_workers .venv/bin/python bench/run_rungs.py --run {args.run} --stops {args.stops} --name {args.name}{options}",
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
