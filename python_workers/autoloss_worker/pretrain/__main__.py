"""python -m autoloss_worker.pretrain [--config CFG ...] [--native TASK ...] [--warm-start] [--quiet]

Builds (or finds in the cache) the shapes-pretrained checkpoint of each config's backbone and
prints `<config>: <checkpoint path>` per config; `--native seg|pose` does the same for a native
task's encoder (its option `pretrained=true`). Without --config and --native: every shipped MMLab config and both native encoders
(det's Faster R-CNN, RetinaNet, FCOS and Cascade R-CNN configs and ins share one backbone, so one checkpoint). The library whose registry builds the
backbone is the config's `default_scope`. A config of your own works too: set its backbone's
`init_cfg=dict(type='Pretrained', checkpoint=<printed path>)` to start from these weights.
With --warm-start, also each config's whole model trained with its own losses (what the task option
`warm_start=true` starts proxies from; ~1.5 min for det's shipped config), printed as
`<config> (warm start): <checkpoint path>`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

SHIPPED = ("det_faster_rcnn_shapes.py", "det_retinanet_shapes.py", "det_fcos_shapes.py", "det_cascade_rcnn_shapes.py",
           "ins_mask_rcnn_shapes.py", "seg_mmseg_shapes.py", "pose_topdown_shapes.py")
LIBRARIES = ("mmdet", "mmseg", "mmpose")
NATIVE = ("seg", "pose")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autoloss_worker.pretrain", description=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", default=[], metavar="CFG",
                        help="an MMLab 1.x config (repeatable; default: the shipped configs)")
    parser.add_argument("--native", action="append", default=[], choices=NATIVE,
                        help="a native task's encoder, at the task's default width (repeatable)")
    parser.add_argument("--warm-start", action="store_true",
                        help="also the configs' whole models, trained with their own losses (option warm_start=true)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)

    from autoloss_worker.pretrain import ensure_checkpoint

    everything = not args.config and not args.native
    for task in NATIVE if everything else args.native:
        print(f"native {task}: {ensure_checkpoint(_native_spec(task), quiet=args.quiet)}", flush=True)
    if not args.config and not everything:
        return 0
    return _configs(args.config or [], args.quiet, args.warm_start)


def _native_spec(task: str):
    from autoloss_worker.tasks import get_task

    return get_task(task).encoder_spec()


def _configs(given: list[str], quiet: bool, warm_start: bool) -> int:
    from mmengine.config import Config

    from autoloss_worker.pretrain import ensure_checkpoint, pretrained_spec, resolve_pretrained
    from autoloss_worker.pretrain.whole_model import ModelSpec
    from autoloss_worker.tasks.mmlab_proxy import SHIPPED_CONFIGS

    configs = given or [str(SHIPPED_CONFIGS / name) for name in SHIPPED]
    for config in configs:
        if not Path(config).is_file():
            print(f"pretrain: config file '{config}' does not exist", file=sys.stderr)
            return 2
    for config in configs:
        try:
            cfg = Config.fromfile(config)
        except Exception as err:  # mmengine raises many kinds; all mean the config cannot be read
            print(f"pretrain: cannot load config '{config}': {err}", file=sys.stderr)
            return 2
        library = cfg.get("default_scope")
        if library not in LIBRARIES or "backbone" not in cfg.get("model", {}):
            print(f"pretrain: {config}: needs default_scope in {', '.join(LIBRARIES)} and a model.backbone "
                  f"(default_scope {library!r})", file=sys.stderr)
            return 2
        print(f"{config}: {ensure_checkpoint(pretrained_spec(cfg, library), quiet=quiet)}", flush=True)
        if warm_start:
            whole = ModelSpec.of(library, resolve_pretrained(cfg, library))  # as the task's warm_start builds it
            print(f"{config} (warm start): {ensure_checkpoint(whole, quiet=quiet)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
