"""Loss-rejection throughput: the straightforward protocol vs the production path, same stream.

    .venv/bin/python bench/rejection.py [--n 400] [--seed 7] [--device cpu|cuda] [--workers 2]
                                        [--reference-subset 0] [--reference-workers W] [--stream FILE]

GPU run (a few minutes on one H200; the stream is generated beforehand where node is available):
    npx tsx bench/gen-candidates.ts --n 20000 --seed 7 > bench/results/stream-20000.json
    .venv/bin/python bench/rejection.py --device cuda --n 20000 --stream bench/results/stream-20000.json \
        --reference-subset 300 --reference-workers 14 --out bench/results/rejection-cuda.json

Stream: ``bench/gen-candidates.ts`` (the search's own generator: random initial losses and
offspring of passing parents, hopeless ones included), seg task, its default rejection
resolution (32×32), metric mIoU, B = 5, 500 iterations: the paper's constants.

Reference (``rejection_reference.py``): one candidate at a time, one torch thread per process,
run in ``--workers`` processes only to keep the wall clock short; its rate is per process
(60 / mean seconds per candidate), i.e. the obvious implementation on one core. With
``--reference-subset K`` only every (N/K)-th candidate is timed by the reference and the
rates and agreement come from those (stated in the output).
Production (``fastreject``): static check + verdict cache in the parent, the batched protocol in
``--workers`` processes; timed from the first candidate to the last verdict with warm workers
(a search's worker pool is long-lived), i.e. on all the cores given.

Writes bench/results/rejection.json and prints it.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python_workers"))

from autoloss_worker.fastreject import Screener, fast_config_for  # noqa: E402
from autoloss_worker.fastreject.parallel import ParallelScreener  # noqa: E402
from autoloss_worker.graph import loss_from_wire  # noqa: E402
from autoloss_worker.rejection_reference import reference_check  # noqa: E402
from autoloss_worker.tasks import get_task  # noqa: E402

METRIC, SEED = "miou", 0


def candidate_stream(n: int, seed: int) -> list[dict]:
    out = subprocess.run(["npx", "tsx", "bench/gen-candidates.ts", "--n", str(n), "--seed", str(seed)],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


_task = None


def _ref_init(options: dict) -> None:
    global _task
    torch.set_num_threads(1)
    _task = get_task("seg", **options)
    _task.rejection_samples(5, SEED)


def _ref_one(wire: dict) -> tuple[bool, float, bool, float]:
    t = time.perf_counter()
    v = reference_check(_task, loss_from_wire(wire), METRIC, seed=SEED)
    return v.passed, v.score, v.invalid, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=0, help="candidates per batch (default: cpu 4, cuda 2048)")
    ap.add_argument("--reference-workers", type=int, default=0, help="processes for the reference (default: --workers)")
    ap.add_argument("--reference-subset", type=int, default=0, help="time the reference on K candidates only")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                    help="production arithmetic (the reference is always float64); float32 is not the default")
    ap.add_argument("--engine", choices=("tree", "levels"), help="default: levels on cuda, tree on cpu")
    ap.add_argument("--stream", help="read the candidate stream from this JSON file (gen-candidates.ts output) "
                    "instead of running the generator, e.g. on a machine without node")
    ap.add_argument("--out", default=str(ROOT / "bench/results/rejection.json"))
    args = ap.parse_args()

    stream = json.loads(Path(args.stream).read_text())[: args.n] if args.stream else candidate_stream(args.n, args.seed)
    graphs = [loss_from_wire(c["wire"]) for c in stream]

    # ---- production
    cuda = args.device == "cuda"
    engine = args.engine or ("levels" if cuda else "tree")
    fast = fast_config_for("seg", batch=args.batch or (2048 if cuda else 4), device=args.device, engine=engine,
                           dtype=getattr(torch, args.dtype))
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if engine == "levels":  # one process drives the device; batching does the parallel work
        torch.set_num_threads(1)
        task = get_task("seg")
        Screener(task, METRIC, SEED, fast=fast).screen(graphs[:64])  # warm-up: samples, CUDA context
        screener = Screener(task, METRIC, SEED, fast=fast)  # a fresh cache
        sync()
        t0 = time.perf_counter()
        verdicts = screener.screen(graphs)
        sync()
        prod_s = time.perf_counter() - t0
    else:
        with ParallelScreener("seg", {}, METRIC, SEED, fast=fast, workers=args.workers) as screener:
            t0 = time.perf_counter()
            verdicts = screener.screen(graphs)
            prod_s = time.perf_counter() - t0
    stages = {s: sum(v.stage == s for v in verdicts) for s in ("static", "cache", "protocol")}
    nontrivial = [i for i, v in enumerate(verdicts) if v.stage == "protocol"]

    # ---- reference
    if args.reference_subset and args.reference_subset < len(stream):
        step = len(stream) / args.reference_subset
        ref_idx = sorted({int(k * step) for k in range(args.reference_subset)})
    else:
        ref_idx = list(range(len(stream)))
    ref_workers = args.reference_workers or args.workers
    with mp.get_context("spawn").Pool(ref_workers, initializer=_ref_init, initargs=({},)) as pool:
        ref = dict(zip(ref_idx, pool.map(_ref_one, [stream[i]["wire"] for i in ref_idx], chunksize=1)))

    ref_s = sum(r[3] for r in ref.values())
    ref_per_min = 60 * len(ref) / ref_s
    prod_per_min = 60 * len(graphs) / prod_s
    nt_ref = [i for i in nontrivial if i in ref]
    ref_nt_per_min = 60 * len(nt_ref) / sum(ref[i][3] for i in nt_ref) if nt_ref else float("nan")
    prod_nt_per_min = 60 * len(nontrivial) / prod_s  # all production time goes to these
    agree = sum(verdicts[i].passed == ref[i][0] for i in ref)
    false_passes = [stream[i]["text"] for i in ref if verdicts[i].passed and not ref[i][0]]
    false_rejects = [stream[i]["text"] for i in ref if ref[i][0] and not verdicts[i].passed]
    result = {
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(0),
        "candidates": len(graphs),
        "reference_per_min": round(ref_per_min, 2),
        "production_per_min": round(prod_per_min, 2),
        "speedup_full": round(prod_per_min / ref_per_min, 2),
        "speedup_nontrivial": round(prod_nt_per_min / ref_nt_per_min, 2),
        "agreement": round(agree / len(ref), 4),
        "false_passes": len(false_passes),
        "details": {
            "stream": {"seed": args.seed, "origins": {o: sum(c["origin"] == o for c in stream)
                                                       for o in ("random", "reinit", "mutate", "copy")}},
            "reference_candidates": len(ref),
            "reference_passed": sum(r[0] for r in ref.values()),
            "production_passed": sum(v.passed for v in verdicts),
            "production_stages": stages,
            "production_nontrivial_per_min": round(prod_nt_per_min, 2),
            "reference_nontrivial_per_min": round(ref_nt_per_min, 2),
            "reference_per_min_all_workers": round(ref_per_min * ref_workers, 2),
            "speedup_full_same_cores": round(prod_per_min / (ref_per_min * (1 if engine == "levels" else args.workers)), 2),
            "production_seconds": round(prod_s, 2),
            "reference_cpu_seconds": round(ref_s, 2),
            "false_rejects": false_rejects,
            "false_pass_losses": false_passes,
            "early_reject": [list(f) for f in fast.early_reject.floors],
            "reference_timed_on": "every candidate" if len(ref) == len(stream) else f"{len(ref)} evenly spaced candidates",
            "batch": fast.batch,
            "workers": 1 if engine == "levels" else args.workers,
            "reference_workers": ref_workers,
            "engine": fast.engine,
            "dtype": args.dtype,
            "torch_threads_per_process": 1,
            "cpu_count": os.cpu_count(),
            "load_average_1m": os.getloadavg()[0],
            "machine": platform.processor() or platform.machine(),
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
