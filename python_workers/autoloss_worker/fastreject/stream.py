"""Continuous batching for the GPU: a fixed-width batch that is refilled as candidates finish.

With the early exits most candidates leave a batch after a few steps, and a chunked batch would
then step a handful of long-running survivors for hundreds of iterations at a cost set by kernel
launches, not by their number. Here every row carries its own iteration counter: when the batch
falls below ``refill_below`` rows, new candidates join at iteration 1 (zero momentum, which makes
the first update v = g exactly as in ``torch.optim.SGD``), so each step moves up to ``width``
candidates at different points of their protocol. Per row the arithmetic is that of
``batched.run_batch`` (same inputs, same update, same exits at the row's own iterations); the
final g comes from the vectorised metric (``metrics.py``), the task's own one deciding ties.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from autoloss_worker.graph import Tree
from autoloss_worker.rejection import PAPER_REJECTION, RejectionConfig, _directions
from autoloss_worker.tasks.base import Sample, Task
from autoloss_worker.tasks.losses import WEIGHT_KEY

from . import levels
from .batched import NO_EARLY_REJECT, EarlyReject, RowResult, _stacked_inputs, displacement_ratio, finite_flags
from .metrics import exact_gain, metric_gain


def run_stream(
    task: Task,
    branch: str,
    trees: Sequence[Tree],
    samples: Sequence[Sample],
    metric: str,
    config: RejectionConfig = PAPER_REJECTION,
    *,
    width: int = 1024,
    refill_below: float = 0.75,
    compact_at: float = 0.25,
    early_reject: EarlyReject = NO_EARLY_REJECT,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> list[RowResult]:
    """The protocol for ``branch`` of every tree (levels engine), ``width`` rows at a time.

    Finished rows stay in the batch, ignored, until they are ``compact_at`` of it (rebuilding the
    level layout costs Python time, so it happens once per refill cycle, not at every exit)."""
    B, T, n = len(samples), config.iterations, len(trees)
    initial = torch.cat([s.raw[branch].detach() for s in samples])
    dtype = dtype or initial.dtype
    initial = initial.to(device=device or initial.device, dtype=dtype)  # (B, C, H, W)
    before = [task.sample_metric({**{m: task.ground_truth_raw(m, s.target) for m in task.branches if m != branch},
                                  branch: s.raw[branch]}, s.target, metric) for s in samples]
    dirs = torch.stack(_directions([initial[b] for b in range(B)], config.fingerprint_directions,
                                   config.fingerprint_seed)).to(initial.device)  # (B, d, n)
    floors = dict(early_reject.floors)
    checkpoints = sorted(t for t in floors if t < T)

    results: list[RowResult | None] = [None] * n
    norms: dict[int, list[float]] = {}
    prints: dict[int, list[list[float]]] = {}
    nan_print = [[math.nan] * config.fingerprint_directions for _ in range(B)]

    rows: list[int] = []  # candidate index of each row
    steps: list[int] = []  # iterations done by each row
    P = initial.new_empty((0, *initial.shape))
    V = initial.new_empty((0, *initial.shape))
    constant: dict[str, Tensor] = {}
    layout: levels.LevelPlan | None = None
    next_up = 0

    def finish(k: int, **kw: object) -> None:
        results[k] = RowResult(grad_norms=norms.get(k, [math.nan] * B), fingerprint=prints.get(k, nan_print), **kw)  # type: ignore[arg-type]

    dead: list[bool] = []  # finished rows still riding along

    def compact() -> None:
        nonlocal P, V, rows, steps, dead, layout
        keep = [j for j, d in enumerate(dead) if not d]
        idx = torch.tensor(keep, dtype=torch.long, device=P.device)
        P, V = P.index_select(0, idx), V.index_select(0, idx)
        rows, steps, dead = [rows[j] for j in keep], [steps[j] for j in keep], [False] * len(keep)
        layout = None

    def retire(j: int, **kw: object) -> None:
        finish(rows[j], **kw)
        dead[j] = True

    while next_up < n or not all(dead):
        live = len(dead) - sum(dead)
        if (next_up < n and live < refill_below * width) or sum(dead) > compact_at * max(len(dead), 1) or live == 0:
            compact()
        if next_up < n and len(rows) < refill_below * width:
            add = min(width - len(rows), n - next_up)
            rows += list(range(next_up, next_up + add))
            steps += [0] * add
            dead += [False] * add
            next_up += add
            P = torch.cat([P, initial.expand(add, *initial.shape)])
            V = torch.cat([V, torch.zeros_like(P[-add:])])
            layout = None
        if not rows:
            continue
        if layout is None:
            layout = levels.plan([trees[k] for k in rows], device=P.device)
        P.requires_grad_(True)
        inputs = _stacked_inputs(task, branch, P, samples, metric, dtype, constant)
        out = levels.evaluate(layout, inputs)
        if WEIGHT_KEY in inputs:
            out = out * inputs[WEIGHT_KEY]
        values = out.flatten(1).sum(dim=1)
        G = torch.autograd.grad(values.sum(), P)[0] if values.requires_grad else torch.zeros_like(P)
        P = P.detach()
        steps = [s + 1 for s in steps]
        value_ok, grad_ok = finite_flags(values.detach(), G)
        firsts = [j for j, s in enumerate(steps) if s == 1]
        moving: dict[int, bool] = {}
        if firsts:
            fi = torch.tensor(firsts, dtype=torch.long, device=G.device)
            g64 = G.index_select(0, fi).double().flatten(2)  # (f, B, n)
            mv = g64.ne(0).flatten(1).any(dim=1).tolist()
            nn, pp = g64.norm(dim=2).tolist(), torch.einsum("kbn,bdn->kbd", g64, dirs.double()).tolist()
            for i, j in enumerate(firsts):
                moving[j] = mv[i]
                if value_ok[j]:
                    norms[rows[j]], prints[rows[j]] = nn[i], pp[i]
        vals = values.detach().tolist() if not all(value_ok) else []
        for j in range(len(rows)):
            if dead[j]:
                continue
            if not value_ok[j]:
                retire(j, passed=False, score=-1.0, invalid=True, iterations=steps[j],
                       reason=f"non-finite loss value {vals[j]} at iteration {steps[j]}")
            elif not grad_ok[j]:
                retire(j, passed=False, score=-1.0, invalid=True, iterations=steps[j],
                       reason=f"non-finite gradient at iteration {steps[j]}")
            elif steps[j] == 1 and not moving[j]:
                retire(j, passed=False, score=0.0, invalid=False, iterations=1,
                       reason="zero gradient w.r.t. the predictions: they cannot move")
        if config.weight_decay:
            G = G.add(P, alpha=config.weight_decay)
        V.mul_(config.momentum).add_(G)
        P.add_(V, alpha=-config.lr)  # torch.optim.SGD's own update, bit for bit

        # Checkpoints and the end, each for the live rows that reached them at this step.
        for t in checkpoints:
            at = [j for j, s in enumerate(steps) if s == t and not dead[j]]
            if not at:
                continue
            idx = torch.tensor(at, dtype=torch.long, device=P.device)
            Pa = P.index_select(0, idx)
            with torch.no_grad():
                best = metric_gain(task, branch, Pa, samples, metric, before)
                D, r = Pa - initial, displacement_ratio(t, T, config.momentum)
                now = list(best)
                for c in early_reject.scales:
                    best = [max(a, b) for a, b in zip(best, metric_gain(task, branch, initial + (c * r) * D, samples, metric, before))]
            for i, j in enumerate(at):
                if best[i] < floors[t]:
                    retire(j, passed=False, score=now[i], invalid=False, iterations=t,
                           reason=f"early reject: optimistic g = {best[i]:.3f} < {floors[t]} after {t} iterations")
        done = [j for j, s in enumerate(steps) if s >= T and not dead[j]]
        if done:
            idx = torch.tensor(done, dtype=torch.long, device=P.device)
            Pd = P.index_select(0, idx)
            gains = metric_gain(task, branch, Pd, samples, metric, before)
            # The vectorised metric may differ from the task's in the last bits: where that could
            # matter (g within 1e-9 of η), the task's own metric decides.
            near = [i for i, g in enumerate(gains) if abs(g - config.threshold) < 1e-9]
            if near:
                exact = exact_gain(task, branch, Pd[near], samples, metric, before)
                for i, g in zip(near, exact):
                    gains[i] = g
            for j, g in zip(done, gains):
                retire(j, passed=g >= config.threshold, score=g, invalid=False, iterations=T, reason="")
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]
