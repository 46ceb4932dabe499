"""The rejection protocol for many candidates at once: one state, one loop, every exit rule once.

    verdicts = run_protocol(task, branch, n, engine, samples, metric, config)   # one per candidate

``ProtocolRows`` holds the batched state: row j of P is candidate ``cands[j]``'s copy of the B
predictions (with its momentum buffer and its own step count). P is a list of *blocks*: one
(rows, B, C, H, W) tensor when the task's samples stack (``Task.stackable_samples``), else B
tensors (rows, 1, ...) of each sample's own shape. Rows join at step 0 (zero momentum: the first
update is v = g, as in ``torch.optim.SGD``), take momentum-SGD steps together, and leave when
decided; with ``width`` below the number of candidates, newcomers take the places of decided rows
(continuous batching, the GPU path), otherwise all start together (the CPU path, K = 1 for one
loss). Engines (``engines.py``) supply the objectives and their gradients, nothing else; per row
the arithmetic is the reference protocol's (same objective, ``torch.optim.SGD``'s update), so the
numbers do not depend on which rows share a batch.

Exits before iteration ``T`` (all but the last give the full protocol's verdict):
* non-finite loss value or gradient at step t: the full protocol marks the candidate invalid
  (g = −1) whatever follows, so stopping at t changes nothing;
* exactly zero gradient at step 1: SGD never moves the predictions, so after T steps
  ξ(ŷ*) = ξ(ŷ) and g = 0 < η;
* ``early_reject``: at an iteration t of the rule, a candidate whose optimistic g is below the
  rule's floor is rejected. This one is *empirical*: it is on only with a rule verified on the
  benchmark stream (``bench/rejection.py`` reports the agreement with the reference protocol).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from autoloss_worker.rejection import PAPER_REJECTION, BranchVerdict, RejectionConfig, directions, with_ground_truth
from autoloss_worker.tasks.base import Sample, Task

from .engines import Engine
from .metrics import gains


@dataclass(frozen=True)
class EarlyReject:
    """Reject at iteration t when the *optimistic extrapolation* of g is below ``floor``.

    Empirical, off unless configured. At t the predictions have moved D = P_t − P_0. Were the
    gradient constant from here on, momentum SGD would end at P_0 + r(t)·D after T steps, with
    r(t) = S(T) / S(t), S(n) = n − m(1 − mⁿ)/(1 − m) (the summed momentum-SGD displacement). As
    the gradient may grow or shrink, ξ is evaluated at P_0 + c·D for c in ``scales``·r(t) and at
    P_t itself; the best of these g is the optimistic estimate. Pairs (t, floor) in ``floors``.
    """

    floors: tuple[tuple[int, float], ...] = ()
    scales: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)

    def floor_at(self, step: int) -> float | None:
        for t, floor in self.floors:
            if t == step:
                return floor
        return None


def displacement_ratio(t: int, T: int, momentum: float) -> float:
    """r(t) of ``EarlyReject``: how much farther constant-gradient momentum SGD moves by T."""
    def summed(n: int) -> float:
        return n - momentum * (1 - momentum**n) / (1 - momentum)
    return summed(T) / summed(t)


NO_EARLY_REJECT = EarlyReject()


def initial_blocks(samples: Sequence[Sample], branch: str, stacked: bool, dtype: torch.dtype | None,
                   device: torch.device | str | None) -> list[Tensor]:
    """The recorded predictions as blocks without the row dimension: [(B, ...)] or B × [(1, ...)]."""
    raw = [s.raw[branch].detach() for s in samples]
    blocks = [torch.cat(raw)] if stacked else raw
    return [x.to(device=device or x.device, dtype=dtype or x.dtype) for x in blocks]


class ProtocolRows:
    """The batched state: P and momentum V (blocks), the candidate and step count of every row."""

    def __init__(self, initial: Sequence[Tensor], config: RejectionConfig) -> None:
        self.initial, self.config = list(initial), config
        self.P = [x.new_empty((0, *x.shape)) for x in initial]
        self.V = [x.new_empty((0, *x.shape)) for x in initial]
        self.cands: list[int] = []
        self.steps: list[int] = []  # gradient evaluations done by each row
        self.dead: list[bool] = []  # decided rows still riding along until the next ``compact``

    @property
    def live(self) -> list[int]:
        return [j for j, d in enumerate(self.dead) if not d]

    def admit(self, cands: Sequence[int]) -> None:
        """New rows at the recorded predictions, step 0, zero momentum."""
        n = len(cands)
        self.P = [torch.cat([p, x.expand(n, *x.shape)]) for p, x in zip(self.P, self.initial)]
        self.V = [torch.cat([v, torch.zeros_like(p[-n:])]) for v, p in zip(self.V, self.P)]
        self.cands += cands
        self.steps += [0] * n
        self.dead += [False] * n

    def step(self, G: Sequence[Tensor]) -> None:
        """One ``torch.optim.SGD`` step (dampening 0, no Nesterov) of every row: v = m·v + g,
        p −= lr·v, bit for bit. Written out because constructing the optimizer imports
        torch._dynamo (seconds, once per process) and its bookkeeping outweighs these tensors."""
        c = self.config
        for p, v, g in zip(self.P, self.V, G):
            if c.weight_decay:
                g = g.add(p, alpha=c.weight_decay)
            v.mul_(c.momentum).add_(g)
            p.add_(v, alpha=-c.lr)
        self.steps = [s + 1 for s in self.steps]

    def retire(self, j: int) -> None:
        self.dead[j] = True

    def compact(self) -> None:
        """Drop the decided rows from the tensors."""
        keep = self.live
        if len(keep) == len(self.dead):
            return
        idx = torch.tensor(keep, dtype=torch.long, device=self.P[0].device)
        self.P = [p.index_select(0, idx) for p in self.P]
        self.V = [v.index_select(0, idx) for v in self.V]
        self.cands = [self.cands[j] for j in keep]
        self.steps = [self.steps[j] for j in keep]
        self.dead = [False] * len(keep)

    def checkpoint(self, rows: Sequence[int]) -> tuple[list[Tensor], list[Tensor]]:
        """The predictions of ``rows`` and their displacement from the recorded ones."""
        idx = torch.tensor(list(rows), dtype=torch.long, device=self.P[0].device)
        at = [p.index_select(0, idx) for p in self.P]
        return at, [a - x for a, x in zip(at, self.initial)]


def finite_flags(values: Tensor, G: Sequence[Tensor]) -> tuple[list[bool], list[bool]]:
    """Per row: the objective is finite, all of G's entries are. One host transfer for both (the
    per-step check of every row). A row sum is non-finite whenever an entry is (inf and NaN
    propagate), so only rows whose sum is not finite need the elementwise check (their sum may
    merely have overflowed)."""
    sums = G[0].flatten(1).sum(dim=1)
    for g in G[1:]:
        sums = sums + g.flatten(1).sum(dim=1)
    flags = torch.isfinite(torch.stack([values.to(G[0].dtype), sums])).tolist()
    value_ok, ok = flags[0], flags[1]
    if not all(ok):
        bad = [j for j, x in enumerate(ok) if not x]
        exact = [all(row) for row in zip(*(torch.isfinite(g[bad].flatten(1)).all(dim=1).tolist() for g in G))]
        for j, x in zip(bad, exact):
            ok[j] = x
    return value_ok, ok


def first_step_stats(G: Sequence[Tensor], rows: Sequence[int], dirs: Sequence[Tensor], stacked: bool
                     ) -> tuple[list[bool], list[list[float]], list[list[list[float]]]]:
    """For ``rows`` at their first step: whether the gradient moves anything, ‖∂L/∂ŷ_b‖₂ per sample
    and the gradient projected on the fingerprint directions (``dirs``: (n_b, d, numel) per block).
    Stacked samples: an einsum per row; per-sample blocks: a vector product per row and sample
    (the sums run in another order, so the two layouts may differ in the last bits). Per row, so
    that a row's numbers do not depend on the other rows of its batch."""
    idx = torch.tensor(list(rows), dtype=torch.long, device=G[0].device)
    moving = [False] * len(rows)
    norms: list[list[float]] = [[] for _ in rows]
    prints: list[list[list[float]]] = [[] for _ in rows]
    for g, d in zip(G, dirs):
        g64 = g.index_select(0, idx).double().flatten(2)  # (f, n_b, numel)
        mv = g64.ne(0).flatten(1).any(dim=1).tolist()
        if stacked:
            # Row by row, each exactly as a batch of one: an einsum over k rows blocks its sums by k,
            # so the last bits of a fingerprint would depend on the batch it was screened in.
            d = d.to(g64.device)
            nn = [row.norm(dim=1).tolist() for row in g64]
            pp = [torch.einsum("kbn,bdn->kbd", row[None], d)[0].tolist() for row in g64]
        else:
            nn = [[float(row[0].norm())] for row in g64]
            pp = [[(d[0].to(g64.device) @ row[0]).tolist()] for row in g64]
        for i in range(len(rows)):
            moving[i] = moving[i] or mv[i]
            norms[i] += nn[i]
            prints[i] += pp[i]
    return moving, norms, prints


class _Run:
    """The loop's bookkeeping for one branch: the rows, what is known per candidate (first-step
    gradient statistics, traces) and the verdicts, with each exit rule applied in one place."""

    def __init__(self, task: Task, branch: str, n: int, samples: Sequence[Sample], metric: str,
                 config: RejectionConfig, stacked: bool, early_reject: EarlyReject, record: Sequence[int],
                 exact_final: bool, dtype: torch.dtype | None, device: torch.device | str | None) -> None:
        self.task, self.branch, self.samples, self.metric, self.config = task, branch, samples, metric, config
        self.early_reject, self.exact_final, self.stacked = early_reject, exact_final, stacked
        self.rows = ProtocolRows(initial_blocks(samples, branch, stacked, dtype, device), config)
        self.before = [task.sample_metric(with_ground_truth(task, branch, s.raw[branch], s.target), s.target, metric)
                       for s in samples]
        per_sample = directions([s.raw[branch][0] for s in samples], config.fingerprint_directions, config.fingerprint_seed)
        self.dirs = [torch.stack(per_sample)] if stacked else [d[None] for d in per_sample]
        self.checkpoints = sorted(set(record) | {t for t, _ in early_reject.floors})
        self.results: list[BranchVerdict | None] = [None] * n
        self.norms: dict[int, list[float]] = {}
        self.prints: dict[int, list[list[float]]] = {}
        self.traces: dict[int, list[tuple[int, float, float]]] = {k: [] for k in range(n)}

    def retire(self, j: int, after: list[float], **outcome: object) -> None:
        k, B = self.rows.cands[j], len(self.samples)
        self.results[k] = BranchVerdict(
            grad_norms=self.norms.get(k, [math.nan] * B),
            fingerprint=self.prints.get(k, [[math.nan] * self.config.fingerprint_directions] * B),
            metric_before=self.before, metric_after=after, trace=self.traces[k], **outcome)  # type: ignore[arg-type]
        self.rows.retire(j)

    def exits(self, values: Tensor, G: Sequence[Tensor]) -> None:
        """Record the first step's gradient statistics; retire rows whose value or gradient is not
        finite, and rows whose first gradient is exactly zero."""
        rows = self.rows
        value_ok, grad_ok = finite_flags(values, G)
        firsts = [j for j in rows.live if rows.steps[j] == 0]
        moving: dict[int, bool] = {}
        if firsts:
            mv, nn, pp = first_step_stats(G, firsts, self.dirs, self.stacked)
            for i, j in enumerate(firsts):
                moving[j] = mv[i]
                if value_ok[j]:
                    self.norms[rows.cands[j]], self.prints[rows.cands[j]] = nn[i], pp[i]
        vals = values.tolist() if not all(value_ok) else []
        for j in rows.live:
            t = rows.steps[j] + 1
            if not value_ok[j]:
                self.retire(j, self.before, passed=False, score=-1.0, invalid=True, iterations=t,
                            reason=f"non-finite loss value {vals[j]} at iteration {t}")
            elif not grad_ok[j]:
                self.retire(j, self.before, passed=False, score=-1.0, invalid=True, iterations=t,
                            reason=f"non-finite gradient at iteration {t}")
            elif t == 1 and not moving[j]:
                self.retire(j, self.before, passed=False, score=0.0, invalid=False, iterations=1,
                            reason="zero gradient w.r.t. the predictions: they cannot move")

    def _gains(self, P: Sequence[Tensor], exact: bool) -> tuple[list[float], list[list[float]]]:
        return gains(self.task, self.branch, P, self.samples, self.metric, self.before, exact=exact)

    def checkpoint(self) -> None:
        """Trace g_t and the optimistic g of the rows at a checkpoint; early-reject those below the floor."""
        rows, T = self.rows, self.config.iterations
        for t in self.checkpoints:
            at = [j for j in rows.live if rows.steps[j] == t]
            if not at:
                continue
            P, D = rows.checkpoint(at)
            floor = self.early_reject.floor_at(t)
            with torch.no_grad():
                now, after = self._gains(P, exact=False)
                best, r = list(now), displacement_ratio(t, T, self.config.momentum)
                for c in self.early_reject.scales:
                    moved = [x + (c * r) * d for x, d in zip(rows.initial, D)]
                    best = [max(a, b) for a, b in zip(best, self._gains(moved, exact=False)[0])]
            for i, j in enumerate(at):
                self.traces[rows.cands[j]].append((t, now[i], best[i]))
                if floor is not None and t < T and best[i] < floor:
                    self.retire(j, after[i], passed=False, score=now[i], invalid=False, iterations=t,
                                reason=f"early reject: optimistic g = {best[i]:.3f} < {floor} after {t} iterations")

    def finish(self) -> None:
        """The verdicts of the rows that took all T steps: g ≥ η passes."""
        rows, T, eta = self.rows, self.config.iterations, self.config.threshold
        done = [j for j in rows.live if rows.steps[j] >= T]
        if not done:
            return
        P, _ = rows.checkpoint(done)
        with torch.no_grad():
            final, after = self._gains(P, exact=self.exact_final)
            # The vectorised metric may differ from the task's in the last bits: where that could
            # matter (g within 1e-9 of η), the task's own metric decides.
            near = [i for i, g in enumerate(final) if abs(g - eta) < 1e-9]
            if near and not self.exact_final:
                exact, exact_after = self._gains([p[near] for p in P], exact=True)
                for i, g, a in zip(near, exact, exact_after):
                    final[i], after[i] = g, a
        for i, j in enumerate(done):
            trace = self.traces[rows.cands[j]]
            if not trace or trace[-1][0] != T:
                trace.append((T, final[i], final[i]))
            self.retire(j, after[i], passed=final[i] >= eta, score=final[i], invalid=False, iterations=T)


def run_protocol(
    task: Task,
    branch: str,
    n: int,
    engine: Engine,
    samples: Sequence[Sample],
    metric: str,
    config: RejectionConfig = PAPER_REJECTION,
    *,
    stacked: bool = True,
    width: int | None = None,
    refill_below: float = 1.0,
    compact_at: float = 0.0,
    early_reject: EarlyReject = NO_EARLY_REJECT,
    record: Sequence[int] = (),
    exact_final: bool = True,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> list[BranchVerdict]:
    """The protocol for ``branch`` of candidates 0 … n−1 (``engine`` knows their losses).

    ``width``: rows at a time (None: all n); new candidates join when fewer than ``refill_below``
    of ``width`` rows are live; decided rows leave the tensors when they are more than ``compact_at``
    of them. ``record``: iterations at which every live row's g_t is traced (for choosing and
    verifying early-reject rules). ``exact_final``: the final g from the task's own metric; False:
    vectorised, the task's metric deciding only where g is within 1e-9 of η (the GPU path)."""
    run = _Run(task, branch, n, samples, metric, config, stacked, early_reject, record, exact_final, dtype, device)
    rows, width = run.rows, n if width is None else width
    next_up = 0
    while next_up < n or rows.live:
        if sum(rows.dead) > compact_at * len(rows.dead) or (next_up < n and len(rows.live) < refill_below * width):
            rows.compact()
        if next_up < n and len(rows.cands) < refill_below * width:
            add = min(width - len(rows.cands), n - next_up)
            rows.admit(list(range(next_up, next_up + add)))
            next_up += add
        values, G = engine(rows.P, rows.cands)
        run.exits(values, G)
        rows.step(G)
        run.checkpoint()
        run.finish()
    assert all(r is not None for r in run.results)
    return run.results  # type: ignore[return-value]
