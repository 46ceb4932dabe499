"""Spread the batched protocol over worker processes so that every CPU core is busy.

    with ParallelScreener("seg", {}, metric="miou", seed=0, workers=2) as screener:
        verdicts = screener.screen(graphs)

The parent does the free work (static check, verdict cache, de-duplication) and sends chunks of
``FastConfig.batch`` surviving losses to the workers; each worker builds the task and its
rejection samples once (``initializer``) and runs them with one torch thread. Processes are
spawned, not forked: forking a process whose torch thread pools are live can deadlock.
"""
from __future__ import annotations

import multiprocessing as mp
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from autoloss_worker.graph import LossGraph
from autoloss_worker.rejection import PAPER_REJECTION, RejectionConfig
from autoloss_worker.tasks import get_task

from .screen import FastConfig, Screener, Verdict

_worker: Screener | None = None


def _init(task: str, options: Mapping[str, Any], metric: str | None, seed: int, config: RejectionConfig,
          fast: FastConfig) -> None:
    global _worker
    torch.set_num_threads(1)
    t = get_task(task, **options)
    t.rejection_samples(config.samples, seed)  # build the samples before the first job
    _worker = Screener(t, metric, seed, config, fast)


def _run(job: tuple[Sequence[LossGraph], Sequence[str] | None]) -> list[Verdict]:
    assert _worker is not None, "worker not initialised"
    return _worker.run_protocol(*job)


class ParallelScreener(Screener):
    def __init__(self, task: str, options: Mapping[str, Any] | None = None, metric: str | None = None, seed: int = 0,
                 config: RejectionConfig = PAPER_REJECTION, fast: FastConfig = FastConfig(), workers: int = 2) -> None:
        options = dict(options or {})
        super().__init__(get_task(task, **options), metric, seed, config, fast, runner=self._spread)
        self.workers = workers
        self._pool = mp.get_context("spawn").Pool(workers, initializer=_init,
                                                  initargs=(task, options, metric, seed, config, fast))
        # Wait until every worker has built its samples, so timings exclude start-up.
        self._pool.map(_ready, range(workers), chunksize=1)

    def _spread(self, graphs: Sequence[LossGraph], branches: Sequence[str] | None = None) -> list[Verdict]:
        b = self.fast.batch
        chunks = [(list(graphs[i : i + b]), branches) for i in range(0, len(graphs), b)]
        return [v for chunk in self._pool.imap(_run, chunks) for v in chunk]

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()

    def __enter__(self) -> ParallelScreener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ready(_: int) -> bool:
    import time

    time.sleep(0.2)  # hold this worker so the next ping lands on another one
    return _worker is not None
