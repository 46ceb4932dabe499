"""Put a searched loss into an unchanged MMLab config and train it as a proxy task, in-process.

    cfg = Config.fromfile("python_workers/autoloss_worker/configs/det_faster_rcnn_shapes.py")
    cfg = rewrite_config(cfg, loss_wire, FASTER_RCNN, ProxySchedule(max_iters=200))
    result = train_proxy(cfg, "runs/det/0001")
    # {"metric": "coco/bbox_mAP", "value": 0.21, "invalid": False, "iterations": 200, ...}

`rewrite_config` replaces the loss dict at each branch's key with `AutoLossGraph` carrying that
branch (and sets what the head needs: `reg_decoded_bbox=True` for box branches, softmax
classification as in the paper), applies the proxy schedule and adds `custom_imports`.
`train_proxy` builds mmengine's `Runner`, trains, and reads the config's own evaluator result.
A NaN/Inf loss stops training after the iteration that produced it and is reported as invalid.
"""

from __future__ import annotations

import copy
import math
import numbers
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .branch import KIND_INPUTS, plain

if TYPE_CHECKING:
    from autoloss_worker.tasks.train_state import Continuation

REGISTRY_MODULE = "autoloss_worker.mmlab.registry"


@dataclass(frozen=True)
class BranchSlot:
    """Where one branch of the searched loss goes in a config."""

    name: str  # branch name in the loss, e.g. "rpn_cls"
    key: str  # dotted path under `model`, e.g. "rpn_head.loss_cls"
    kind: str  # "dense" or "box"
    loss_weight: float  # paper (det): 1.0 classification, 10.0 regression
    use_mask: bool = False  # mmdet mask heads pass (pred, target, label)
    use_sigmoid: bool = False  # mmdet: the head's classification (False: softmax, as in the paper)
    use_score: bool = False  # mmdet: one logit per prior against a score in [0, 1] (centerness)
    use_quality: bool = False  # mmdet: soft (IoU-quality) targets, QualityFocalLoss's (labels, scores)
    head_settings: Mapping[str, Any] | None = None  # set on the head; None: HEAD_SETTINGS of the kind
    reduction: str = "mean"  # mmdet/mmseg: the replaced loss's own (YOLOX sums and divides itself)


FASTER_RCNN: tuple[BranchSlot, ...] = (
    BranchSlot("rpn_cls", "rpn_head.loss_cls", "dense", 1.0),
    BranchSlot("rpn_reg", "rpn_head.loss_bbox", "box", 10.0),
    BranchSlot("rcnn_cls", "roi_head.bbox_head.loss_cls", "dense", 1.0),
    BranchSlot("rcnn_reg", "roi_head.bbox_head.loss_bbox", "box", 10.0),
)
MASK_RCNN: tuple[BranchSlot, ...] = FASTER_RCNN + (
    BranchSlot("mask", "roi_head.mask_head.loss_mask", "dense", 1.0, use_mask=True),
)

# The branch set of each MMLab-backed task, by task name: proxy training and `autoloss export
# --format mmdet|mmpose|mmseg` both look slots up here. Tasks append their own line.
SLOTS_BY_TASK: dict[str, tuple[BranchSlot, ...]] = {
    "det": FASTER_RCNN,
    "ins": MASK_RCNN,
    # the shipped config's head; the mmpose task's own slots come from its config (mmlab.pose_layout)
    "mmpose": (BranchSlot("loss", "head.loss", "dense", 1.0),),
    # the shipped config's decode head; the mmseg task's own slots come from its config (mmlab.seg_layout)
    "mmseg": (BranchSlot("loss", "decode_head.loss_decode", "dense", 1.0),),
}

# What a head needs besides its loss, per branch kind: box branches see decoded boxes (i, u, e
# are areas of boxes, not of deltas).
HEAD_SETTINGS: dict[str, dict[str, Any]] = {"box": {"reg_decoded_bbox": True}}

# Arguments of each library's AutoLossGraph beyond graph, branch_kind and loss_weight, by the
# config's `default_scope` (the registry the module is built from). mmdet heads read `use_sigmoid`
# from their loss dict: False gives softmax classification, as in the paper; mask heads call
# their loss with (pred, target, label).
def _reduction(slot: BranchSlot) -> dict[str, Any]:
    return {} if slot.reduction == "mean" else {"reduction": slot.reduction}


def _target_modes(slot: BranchSlot) -> dict[str, Any]:
    """The score and soft-target flags, only where set (configs written before them stay the same)."""
    return ({"use_score": True} if slot.use_score else {}) | ({"use_quality": True} if slot.use_quality else {})


LIBRARY_ARGS: dict[str, Callable[[BranchSlot], dict[str, Any]]] = {
    "mmdet": lambda slot: dict(use_sigmoid=slot.use_sigmoid, use_mask=slot.use_mask, **_target_modes(slot), **_reduction(slot)),
    "mmseg": lambda slot: _reduction(slot),
    "mmpose": lambda slot: {},
}


@dataclass(frozen=True)
class ProxySchedule:
    """A short iteration-based schedule: linear warm-up then the config's learning rate, one
    validation at the end, no checkpoints unless asked, data loading in the worker process."""

    max_iters: int = 150  # shipped det config: ≈ 1 CPU-minute at 1 thread, baseline bbox mAP ≈ 0.07 (docs/mmlab.md)
    warmup_iters: int = 50
    # Train only the first stop_at of the max_iters steps, then validate (successive halving's lower
    # rungs). Exact: after the warm-up, which keeps its full-schedule length, the rate is constant.
    stop_at: int | None = None
    lr: float | None = None  # None: keep the config's optimizer lr
    batch_size: int | None = None  # None: keep the config's
    log_interval: int = 50
    checkpoint: bool = False
    num_workers: int = 0
    seed: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)  # merged last with Config.merge_from_dict


class InvalidLossError(RuntimeError):
    """A loss became NaN/Inf during proxy training."""

    def __init__(self, iteration: int, key: str, value: float) -> None:
        self.iteration, self.key, self.value = iteration, key, value
        super().__init__(f"loss '{key}' is {value} at iteration {iteration}")


def _lookup(root: Any, dotted: str) -> tuple[Any, str | int]:
    """(parent container, last key) for `dotted` under `root`, list items by index (cascade stages:
    'roi_head.bbox_head.1.loss_cls'); KeyError naming the missing part."""
    parts = dotted.split(".")
    node = root
    for i, part in enumerate(parts[:-1]):
        node = _child(node, part)
        if node is None:
            raise KeyError(f"config has no 'model.{'.'.join(parts[: i + 1])}' (needed for '{dotted}')")
    if _child(node, parts[-1]) is None:
        raise KeyError(f"config has no loss at 'model.{dotted}'")
    return node, int(parts[-1]) if isinstance(node, list) else parts[-1]


def _child(node: Any, part: str) -> Any:
    if isinstance(node, Mapping):
        return node.get(part)
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    return None


def _wire_branches(loss: Any) -> dict[str, dict]:
    obj = plain(loss)
    if not (isinstance(obj, dict) and isinstance(obj.get("branches"), list)):
        raise ValueError("loss must be a wire loss {v, branches: [...]}")
    return {b["name"]: b for b in obj["branches"] if isinstance(b, dict) and "name" in b}


def slot_edits(loss: Any, slots: Sequence[BranchSlot], scope: str | None = None) -> list[tuple[BranchSlot, dict[str, Any], dict[str, Any]]]:
    """(slot, loss module config, head settings) for each slot, from the matching branch of `loss`
    (a wire loss), for a config of `scope` (its default_scope; None: mmdet): what `replace_losses`
    applies in memory and `mmlab.export` writes as a config fragment. A slot without its branch,
    or of another kind, raises."""
    library = scope or "mmdet"
    if library not in LIBRARY_ARGS:
        raise ValueError(f"config default_scope '{library}' is not an MMLab library autoloss registers in ({', '.join(LIBRARY_ARGS)})")
    branches = _wire_branches(loss)
    missing = [s.name for s in slots if s.name not in branches]
    if missing:
        raise ValueError(f"the loss lacks branches {missing} (has {sorted(branches)})")
    edits = []
    for slot in slots:
        wire = branches[slot.name]
        if wire.get("kind") != slot.kind:
            raise ValueError(f"branch '{slot.name}' is of kind '{wire.get('kind')}', the slot '{slot.key}' takes '{slot.kind}'")
        if slot.kind not in KIND_INPUTS:
            raise ValueError(f"slot '{slot.key}': unknown kind '{slot.kind}'")
        module = dict(type="AutoLossGraph", graph=wire, branch_kind=slot.kind, loss_weight=slot.loss_weight,
                      **LIBRARY_ARGS[library](slot))
        settings = HEAD_SETTINGS.get(slot.kind, {}) if slot.head_settings is None else slot.head_settings
        edits.append((slot, module, dict(settings)))
    return edits


def replace_losses(cfg: Any, loss: Any, slots: Sequence[BranchSlot] = FASTER_RCNN) -> Any:
    """Replace the losses at `slots` with AutoLossGraph modules of the matching branches of `loss`
    (a wire loss). Only the named slots change; a slot without its branch raises."""
    for slot, module, head_settings in slot_edits(loss, slots, cfg.get("default_scope")):
        parent, name = _lookup(cfg.model, slot.key)
        parent[name] = module
        if isinstance(parent, list):  # an item of a list of losses: the head holds the list
            parent, _ = _lookup(cfg.model, slot.key.rsplit(".", 1)[0])
            parent = parent if isinstance(parent, Mapping) else None
        if parent is not None:
            parent.update(head_settings)
    return cfg


def add_custom_imports(cfg: Any) -> Any:
    imports = list(cfg.get("custom_imports", {}).get("imports", []))
    if REGISTRY_MODULE not in imports:
        imports.append(REGISTRY_MODULE)
    cfg.custom_imports = dict(imports=imports, allow_failed_imports=False)
    return cfg


def apply_proxy_schedule(cfg: Any, proxy: ProxySchedule) -> Any:
    full = proxy.max_iters
    assert full >= 1, f"max_iters must be >= 1, got {full}"
    n = full if proxy.stop_at is None else proxy.stop_at
    assert 1 <= n <= full, f"stop_at must be within 1..{full}, got {n}"
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=n, val_interval=n)
    cfg.val_cfg = dict(type="ValLoop")
    warmup = min(proxy.warmup_iters, full)
    cfg.param_scheduler = [dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=warmup)] if warmup else []
    if proxy.lr is not None:
        cfg.optim_wrapper.optimizer.lr = proxy.lr
    hooks = cfg.get("default_hooks", {})
    hooks["checkpoint"] = dict(type="CheckpointHook", interval=n, by_epoch=False) if proxy.checkpoint else None
    hooks.pop("visualization", None)  # nothing to look at in a proxy run (None is only allowed for mmengine's own hooks)
    if "logger" in hooks and hooks["logger"] is not None:
        hooks["logger"]["interval"] = proxy.log_interval
    cfg.default_hooks = hooks
    if "log_processor" in cfg:
        cfg.log_processor.by_epoch = False
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if cfg.get(loader) is not None:
            cfg[loader].num_workers = proxy.num_workers
            cfg[loader].persistent_workers = proxy.num_workers > 0
    if proxy.batch_size is not None:
        cfg.train_dataloader.batch_size = proxy.batch_size
    cfg.randomness = dict(seed=proxy.seed, deterministic=False)
    cfg.resume, cfg.load_from = False, None
    if proxy.extra:
        cfg.merge_from_dict(dict(proxy.extra))
    return cfg


def rewrite_config(cfg: Any, loss: Any | None, slots: Sequence[BranchSlot] = FASTER_RCNN,
                   proxy: ProxySchedule | None = ProxySchedule()) -> Any:
    """A copy of `cfg` with the searched losses (None: the config's own losses, the baseline), the
    proxy schedule (None: the config's schedule) and `custom_imports` for the registry."""
    cfg = copy.deepcopy(cfg)
    if loss is not None:
        replace_losses(cfg, loss, slots)
    if proxy is not None:
        apply_proxy_schedule(cfg, proxy)
    return add_custom_imports(cfg)


def default_metric_key(cfg: Any) -> str:
    """The headline key of the config's val evaluator: COCO bbox/segm mAP, mmpose COCO AP, mIoU."""
    ev = cfg.val_evaluator
    ev = ev[0] if isinstance(ev, (list, tuple)) else ev
    kind = ev.get("type", "")
    if kind == "CocoMetric":
        if cfg.get("default_scope") == "mmpose":  # mmpose's keypoint CocoMetric has no `metric` key
            return "coco/AP"
        metric = ev.get("metric", "bbox")
        metric = metric[0] if isinstance(metric, (list, tuple)) else metric
        if metric in ("bbox", "segm"):
            return f"coco/{metric}_mAP"
        return "coco/AP"  # mmpose's keypoint CocoMetric
    if kind == "IoUMetric":
        return "mIoU"
    raise ValueError(f"no default metric for evaluator '{kind}': pass metric=")


def _stop_on_invalid_hook(progress: Callable[[float], None] | None = None):
    from mmengine.hooks import Hook

    class StopOnInvalidLoss(Hook):
        """Raise InvalidLossError as soon as a loss in the iteration's log is NaN/Inf; keep the
        validation metrics. With `progress`, report the fraction of training iterations done after
        each one and call it again after each validation batch: the worker's progress callback is
        where a cancelled job stops (it raises), so a long proxy run stops within one iteration."""

        priority = "VERY_HIGH"

        def __init__(self) -> None:
            self.iterations = 0
            self.metrics: dict[str, float] = {}

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            self.iterations = runner.iter + 1
            for key, value in (outputs or {}).items():
                if "loss" in key:
                    v = float(value.detach().float().mean()) if torch.is_tensor(value) else float(value)
                    if not math.isfinite(v):
                        raise InvalidLossError(self.iterations, key, v)
            if progress is not None:
                progress(min(1.0, self.iterations / max(1, runner.max_iters)))

        def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            if progress is not None:
                progress(min(1.0, self.iterations / max(1, runner.max_iters)))

        def after_val_epoch(self, runner, metrics=None) -> None:
            # numbers.Real, not float: mmseg's IoUMetric reports numpy float32 scalars.
            self.metrics = {k: float(v) for k, v in (metrics or {}).items() if isinstance(v, numbers.Real)}

    return StopOnInvalidLoss()


def train_proxy(cfg: Any, work_dir: str, metric: str | None = None,
                progress: Callable[[float], None] | None = None, states: Continuation | None = None,
                keep_state: bool = False) -> dict[str, Any]:
    """Train `cfg` (already rewritten) with mmengine's Runner in this process and return
    {"metric", "value", "invalid", "iterations", "metrics", "reason", "resumed_from"}; an invalid
    run has value None and the reason. A network that predicts nothing at all (mmdet's CocoMetric
    then logs "results ... empty" and reports no metric) scores 0 with empty `metrics` and a reason:
    no detection is the worst valid result, not a failed job.

    With `states` (successive halving's rungs): training continues from the latest state cached
    before the schedule's last step (`mmlab.continuation`), and with `keep_state` the state after
    that step is cached for a longer job."""
    from mmengine.runner import Runner
    from mmengine.utils import import_modules_from_strings

    cfg = copy.deepcopy(cfg)
    # Config.fromfile imports `custom_imports` while loading a file; a config rewritten in memory
    # (or built in code) has to have them imported here, before the Runner builds the model.
    if cfg.get("custom_imports"):
        import_modules_from_strings(**cfg.custom_imports)
    cfg.work_dir = work_dir
    # MMEngine keeps visualizers as process-global instances by name (mmdet's runtime names it
    # "visualizer"): a second Runner in this long-lived worker would reuse the first one, whose
    # save_dir may be gone. A unique name per run gives each its own.
    if cfg.get("visualizer") is not None:
        cfg.visualizer.name = f"autoloss-visualizer-{uuid.uuid4().hex}"
    key = metric or default_metric_key(cfg)
    runner = Runner.from_cfg(cfg)
    resumed_from = None
    if states is not None:
        from .continuation import continuing_loop

        start = states.latest(int(cfg.train_cfg.max_iters), lambda state: _fits(runner, state, states))
        keep = (lambda step, state: states.put(step, {**state, "invalid": False})) if keep_state else None
        runner._train_loop = continuing_loop(runner, start, keep)
        resumed_from = None if start is None else int(start["step"])
    hook = _stop_on_invalid_hook(progress)
    runner.register_hook(hook, priority="VERY_HIGH")

    def outcome(value: float | None, invalid: bool, iterations: int, metrics: dict[str, float], reason: str | None) -> dict[str, Any]:
        return {"metric": key, "value": value, "invalid": invalid, "iterations": iterations, "metrics": metrics,
                "reason": reason, "resumed_from": resumed_from}

    try:
        runner.train()
    except InvalidLossError as err:
        return outcome(None, True, err.iteration, {}, str(err))
    if not hook.metrics:
        return outcome(0.0, False, hook.iterations, {}, "the evaluator reported no metric: the network predicted nothing")
    if key not in hook.metrics:
        raise KeyError(f"the evaluator reported {sorted(hook.metrics)}, not '{key}'")
    return outcome(hook.metrics[key], False, hook.iterations, hook.metrics, None)


def _fits(runner: Any, state: dict[str, Any], states: Continuation) -> bool:
    """A cached state this runner's model can continue from; else a warning (that rung trains from step 0)."""
    from .continuation import fits

    if fits(runner, state):
        return True
    warnings.warn(f"ignoring training state {states.cache.path(states.key, state['step'])}: its weights do not fit the model",
                  RuntimeWarning, stacklevel=2)
    return False
