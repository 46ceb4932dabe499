"""Fast loss rejection: the paper's protocol with the same decisions, many times faster.

    from autoloss_worker.fastreject import Screener, FastConfig
    verdicts = Screener(task, metric="miou", seed=0).screen(graphs)

Stages (``screen.py``): free static rejection (``static.py``), a structural verdict cache
(``cache.py``), then the protocol for a batch of candidates stepped together with exact early
exits (``batched.py``; on CPU each tree's gradient in closed form, ``gradient.py`` /
``closed.py``; on GPU all trees level by level, ``levels.py`` / ``stream.py``), optionally over
several processes (``parallel.py``).
Benchmark against the straightforward implementation (``rejection_reference.py``):
``bench/rejection.py``.
"""
from .batched import NO_EARLY_REJECT, EarlyReject, RowResult, displacement_ratio, run_batch
from .cache import VerdictCache, branch_key, canonical_text, loss_key
from .screen import DEFAULT_FAST, VERIFIED_EARLY_REJECT, FastConfig, Screener, Verdict, fast_config_for
from .static import static_reason

__all__ = [
    "NO_EARLY_REJECT",
    "EarlyReject",
    "DEFAULT_FAST",
    "FastConfig",
    "VERIFIED_EARLY_REJECT",
    "fast_config_for",
    "RowResult",
    "Screener",
    "Verdict",
    "VerdictCache",
    "branch_key",
    "canonical_text",
    "displacement_ratio",
    "loss_key",
    "run_batch",
    "static_reason",
]
