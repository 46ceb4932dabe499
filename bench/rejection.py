"""Loss-rejection throughput: the straightforward protocol vs the production path, same stream.

    .venv/bin/python bench/rejection.py [--n 400] [--seed 7] [--device cpu|cuda] [--workers 2]
                                        [--reference-subset 0] [--reference-workers W] [--stream FILE]
                                        [--dtype float64|float32] [--no-reference]

GPU run (a few minutes on one H200; the stream is generated beforehand where node is available):
    npx tsx bench/gen-candidates.ts --n 20000 --seed 7 > bench/results/stream-20000.json
    .venv/bin/python bench/rejection.py --device cuda --n 20000 --stream bench/results/stream-20000.json \
        --reference-subset 300 --reference-workers 14 --out bench/results/rejection-cuda.json

Stream: ``bench/gen-candidates.ts`` (the search's own generator: random initial losses and
offspring of passing parents, hopeless ones included), seg task, its default rejection
resolution (32×32), metric mIoU, B = 5, 500 iterations: the paper's constants. The stream's seed
is recorded (from the file's ``seed``; a bare list from an older generator takes ``--seed``).
A seed other than 7 validates the early-reject rule, which was chosen on seed 7.

Reference (``python_workers/tests/rejection_reference.py``, the tests' oracle): one candidate at a
time, one torch thread per process, run in ``--workers`` processes only to keep the wall clock
short; its rate is per process
(60 / mean seconds per candidate), i.e. the obvious implementation on one core. With
``--reference-subset K`` only every (N/K)-th candidate is timed by the reference and the
rates and agreement come from those (stated in the output).
Production (``fastreject``): static check + verdict cache in the parent, the batched protocol in
``--workers`` processes; timed from the first candidate to the last verdict with warm workers
(a search's worker pool is long-lived), i.e. on all the cores given. On CPU it is timed a second
time in one process (``single_process``): that ratio to the reference's per-process rate is the
speed-up that owes nothing to extra cores.

Search path (``search_path``): what a search worker runs, timed in this one process. The search
checks statically in the control plane and screens each distinct loss once per run, so the distinct
(by text) non-static candidates of the stream go, in stream order, through the job the search sends
(``task_jobs.eval_losses_job``, batches of ``--search-batch``, the micro-batcher's largest,
default 16; fresh verdict cache), and through one ``eval_loss_job`` per loss (``--screen-batch 1``,
the search before batching). Rates are per process, i.e. per worker; beside the reference's
per-process rate on the same kind of candidates (``reference_nontrivial_per_min``).

Writes bench/results/rejection.json (``--out``) and prints it; ``--no-reference`` times the
production path only and writes nothing unless ``--out`` is given.
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
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python_workers"))
sys.path.insert(0, str(ROOT / "python_workers" / "tests"))  # the reference protocol lives with the tests

from autoloss_worker.fastreject import FastConfig, Screener, Verdict, fast_config_for  # noqa: E402
from autoloss_worker.fastreject import jobs as screen_jobs  # noqa: E402
from autoloss_worker.fastreject.parallel import ParallelScreener  # noqa: E402
from autoloss_worker.fastreject.static import static_reason  # noqa: E402
from autoloss_worker.graph import loss_from_wire  # noqa: E402
from autoloss_worker.task_jobs import eval_loss_job, eval_losses_job  # noqa: E402
from autoloss_worker.tasks import get_task  # noqa: E402
from rejection_reference import reference_check  # noqa: E402

METRIC, SEED = "miou", 0
EARLY_REJECT_CHOSEN_ON_SEED = 7  # the stream the floors of fastreject.VERIFIED_EARLY_REJECT were read from


def candidate_stream(n: int, seed: int) -> dict:
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


def load_stream(args: argparse.Namespace) -> tuple[list[dict], int, str]:
    """The candidates, the stream's seed and where the seed comes from."""
    if not args.stream:
        return candidate_stream(args.n, args.seed)["candidates"], args.seed, "generator"
    data = json.loads(Path(args.stream).read_text())
    if isinstance(data, list):  # gen-candidates.ts before it recorded its seed
        return data[: args.n], args.seed, "--seed (stream file without a seed)"
    return data["candidates"][: args.n], data["seed"], "stream file"


def time_production(graphs: list, fast: FastConfig, workers: int, engine: str, cuda: bool) -> tuple[list[Verdict], float]:
    """Verdicts for ``graphs`` from a fresh screener (empty cache) with warm workers, and seconds."""
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
        return verdicts, time.perf_counter() - t0
    with ParallelScreener("seg", {}, METRIC, SEED, fast=fast, workers=workers) as parallel:
        t0 = time.perf_counter()
        verdicts = parallel.screen(graphs)
        return verdicts, time.perf_counter() - t0


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=0, help="candidates per batch (default: cpu 4, cuda 2048)")
    ap.add_argument("--reference-workers", type=int, default=0, help="processes for the reference (default: --workers)")
    ap.add_argument("--reference-subset", type=int, default=0, help="time the reference on K candidates only")
    ap.add_argument("--no-reference", action="store_true", help="time the production path only")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                    help="production arithmetic (the reference is always float64)")
    ap.add_argument("--engine", choices=("closed", "tree", "levels"), help="default: levels on cuda, closed on cpu")
    ap.add_argument("--stream", help="read the candidate stream from this JSON file (gen-candidates.ts output) "
                    "instead of running the generator, e.g. on a machine without node")
    ap.add_argument("--search-batch", type=int, default=16, help="losses per eval-losses job in search_path")
    ap.add_argument("--out", help="default: bench/results/rejection.json (nothing with --no-reference)")
    return ap.parse_args()


@dataclass
class Production:
    verdicts: list[Verdict]
    fast: FastConfig
    workers: int
    seconds: float
    single_seconds: float | None  # the same in one process (CPU engines with several workers)

    def nontrivial(self) -> list[int]:
        return [i for i, v in enumerate(self.verdicts) if v.stage == "protocol"]

    def summary(self) -> dict:
        n = len(self.verdicts)
        return {
            "production_per_min": round(60 * n / self.seconds, 2),
            "production_nontrivial_per_min": round(60 * len(self.nontrivial()) / self.seconds, 2),  # all time goes to these
            "production_seconds": round(self.seconds, 2),
            "production_passed": sum(v.passed for v in self.verdicts),
            "production_stages": {s: sum(v.stage == s for v in self.verdicts) for s in ("static", "cache", "protocol")},
        }


def run_production(args: argparse.Namespace, graphs: list) -> Production:
    cuda = args.device == "cuda"
    engine = args.engine or ("levels" if cuda else "closed")
    fast = fast_config_for("seg", batch=args.batch or (2048 if cuda else 4), device=args.device, engine=engine,
                           dtype=getattr(torch, args.dtype))
    workers = 1 if engine == "levels" else args.workers
    verdicts, seconds = time_production(graphs, fast, workers, engine, cuda)
    single_s = None
    if engine != "levels" and workers > 1:
        single, single_s = time_production(graphs, fast, 1, engine, cuda)
        assert [v.passed for v in single] == [v.passed for v in verdicts], "1 and N processes decided differently"
    return Production(verdicts, fast, workers, seconds, single_s)


def time_search_path(stream: list[dict], batch: int) -> dict:
    """The search's screening as its workers run it (see the module doc), batched and one per job."""
    torch.set_num_threads(1)
    seen: set[str] = set()
    wires = []
    for c in stream:
        graph = loss_from_wire(c["wire"])
        if c["text"] in seen or any(static_reason(b) is not None for b in graph.branches):
            continue
        seen.add(c["text"])
        wires.append(c["wire"])
    context = {"task": "seg", "metric": METRIC, "seed": SEED, "options": {}}
    eval_losses_job({**context, "losses": [{"loss": wires[0]}]})  # warm-up: the samples, imports
    timings = {}
    for name, size in (("batched", batch), ("one_per_job", 1)):
        screen_jobs._screeners.clear()  # a fresh verdict cache, as a new run's worker
        t0 = time.perf_counter()
        if size == 1:
            results = [eval_loss_job({**context, "loss": w}) for w in wires]
        else:
            results = [r for s in range(0, len(wires), size)
                       for r in eval_losses_job({**context, "losses": [{"loss": w} for w in wires[s : s + size]]})["results"]]
        seconds = time.perf_counter() - t0
        timings[name] = {"per_min": round(60 * len(wires) / seconds, 2), "seconds": round(seconds, 2),
                         "passed": sum(r["passed"] for r in results)}
    assert timings["batched"]["passed"] == timings["one_per_job"]["passed"], "batched and single jobs decided differently"
    return {"losses": len(wires), "batch": batch, **timings,
            "speedup_batched_vs_one_per_job": round(timings["batched"]["per_min"] / timings["one_per_job"]["per_min"], 2)}


def run_reference(args: argparse.Namespace, stream: list[dict]) -> dict[int, tuple[bool, float, bool, float]]:
    """Index -> (passed, score, invalid, seconds) of the reference on all or ``--reference-subset`` candidates."""
    if args.reference_subset and args.reference_subset < len(stream):
        step = len(stream) / args.reference_subset
        ref_idx = sorted({int(k * step) for k in range(args.reference_subset)})
    else:
        ref_idx = list(range(len(stream)))
    with mp.get_context("spawn").Pool(args.reference_workers or args.workers, initializer=_ref_init, initargs=({},)) as pool:
        return dict(zip(ref_idx, pool.map(_ref_one, [stream[i]["wire"] for i in ref_idx], chunksize=1)))


def compare(args: argparse.Namespace, stream: list[dict], prod: Production, ref: dict, load_before: float) -> dict:
    """The rates, speed-ups and agreement of the production path against the reference."""
    n, verdicts, nontrivial = len(stream), prod.verdicts, prod.nontrivial()
    prod_per_min, prod_nt_per_min = 60 * n / prod.seconds, 60 * len(nontrivial) / prod.seconds
    ref_s = sum(r[3] for r in ref.values())
    ref_per_min = 60 * len(ref) / ref_s
    nt_ref = [i for i in nontrivial if i in ref]
    ref_nt_per_min = 60 * len(nt_ref) / sum(ref[i][3] for i in nt_ref) if nt_ref else float("nan")
    agree = sum(verdicts[i].passed == ref[i][0] for i in ref)
    false_passes = [stream[i]["text"] for i in ref if verdicts[i].passed and not ref[i][0]]
    false_rejects = [stream[i]["text"] for i in ref if ref[i][0] and not verdicts[i].passed]
    single_process = None
    if prod.single_seconds is not None:
        single_per_min = 60 * n / prod.single_seconds
        single_process = {
            "production_per_min": round(single_per_min, 2),
            "production_seconds": round(prod.single_seconds, 2),
            "speedup_full": round(single_per_min / ref_per_min, 2),
            "speedup_nontrivial": round(60 * len(nontrivial) / prod.single_seconds / ref_nt_per_min, 2),
        }
    ref_workers = args.reference_workers or args.workers
    return {
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(0),
        "candidates": n,
        "reference_per_min": round(ref_per_min, 2),
        "production_per_min": round(prod_per_min, 2),
        "speedup_full": round(prod_per_min / ref_per_min, 2),
        "speedup_nontrivial": round(prod_nt_per_min / ref_nt_per_min, 2),
        "agreement": round(agree / len(ref), 4),
        "false_passes": len(false_passes),
        "false_rejects": len(false_rejects),
        "single_process": single_process,
        "details": {
            "stream": {"seed": args.stream_seed, "seed_from": args.seed_source,
                       "origins": {o: sum(c["origin"] == o for c in stream) for o in ("random", "reinit", "mutate", "copy")}},
            "reference_candidates": len(ref),
            "reference_passed": sum(r[0] for r in ref.values()),
            **prod.summary(),
            "reference_nontrivial_per_min": round(ref_nt_per_min, 2),
            "reference_per_min_all_workers": round(ref_per_min * ref_workers, 2),
            "speedup_full_same_cores": round(prod_per_min / (ref_per_min * prod.workers), 2),
            "reference_cpu_seconds": round(ref_s, 2),
            "false_reject_losses": false_rejects,
            "false_pass_losses": false_passes,
            "early_reject": [list(f) for f in prod.fast.rule_for("loss").floors],
            "early_reject_chosen_on_seed": EARLY_REJECT_CHOSEN_ON_SEED,
            "reference_timed_on": "every candidate" if len(ref) == n else f"{len(ref)} evenly spaced candidates",
            "batch": prod.fast.batch,
            "workers": prod.workers,
            "reference_workers": ref_workers,
            "engine": prod.fast.engine,
            "dtype": args.dtype,
            "torch_threads_per_process": 1,
            "cpu_count": os.cpu_count(),
            "load_average_1m_before": round(load_before, 2),
            "load_average_1m_after": round(os.getloadavg()[0], 2),
            "machine": platform.processor() or platform.machine(),
        },
    }


def main() -> None:
    args = parse_args()
    stream, args.stream_seed, args.seed_source = load_stream(args)
    graphs = [loss_from_wire(c["wire"]) for c in stream]
    load_before = os.getloadavg()[0]
    prod = run_production(args, graphs)
    search_path = time_search_path(stream, args.search_batch) if args.device == "cpu" else None
    if args.no_reference:
        result = {"search_path": search_path, "device": args.device, "candidates": len(graphs), "stream_seed": args.stream_seed, **prod.summary(),
                  "single_process_seconds": None if prod.single_seconds is None else round(prod.single_seconds, 2),
                  "workers": prod.workers, "dtype": args.dtype, "engine": prod.fast.engine,
                  "load_average_1m": os.getloadavg()[0]}
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        return
    result = compare(args, stream, prod, run_reference(args, stream), load_before)
    if search_path is not None:  # beside the reference's per-process rate on non-trivial candidates
        search_path["speedup_batched_vs_reference"] = round(
            search_path["batched"]["per_min"] / result["details"]["reference_nontrivial_per_min"], 2)
        search_path["speedup_one_per_job_vs_reference"] = round(
            search_path["one_per_job"]["per_min"] / result["details"]["reference_nontrivial_per_min"], 2)
    result = {**result, "search_path": search_path}
    out = Path(args.out or ROOT / "bench/results/rejection.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
