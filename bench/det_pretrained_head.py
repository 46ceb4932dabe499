"""Experiment, not the product's proxy: would det's lowest asha rung rank box losses if the proxy
started from a whole detector instead of a backbone? -> bench/results/det-pretrained-head-<name>.json

    PYTHONPATH=python_workers .venv/bin/python bench/det_pretrained_head.py --run runs/det-s0 --name s0

The shipped det proxy trains every head from random weights, so at 50 of its 150 iterations the
R-CNN classifier has not learned and every box loss scores bbox mAP ~0.01 (bench/run_rungs.py:
Kendall tau -0.03, 0.38 with a 20-iteration warm-up). Here the Faster R-CNN config is first
trained with its handcrafted losses on shapes data of another seed (``--pretrain-data-seed``,
never the search's), and each proxy training loads that detector and re-initialises only the
searched branch's output layer (``roi_head.bbox_head.fc_reg``, mmdet's own init: normal, std
0.001) before training the run's losses at 50 and 150 iterations (fresh runs, no continuation).
Caveat: the shared layers learned under the baseline's box gradients, which may favour losses
like it. Output: every training, tau of 50 against 150, and of 150 against the run's own scores.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from scipy.stats import kendalltau

from autoloss_worker.mmlab.rewrite import ProxySchedule, rewrite_config, train_proxy
from autoloss_worker.tasks import get_task
from autoloss_worker.tasks.training import set_threads
from run_rungs import trained_losses  # bench/ is on sys.path when this file runs as a script

ROOT = Path(__file__).resolve().parents[1]


@HOOKS.register_module()
class ReinitBoxRegressorHook(Hook):
    """After the checkpoint is loaded (mmengine loads before ``before_train``), start the searched
    box regressor again from mmdet's init for it."""

    def before_train(self, runner) -> None:
        head = runner.model.roi_head.bbox_head
        torch.nn.init.normal_(head.fc_reg.weight, 0, 0.001)
        torch.nn.init.zeros_(head.fc_reg.bias)


def det_task(warmup: int, data_seed: int = -1):
    return get_task("det", branches="rcnn_reg", warmup_iters=warmup, data_seed=data_seed, threads=1)


def pretrained_detector(args: argparse.Namespace) -> Path:
    """The config trained with its own losses (``--pretrain-iters``), as a plain state dict."""
    out = Path(tempfile.gettempdir()) / f"autoloss-det-detector-{args.pretrain_data_seed}-{args.pretrain_iters}.pth"
    if out.exists():
        return out
    task = det_task(50, args.pretrain_data_seed)
    slots = [s for s in task.proxy_slots() if s.name in task.branches]
    cfg = rewrite_config(task.proxy_config(), task.baseline_loss, slots,
                         ProxySchedule(max_iters=args.pretrain_iters, warmup_iters=50, seed=args.pretrain_data_seed, checkpoint=True))
    set_threads(2)
    with tempfile.TemporaryDirectory() as work:
        result = train_proxy(cfg, work)
        checkpoint = torch.load(Path(work) / f"iter_{args.pretrain_iters}.pth", map_location="cpu", weights_only=False)
    torch.save({"state_dict": checkpoint["state_dict"]}, out)  # loadable with torch.load's weights_only default
    print(f"pretrained detector: bbox mAP {result['value']} on its own data -> {out}", flush=True)
    return out


def train(item: tuple) -> dict:
    candidate, text, wire, stop, checkpoint, warmup = item
    task = det_task(warmup)
    slots = [s for s in task.proxy_slots() if s.name in task.branches]
    cfg = rewrite_config(task.proxy_config(), wire, slots, ProxySchedule(max_iters=150, warmup_iters=warmup, seed=0, stop_at=stop))
    cfg.load_from = str(checkpoint)
    cfg.custom_hooks = [*cfg.get("custom_hooks", []), dict(type="ReinitBoxRegressorHook")]
    set_threads(1)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        result = train_proxy(cfg, work)
    return {"candidate": candidate, "loss": text, "stop": stop, "score": result["value"] or 0.0,
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a finished det search (seed 0, branches rcnn_reg)")
    parser.add_argument("--name", required=True)
    parser.add_argument("--warmup", type=int, default=20, help="warm-up of the proxy trainings")
    parser.add_argument("--pretrain-iters", type=int, default=300)
    parser.add_argument("--pretrain-data-seed", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    checkpoint = pretrained_detector(args)
    losses = trained_losses(Path(args.run))
    baseline = det_task(args.warmup).baseline_loss
    rows = [(c, t, json.loads(w)) for c, t, w, _ in losses] + [(None, "baseline (1 - GIoU)", baseline)]
    items = [(c, t, w, stop, checkpoint, args.warmup) for c, t, w in rows for stop in (50, 150)]
    with ProcessPoolExecutor(args.jobs) as pool:
        done = list(pool.map(train, items))
    score = {(t["candidate"], t["stop"]): t["score"] for t in done if t["candidate"] is not None}
    ids = [c for c, *_ in losses]
    run_scores = {c: s for c, _, _, s in losses}
    out = ROOT / "bench" / "results" / f"det-pretrained-head-{args.name}.json"
    out.write_text(json.dumps({
        "bench": "det-pretrained-head", "run": args.run, "warmup": args.warmup, "pretrain_iters": args.pretrain_iters,
        "pretrain_data_seed": args.pretrain_data_seed,
        "tau_50_vs_150": float(kendalltau([score[(c, 50)] for c in ids], [score[(c, 150)] for c in ids]).statistic),
        "tau_150_vs_run": float(kendalltau([score[(c, 150)] for c in ids], [run_scores[c] for c in ids]).statistic),
        "run_scores": [{"candidate": c, "loss": t, "score": s} for c, t, _, s in losses], "trainings": done,
        "command": f"PYTHONPATH=python_workers .venv/bin/python bench/det_pretrained_head.py --run {args.run} --name {args.name}",
    }, indent=2) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
