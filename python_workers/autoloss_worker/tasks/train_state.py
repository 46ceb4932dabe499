"""Training states kept between the rungs of successive halving, so a promoted loss continues from
where its lower rung stopped instead of training again from step 0.

A ``train-loss`` job with ``"fidelity": {"stop_at": k}`` trains on the full schedule but stops
after k steps; the task then saves its complete state (model incl. BatchNorm statistics, optimizer
incl. momentum / Adam moments, step) under ``state_key(payload, device)``: a hash of everything in
the payload but ``fidelity``, the device, the torch version and the worker's source code (a code
change must never continue from a state the old code wrote). A later job with the same key and a
larger ``stop_at`` continues from the largest cached step below it. Data order needs no saving:
the native tasks address mini-batches by step (``training.BatchOrder``), and their training draws no
other random numbers. The MMLab tasks keep more (schedulers, random states: ``mmlab.continuation``)
through ``Continuation.latest`` / ``put``.

The cache is one flat directory, ``$AUTOLOSS_STATE_CACHE`` (default
``~/.cache/autoloss/train-states``), of files ``<key>-<step>.pt``. Writes go to a temporary file
renamed into place, so workers sharing the directory never read half a file. Its size is bounded by
``$AUTOLOSS_STATE_CACHE_MB`` (default 1024 MiB): after each write the least recently used files
(modification time; a load touches it) are deleted until the rest fits. An unreadable or
mismatching file is skipped with a warning (that rung trains from scratch), never an error.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

CACHE_ENV = "AUTOLOSS_STATE_CACHE"
CACHE_MB_ENV = "AUTOLOSS_STATE_CACHE_MB"
DEFAULT_CACHE_MB = 1024
FORMAT = 1  # of the saved dict; part of the key
STALE_TEMP_S = 3600  # a temporary file this old belongs to a writer that died


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of the worker package's Python sources (a few hundred KB, read once per process)."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def state_key(payload: Mapping[str, Any], device: str) -> str:
    """The cache key of a train-loss job: its payload without ``fidelity``, plus the device."""
    body = {k: v for k, v in payload.items() if k != "fidelity"}
    blob = json.dumps({"payload": body, "device": device, "torch": torch.__version__, "format": FORMAT,
                       "code": code_fingerprint()}, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:40]


class StateCache:
    """A bounded directory of training states, safe to share between local worker processes."""

    def __init__(self, root: Path | str, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    @classmethod
    def from_env(cls) -> StateCache:
        root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "autoloss" / "train-states"
        raw = os.environ.get(CACHE_MB_ENV, "")
        try:
            mb = float(raw) if raw else DEFAULT_CACHE_MB
        except ValueError:
            raise ValueError(f"{CACHE_MB_ENV} must be a number of MiB, got {raw!r}") from None
        return cls(root, int(mb * 2**20))

    def path(self, key: str, step: int) -> Path:
        return self.root / f"{key}-{step}.pt"

    def steps(self, key: str) -> list[int]:
        """The steps cached under ``key``, ascending."""
        found = []
        for path in self.root.glob(f"{key}-*.pt"):
            tail = path.stem[len(key) + 1:]
            if tail.isdigit():
                found.append(int(tail))
        return sorted(found)

    def load(self, key: str, step: int) -> dict[str, Any] | None:
        """The state saved at ``step`` (marked as just used), or None with a warning if unreadable."""
        path = self.path(key, step)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or state.get("step") != step:
                raise ValueError("not a training state of this step")
            os.utime(path)
            return state
        except FileNotFoundError:  # evicted by another worker meanwhile
            return None
        except Exception as err:  # noqa: BLE001 - any unreadable file means: train from scratch
            warnings.warn(f"ignoring unreadable training state {path}: {err}", RuntimeWarning, stacklevel=2)
            return None

    def save(self, key: str, step: int, state: dict[str, Any]) -> None:
        """Write atomically (temporary file, then rename), then evict down to the size bound."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.path(key, step)
        temp = self.root / f".{final.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        try:
            torch.save(state, temp)
            os.replace(temp, final)
        finally:
            temp.unlink(missing_ok=True)
        self.evict(keep=final)

    def evict(self, keep: Path | None = None) -> None:
        """Delete least recently used states until the directory holds at most ``max_bytes``
        (``keep``, the state just written, is never deleted), and stale temporary files."""
        now = time.time()
        entries = []
        for path in self.root.iterdir():
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if path.suffix == ".tmp":
                if now - stat.st_mtime > STALE_TEMP_S:
                    path.unlink(missing_ok=True)
            elif path.suffix == ".pt":
                entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries, key=lambda e: e[0]):
            if total <= self.max_bytes:
                break
            if path != keep:
                path.unlink(missing_ok=True)
                total -= size


@dataclass(frozen=True)
class Continuation:
    """Where one job's training states live: the cache and the job's key."""

    cache: StateCache
    key: str

    def latest(self, stop_at: int, usable: Callable[[dict[str, Any]], bool] = lambda state: True) -> dict[str, Any] | None:
        """The latest readable state before ``stop_at`` that ``usable`` accepts (it may load the
        state into the training, and must leave the training as it was when it refuses), or None."""
        for step in reversed([s for s in self.cache.steps(self.key) if s < stop_at]):
            state = self.cache.load(self.key, step)
            if state is not None and usable(state):
                return state
        return None

    def put(self, step: int, state: dict[str, Any]) -> None:
        """Keep ``state`` (plain tensors and containers: it is read back with ``weights_only``) as
        this job's state at ``step``."""
        self.cache.save(self.key, step, {**state, "format": FORMAT, "step": step})

    def resume(self, stop_at: int, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
        """Load the latest usable state before ``stop_at`` into ``model`` and ``optimizer`` and
        return it (its ``step``, ``invalid``), or None (nothing usable: both left as they were)."""
        return self.latest(stop_at, lambda state: _restore(state, model, optimizer, self.cache.path(self.key, state["step"])))

    def keep(self, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, invalid: bool) -> None:
        self.put(step, {"invalid": invalid, "model": model.state_dict(), "optimizer": optimizer.state_dict()})


def _restore(state: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer, path: Path) -> bool:
    """Load ``state``; on any mismatch put the fresh model and optimizer back and warn."""
    fresh_model = {k: v.clone() for k, v in model.state_dict().items()}
    fresh_optimizer = optimizer.state_dict()
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        return True
    except Exception as err:  # noqa: BLE001
        model.load_state_dict(fresh_model)
        optimizer.load_state_dict(fresh_optimizer)
        warnings.warn(f"ignoring training state {path} that does not fit the model: {err}", RuntimeWarning, stacklevel=3)
        return False
