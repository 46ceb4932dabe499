"""Register autoloss's loss modules in the MMLab libraries' `MODELS` registries, in one place.

Importing this module registers everything for every installed library and then builds and runs
each registered loss once (a self-check), so a config's

    custom_imports = dict(imports=['autoloss_worker.mmlab.registry'], allow_failed_imports=False)

either works or fails at start-up with the reason, never later as "AutoLossGraph is not in the
registry". Why not `@MODELS.register_module()` on the classes: mmengine registers as a side effect
of importing, infers the scope from the caller's frame and only logs failed imports; here the
target registry, its scope and the name are explicit and a name clash raises (`force=False`).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Registration:
    library: str  # importable package, e.g. "mmdet"
    scope: str  # the registry's scope, checked: a wrong registry fails loudly
    name: str  # the `type=` a config uses
    module: str  # where the class lives
    cls: str


REGISTRATIONS: tuple[Registration, ...] = (
    Registration("mmdet", "mmdet", "AutoLossGraph", "autoloss_worker.mmlab.mmdet_loss", "AutoLossGraph"),
    Registration("mmseg", "mmseg", "AutoLossGraph", "autoloss_worker.mmlab.mmseg_loss", "AutoLossGraph"),
    Registration("mmpose", "mmpose", "AutoLossGraph", "autoloss_worker.mmlab.mmpose_loss", "AutoLossGraph"),
)

# One small graph per branch kind, built and run by the self-check (cross-entropy, paper's R-CNN reg).
_CHECK_GRAPHS = {
    "dense": ["neg", ["mul", "y", ["log", "y_hat"]]],
    "box": ["neg", ["log", ["mul", "i", ["inv", "e"]]]],
}


class RegistrationError(RuntimeError):
    """A loss module could not be registered or failed its self-check."""


def _models_registry(library: str):
    return importlib.import_module(f"{library}.registry").MODELS


def register_all(libraries: tuple[str, ...] | None = None) -> list[str]:
    """Register the loss modules of `libraries` (default: every installed one) and self-check
    them; returns "scope.Name" for each. A requested library that is not installed raises."""
    done = []
    for reg in REGISTRATIONS:
        if libraries is None and importlib.util.find_spec(reg.library) is None:
            continue
        if libraries is not None and reg.library not in libraries:
            continue
        try:
            registry = _models_registry(reg.library)
            cls = getattr(importlib.import_module(reg.module), reg.cls)
        except ImportError as err:
            raise RegistrationError(f"{reg.library}: cannot import {reg.module} or {reg.library}.registry: {err}") from err
        if registry.scope != reg.scope:
            raise RegistrationError(f"{reg.library}.registry.MODELS has scope '{registry.scope}', expected '{reg.scope}'")
        present = registry.module_dict.get(reg.name)
        if present is None:
            registry.register_module(name=reg.name, module=cls, force=False)
        elif present is not cls:
            raise RegistrationError(f"{reg.scope}.MODELS already has a different '{reg.name}': {present!r}")
        self_check(reg)
        done.append(f"{reg.scope}.{reg.name}")
    return done


def _probe_mmdet(build) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0]], requires_grad=True)
    box_loss = build(graph=_CHECK_GRAPHS["box"], branch_kind="box")(boxes, torch.tensor([[1.0, 1.0, 5.0, 5.0]]))
    logits = torch.zeros(2, 3, requires_grad=True)
    cls_loss = build(graph=_CHECK_GRAPHS["dense"], branch_kind="dense")(logits, torch.tensor([0, 2]))
    return [("box", box_loss, boxes), ("dense", cls_loss, logits)]


def _probe_mmseg(build) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    logits = torch.zeros(1, 3, 2, 2, requires_grad=True)
    labels = torch.tensor([[[0, 1], [2, 255]]])
    return [("dense", build(graph=_CHECK_GRAPHS["dense"], branch_kind="dense")(logits, labels, ignore_index=255), logits)]


def _probe_mmpose(build) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    heatmaps = torch.zeros(1, 2, 4, 4, requires_grad=True)
    loss = build(graph=["square", ["add", "y_hat", ["neg", "y"]]], branch_kind="dense")(heatmaps, torch.ones(1, 2, 4, 4), torch.ones(1, 2))
    return [("dense", loss, heatmaps)]


_PROBES = {"mmdet": _probe_mmdet, "mmseg": _probe_mmseg, "mmpose": _probe_mmpose}


def self_check(reg: Registration) -> None:
    """Build the registered loss through the registry, run it once per branch kind it takes and
    back-propagate: a broken installation fails here, naming the module."""
    from mmengine.registry import DefaultScope

    registry = _models_registry(reg.library)
    expected = getattr(importlib.import_module(reg.module), reg.cls)

    def build(**kwargs):
        # Explicit scope: under another library's default scope (say mmdet's, set by a Runner),
        # mmengine would resolve the name in *that* library's registry.
        with DefaultScope.overwrite_default_scope(reg.scope):
            built = registry.build(dict(type=reg.name, **kwargs))
        if type(built) is not expected:
            raise RegistrationError(f"{reg.scope}.MODELS built {type(built)!r} for '{reg.name}', expected {expected!r}")
        return built

    try:
        results = _PROBES[reg.library](build)
        for kind, value, leaf in results:
            value.backward()
            if not torch.isfinite(value) or leaf.grad is None:
                raise RegistrationError(f"self-check of {reg.scope}.{reg.name} ({kind} branch) gave {value.item()}, grad {leaf.grad}")
    except RegistrationError:
        raise
    except Exception as err:  # any failure here is a broken installation: say which module
        raise RegistrationError(f"self-check of {reg.scope}.{reg.name} failed: {err!r}") from err


REGISTERED = register_all()
import autoloss_worker.pretrain.resolve  # noqa: E402,F401  the autoloss:// checkpoint scheme (pretrained backbones)
