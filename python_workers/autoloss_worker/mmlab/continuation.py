"""Continuing an mmengine proxy training from a lower rung's state, so that 0 -> j -> k equals one
training 0 -> k (bitwise on CPU, same threads), as the native tasks' continuation does.

mmengine's own resume is not enough for that: it restores the model, optimizer, schedulers and
iteration, but not the random states that augmentation and RoI/pixel sampling draw from, and it
advances the data loader by drawing (and augmenting) the batches it skips, which moves them again.
So a state here also holds Python's, NumPy's and torch's random states as they were after step j,
and the loop sets them back after the skip, right before it draws batch j + 1. The data order needs
nothing else: mmengine's samplers shuffle each epoch from the run's seed alone.

``continuing_loop(runner, start, keep)`` replaces a runner's ``IterBasedTrainLoop`` (built from its
config, before ``runner.train()``); ``start`` is a state from ``training_state`` (None: step 0),
``keep(step, state)`` receives the state after the loop's last step (not called when a step raises,
e.g. on a non-finite loss).
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from mmengine.runner import IterBasedTrainLoop


def random_states() -> dict[str, Any]:
    """Python's, NumPy's and torch's (CPU, and CUDA where present) random states, as plain tensors
    and tuples (a state file is read back with ``weights_only``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])


def _schedulers(runner: Any) -> list[Any]:
    schedulers = runner.param_schedulers
    if schedulers is None:
        return []
    if isinstance(schedulers, dict):  # one list per optimizer
        return [s for name in sorted(schedulers) for s in schedulers[name]]
    return list(schedulers)


def training_state(runner: Any) -> dict[str, Any]:
    """Everything step j + 1 depends on: weights and buffers, optimizer (momentum), schedulers,
    random states."""
    return {"model": runner.model.state_dict(), "optimizer": runner.optim_wrapper.state_dict(),
            "schedulers": [s.state_dict() for s in _schedulers(runner)], "random": random_states()}


def fits(runner: Any, state: dict[str, Any]) -> bool:
    """The state's weights have the runner's model's names and shapes (checked before anything loads)."""
    mine = runner.model.state_dict()
    theirs = state.get("model", {})
    return set(mine) == set(theirs) and all(tuple(mine[k].shape) == tuple(theirs[k].shape) for k in mine)


class _RandomStatesAfterSkip:
    """The loop's data iterator: after the first ``skip`` batches (the ones the state already trained
    on, drawn again only to reach the same place in the epoch) it sets the saved random states back."""

    def __init__(self, inner: Iterator[Any], skip: int, states: dict[str, Any]) -> None:
        self.inner, self.skip, self.states, self.drawn = inner, skip, states, 0

    def __iter__(self) -> _RandomStatesAfterSkip:
        return self

    def __next__(self) -> Any:
        if self.drawn == self.skip:
            set_random_states(self.states)
        self.drawn += 1
        return next(self.inner)


class ContinuingIterBasedTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` that may start from a state at step j and hands its state after its
    last step to ``keep``."""

    def __init__(self, *args: Any, start: dict[str, Any] | None = None,
                 keep: Callable[[int, dict[str, Any]], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start, self.keep = start, keep

    def run(self) -> Any:
        if self.start is not None:  # after runner.train() built the optimizer and schedulers and initialised the weights
            runner = self.runner
            runner.model.load_state_dict(self.start["model"])
            runner.optim_wrapper.load_state_dict(self.start["optimizer"])
            for scheduler, saved in zip(_schedulers(runner), self.start["schedulers"], strict=True):
                scheduler.load_state_dict(saved)
            self._iter = int(self.start["step"])
            self.dataloader_iterator = _RandomStatesAfterSkip(self.dataloader_iterator, self._iter, self.start["random"])
        return super().run()

    def run_iter(self, data_batch: Any) -> None:
        super().run_iter(data_batch)
        if self.keep is not None and self._iter == self._max_iters:
            self.keep(self._iter, training_state(self.runner))


def continuing_loop(runner: Any, start: dict[str, Any] | None,
                    keep: Callable[[int, dict[str, Any]], None] | None) -> ContinuingIterBasedTrainLoop:
    """The runner's configured ``IterBasedTrainLoop`` as a ``ContinuingIterBasedTrainLoop``, built
    where ``runner.train()`` would build it (the data loader's seed draw stays in its place)."""
    loop_cfg = dict(runner._train_loop)
    kind = loop_cfg.pop("type")
    assert kind == "IterBasedTrainLoop", f"a proxy trains with IterBasedTrainLoop, not {kind}"
    return ContinuingIterBasedTrainLoop(runner=runner, dataloader=runner._train_dataloader, start=start, keep=keep, **loop_cfg)
