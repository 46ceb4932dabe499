"""Proxy training shared by the tasks inside MMLab configs (``det``, ``ins``, ``mmseg``, ``mmpose``),
and ``MMLabConfigTask``, what those tasks share besides it (options, config, model, proxy_train).

    result = mmlab_proxy_train(config, wire, MMSEG_SLOTS, options, metric="miou", seed=0, budget=None,
                               evaluator_keys={"miou": "mIoU"}, scale=0.01)

The searched loss goes into the config's slots (``mmlab.rewrite.rewrite_config``), the schedule is
shortened to ``options.iterations`` with ``options.warmup_iters`` of linear warm-up (``stop_at``:
stopped after that many of them, continuing from a lower rung's cached state with ``states``), mmengine's
Runner trains in this process (``train_proxy``), and the config's own evaluator is read back:
``evaluator_keys`` maps the task's metric names to the evaluator's keys, ``scale`` brings them to
0-1 (mmseg reports percent). A NaN/Inf loss stops training at once and scores every metric 0.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from autoloss_worker.graph import LossGraph, loss_from_wire
from autoloss_worker.graph.wire import loss_to_wire
from autoloss_worker.tasks.base import Sample, Task, TrainResult
from autoloss_worker.tasks.train_state import Continuation
from autoloss_worker.tasks.training import parse_options, set_threads

# The shipped MMLab configs, package data (pyproject), so an installed worker finds them too.
SHIPPED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"

@dataclass(frozen=True)
class MMLabOptions:
    """Options every MMLab-config task takes (the tasks subclass it with their own defaults)."""

    config: str = ""  # path of an MMLab 1.x config; the task's shipped config by default
    iterations: int = 200  # proxy schedule (mmlab.rewrite.ProxySchedule.max_iters)
    warmup_iters: int = 20
    lr: float = 0.0  # 0: the config's own learning rate
    device: str = "cpu"  # proxy training device ("cpu" hides CUDA from the Runner)
    work_dir: str = ""  # "": a fresh temporary directory per run
    # torch intra-op threads while training (0: leave torch's choice). 1 by default: with two
    # workers on a 2-core machine (make search's default) two threads each ran a step 15x slower.
    threads: int = 1
    # Proxy training starts from the shapes-pretrained backbone where the config asks for it (the
    # shipped configs' 'autoloss://shapes-pretrained' placeholder; autoloss_worker.pretrain).
    # false: random initialisation instead. A config's own checkpoint is loaded either way.
    pretrained: bool = True
    # -1: train and evaluate on the config's own data. A seed: for a config on the generated shapes
    # data (the shipped ones), the same data set drawn from that seed instead; the search's held-out
    # trainings set it, so the final choice is judged on images the search never saw.
    data_seed: int = -1
    # true: every proxy training starts from the whole model trained with the config's own losses on
    # shapes images no search sees (built once, cached), the searched branches' output layers at
    # their initialisation again (autoloss_worker.pretrain.warm_start); false: from the backbone only.
    warm_start: bool = False


# A config may declare the proxy schedule it needs (`autoloss_proxy = dict(iterations=450)`): a
# one-stage detector's sigmoid head learns later than a two-stage one, so the task-wide default
# would score every loss 0. Only these keys, positive integers.
PROXY_DEFAULTS_KEY = "autoloss_proxy"
PROXY_DEFAULT_FIELDS = ("iterations", "warmup_iters")


def config_proxy_defaults(cfg: Any, path: str) -> dict[str, int]:
    """The proxy-schedule defaults ``cfg`` declares under ``autoloss_proxy`` ({} when none);
    ValueError naming the file and the key for anything else."""
    declared = cfg.get(PROXY_DEFAULTS_KEY)
    if declared is None:
        return {}
    if not isinstance(declared, Mapping):
        raise ValueError(f"{path}: {PROXY_DEFAULTS_KEY} must be a dict such as dict(iterations=450), got {declared!r}")
    unknown = sorted(set(declared) - set(PROXY_DEFAULT_FIELDS))
    if unknown:
        raise ValueError(f"{path}: {PROXY_DEFAULTS_KEY} has unknown key(s) {', '.join(unknown)} "
                         f"(known: {', '.join(PROXY_DEFAULT_FIELDS)})")
    for key, value in declared.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if key == "iterations" else 0):
            raise ValueError(f"{path}: {PROXY_DEFAULTS_KEY}.{key} must be a "
                             f"{'positive' if key == 'iterations' else 'non-negative'} integer, got {value!r}")
    return dict(declared)


def branches_as_text(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with a JSON list in ``branches`` as the comma-separated string the option is."""
    if isinstance(options.get("branches"), (list, tuple)):
        return {**options, "branches": ",".join(map(str, options["branches"]))}
    return dict(options)


def select_branches(task: str, all_branches: Mapping[str, str], names: str) -> dict[str, str]:
    """The sub-mapping of ``all_branches`` named in ``names`` (comma-separated, any order; "" = all),
    in the task's order; unknown or repeated names raise ``ValueError``."""
    if not names.strip():
        return dict(all_branches)
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in all_branches]
    if unknown:
        raise ValueError(f"{task}: option branches names {', '.join(unknown)}, not branches of the task ({', '.join(all_branches)})")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"{task}: option branches lists a branch twice: {names!r}")
    return {n: k for n, k in all_branches.items() if n in chosen}


def build_config_model(config: Any, seed: int, library: str) -> Any:
    """The config's model (with its own losses) from ``library``'s registry ("mmseg", "mmpose"),
    initialised from ``seed`` without touching the global RNG."""
    import torch

    importlib.import_module(f"{library}.utils").register_all_modules(init_default_scope=True)
    models = importlib.import_module(f"{library}.registry").MODELS
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = models.build(config.model)
        model.init_weights()
    return model


def mmlab_proxy_train(config: Any, wire: Mapping[str, Any], slots: Sequence[Any], options: MMLabOptions, *, metric: str,
                      seed: int, budget: int | None, evaluator_keys: Mapping[str, str], scale: float,
                      progress: Callable[[float], None] | None = None, stop_at: int | None = None,
                      states: Continuation | None = None, load_from: str | None = None) -> TrainResult:
    from autoloss_worker.mmlab.rewrite import ProxySchedule, rewrite_config, train_proxy

    o = options
    schedule = ProxySchedule(max_iters=o.iterations if budget is None else budget, warmup_iters=o.warmup_iters,
                             lr=o.lr or None, seed=seed, stop_at=stop_at)
    cfg = rewrite_config(config, wire, slots, schedule)
    cfg.load_from = load_from  # the schedule clears a config's own: a proxy starts from its initialisation
    headline = evaluator_keys[metric]
    set_threads(o.threads)
    # pycocotools prints its summary on stdout, which carries the CLI's JSON: send it to stderr.
    with _device(o.device), contextlib.redirect_stdout(sys.stderr), \
            tempfile.TemporaryDirectory(prefix="autoloss-mmlab-") as tmp:
        # a state is kept only below the schedule's end: nothing continues from there
        result = train_proxy(cfg, o.work_dir or tmp, metric=headline, progress=progress, states=states,
                             keep_state=stop_at is not None and stop_at < schedule.max_iters)
    if progress is not None:
        progress(1.0)
    if result["invalid"] or not result["metrics"]:  # NaN/Inf, or nothing predicted: the worst score
        metrics = {m: 0.0 for m in evaluator_keys}
    else:
        missing = [k for k in evaluator_keys.values() if k not in result["metrics"]]
        if missing:
            raise KeyError(f"the config's evaluator reported {sorted(result['metrics'])}, not {missing}")
        # COCO reports −1 where an AP is undefined: count it as 0.
        metrics = {m: max(0.0, float(result["metrics"][k]) * scale) for m, k in evaluator_keys.items()}
    return TrainResult(metrics=metrics, target=metrics[metric], invalid=result["invalid"], iterations=result["iterations"],
                       extra={"reason": result["reason"]}, resumed_from=result["resumed_from"])


class MMLabConfigTask(Task):
    """A task inside an MMLab config. Subclasses name the library whose registries build the
    config, the evaluator's keys for the task's metrics and their scale to 0-1, and implement the
    rejection side (samples, loss inputs, per-sample metric)."""

    continues = True

    options_class: ClassVar[type[MMLabOptions]]
    library: ClassVar[str]  # "mmdet", "mmseg", "mmpose"
    evaluator_keys: ClassVar[Mapping[str, str]]  # task metric -> the config evaluator's key
    metric_scale: ClassVar[float]  # evaluator value × scale = the task's 0-1 metric

    def __init__(self, **options: Any) -> None:
        self.options = parse_options(self.options_class, options)
        if not Path(self.options.config).is_file():
            raise ValueError(f"{self.name}: config file '{self.options.config}' does not exist")
        # The config's own proxy schedule, where it declares one, replaces the task's defaults;
        # options given explicitly still win.
        declared = config_proxy_defaults(self.config, self.options.config)
        self.options = dataclasses.replace(self.options, **{k: v for k, v in declared.items() if k not in options})
        self._samples: dict[tuple[int, int], list[Sample]] = {}

    def adopt_layout(self, layout: Any, baseline: Callable[[Sequence[str]], dict[str, Any]]) -> None:
        """Search the branches of a config's ``mmlab.slot_layout.SlotLayout``: all of them, or the
        option ``branches``' subset (a kept slot named there: SlotError saying why); ``baseline``
        builds the handcrafted loss over the searched branches."""
        self.slot_table, self.all_branches = layout.slots, layout.branches
        layout.check_names(self.options.branches)
        self.branches = select_branches(self.name, self.all_branches, self.options.branches)
        self.baseline_loss = baseline(list(self.branches))

    @functools.cached_property
    def config(self) -> Any:
        from mmengine.config import Config

        return Config.fromfile(self.options.config)

    @functools.cached_property
    def rejection_config(self) -> Any:
        """The config rejection samples predictions from: the shapes-pretrained placeholder
        dropped, so the network is randomly initialised, as in the paper's protocol (a config's
        own checkpoint stays)."""
        from autoloss_worker.pretrain import resolve_pretrained

        return resolve_pretrained(self.config, self.library, enabled=False)

    def build_model(self, seed: int) -> Any:
        """The config's model with its own losses, initialised from ``seed`` (proxy training builds
        its model through mmengine's Runner, rejection through the task's sample recorder)."""
        return build_config_model(self.rejection_config, seed, self.library)

    def proxy_config(self) -> Any:
        """The config proxy training starts from (before the searched losses go in): the
        placeholder backbone checkpoint resolved (built on first load, then cached) or dropped
        (option ``pretrained``), and the shapes data redrawn from the option ``data_seed`` if set."""
        from autoloss_worker.mmlab.shapes_data import reseed_shapes_data
        from autoloss_worker.pretrain import resolve_pretrained

        cfg = resolve_pretrained(self.config, self.library, enabled=self.options.pretrained)
        return cfg if self.options.data_seed < 0 else reseed_shapes_data(cfg, self.options.data_seed)

    def data_seed(self) -> int | None:
        """The option ``data_seed`` when set; else the seed of the shapes data the config trains on,
        or None for a config on other data (held-out trainings then change the initialisation only)."""
        from autoloss_worker.mmlab.shapes_data import shapes_seed_of

        return self.options.data_seed if self.options.data_seed >= 0 else shapes_seed_of(self.config)

    def proxy_slots(self) -> Sequence[Any]:
        """Where the branches go in the config (``rewrite.BranchSlot``s); the det task's depend on its config."""
        from autoloss_worker.mmlab.rewrite import SLOTS_BY_TASK

        return SLOTS_BY_TASK[self.name]

    def proxy_train(self, loss: Any, seed: int, *, metric: str, budget: int | None = None,
                    progress: Callable[[float], None] | None = None, stop_at: int | None = None,
                    states: Continuation | None = None) -> TrainResult:
        """``stop_at`` k: the full schedule (its warm-up keeps its full length) stopped after step k;
        with ``states`` it continues from the latest state cached below k, random states included,
        so that it equals one training to k (``mmlab.continuation``), and keeps its state at k."""
        metric = self.check_metric(metric)
        wire = loss_to_wire(loss) if isinstance(loss, LossGraph) else loss
        self.branch_losses(loss_from_wire(wire))  # names must match the searched branches
        slots = [s for s in self.proxy_slots() if s.name in self.branches]  # the others keep the config's losses
        return mmlab_proxy_train(self.proxy_config(), wire, slots, self.options, metric=metric, seed=seed,
                                 budget=budget, evaluator_keys=self.evaluator_keys, scale=self.metric_scale,
                                 progress=progress, stop_at=stop_at, states=states, load_from=self.warm_start(slots))

    def warm_start(self, slots: Sequence[Any]) -> str | None:
        """With the option ``warm_start``: where proxy trainings of ``slots`` load their weights
        from (``pretrain.warm_start``; the same checkpoint whatever ``data_seed``, so held-out
        trainings start from it too); else None."""
        if not self.options.warm_start:
            return None
        from autoloss_worker.pretrain import resolve_pretrained
        from autoloss_worker.pretrain.warm_start import warm_start_url

        return warm_start_url(self.library, resolve_pretrained(self.config, self.library, enabled=self.options.pretrained),
                              slots)


class _device:
    """Put mmengine's Runner on ``device``: it moves the model to ``mmengine.device.get_device()``,
    a constant fixed at import (CUDA whenever present), through the name its module imported."""

    def __init__(self, device: str) -> None:
        self.device = device

    def __enter__(self) -> None:
        import mmengine.runner.runner as runner_module

        self._saved = runner_module.get_device
        runner_module.get_device = lambda: self.device  # type: ignore[assignment]

    def __exit__(self, *exc: object) -> None:
        import mmengine.runner.runner as runner_module

        runner_module.get_device = self._saved  # type: ignore[assignment]
