"""What the seg proxy says at successive-halving rungs, two ways -> bench/results/seg-rungs-continued.{json,md}.

    PYTHONPATH=python_workers .venv/bin/python bench/rungs.py            # run what is missing, then write the table
    PYTHONPATH=python_workers .venv/bin/python bench/rungs.py --report   # only rewrite the table from the JSON

For each of the 10 losses of shared/notes/seg-proxy-rungs.md (seed 0, the seg task's defaults:
300 iterations, 2 threads), in this process, through the worker's own ``train_loss_job``:

* straight: one job, the full 300-step proxy (timed);
* independent: ``options.iterations`` = 33 and 100, each its own run with the schedule scaled to it
  (what the note measured);
* continued: ``fidelity.stop_at`` = 33, 100, 300 on the 300-step schedule, each job continuing
  from the previous one's cached state (a fresh ``AUTOLOSS_STATE_CACHE`` per loss; each timed).

Kendall tau-b (scipy) of each rung's scores against the 300-step scores, per variant. Results are
rewritten after every loss, so an interrupted bench keeps what finished and reruns only the rest.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "seg-rungs-continued"
FULL, RUNGS = 300, (33, 100)
LOSSES = [
    "neg(mul(y, log(y_hat)))",
    "exp(sqrt(neg(log(mul(y, y_hat)))))",
    "neg(log(mul(mul(y, sqrt(y_hat)), add(y_hat, mean_c(one)))))",
    "neg(log(mul(y, tanh(sqrt(y_hat)))))",
    "log(inv(mul(y_hat, y)))",
    "exp(add(mul(y_hat, exp(one)), neg(y)))",
    "square(add(y_hat, neg(y)))",
    "add(sqrt(add(y_hat, y)), mul(exp(y), square(one)))",
    "neg(mul(y, y_hat))",
    "inv(mul(y_hat, tanh(y)))",
]


def tree(text: str):
    """``op(a, b)`` -> ["op", a, b]; the bench's losses use only the dense inputs."""
    tokens = re.findall(r"[A-Za-z_]+|[(),]", text)
    pos = 0

    def node():
        nonlocal pos
        name = tokens[pos]
        pos += 1
        if pos < len(tokens) and tokens[pos] == "(":
            pos += 1
            args = [node()]
            while tokens[pos] == ",":
                pos += 1
                args.append(node())
            assert tokens[pos] == ")", text
            pos += 1
            return [name, *args]
        return name

    out = node()
    assert pos == len(tokens), text
    return out


def payload(loss: str, **extra):
    wire = {"v": 1, "branches": [{"name": "loss", "kind": "dense", "inputs": ["y_hat", "y", "one"], "tree": tree(loss)}]}
    return {"task": "seg", "metric": "miou", "seed": 0, "loss": wire, **extra}


def measure(loss: str) -> dict:
    from autoloss_worker.task_jobs import train_loss_job

    def run(p):
        load = os.getloadavg()[0]
        out = train_loss_job(p)
        return {"miou": out["metrics"]["miou"], "s": round(out["elapsedMs"] / 1000, 2), "load1": round(load, 2),
                "iterations": out["iterations"], "resumedFrom": out["resumedFrom"], "invalid": out["invalid"]}

    row: dict = {"loss": loss, "straight": run(payload(loss))}
    row["independent"] = {str(n): run(payload(loss, options={"iterations": n})) for n in RUNGS}
    with tempfile.TemporaryDirectory(prefix="autoloss-rungs-") as cache:
        os.environ["AUTOLOSS_STATE_CACHE"] = cache
        row["continued"] = {str(k): run(payload(loss, fidelity={"stop_at": k})) for k in (*RUNGS, FULL)}
    return row


def kendall(xs, ys) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(xs, ys).statistic)


def report(rows: list[dict]) -> str:
    full = [r["straight"]["miou"] for r in rows]
    lines = [
        "# seg proxy at successive-halving rungs: independent short runs vs stopping on the full schedule and continuing",
        "",
        "Made by `PYTHONPATH=python_workers .venv/bin/python bench/rungs.py` (seed 0, seg defaults: 300 SGD steps,",
        "2 threads, CPU; `train_loss_job` in one process). *independent*: `options.iterations` = N, the poly",
        "schedule scaled to N (as in shared/notes/seg-proxy-rungs.md). *continued*: `fidelity.stop_at` = k on",
        "the 300-step schedule, 33 -> 100 -> 300 each continuing from the previous job's cached state.",
        "Proxy mIoU:",
        "",
        "| loss | indep. 33 | indep. 100 | cont. 33 | cont. 100 | cont. 300 | straight 300 | straight s | cont. s (33+100+300 jobs) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        i, c, s = r["independent"], r["continued"], r["straight"]
        cont_s = sum(c[k]["s"] for k in c)
        parts = " + ".join(f"{c[k]['s']:.1f}" for k in c)
        lines.append(f"| `{r['loss']}` | {i['33']['miou']:.4f} | {i['100']['miou']:.4f} | {c['33']['miou']:.4f} | "
                     f"{c['100']['miou']:.4f} | {c['300']['miou']:.4f} | {s['miou']:.4f} | {s['s']:.1f} | "
                     f"{cont_s:.1f} ({parts}) |")
    same = all(r["continued"]["300"]["miou"] == r["straight"]["miou"] for r in rows)
    straight_s = sum(r["straight"]["s"] for r in rows)
    cont_s = sum(sum(r["continued"][k]["s"] for k in r["continued"]) for r in rows)
    loads = [v["load1"] for r in rows for v in [r["straight"], *r["independent"].values(), *r["continued"].values()]]
    lines += [
        "",
        "Kendall tau-b of the rung's scores against the 300-step scores (10 losses; ties as scipy counts them):",
        "",
        "| rung | independent short run | stopped on the full schedule |",
        "|---|---|---|",
    ]
    for n in RUNGS:
        ti = kendall([r["independent"][str(n)]["miou"] for r in rows], full)
        tc = kendall([r["continued"][str(n)]["miou"] for r in rows], full)
        lines.append(f"| {n} ({'1/9' if n == 33 else '1/3'}) | {ti:.3f} | {tc:.3f} |")
    lines += [
        "",
        f"Continued 300 equals the straight 300 for every loss: **{'yes' if same else 'NO'}** (exact float equality).",
        f"Time, all 10 losses: straight 300 **{straight_s:.0f} s**, continued 33 -> 100 -> 300 **{cont_s:.0f} s** "
        f"({cont_s / straight_s:.2f}x; the extra is two evaluations on the 128 eval images and the state saves/loads).",
        f"1-min load average at job starts: {min(loads):.1f}-{max(loads):.1f} (2 cores shared with other sessions), "
        "so times are indicative only.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", action="store_true", help="only rewrite the .md from the .json")
    args = parser.parse_args()
    path = OUT.with_suffix(".json")
    rows = json.loads(path.read_text()) if path.exists() else []
    if not args.report:
        done = {r["loss"] for r in rows}
        for loss in LOSSES:
            if loss in done:
                continue
            start = time.perf_counter()
            rows.append(measure(loss))
            path.write_text(json.dumps(rows, indent=1) + "\n")
            print(f"{time.perf_counter() - start:6.1f} s  {loss}", flush=True)
    rows.sort(key=lambda r: LOSSES.index(r["loss"]))
    OUT.with_suffix(".md").write_text(report(rows))
    print(OUT.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
