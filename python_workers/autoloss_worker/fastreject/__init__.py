"""Loss rejection: the paper's protocol (``rejection.py``) for many candidates at once, with the
same decisions, many times faster.

    from autoloss_worker.fastreject import Screener, check_loss
    verdicts = Screener(task, metric="miou", seed=0).screen(graphs)   # production: static, cache, exits
    per_branch = check_loss(task, graph, "miou")                      # one loss, as the paper writes it

Stages (``screen.py``): free static rejection (``static.py``), a structural verdict cache
(``cache.py``), then the protocol core (``core.py``: the batched state, the SGD step, the exits,
the verdicts) driven by an engine that supplies values and gradients (``engines.py``: ``tree``
with autograd, ``closed`` in closed form on CPU via ``gradient.py`` / ``closed.py``, ``levels``
level by level on GPU via ``levels.py``), optionally over several processes (``parallel.py``).
Benchmark against the straightforward implementation (``python_workers/tests/rejection_reference.py``):
``bench/rejection.py``.
"""
from .batched import run_batch, run_stream
from .cache import VerdictCache, branch_key, canonical_text, loss_key
from .core import NO_EARLY_REJECT, EarlyReject, displacement_ratio
from .screen import DEFAULT_FAST, VERIFIED_EARLY_REJECT, FastConfig, Screener, Verdict, check_branch, check_loss, fast_config_for
from .static import static_reason

__all__ = [
    "NO_EARLY_REJECT",
    "EarlyReject",
    "DEFAULT_FAST",
    "FastConfig",
    "VERIFIED_EARLY_REJECT",
    "fast_config_for",
    "Screener",
    "Verdict",
    "VerdictCache",
    "branch_key",
    "canonical_text",
    "check_branch",
    "check_loss",
    "displacement_ratio",
    "loss_key",
    "run_batch",
    "run_stream",
    "static_reason",
]
