"""The rejection protocol for K candidates at once (one branch of each), stepped in lockstep.

All K candidates' copies of the B predictions live in one leaf tensor P of shape
(K, B, C, H, W). Every step: the task turns P into loss inputs in one call per sample, each
candidate's tree runs on its own slice (K, B, ...)[k], the gradient of every candidate's objective
lands in its own slice, and one fused momentum-SGD update moves all slices. Engines:
* ``closed`` (CPU default): each tree's value and input gradient in closed form (``closed.py``,
  ``gradient.py``: autograd's own derivative formulas, constant subtrees evaluated once), then
  one pull-back through the task's input mapping (seg: the softmax backward kernel);
* ``tree``: autograd on each compiled tree; the K objectives are summed so that one
  ``autograd.grad`` gives every candidate's gradient (slices never interact: the sum's partial
  derivative w.r.t. each objective is 1);
* ``levels`` (GPU): all trees evaluated level by level (``levels.py``), then autograd.
Candidates that are decided leave the batch (the tensors are compacted), so a batch shrinks as
candidates finish. Per candidate, the arithmetic is that of the reference protocol (same
objective, ``torch.optim.SGD``'s update), so the numbers agree with a one-at-a-time run to float
rounding.

Exits before iteration ``T`` (all of them give the full protocol's verdict):
* non-finite loss value or gradient at step t: the full protocol marks the candidate invalid
  (g = −1) whatever follows, so stopping at t changes nothing;
* exactly zero gradient at step 1: SGD never moves the predictions, so after 500 steps
  ξ(ŷ*) = ξ(ŷ) and g = 0 < η;
* ``early_reject``: at an iteration t of the rule, a candidate whose g_t is below the rule's floor
  is rejected. This one is *empirical*: it is on only with a rule verified on the benchmark
  stream (``bench/rejection.py`` reports the agreement with the full reference protocol).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from autoloss_worker.rejection import PAPER_REJECTION, RejectionConfig, _directions
from autoloss_worker.graph import Tree
from autoloss_worker.tasks.base import Sample, Task
from autoloss_worker.tasks.losses import WEIGHT_KEY, BranchLoss, branch_output

from . import levels
from .closed import ClosedForm
from .metrics import exact_gain, metric_gain


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


@dataclass
class RowResult:
    """The protocol's outcome for one candidate's branch (fields as ``rejection.RejectionResult``)."""

    passed: bool
    score: float
    invalid: bool
    iterations: int
    reason: str
    grad_norms: list[float]
    fingerprint: list[list[float]]
    trace: list[tuple[int, float, float]] = field(default_factory=list)  # (t, g_t, optimistic g) recorded


def _stacked_inputs(
    task: Task, branch: str, P: Tensor, samples: Sequence[Sample], metric: str, dtype: torch.dtype,
    constant: dict[str, Tensor],
) -> dict[str, Tensor]:
    """Loss inputs for all candidates: key -> (K, B, C, H, W), plus ``one``. Inputs that do not
    depend on the predictions (targets) are stacked once and reused (``constant``, keyed by K)."""
    K = P.shape[0]
    if _is_seg(task):
        # SegTask.to_loss_inputs for all rows at once: y_hat = softmax over C, y = the target.
        y = constant.get("y")
        if y is None or y.shape[0] != K:
            y = constant["y"] = torch.stack([s.target.y[metric].expand(K, *s.target.y[metric].shape[1:]) for s in samples],
                                            dim=1).to(device=P.device, dtype=dtype)
        return _with_one({"y_hat": torch.softmax(P, dim=2), "y": y}, constant)
    # unbind, not P[:, b]: the backward of B selects would fill B zero tensors of P's full size.
    per_sample = [task.to_loss_inputs(branch, raw, s.target, metric=metric) for raw, s in zip(P.unbind(1), samples)]
    out = {}
    for key in per_sample[0]:
        ts = [d[key] for d in per_sample]
        if not any(t.requires_grad for t in ts):
            cached = constant.get(key)
            if cached is None or cached.shape[0] != K:
                cached = torch.stack([t.expand(K, *t.shape[1:]) for t in ts], dim=1).to(device=P.device, dtype=dtype)
                constant[key] = cached
            out[key] = cached
        else:
            out[key] = torch.stack([t.expand(K, *t.shape[1:]) for t in ts], dim=1).to(dtype)
    return _with_one(out, constant)


def _with_one(out: dict[str, Tensor], constant: dict[str, Tensor]) -> dict[str, Tensor]:
    if "one" not in out:  # as compile_branch: ones like the first input
        like = out["y_hat"] if "y_hat" in out else next(v for k, v in out.items() if k != WEIGHT_KEY)
        one = constant.get("one")
        if one is None or one.shape != like.shape:
            one = constant["one"] = torch.ones_like(like, requires_grad=False)
        out["one"] = one
    return out


def _is_seg(task: Task) -> bool:
    from autoloss_worker.tasks.seg import SegTask

    return type(task) is SegTask


ENGINES = ("tree", "levels", "closed")


def finite_flags(values: Tensor, G: Tensor) -> tuple[list[bool], list[bool]]:
    """Per row: the objective is finite, all of G's entries are. One host transfer for both (the
    per-step check of every candidate). A row sum is non-finite whenever an entry is (inf and NaN
    propagate), so only rows whose sum is not finite need the elementwise check (their sum may
    merely have overflowed)."""
    flags = torch.isfinite(torch.stack([values.to(G.dtype), G.flatten(1).sum(dim=1)])).tolist()
    value_ok, ok = flags[0], flags[1]
    if not all(ok):
        bad = [j for j, x in enumerate(ok) if not x]
        exact = torch.isfinite(G[bad].flatten(1)).all(dim=1).tolist()
        for j, x in zip(bad, exact):
            ok[j] = x
    return value_ok, ok


def _objective(loss: BranchLoss, inputs: Mapping[str, Tensor]) -> Tensor:
    """Σ o for one candidate's (B, C, H, W) inputs, samples kept independent (as ``rejection``)."""
    if loss.mixes_samples:
        B = next(iter(inputs.values())).shape[0]
        return sum(branch_output(loss, {k: v[b : b + 1] for k, v in inputs.items()}).sum() for b in range(B))  # type: ignore[return-value]
    return branch_output(loss, inputs).sum()


def _autograd_step(
    task: Task, branch: str, P: Tensor, samples: Sequence[Sample], metric: str, dtype: torch.dtype,
    constant: dict[str, Tensor], active: Sequence[int], losses: Sequence[BranchLoss] | None,
    layout: levels.LevelPlan | None,
) -> tuple[Tensor, Tensor]:
    """Engines ``tree`` (``layout`` None) and ``levels``: the objectives (Ka,) and ∂/∂P by autograd."""
    P.requires_grad_(True)
    inputs = _stacked_inputs(task, branch, P, samples, metric, dtype, constant)
    if layout is not None:
        out = levels.evaluate(layout, inputs)
        if WEIGHT_KEY in inputs:
            out = out * inputs[WEIGHT_KEY]
        stacked = out.flatten(1).sum(dim=1)  # (Ka,)
        live_total = stacked.sum() if stacked.requires_grad else None
    else:
        # Per-candidate slices by unbind (one stack in the backward, not K full-size zero fills).
        columns = {key: t.unbind(0) for key, t in inputs.items()}
        values = [_objective(losses[k], {key: c[j] for key, c in columns.items()})  # type: ignore[index]
                  for j, k in enumerate(active)]
        live = [v for v in values if v.requires_grad]
        live_total = sum(live) if live else None
        stacked = torch.stack([v.detach().to(dtype) for v in values])
    G = None
    if live_total is not None:
        (G,) = torch.autograd.grad(live_total, P, allow_unused=True)  # type: ignore[arg-type]
    P.requires_grad_(False)
    return stacked.detach(), torch.zeros_like(P) if G is None else G


class _ClosedInputs:
    """Engine ``closed``: loss inputs from P, the trees' values and input adjoints in closed form
    (``closed.py``), and the adjoints pulled back to P. Seg: y_hat = softmax(P) over C, pulled back
    with the softmax backward kernel autograd itself calls; other tasks: autograd through the task's
    input mapping only (one small graph per step for all candidates)."""

    def __init__(self, task: Task, branch: str, P: Tensor, samples: Sequence[Sample], metric: str,
                 dtype: torch.dtype, trees: Sequence[Tree]) -> None:
        self.task, self.branch, self.samples, self.metric, self.dtype = task, branch, samples, metric, dtype
        self.seg = _is_seg(task)
        self.constant: dict[str, Tensor] = {}
        inputs, _ = self._inputs(P)
        variables = {key for key in inputs if key not in self.constant and key != WEIGHT_KEY}
        row = {key: t[0] for key, t in self.constant.items() if key != WEIGHT_KEY}  # equal in every row
        self.engine = ClosedForm(trees, variables, row)

    def _inputs(self, P: Tensor) -> tuple[dict[str, Tensor], Callable[[dict[str, Tensor]], Tensor]]:
        """Detached inputs (key -> (Ka, B, C, H, W)) and the map from their adjoints to ∂/∂P."""
        if self.seg:
            with torch.no_grad():
                inputs = _stacked_inputs(self.task, self.branch, P, self.samples, self.metric, self.dtype, self.constant)
            y_hat = inputs["y_hat"]
            return inputs, lambda adj: torch.ops.aten._softmax_backward_data(adj["y_hat"], y_hat, 2, P.dtype)
        P = P.detach().requires_grad_(True)
        tracked = _stacked_inputs(self.task, self.branch, P, self.samples, self.metric, self.dtype, self.constant)

        def pullback(adj: dict[str, Tensor]) -> Tensor:
            keys = [k for k in adj if tracked[k].requires_grad]
            if not keys:
                return torch.zeros_like(P)
            (G,) = torch.autograd.grad([tracked[k] for k in keys], P, [adj[k] for k in keys], allow_unused=True)
            return torch.zeros_like(P) if G is None else G

        return {key: t.detach() for key, t in tracked.items()}, pullback

    def step(self, P: Tensor, active: Sequence[int]) -> tuple[Tensor, Tensor]:
        inputs, pullback = self._inputs(P)
        values, adjoints = self.engine.step(active, inputs, inputs.get(WEIGHT_KEY))
        return values, pullback(adjoints)


def run_batch(
    task: Task,
    branch: str,
    losses: Sequence[BranchLoss] | None,
    samples: Sequence[Sample],
    metric: str,
    config: RejectionConfig = PAPER_REJECTION,
    *,
    early_reject: EarlyReject = NO_EARLY_REJECT,
    record: Sequence[int] = (),
    dtype: torch.dtype | None = None,
    engine: str = "tree",
    trees: Sequence[Tree] | None = None,
    device: torch.device | str | None = None,
) -> list[RowResult]:
    """The protocol for ``branch`` of every candidate in ``losses``; one result per candidate.

    ``record``: iterations after which every running candidate's g_t is stored in ``trace``
    (for choosing and verifying an early-reject rule); ``dtype``: arithmetic type (default: the
    samples' own, float64 for the built-in tasks); ``engine``: ``tree`` runs each candidate's
    compiled loss (``losses``) on its slice with autograd, ``closed`` differentiates each tree in
    closed form (needs ``trees``; the CPU path), ``levels`` evaluates all trees together (needs
    ``trees``, kernel launches independent of K: the GPU path); ``device``: where to compute.
    """
    assert engine in ENGINES, f"unknown engine {engine!r}"
    K, B, T = len(trees if losses is None else losses), len(samples), config.iterations
    initial = torch.cat([s.raw[branch].detach() for s in samples])  # (B, C, H, W)
    dtype = dtype or initial.dtype
    initial = initial.to(device=device or initial.device, dtype=dtype)
    results: list[RowResult | None] = [None] * K
    traces: list[list[tuple[int, float, float]]] = [[] for _ in range(K)]
    norms: list[list[float]] = [[math.nan] * B for _ in range(K)]
    prints: list[list[list[float]]] = [[[math.nan] * config.fingerprint_directions for _ in range(B)] for _ in range(K)]
    before = [task.sample_metric({**{n: task.ground_truth_raw(n, s.target) for n in task.branches if n != branch},
                                  branch: s.raw[branch]}, s.target, metric) for s in samples]
    dirs = [d.to(initial.device) for d in
            _directions([initial[b] for b in range(B)], config.fingerprint_directions, config.fingerprint_seed)]

    active = list(range(K))  # row j of P is candidate active[j]
    P = initial.expand(K, *initial.shape).clone()  # (K, B, C, H, W)
    V: Tensor | None = None
    constant: dict[str, Tensor] = {}
    record_at = set(record)
    layout: levels.LevelPlan | None = None
    closed: _ClosedInputs | None = None
    if engine in ("levels", "closed"):
        assert trees is not None and len(trees) == K, f"engine {engine!r} needs one tree per candidate"

    def finish(j: int, **kw: object) -> None:
        k = active[j]
        results[k] = RowResult(grad_norms=norms[k], fingerprint=prints[k], trace=traces[k], **kw)  # type: ignore[arg-type]

    for step in range(1, T + 1):
        if not active:
            break
        if engine == "closed":
            if closed is None:
                closed = _ClosedInputs(task, branch, P, samples, metric, dtype, trees)  # type: ignore[arg-type]
            values, G = closed.step(P, active)
        else:
            if engine == "levels" and (layout is None or layout.candidates != len(active)):
                layout = levels.plan([trees[k] for k in active], device=P.device)  # type: ignore[index]
            values, G = _autograd_step(task, branch, P, samples, metric, dtype, constant, active, losses, layout)
        # One device->host transfer per step for all the per-candidate flags.
        value_ok, grad_ok = finite_flags(values, G)
        moving = G.flatten(1).ne(0).any(dim=1).tolist() if step == 1 else []
        if step == 1:
            g64 = G.double().flatten(2)  # (Ka, B, n)
            norms_now = g64.norm(dim=2).tolist()
            prints_now = torch.einsum("kbn,bdn->kbd", g64, torch.stack(dirs).to(g64.device)).tolist()
            for j, k in enumerate(active):
                if value_ok[j]:
                    norms[k], prints[k] = norms_now[j], prints_now[j]
        value_list = values.tolist() if not all(value_ok) else []
        keep = []
        for j in range(len(active)):
            if not value_ok[j]:
                finish(j, passed=False, score=-1.0, invalid=True, iterations=step,
                       reason=f"non-finite loss value {value_list[j]} at iteration {step}")
            elif not grad_ok[j]:
                finish(j, passed=False, score=-1.0, invalid=True, iterations=step,
                       reason=f"non-finite gradient at iteration {step}")
            elif step == 1 and not moving[j]:
                finish(j, passed=False, score=0.0, invalid=False, iterations=step,
                       reason="zero gradient w.r.t. the predictions: they cannot move")
            else:
                keep.append(j)
        if len(keep) < len(active):
            idx = torch.tensor(keep, dtype=torch.long, device=P.device)
            P, G = P.index_select(0, idx), G.index_select(0, idx)
            V = None if V is None else V.index_select(0, idx)
            active = [active[j] for j in keep]
            layout = None
            if not active:
                break
        # torch.optim.SGD (dampening 0, no Nesterov): v = g (first step) else m·v + g; p += −lr·v.
        if config.weight_decay:
            G = G.add(P, alpha=config.weight_decay)
        V = G if V is None else V.mul_(config.momentum).add_(G)
        P.add_(V, alpha=-config.lr)  # torch.optim.SGD's own update, bit for bit

        floor = early_reject.floor_at(step)
        if step in record_at or floor is not None:
            with torch.no_grad():
                gains = metric_gain(task, branch, P, samples, metric, before)
                D = P - initial
                r = displacement_ratio(step, T, config.momentum)
                best = list(gains)
                for c in early_reject.scales:
                    for j, g in enumerate(metric_gain(task, branch, initial + (c * r) * D, samples, metric, before)):
                        best[j] = max(best[j], g)
            keep = []
            for j, k in enumerate(active):
                traces[k].append((step, gains[j], best[j]))
                if floor is not None and best[j] < floor and step < T:
                    finish(j, passed=False, score=gains[j], invalid=False, iterations=step,
                           reason=f"early reject: optimistic g = {best[j]:.3f} < {floor} after {step} iterations")
                else:
                    keep.append(j)
            if len(keep) < len(active):
                idx = torch.tensor(keep, dtype=torch.long)
                idx = idx.to(P.device)
                P, V = P.index_select(0, idx), V.index_select(0, idx)
                active = [active[j] for j in keep]
                layout = None

    if active:
        with torch.no_grad():
            gains = exact_gain(task, branch, P, samples, metric, before)
        for j, k in enumerate(active):
            if not traces[k] or traces[k][-1][0] != T:
                traces[k].append((T, gains[j], gains[j]))
            finish(j, passed=gains[j] >= config.threshold, score=gains[j], invalid=False, iterations=T, reason="")
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]
