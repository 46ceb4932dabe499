"""Choose and verify an early-reject rule on the candidates a real search screened.

    # 1. trace: the full protocol (no early reject) on every distinct candidate a run screened,
    #    in proposal order, recording g_t and the optimistic g at checkpoints
    .venv/bin/python bench/early_reject.py trace runs/X/search.db --out bench/results/early-reject-det/full-s1.json.gz
    # 2. check: what a rule would have done on one or more traces (false rejects, iterations saved)
    .venv/bin/python bench/early_reject.py check bench/results/early-reject-det/*.json.gz --rule 10:0.02,50:0.1
    # 3. time: the search's own eval-losses jobs (batches of 16) on the first N candidates, the
    #    verified rules off and on, one process, one after the other (same machine, same run)
    .venv/bin/python bench/early_reject.py time runs/X/search.db --n 400 --out bench/results/early-reject-time.json

The task, its options, the metric and the rejection seed are the run's own (``run.json`` beside the
database): the rejection samples depend on the search seed, so a trace is only meaningful with it.
Candidates are screened on the branches the search screened them on (``screen_branches``), with
engine ``tree`` on per-sample tensors and the paper's constants, as ``fastreject.jobs`` does for
tasks whose samples do not stack; the verdict of every candidate is checked against the one the run
recorded (a mismatch is reported: the trace would not be of the protocol the search ran).

A rule ``t1:f1,t2:f2`` rejects at iteration t a candidate whose optimistic g (``fastreject.core.
EarlyReject``) is below f. Traced values do not depend on which checkpoints exist, so one trace
answers every rule whose iterations are among the checkpoints. ``check`` reports, per trace and in
total: candidates, passing ones, false rejects (a passing candidate the rule would drop: must be
0), the lowest optimistic g of a passing candidate at each checkpoint, and the protocol iterations
the rule saves (of those the full protocol ran).
"""
from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import os
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python_workers"))

CHECKPOINTS = (5, 10, 20, 30, 50, 75, 100, 150, 200, 300)
CHUNK = 4  # candidates stepped together, as the search's screener does on CPU


def read_json(path: str | Path) -> dict:
    """A trace file, plain or gzipped (``.gz``: the committed traces)."""
    data = Path(path).read_bytes()
    return json.loads(gzip.decompress(data) if str(path).endswith(".gz") else data)


def write_json(path: str | Path, obj: object) -> None:
    text = json.dumps(obj) + "\n"
    Path(path).write_bytes(gzip.compress(text.encode(), mtime=0) if str(path).endswith(".gz") else text.encode())


def screened_candidates(db: Path) -> list[dict]:
    """Distinct candidates the run ran the protocol on, in proposal order: the branches their own
    screening job checked (``screen_branches``, docs/store-schema.md) and what it found there."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = con.execute("SELECT id, text, wire, screen_branches FROM candidates "
                       "WHERE screen_ms IS NOT NULL AND screen_branches IS NOT NULL ORDER BY id").fetchall()
    con.close()
    out = []
    for id_, text, wire, owned in rows:
        verdicts = json.loads(owned)
        out.append({"id": id_, "text": text, "wire": json.loads(wire), "branches": list(verdicts),
                    "passed": all(v["passed"] for v in verdicts.values()),
                    "score": min(v["score"] for v in verdicts.values()),
                    "invalid": any(v["invalid"] for v in verdicts.values())})
    return out


def run_context(db: Path) -> dict:
    run = json.loads((db.parent / "run.json").read_text())
    cfg = run.get("config", run)
    return {"task": cfg["task"], "options": cfg.get("options") or {}, "metric": cfg.get("metric"), "seed": cfg["seed"]}


_ctx: dict = {}


def _init(context: dict) -> None:
    import torch

    from autoloss_worker.tasks import get_task
    torch.set_num_threads(1)
    task = get_task(context["task"], **context["options"])
    _ctx.update(task=task, metric=task.check_metric(context["metric"]), seed=context["seed"],
                samples=task.rejection_samples(5, context["seed"]))


def _trace_chunk(chunk: list[dict]) -> list[dict]:
    from autoloss_worker.fastreject import run_batch
    from autoloss_worker.graph import loss_from_wire
    from autoloss_worker.rejection import PAPER_REJECTION, combine
    from autoloss_worker.tasks.losses import compile_loss

    task, t0 = _ctx["task"], time.perf_counter()
    compiled = [compile_loss(loss_from_wire(c["wire"])) for c in chunk]
    branches = chunk[0]["branches"]
    per_branch = {}
    for b in branches:
        losses = [loss[b] for loss in compiled]
        per_branch[b] = run_batch(task, b, losses, _ctx["samples"], _ctx["metric"], PAPER_REJECTION,
                                  record=CHECKPOINTS, engine="tree", stacked=task.stackable_samples)
    seconds = (time.perf_counter() - t0) / len(chunk)
    out = []
    for k, c in enumerate(chunk):
        verdicts = {b: per_branch[b][k] for b in branches}
        v = combine(list(verdicts.values()))
        out.append({"id": c["id"], "text": c["text"], "passed": v.passed, "score": v.score, "invalid": v.invalid,
                    "recorded": {"passed": c["passed"], "score": c["score"], "invalid": c["invalid"]},
                    "iterations": {b: r.iterations for b, r in verdicts.items()},
                    "trace": {b: [list(x) for x in r.trace] for b, r in verdicts.items()}, "seconds": seconds})
    return out


def trace(args: argparse.Namespace) -> None:
    db = Path(args.db)
    context = run_context(db)
    # --exclude: candidates already traced (same text, same seed: the same protocol run) are skipped
    seen = {c["text"] for path in args.exclude for c in read_json(path)["candidates"]}
    cands = [c for c in screened_candidates(db) if c["text"] not in seen][: args.limit or None]
    # chunks of candidates asking for the same branches, in order
    chunks: list[list[dict]] = []
    for c in cands:
        if chunks and len(chunks[-1]) < CHUNK and chunks[-1][0]["branches"] == c["branches"]:
            chunks[-1].append(c)
        else:
            chunks.append([c])
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(args.workers, _init, (context,)) as pool:
        results = [r for part in pool.imap(_trace_chunk, chunks) for r in part]
    mismatches = [r["id"] for r in results if (r["passed"], r["invalid"]) != (r["recorded"]["passed"], r["recorded"]["invalid"])]
    out = {"db": str(db), "context": context, "excluded": args.exclude, "checkpoints": list(CHECKPOINTS), "n": len(results),
           "passed": sum(r["passed"] for r in results), "mismatches": mismatches,
           "wall_s": round(time.perf_counter() - t0, 1), "workers": args.workers, "candidates": results}
    write_json(args.out, out)
    print(json.dumps({k: v for k, v in out.items() if k != "candidates"}))


def parse_rule(text: str) -> list[tuple[int, float]]:
    try:
        floors = sorted((int(t), float(f)) for t, f in (p.split(":") for p in text.split(",")))
    except ValueError:
        raise SystemExit(f"--rule must look like 10:0.05,50:0.2 (iteration:floor pairs), got {text!r}") from None
    return floors


def judge(cand: dict, floors: list[tuple[int, float]]) -> tuple[bool, int, int]:
    """(rejected early, iterations the full protocol ran, iterations under the rule), summed over branches."""
    early, full, ruled = False, 0, 0
    for b, tr in cand["trace"].items():
        its = cand["iterations"][b]
        full += its
        at = {int(t): best for t, _, best in tr}
        stop = next((t for t, f in floors if t < its and t in at and at[t] < f), None)
        early |= stop is not None
        ruled += its if stop is None else stop
    return early, full, ruled


def check(args: argparse.Namespace) -> None:
    floors = parse_rule(args.rule)
    rows, total = [], {"n": 0, "passed": 0, "false_rejects": 0, "rejected_early": 0, "iterations_full": 0, "iterations_rule": 0}
    for path in args.traces:
        data = read_json(path)
        missing = [t for t, _ in floors if t not in data["checkpoints"]]
        if missing:
            raise SystemExit(f"{path}: rule iteration(s) {missing} are not among its checkpoints {data['checkpoints']}")
        row = {"trace": path, "seed": data["context"]["seed"], "n": data["n"], "passed": data["passed"],
               "false_rejects": [], "rejected_early": 0, "iterations_full": 0, "iterations_rule": 0,
               "lowest_passing_optimistic_g": {}}
        for c in data["candidates"]:
            early, full, ruled = judge(c, floors)
            row["iterations_full"] += full
            row["iterations_rule"] += ruled
            row["rejected_early"] += early
            if c["passed"]:
                if early:
                    row["false_rejects"].append(c["text"])
                for tr in c["trace"].values():
                    for t, _, best in tr:
                        low = row["lowest_passing_optimistic_g"].get(str(t))
                        row["lowest_passing_optimistic_g"][str(t)] = best if low is None else min(low, best)
        rows.append(row)
        for k in ("n", "passed", "rejected_early", "iterations_full", "iterations_rule"):
            total[k] += row[k]
        total["false_rejects"] += len(row["false_rejects"])
    total["iterations_saved"] = round(1 - total["iterations_rule"] / max(total["iterations_full"], 1), 3)
    out = json.dumps({"rule": floors, "traces": rows, "total": total}, indent=1)
    if args.out:
        Path(args.out).write_text(out + "\n")
    print(out)


def _screen_jobs(context: dict, cands: list[dict], batch: int, rules: bool) -> tuple[list[dict], float]:
    """The verdicts of ``eval_losses_job`` (the search worker's job) on ``cands`` in batches, from a
    fresh screener, and the seconds it took; ``rules``: the verified early-reject rules on or off."""
    from autoloss_worker.fastreject import jobs, screen
    from autoloss_worker.task_jobs import eval_losses_job

    jobs._screeners.clear()  # a fresh verdict cache
    saved = dict(screen.VERIFIED_EARLY_REJECT)
    if not rules:
        screen.VERIFIED_EARLY_REJECT.clear()
    try:
        base = {"task": context["task"], "options": context["options"], "seed": context["seed"]}
        if context["metric"]:
            base["metric"] = context["metric"]
        t0, out = time.perf_counter(), []
        for s in range(0, len(cands), batch):
            part = cands[s : s + batch]
            losses = [{"loss": c["wire"], "branches": c["branches"]} for c in part]
            out += eval_losses_job({**base, "losses": losses})["results"]
        return out, time.perf_counter() - t0
    finally:
        screen.VERIFIED_EARLY_REJECT.clear()
        screen.VERIFIED_EARLY_REJECT.update(saved)


def time_rules(args: argparse.Namespace) -> None:
    import torch

    from autoloss_worker.fastreject import VERIFIED_EARLY_REJECT
    from autoloss_worker.tasks import get_task
    torch.set_num_threads(1)
    db = Path(args.db)
    context = run_context(db)
    cands = screened_candidates(db)[: args.n]
    task = get_task(context["task"], **context["options"])
    task.rejection_samples(5, context["seed"])  # recorded before timing (both variants share them)
    off, off_s = _screen_jobs(context, cands, args.batch, rules=False)
    on, on_s = _screen_jobs(context, cands, args.batch, rules=True)
    differ = [c["text"] for c, a, b in zip(cands, off, on) if a["passed"] != b["passed"]]
    recorded = [c["text"] for c, a in zip(cands, off) if a["passed"] != c["passed"]]
    out = {"db": str(db), "context": context, "n": len(cands), "batch": args.batch,
           "rules": {b: [list(f) for f in r.floors] for (t, b), r in VERIFIED_EARLY_REJECT.items() if t == context["task"]},
           "passed": sum(a["passed"] for a in off), "verdicts_differ": differ, "off_differs_from_recorded": recorded,
           "seconds_off": round(off_s, 1), "seconds_on": round(on_s, 1), "per_min_off": round(60 * len(cands) / off_s, 1),
           "per_min_on": round(60 * len(cands) / on_s, 1), "speedup": round(off_s / on_s, 2),
           "load_1min_after": round(os.getloadavg()[0], 2)}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="verb", required=True)
    t = sub.add_parser("trace", help="trace the full protocol on a run's screened candidates")
    t.add_argument("db", help="a run's search.db (run.json beside it names the task and seed)")
    t.add_argument("--out", required=True, help="the trace (JSON; gzipped if it ends in .gz)")
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("--limit", type=int, default=0, help="only the first N candidates")
    t.add_argument("--exclude", nargs="*", default=[], help="traces whose candidates (by text) to skip")
    c = sub.add_parser("check", help="what a rule would have done on traces")
    c.add_argument("traces", nargs="+")
    c.add_argument("--rule", required=True, help="iteration:floor pairs, e.g. 10:0.05,50:0.2")
    c.add_argument("--out", help="also write the report here")
    m = sub.add_parser("time", help="time the search's screening jobs with the verified rules off and on")
    m.add_argument("db")
    m.add_argument("--n", type=int, default=400, help="the first N screened candidates")
    m.add_argument("--batch", type=int, default=16, help="losses per eval-losses job (the search's default)")
    m.add_argument("--out")
    args = ap.parse_args()
    {"trace": trace, "check": check, "time": time_rules}[args.verb](args)


if __name__ == "__main__":
    main()
