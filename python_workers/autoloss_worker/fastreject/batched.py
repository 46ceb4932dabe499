"""The protocol core (``core.py``) with an engine chosen by name: K candidates in lockstep
(``run_batch``, the CPU path) or a fixed-width batch refilled as candidates finish
(``run_stream``, the GPU path: with the early exits most candidates leave after a few steps, and a
chunked batch would then step a handful of survivors for hundreds of iterations at a cost set by
kernel launches, not by their number).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from autoloss_worker.graph import Tree
from autoloss_worker.rejection import PAPER_REJECTION, BranchVerdict, RejectionConfig
from autoloss_worker.tasks.base import Sample, Task
from autoloss_worker.tasks.losses import BranchLoss

from .core import NO_EARLY_REJECT, EarlyReject, run_protocol
from .engines import make_engine


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
    stacked: bool | None = None,
) -> list[BranchVerdict]:
    """The protocol for ``branch`` of every candidate (``losses`` for engine ``tree``, ``trees`` for
    ``closed`` / ``levels``), all stepped together; one verdict per candidate.

    ``record``: iterations after which every running candidate's g_t is stored in ``trace``;
    ``dtype``: arithmetic type (default: the samples' own, float64 for the built-in tasks);
    ``device``: where to compute; ``stacked``: stack the B samples into one tensor (default: the
    task's ``stackable_samples``; False keeps each sample's own tensor, as the paper writes it)."""
    stacked = task.stackable_samples if stacked is None else stacked
    dtype = dtype or samples[0].raw[branch].dtype
    K = len(trees if losses is None else losses)
    e = make_engine(engine, task, branch, samples, metric, dtype, stacked=stacked, losses=losses, trees=trees)
    return run_protocol(task, branch, K, e, samples, metric, config, stacked=stacked, early_reject=early_reject,
                        record=record, dtype=dtype, device=device)


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
) -> list[BranchVerdict]:
    """The protocol for ``branch`` of every tree (engine ``levels``), ``width`` rows at a time.

    Finished rows stay in the batch, ignored, until they are ``compact_at`` of it (rebuilding the
    level layout costs Python time, so it happens once per refill cycle, not at every exit); the
    final g comes from the vectorised metric, the task's own one deciding ties."""
    dtype = dtype or samples[0].raw[branch].dtype
    e = make_engine("levels", task, branch, samples, metric, dtype, stacked=True, trees=trees)
    return run_protocol(task, branch, len(trees), e, samples, metric, config, width=width, refill_below=refill_below,
                        compact_at=compact_at, early_reject=early_reject, exact_final=False, dtype=dtype, device=device)
