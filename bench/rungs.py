"""What the seg proxy says at successive-halving rungs, two ways -> bench/results/seg-rungs-continued.{json,md}.

    PYTHONPATH=python_workers .venv/bin/python bench/rungs.py [--shard 0/2]   # run what is missing
    PYTHONPATH=python_workers .venv/bin/python bench/rungs.py --report        # merge shards, write the table

For each of the 10 losses of shared/notes/seg-proxy-rungs.md (seed 0, the seg task's defaults:
300 iterations, 2 threads), in this process, through the worker's own ``train_loss_job``:

* continued: ``fidelity.stop_at`` = each of ``--stops`` (default 33,100,300) on the 300-step
  schedule, each job continuing from the previous one's cached state (``AUTOLOSS_STATE_CACHE`` =
  ``$TMPDIR/autoloss-rungs/<loss index>``, kept, so an interrupted bench continues; each job timed);
* straight (``--straight``, default: CE only): one job, the full 300-step proxy, timed;
* independent (``--independent``; default: the note's numbers, ``NOTE``): ``options.iterations`` =
  33 and 100, each its own run with the schedule scaled to it.

``--options JSON`` adds task options to every job and writes ``seg-rungs-continued-<--name>``
instead; the note's numbers do not apply then, so the independent runs are trained (``--independent``
implied) and the 300-step scores are the continued ones (e.g. ``--options '{"pretrained": true}'
--name pretrained``: the native seg proxy from its shapes-pretrained encoder).

Kendall tau-b (scipy) of each rung's scores against the 300-step scores, per variant. Rung by rung
(every loss's 33 first); results are written after every job into a part file per ``--shard i/n``
(every n-th loss, so processes can share the work), and a rerun skips what is there.
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
COMMAND_FLAGS = '--stops 33,100 --straight ""'
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
# shared/notes/seg-proxy-rungs.md (independent runs, `npx autoloss train-loss --options '{"iterations": N}'`):
# mIoU at 33, 100, 300 iterations, in LOSSES order.
NOTE = [(0.1861, 0.2346, 0.2634), (0.1861, 0.1861, 0.2763), (0.1861, 0.1861, 0.2717), (0.1861, 0.2063, 0.2668),
        (0.1861, 0.2349, 0.2660), (0.1861, 0.1861, 0.2389), (0.1861, 0.1861, 0.1861), (0.1861, 0.1861, 0.1861),
        (0.1861, 0.1861, 0.1861), (0.0029, 0.0029, 0.0029)]


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


TASK_OPTIONS: dict = {}  # --options: added to every job's task options


def payload(loss: str, options: dict | None = None, **extra):
    wire = {"v": 1, "branches": [{"name": "loss", "kind": "dense", "inputs": ["y_hat", "y", "one"], "tree": tree(loss)}]}
    return {"task": "seg", "metric": "miou", "seed": 0, "loss": wire, "options": {**TASK_OPTIONS, **(options or {})}, **extra}


def measure(loss: str, row: dict, save, stops: tuple[int, ...], straight: bool, independent: bool) -> dict:
    """Fill ``row`` job by job (``save()`` after each): continued at ``stops``, then the extras."""
    from autoloss_worker.task_jobs import train_loss_job

    def run(p):
        load = os.getloadavg()[0]
        out = train_loss_job(p)
        return {"miou": out["metrics"]["miou"], "s": round(out["elapsedMs"] / 1000, 2), "load1": round(load, 2),
                "iterations": out["iterations"], "resumedFrom": out["resumedFrom"], "invalid": out["invalid"]}

    # one persistent state cache per loss: an interrupted bench continues from the last rung it reached
    os.environ["AUTOLOSS_STATE_CACHE"] = str(Path(tempfile.gettempdir()) / "autoloss-rungs" / str(LOSSES.index(loss)))
    row.setdefault("loss", loss)
    note = NOTE[LOSSES.index(loss)]
    if not TASK_OPTIONS:  # the note measured the task's defaults only
        row.setdefault("independent", {str(n): {"miou": v, "source": "shared/notes/seg-proxy-rungs.md"}
                                       for n, v in zip(RUNGS, note)})
        row.setdefault("note300", note[2])
    continued = row.setdefault("continued", {})
    for k in stops:
        if str(k) not in continued:
            continued[str(k)] = run(payload(loss, fidelity={"stop_at": k}))
            save()
    if straight and "straight" not in row:
        row["straight"] = run(payload(loss))
        save()
    if TASK_OPTIONS and str(FULL) in continued:
        row["note300"] = continued[str(FULL)]["miou"]  # with options: the full schedule's own score
    if independent and ("independent" not in row or "source" in row["independent"]["33"]):
        row["independent"] = {str(n): run(payload(loss, options={"iterations": n})) for n in RUNGS}
        save()
    return row


def kendall(xs, ys) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(xs, ys).statistic)


def report(rows: list[dict]) -> str:
    def cell(rung: dict, k: str) -> str:
        return f"{rung[k]['miou']:.4f}" if k in rung else "–"

    lines = [
        "# seg proxy at successive-halving rungs: independent short runs vs stopping on the full schedule and continuing",
        "",
        f"Made by `PYTHONPATH=python_workers .venv/bin/python bench/rungs.py --shard I/2 {COMMAND_FLAGS}`",
        f"for I = 0 and 1 (two processes), then `bench/rungs.py --report`. Task options {json.dumps(TASK_OPTIONS)} (else the seg defaults: 300 SGD steps,",
        "2 threads, CPU), `train_loss_job` in-process. *independent*: `options.iterations` = N, the poly schedule",
        "scaled to N, and the 300-step score: shared/notes/seg-proxy-rungs.md (without task options; with them, both trained here). *continued*: `fidelity.stop_at` = k",
        "on the 300-step schedule, 33 then 100, the second job continuing from the first one's cached state.",
        "Proxy mIoU (4 places; the JSON has the exact values):",
        "",
        "| loss | indep. 33 | indep. 100 | cont. 33 | cont. 100 (from 33) | cont. 300 | 300 (note) | s per job (33, 100) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        i, c = r["independent"], r["continued"]
        secs = ", ".join(f"{c[k]['s']:.0f}" for k in c)
        lines.append(f"| `{r['loss']}` | {i['33']['miou']:.4f} | {i['100']['miou']:.4f} | {cell(c, '33')} | "
                     f"{cell(c, '100')} | {cell(c, '300')} | {r['note300']:.4f} | {secs} |")
    lines += [
        "",
        "Kendall tau-b of each rung's scores against the 300-step scores (ties as scipy counts them):",
        "",
        "| rung | losses | independent short run | stopped on the full schedule |",
        "|---|---|---|---|",
    ]
    for n in RUNGS:
        have = [r for r in rows if str(n) in r["continued"]]
        full = [r["note300"] for r in have]
        ti = kendall([r["independent"][str(n)]["miou"] for r in have], full)
        tc = kendall([r["continued"][str(n)]["miou"] for r in have], full)
        lines.append(f"| {n} ({'1/9' if n == 33 else '1/3'}) | {len(have)} | {ti:.3f} | {tc:.3f} |")
    for r in rows:
        if "straight" in r and "300" in r["continued"]:
            c = r["continued"]
            same = c["300"]["miou"] == r["straight"]["miou"]
            lines.append(f"\n`{r['loss']}`: straight 300 **{r['straight']['s']:.1f} s**, continued 33 -> 100 -> 300 "
                         f"**{sum(c[k]['s'] for k in c):.1f} s** in three jobs (final mIoU {'identical' if same else 'DIFFERENT'}).")
    loads = [v["load1"] for r in rows for v in [*r["continued"].values(), *([r["straight"]] if "straight" in r else [])]]
    lines.append(f"\n1-min load average at job starts: {min(loads):.1f}-{max(loads):.1f} on 2 cores shared with other "
                 "sessions: times are indicative only.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", action="store_true", help="merge the part files and rewrite the .md")
    parser.add_argument("--shard", default="0/1", help="i/n: run losses i, i+n, ... into a part file")
    parser.add_argument("--stops", default="33,100,300", help="the continued rungs to reach, in order")
    parser.add_argument("--straight", default="0", help="comma-separated loss indices also trained straight (timing)")
    parser.add_argument("--independent", action="store_true", help="rerun the independent 33/100 runs")
    parser.add_argument("--options", default="{}", help="task options (JSON) for every job; needs --name")
    parser.add_argument("--name", default="", help="results as seg-rungs-continued-NAME.{json,md}")
    args = parser.parse_args()
    global OUT, COMMAND_FLAGS
    TASK_OPTIONS.update(json.loads(args.options))
    if TASK_OPTIONS and not args.name:
        parser.error("--options needs --name (the note's default-task numbers would be mixed in otherwise)")
    if args.name:
        OUT = OUT.with_name(f"{OUT.name}-{args.name}")
        COMMAND_FLAGS = f"--options '{args.options}' --name {args.name} --stops {args.stops}"
    if TASK_OPTIONS:
        args.independent = True
    path = OUT.with_suffix(".json")
    rows = json.loads(path.read_text()) if path.exists() else []
    if args.report:
        merged = {r["loss"]: r for r in rows}
        for part in sorted(OUT.parent.glob(OUT.name + ".part*.json")):  # the shards' rows are the newer
            merged.update({r["loss"]: r for r in json.loads(part.read_text())})
        rows = sorted(merged.values(), key=lambda r: LOSSES.index(r["loss"]))
        path.write_text(json.dumps(rows, indent=1) + "\n")
        OUT.with_suffix(".md").write_text(report(rows))
        print(OUT.with_suffix(".md").read_text())
        return
    i, n = (int(x) for x in args.shard.split("/"))
    part = OUT.parent / f"{OUT.name}.part{i}.json"
    mine = json.loads(part.read_text()) if part.exists() else []
    stops = tuple(int(x) for x in args.stops.split(","))
    straight = {int(x) for x in args.straight.split(",") if x}
    # rung by rung over this shard's losses, so a complete lower rung exists as early as possible
    for upto in range(1, len(stops) + 1):
        for index in range(i, len(LOSSES), n):
            loss = LOSSES[index]
            row = next((r for r in mine if r["loss"] == loss), None)
            if row is None:
                row = {"loss": loss}
                mine.append(row)
            start = time.perf_counter()
            last = upto == len(stops)
            measure(loss, row, lambda: part.write_text(json.dumps(mine, indent=1) + "\n"), stops[:upto],
                    last and index in straight, last and args.independent)
            print(f"{time.perf_counter() - start:6.1f} s  rung {stops[upto - 1]}  {loss}", flush=True)


if __name__ == "__main__":
    main()
