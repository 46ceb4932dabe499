"""The production rejection path: static check → verdict cache → batched protocol with exits.

    screener = Screener(task, metric="miou", seed=0)
    verdicts = screener.screen([graph, ...])     # one Verdict per graph, in order

Decisions equal the full protocol's (``rejection.check_loss``) except where an empirical early
reject is switched on (``FastConfig.early_reject``; see ``batched.py`` for every exit and why it
cannot change a verdict). A multi-branch loss passes iff every branch passes, so the branches are
checked in the task's order and a loss stops at its first failing branch; its ``score`` is then
the worst of the branches checked (the full protocol reports the worst of all).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from autoloss_worker.graph import LossGraph, Tree
from autoloss_worker.rejection import PAPER_REJECTION, RejectionConfig, _torch_threads
from autoloss_worker.tasks.base import Task
from autoloss_worker.tasks.losses import compile_loss

from .batched import NO_EARLY_REJECT, EarlyReject, RowResult, run_batch
from .cache import VerdictCache, loss_key
from .static import static_reason
from .stream import run_stream


@dataclass(frozen=True)
class FastConfig:
    batch: int = 4  # candidates stepped together per call (CPU: batching saves little; GPU: hundreds)
    early_reject: EarlyReject = NO_EARLY_REJECT
    dtype: torch.dtype | None = None  # None: the samples' dtype (float64)
    static: bool = True  # the free static check (off: every loss gets gradient norms)
    # "closed" (CPU: gradients in closed form, gradient.py), "levels" (GPU: launches independent of
    # the batch size) or "tree" (autograd on each compiled tree: the plain version of "closed").
    engine: str = "closed"
    device: str = "cpu"


# Early-reject rules verified against the full protocol, per task (bench/rejection.py reports
# agreement, false passes and false rejects against the reference on any stream). Seg: floors read
# off the seed-7 stream (94 distinct non-static losses, 13 passing: every passing loss had
# optimistic g = 1.0 at every checkpoint from t = 5 on; 68 of the 79 failing ones were below 0.3
# at t = 10), then validated on fresh streams without retuning: seed 11 (117 distinct, 22 passing,
# 85 rejected early; the whole 400-loss stream in bench/results/rejection-seed11.json) and seed 23
# (88 distinct, 13 passing, 58 rejected early, two losses within 0.02 of η) agree with the
# reference on every loss; the lowest optimistic g of a passing loss there was 0.80 (seed 11) and
# 0.62 (seed 23) at t = 10 and t = 50. Tasks not listed get the exact exits only.
VERIFIED_EARLY_REJECT: dict[str, EarlyReject] = {"seg": EarlyReject(floors=((10, 0.3), (50, 0.45)))}


def _verified_protocol(config: RejectionConfig) -> bool:
    """The rules' floors hold for the constants they were verified under (the paper's B, T, lr,
    momentum, η); with any other protocol only the exact exits apply."""
    keys = ("samples", "iterations", "lr", "momentum", "weight_decay", "threshold")
    return all(getattr(config, k) == getattr(PAPER_REJECTION, k) for k in keys)


def fast_config_for(task: str, config: RejectionConfig = PAPER_REJECTION, **overrides: object) -> FastConfig:
    rule = VERIFIED_EARLY_REJECT.get(task, NO_EARLY_REJECT) if _verified_protocol(config) else NO_EARLY_REJECT
    return FastConfig(**{"early_reject": rule, **overrides})  # type: ignore[arg-type]


DEFAULT_FAST = fast_config_for("seg")


@dataclass
class Verdict:
    """One loss's outcome; ``stage`` says what decided it: static | cache | protocol."""

    passed: bool
    score: float
    invalid: bool
    iterations: int
    stage: str
    reason: str = ""
    grad_norms: list[float] = field(default_factory=list)  # B per branch checked, branch-major
    fingerprint: list[list[float]] = field(default_factory=list)


def _tree(graph: LossGraph, branch: str) -> Tree:
    return next(b.tree for b in graph.branches if b.name == branch)


def _combine(rows: Sequence[RowResult]) -> Verdict:
    return Verdict(
        passed=all(r.passed for r in rows),
        score=min(r.score for r in rows),
        invalid=any(r.invalid for r in rows),
        iterations=sum(r.iterations for r in rows),
        stage="protocol",
        reason="; ".join(r.reason for r in rows if r.reason),
        grad_norms=[n for r in rows for n in r.grad_norms],
        fingerprint=[row for r in rows for row in r.fingerprint],
    )


Runner = Callable[[Sequence[LossGraph]], list[Verdict]]


class Screener:
    """Screens losses for one (task, metric, seed, protocol) context; its cache lives as long.
    ``runner`` runs the protocol on the losses that survive the static check and the cache
    (default: in this process; ``parallel.py`` spreads them over worker processes)."""

    def __init__(self, task: Task, metric: str | None = None, seed: int = 0,
                 config: RejectionConfig = PAPER_REJECTION, fast: FastConfig = FastConfig(),
                 runner: Runner | None = None) -> None:
        self.task, self.metric, self.seed = task, task.check_metric(metric), seed
        self.config, self.fast = config, fast
        self.runner: Runner = runner or self.run_protocol
        self.cache: VerdictCache[Verdict] = VerdictCache()
        self.static_rejected = 0

    def screen(self, graphs: Sequence[LossGraph]) -> list[Verdict]:
        out: list[Verdict | None] = [None] * len(graphs)
        first: dict[str, int] = {}  # key -> index of the first graph with it in this call
        todo: list[int] = []
        for i, g in enumerate(graphs):
            reason = None
            if self.fast.static:
                reason = next((r for b in g.branches if (r := static_reason(b)) is not None), None)
            if reason is not None:
                self.static_rejected += 1
                out[i] = Verdict(passed=False, score=0.0, invalid=False, iterations=0, stage="static", reason=reason)
                continue
            key = loss_key(g)
            hit = self.cache.get(key)
            if hit is not None:
                out[i] = Verdict(**{**hit.__dict__, "stage": "cache"})
            elif key in first:
                self.cache.hits += 1
            else:
                first[key] = i
                todo.append(i)
        computed = self.runner([graphs[i] for i in todo]) if todo else []
        for i, v in zip(todo, computed):
            out[i] = v
            self.cache.put(loss_key(graphs[i]), v)
        for i, g in enumerate(graphs):
            if out[i] is None:  # a repeat within this call
                out[i] = Verdict(**{**out[first[loss_key(g)]].__dict__, "stage": "cache"})  # type: ignore[union-attr]
        return out  # type: ignore[return-value]

    def run_protocol(self, graphs: Sequence[LossGraph]) -> list[Verdict]:
        """The batched protocol in this process, no static check, no cache."""
        task, fast = self.task, self.fast
        samples = task.rejection_samples(self.config.samples, self.seed)
        compiled = [task.branch_losses(compile_loss(g)) for g in graphs] if fast.engine == "tree" else []
        rows: list[list[RowResult]] = [[] for _ in graphs]
        with _torch_threads(self.config.threads):
            for branch in task.branches:
                alive = [i for i in range(len(graphs)) if all(r.passed for r in rows[i])]
                if fast.engine == "levels":  # continuous batching, ``fast.batch`` rows wide
                    results = run_stream(task, branch, [_tree(graphs[i], branch) for i in alive], samples, self.metric,
                                         self.config, width=fast.batch, early_reject=fast.early_reject,
                                         dtype=fast.dtype, device=fast.device)
                    for i, r in zip(alive, results):
                        rows[i].append(r)
                    continue
                for s in range(0, len(alive), fast.batch):
                    chunk = alive[s : s + fast.batch]
                    losses = [compiled[i][branch] for i in chunk] if compiled else None  # engine "tree" only
                    results = run_batch(task, branch, losses, samples, self.metric, self.config,
                                        early_reject=fast.early_reject, dtype=fast.dtype, engine=fast.engine,
                                        device=fast.device, trees=[_tree(graphs[i], branch) for i in chunk])
                    for i, r in zip(chunk, results):
                        rows[i].append(r)
        return [_combine(r) for r in rows]
