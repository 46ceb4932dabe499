"""A searched loss as an MMLab config fragment that an unmodified checkout's `tools/train.py` trains.

    info = export_fragment(loss_wire, "det", "mmdet", "found_loss_mmdet.py")   # resolve, check, write
    text = fragment_text(loss_wire, FASTER_RCNN, base="/abs/det_faster_rcnn_shapes.py",
                         custom_imports=dict(imports=["autoloss_worker.mmlab.registry"]))

The fragment is `_base_ = [<the searched config>]`, `custom_imports` for the registry (the only
thing that brings autoloss in) and `model = dict(...)` overrides holding, at each branch's key, the
`AutoLossGraph` module and head settings of `rewrite.slot_edits` -- the edits proxy training
applies in memory, so the exported loss is the searched one. `_delete_=True` makes mmengine replace
the config's loss dict instead of merging into it, as `rewrite.replace_losses` does.
`export_fragment` reads the written fragment back with mmengine and checks that its model is
exactly the one `rewrite_config` builds from the same base.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from autoloss_worker.graph import loss_from_wire, to_text
from autoloss_worker.pretrain import resolve_pretrained

from .branch import plain
from .rewrite import SLOTS_BY_TASK, BranchSlot, rewrite_config, slot_edits

# The MMLab libraries a fragment can target. `--format` must name the library whose registries
# the base config builds from, i.e. its `default_scope`.
FORMATS = ("mmdet", "mmpose", "mmseg")
INDENT = "    "

Edit = tuple[BranchSlot, dict[str, Any], dict[str, Any]]


class ExportUsageError(ValueError):
    """The request cannot work as asked (format, task): the CLI's exit status 2."""


class ExportError(RuntimeError):
    """The loss does not fit the config (missing branch or key, unreadable config): exit status 1."""


def _check_task(task: str) -> None:
    if task not in SLOTS_BY_TASK:
        raise ExportUsageError(f"task '{task}' is not an MMLab task (MMLab tasks: {', '.join(SLOTS_BY_TASK)}); "
                               "export its loss with --format torch")


def task_slots(task: str, options: Mapping[str, Any], base: str | None = None) -> tuple[BranchSlot, ...]:
    """The slots the run's task trained in: the task's own for its config (`proxy_slots`; det's
    depend on the config, two-stage or one-stage), `base` standing in for the config when given."""
    from autoloss_worker.tasks import get_task

    _check_task(task)
    task_options = {k: v for k, v in options.items() if k != "rejection"}  # protocol constants, not task options
    if base is not None:
        task_options["config"] = os.path.abspath(base)
    try:
        return tuple(get_task(task, **task_options).proxy_slots())  # type: ignore[attr-defined]
    except ValueError as err:
        raise ExportError(f"cannot resolve the run's task '{task}' with its options: {err}") from err


def slots_for(task: str, loss: Any, known: Sequence[BranchSlot] | None = None) -> tuple[BranchSlot, ...]:
    """The slots among `known` (default: the task's table `rewrite.SLOTS_BY_TASK`) that `loss` has
    a branch for, in the task's order: a run may search a subset of the branches. A loss branch
    without a slot raises."""
    _check_task(task)
    names = [b.name for b in loss_from_wire(plain(loss)).branches]
    known = SLOTS_BY_TASK[task] if known is None else tuple(known)
    extra = [n for n in names if n not in {s.name for s in known}]
    if extra:
        raise ExportError(f"task '{task}' has no config key for branch(es) {extra} (its branches: {[s.name for s in known]})")
    return tuple(s for s in known if s.name in names)


# ----------------------------------------------------------------------------- text

def _override_tree(edits: Sequence[Edit], model: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """{head: {...}} under `model`, in slot order; leaves are ("setting", value) for a head
    setting, ("loss", slot, module) for a loss and ("list", items) for a list a slot's key goes
    through (cascade stages: 'roi_head.bbox_head.1.loss_cls'): mmengine cannot merge into a base
    list's items, so the fragment gives the whole list, its items taken from `model` (the rewritten
    model, where the edits are in)."""
    root: dict[str, Any] = {}
    for slot, module, head_settings in edits:
        parts = slot.key.split(".")
        at = next((i for i, p in enumerate(parts) if p.isdigit()), None)
        if at is not None:
            if model is None:
                raise ValueError(f"slot '{slot.key}' is an item of a list: the fragment needs the rewritten model")
            node = root
            for part in parts[:at - 1]:
                node = node.setdefault(part, {})
            node[parts[at - 1]] = ("list", _at(model, parts[:at]))
            continue
        *heads, name = parts
        node = root
        for part in heads:
            node = node.setdefault(part, {})
        for key, value in head_settings.items():
            node[key] = ("setting", value)
        node[name] = ("loss", slot, module)
    return root


def _at(model: Mapping[str, Any], parts: Sequence[str]) -> Any:
    node: Any = model
    for part in parts:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _loss_lines(name: str, slot: BranchSlot, module: Mapping[str, Any], depth: int) -> list[str]:
    pad, inner = INDENT * depth, INDENT * (depth + 1)
    branch = loss_from_wire({"v": 1, "branches": [module["graph"]]}).branches[0]
    return [f"{pad}# {slot.name}: {to_text(branch.tree)}",
            f"{pad}{name}=dict(",
            f"{inner}_delete_=True,  # replace the config's loss instead of merging into it",
            *(f"{inner}{key}={value!r}," for key, value in module.items()),
            f"{pad}),"]


def _dict_lines(node: Mapping[str, Any], depth: int) -> list[str]:
    lines: list[str] = []
    pad = INDENT * depth
    for key, value in node.items():
        if isinstance(value, dict):
            lines += [f"{pad}{key}=dict(", *_dict_lines(value, depth + 1), f"{pad}),"]
        elif value[0] == "setting":
            lines.append(f"{pad}{key}={value[1]!r},")
        elif value[0] == "list":
            lines += [f"{pad}{key}=[  # the whole list: mmengine replaces a base list, it cannot merge into its items",
                      *_literal_lines(value[1], depth + 1), f"{pad}],"]
        else:
            lines += _loss_lines(key, value[1], value[2], depth)
    return lines


def _literal_lines(items: Sequence[Any], depth: int) -> list[str]:
    """The items of a list written out in full, one per line group (see ``_value_lines``)."""
    return [line for item in items for line in _value_lines(None, item, depth)]


def _value_lines(key: str | None, value: Any, depth: int) -> list[str]:
    """``key=value,`` (``value,`` for a list item): dicts with identifier keys as dict(...), lists
    of them as [...], an AutoLossGraph module with its branch's formula as a comment and without
    `_delete_` (a list item replaces nothing it could merge into), anything else as repr."""
    pad, lead = INDENT * depth, "" if key is None else f"{key}="
    if isinstance(value, Mapping) and all(isinstance(k, str) and k.isidentifier() for k in value):
        comment = []
        if value.get("type") == "AutoLossGraph":
            branch = loss_from_wire({"v": 1, "branches": [value["graph"]]}).branches[0]
            comment = [f"{pad}# {branch.name}: {to_text(branch.tree)}"]
        inner = [line for k, v in value.items() for line in _value_lines(k, v, depth + 1)]
        return [*comment, f"{pad}{lead}dict(", *inner, f"{pad}),"]
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        return [f"{pad}{lead}[", *_literal_lines(value, depth + 1), f"{pad}],"]
    return [f"{pad}{lead}{value!r},"]


def fragment_text(loss: Any, slots: Sequence[BranchSlot], base: str, custom_imports: Mapping[str, Any],
                  scope: str | None = None, header: Sequence[str] = (), backbone: Mapping[str, Any] | None = None,
                  model: Mapping[str, Any] | None = None) -> str:
    """The config fragment (Python source) that puts `loss`'s branches at `slots` on top of `base`
    (whose default_scope is `scope`); `custom_imports` is the merged one (the base's own imports
    plus the registry); `backbone`: settings written under `model.backbone` (the resolved
    pretrained-backbone placeholder); `model`: the rewritten model, needed where a slot is an item
    of a list (cascade stages), which the fragment writes out whole."""
    tree = _override_tree(slot_edits(loss, slots, scope), model)
    if backbone:
        tree = {"backbone": {k: ("setting", v) for k, v in backbone.items()}, **tree}
    return "\n".join([
        *(f"# {line}" for line in header),
        f"_base_ = [{os.path.abspath(base)!r}]",
        "",
        "# Registers AutoLossGraph in the MMLab registries (the autoloss_worker package must be importable).",
        f"custom_imports = dict(imports={list(custom_imports['imports'])!r}, allow_failed_imports=False)",
        "",
        "model = dict(",
        *_dict_lines(tree, 1),
        ")",
        "",
    ])


# ----------------------------------------------------------------------------- export

def task_config(task: str, options: Mapping[str, Any]) -> str:
    """The config the run searched with: the task's `config` option as the task resolves the run's
    options (its default when the run gave none), as an absolute path (relative to the cwd)."""
    from autoloss_worker.tasks import get_task

    task_options = {k: v for k, v in options.items() if k != "rejection"}  # protocol constants, not task options
    try:
        resolved = get_task(task, **task_options).options
    except ValueError as err:
        raise ExportError(f"cannot resolve the run's task '{task}' with its options: {err}") from err
    config = getattr(resolved, "config", None)
    if not isinstance(config, str):
        raise ExportError(f"task '{task}' has no 'config' option: give the config to build on with --base")
    return os.path.abspath(config)


def _check_format(fmt: str, task: str, base: str, scope: Any) -> None:
    """`fmt` must be the library the config builds from (its `default_scope`)."""
    if scope == fmt:
        return
    what = (f"an {scope} config (default_scope '{scope}'); use --format {scope}" if scope in FORMATS
            else f"not a config of {', '.join(FORMATS)} (default_scope {scope!r})")
    raise ExportUsageError(f"--format {fmt} does not match the run's task '{task}': its config {base} is {what}")


def _plain_model(cfg: Any) -> Any:
    return plain(cfg.model.to_dict() if hasattr(cfg.model, "to_dict") else cfg.model)


def export_fragment(loss: Any, task: str, fmt: str, out: str, *, options: Mapping[str, Any] | None = None,
                    base: str | None = None, header: Sequence[str] = ()) -> dict[str, Any]:
    """Write `loss` (a wire loss searched on `task` with `options`) as a `fmt` config fragment to
    `out`, on top of `base` (default: the run's config). Returns {"path", "base", "format",
    "branches"}. ExportUsageError / ExportError say what does not fit."""
    from mmengine.config import Config

    if fmt not in FORMATS:
        raise ExportUsageError(f"unknown format '{fmt}' (MMLab formats: {', '.join(FORMATS)})")
    _check_task(task)
    base = os.path.abspath(base) if base is not None else task_config(task, options or {})
    if not os.path.isfile(base):
        raise ExportError(f"base config '{base}' does not exist")
    slots = slots_for(task, loss, task_slots(task, options or {}, base))
    try:
        base_cfg = Config.fromfile(base)
    except Exception as err:  # mmengine raises many kinds; all mean the same here
        raise ExportError(f"cannot load base config '{base}': {err}") from err
    _check_format(fmt, task, base, base_cfg.get("default_scope"))
    # The placeholder of a shipped config's backbone, resolved as the run's proxy training resolved it.
    resolved = resolve_pretrained(base_cfg, fmt, enabled=bool((options or {}).get("pretrained", True)))
    backbone = {"init_cfg": plain(resolved.model.backbone.init_cfg)} if resolved is not base_cfg else None
    try:
        expected = rewrite_config(resolved, loss, slots, proxy=None)  # raises naming a missing key
    except (KeyError, ValueError) as err:
        raise ExportError(f"{base}: {err.args[0] if err.args else err}") from err
    text = fragment_text(loss, slots, base, expected.custom_imports, base_cfg.get("default_scope"), header, backbone,
                         _plain_model(expected))
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    # Read back as tools/train.py will (importing the registry is left to training).
    written = Config.fromfile(out, import_custom_modules=False)
    if _plain_model(written) != _plain_model(expected):
        raise AssertionError(f"{out}: the fragment's model differs from rewrite_config's (a bug in mmlab.export)")
    branches = list(dict.fromkeys(s.name for s in slots))  # a cascade's stages share their branches
    return {"path": os.path.abspath(out), "base": base, "format": fmt, "branches": branches}


def export_mmlab_job(payload: Any) -> dict[str, Any]:
    """The `export-mmlab` job kind (what `autoloss export --format mmdet|mmpose|mmseg` submits).
    Payload: ``{"task", "format", "loss": <wire>, "out": path, "options"?: {...}, "base"?: path,
    "header"?: [line, ...]}``; result: `export_fragment`'s. Bad requests raise ExportUsageError
    (a ValueError), a loss that does not fit the config ExportError."""
    if not isinstance(payload, dict):
        raise ExportUsageError(f"job payload must be a map, got {type(payload).__name__}")
    unknown = sorted(set(payload) - {"task", "format", "loss", "out", "options", "base", "header"})
    if unknown:
        raise ExportUsageError(f"job payload has unknown key(s) {', '.join(unknown)}")
    for key in ("task", "format", "out"):
        if not isinstance(payload.get(key), str):
            raise ExportUsageError(f"export-mmlab needs '{key}' (a string)")
    options = payload.get("options") or {}
    header = payload.get("header") or []
    base = payload.get("base")
    if not isinstance(options, dict):
        raise ExportUsageError("'options' must be a map")
    if not isinstance(header, list) or not all(isinstance(line, str) for line in header):
        raise ExportUsageError("'header' must be a list of strings")
    if base is not None and not isinstance(base, str):
        raise ExportUsageError("'base' must be a path")
    loss = payload.get("loss")
    loss_from_wire(loss)  # a GraphError (a ValueError) before anything is written
    return export_fragment(loss, payload["task"], payload["format"], payload["out"], options=options, base=base, header=header)
