"""Run one task job from the command line (what the TS verbs spawn until the worker pool routes them).

    python -m autoloss_worker.cli eval-loss  --task seg --metric miou --loss-wire-b64 B64 [--branch NAME ...] [--seed S] [--options JSON] --json
    python -m autoloss_worker.cli train-loss --task seg --metric miou --loss-wire-b64 B64 [--seed S] [--options JSON] --json
    python -m autoloss_worker.cli baseline   --task seg [--metric M] [--seed S] [--options JSON] [--json]
    python -m autoloss_worker.cli export-mmlab --task det --format mmdet --loss-wire-b64 B64 --out FILE [--options JSON] [--base FILE] [--header LINE ...]

``B64`` is base64 of the msgpack wire form of the loss graph (``protocol/README.md``); ``--options``
is the job's ``options`` map as JSON (see ``task_jobs.py``). With ``--json`` the job's result is
printed as one JSON line on stdout; otherwise as readable lines. ``--branch`` (eval-loss, repeatable)
checks only the named branches (each with the others at ground truth); the loss then needs only
those branches. Bad input (unknown task, metric
or option, invalid graph) prints ``error: ...`` on stderr and exits with status 2.

``export-mmlab`` writes the loss as an MMLab config fragment (``autoloss_worker.mmlab.export``) and
prints ``{"path", "base", "format", "branches"}`` as one JSON line; ``--options`` are the run's task
options (they resolve the config it searched with), ``--base`` overrides that config. Exit status
2 when the request cannot work (format, task), 1 when the loss does not fit the config.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from typing import Any

JOBS = ("eval-loss", "train-loss", "baseline")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m autoloss_worker.cli", description="Run one autoloss task job.")
    p.add_argument("job", choices=JOBS)
    p.add_argument("--task", required=True, help="task name (seg, pose)")
    p.add_argument("--metric", default=None, help="target metric (default: the task's)")
    p.add_argument("--loss-wire-b64", default=None, help="base64 msgpack wire form of the loss graph")
    p.add_argument("--branch", action="append", default=None, help="eval-loss: check only this branch (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--options", default="{}", help="job options as a JSON map")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")
    return p


def _payload(args: argparse.Namespace) -> dict[str, Any]:
    from autoloss_worker.graph import decode_loss, loss_to_wire

    try:
        options = json.loads(args.options)
    except json.JSONDecodeError as e:
        raise ValueError(f"--options is not valid JSON: {e}") from None
    if not isinstance(options, dict):
        raise ValueError("--options must be a JSON map")
    payload: dict[str, Any] = {"task": args.task, "metric": args.metric, "seed": args.seed, "options": options}
    if args.job == "baseline":
        if args.loss_wire_b64 is not None:
            raise ValueError("baseline takes no --loss-wire-b64: the task's baseline loss is used")
        return payload
    if args.loss_wire_b64 is None:
        raise ValueError(f"{args.job} needs --loss-wire-b64")
    try:
        data = base64.b64decode(args.loss_wire_b64, validate=True)
    except binascii.Error as e:
        raise ValueError(f"--loss-wire-b64 is not base64: {e}") from None
    payload["loss"] = loss_to_wire(decode_loss(data))
    if getattr(args, "branch", None) is not None:
        if args.job != "eval-loss":
            raise ValueError(f"--branch is for eval-loss, not {args.job}")
        payload["branches"] = args.branch
    return payload


def _print_readable(job: str, result: dict[str, Any]) -> None:
    if job == "eval-loss":
        verdict = "passed" if result["passed"] else ("invalid" if result["invalid"] else "rejected")
        print(f"{verdict}: score {result['score']:.4f} after {result['iterations']} iterations")
        print("gradient norms: " + ", ".join("null" if n is None else f"{n:.4g}" for n in result["gradNorms"]))
    else:
        status = " (invalid: stopped on a non-finite loss)" if result["invalid"] else ""
        print(f"target {result['target']:.4f} after {result['iterations']} iterations{status}")
        for name, value in result["metrics"].items():
            print(f"  {name:6s} {value:.4f}")
    print(f"elapsed {result['elapsedMs'] / 1000:.1f} s")


def _export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m autoloss_worker.cli export-mmlab",
                                description="Write a loss as an MMLab config fragment.")
    p.add_argument("--task", required=True, help="the run's task (det, ins, ...)")
    p.add_argument("--format", required=True, help="mmdet, mmpose or mmseg")
    p.add_argument("--loss-wire-b64", required=True, help="base64 msgpack wire form of the loss graph")
    p.add_argument("--out", required=True, help="the fragment file to write")
    p.add_argument("--options", default="{}", help="the run's task options as a JSON map")
    p.add_argument("--base", default=None, help="config to build on (default: the run's)")
    p.add_argument("--header", action="append", default=[], help="a comment line for the top of the file")
    return p


def export_main(argv: list[str]) -> int:
    args = _export_parser().parse_args(argv)
    from autoloss_worker.mmlab.export import ExportError, export_fragment

    try:
        payload = _payload(argparse.Namespace(job="export-mmlab", task=args.task, metric=None, seed=0,
                                              options=args.options, loss_wire_b64=args.loss_wire_b64))
        result = export_fragment(payload["loss"], args.task, args.format, args.out, options=payload["options"],
                                 base=args.base, header=args.header)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:  # ExportUsageError, GraphError, bad --options
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["export-mmlab"]:
        return export_main(argv[1:])
    args = _parser().parse_args(argv)
    from autoloss_worker.graph import GraphError
    from autoloss_worker.task_jobs import baseline_job, eval_loss_job, train_loss_job

    run = {"eval-loss": eval_loss_job, "train-loss": train_loss_job, "baseline": baseline_job}[args.job]
    try:
        result = run(_payload(args))
    except (ValueError, GraphError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, allow_nan=False))
    else:
        _print_readable(args.job, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
