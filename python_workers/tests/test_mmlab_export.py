"""`autoloss export --format mmdet|mmpose|mmseg`: a searched loss as a config fragment
(`autoloss_worker.mmlab.export`). The issue's evidence: a det fragment trained by MMDetection's own
`tools/train.py` from the installed wheel, with nothing but the fragment's `custom_imports`
bringing autoloss's registry in. Skipped without mmdet + mmcv ops (scripts/setup-mmlab.sh).
Run: .venv/bin/python -m pytest -q python_workers/tests/test_mmlab_export.py"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops is not installed (scripts/setup-mmlab.sh)")
mmdet = pytest.importorskip("mmdet", reason="mmdet is not installed (scripts/setup-mmlab.sh)")

from mmengine.config import Config  # noqa: E402

from autoloss_worker.graph import loss_from_wire  # noqa: E402
from autoloss_worker.mmlab.export import ExportError, ExportUsageError, export_fragment  # noqa: E402
from autoloss_worker.mmlab.rewrite import FASTER_RCNN, rewrite_config  # noqa: E402

torch.set_num_threads(1)
CONFIG = Path(__file__).resolve().parents[1] / "autoloss_worker" / "configs" / "det_faster_rcnn_shapes.py"
TRAIN_PY = Path(mmdet.__file__).parent / ".mim" / "tools" / "train.py"
DENSE, BOX = ["y_hat", "y", "one"], ["i", "u", "e", "one"]
CE = ["neg", ["mul", "y", ["log", "y_hat"]]]
KINDS = {"rpn_cls": "dense", "rpn_reg": "box", "rcnn_cls": "dense", "rcnn_reg": "box", "mask": "dense", "loss": "dense"}


def _loss(**trees):
    return {"v": 1, "branches": [{"name": n, "kind": KINDS[n], "inputs": DENSE if KINDS[n] == "dense" else BOX, "tree": t}
                                 for n, t in trees.items()]}


# The paper's discovered detection losses (Table 8), cross-entropy for the RPN classifier.
PAPER_DET = _loss(rpn_cls=CE, rpn_reg=["mul", "e", ["inv", ["add", "i", "u"]]], rcnn_cls=CE,
                  rcnn_reg=["neg", ["log", ["mul", "i", ["inv", "e"]]]])


@pytest.fixture(scope="module")
def base_cfg():
    return Config.fromfile(str(CONFIG))


def _branch(loss, name):
    return next(b for b in loss["branches"] if b["name"] == name)


def test_rewrite_config_puts_the_same_modules_as_before_the_export_refactoring(base_cfg):
    """`replace_losses` now goes through `slot_edits`, shared with the exporter; the model it
    builds is the hand-written one it built before."""
    model = rewrite_config(base_cfg, PAPER_DET, FASTER_RCNN, proxy=None).model.to_dict()
    for head, branches in ((model["rpn_head"], ("rpn_cls", "rpn_reg")),
                           (model["roi_head"]["bbox_head"], ("rcnn_cls", "rcnn_reg"))):
        cls, reg = branches
        assert head["loss_cls"] == dict(type="AutoLossGraph", graph=_branch(PAPER_DET, cls), branch_kind="dense",
                                        loss_weight=1.0, use_sigmoid=False, use_mask=False)
        assert head["loss_bbox"] == dict(type="AutoLossGraph", graph=_branch(PAPER_DET, reg), branch_kind="box",
                                         loss_weight=10.0, use_sigmoid=False, use_mask=False)
        assert head["reg_decoded_bbox"] is True
    untouched = base_cfg.model.to_dict()
    for head in (untouched["rpn_head"], untouched["roi_head"]["bbox_head"]):
        for key in ("loss_cls", "loss_bbox", "reg_decoded_bbox"):
            head.pop(key, None)
    for head in (model["rpn_head"], model["roi_head"]["bbox_head"]):
        for key in ("loss_cls", "loss_bbox", "reg_decoded_bbox"):
            del head[key]
    assert model == untouched, "only the loss keys and reg_decoded_bbox change"


def test_det_fragment_trains_with_mmdetections_own_train_py(tmp_path):
    """The issue's evidence: export, then `python <mmdet>/.mim/tools/train.py fragment.py` (2
    iterations, no validation) in a fresh process."""
    assert TRAIN_PY.is_file(), f"the installed mmdet wheel has no {TRAIN_PY}"
    fragment = tmp_path / "found_loss_mmdet.py"
    info = export_fragment(PAPER_DET, "det", "mmdet", str(fragment), options={"iterations": 150, "pretrained": False},
                           header=["exported by test_mmlab_export"])
    assert info == {"path": str(fragment), "base": str(CONFIG), "format": "mmdet",
                    "branches": ["rpn_cls", "rpn_reg", "rcnn_cls", "rcnn_reg"]}
    text = fragment.read_text()
    assert text.startswith(f"# exported by test_mmlab_export\n_base_ = ['{CONFIG}']\n")
    assert "custom_imports = dict(imports=['autoloss_worker.mmlab.registry'], allow_failed_imports=False)" in text
    assert "        # rpn_reg: mul(e, inv(add(i, u)))\n        loss_bbox=dict(\n" in text  # readable: text form above each
    assert text.count("type='AutoLossGraph'") == 4 and text.count("reg_decoded_bbox=True") == 2
    assert "    backbone=dict(\n        init_cfg=None,\n    ),\n" in text, "the run trained from random init (pretrained=false)"

    # The shipped config imports autoloss_worker for its data; the registry must not come with it.
    probe = "import sys, autoloss_worker.mmlab.shapes_data; print('autoloss_worker.mmlab.registry' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "False"

    work = tmp_path / "work"
    cmd = [sys.executable, str(TRAIN_PY), str(fragment), "--work-dir", str(work), "--cfg-options",
           "train_cfg.max_iters=2", "val_cfg=None", "val_dataloader=None", "val_evaluator=None",
           "default_hooks.logger.interval=1", "default_hooks.checkpoint=None", "train_dataloader.batch_size=2"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]

    (scalars,) = work.glob("*/vis_data/scalars.json")
    rows = [json.loads(line) for line in scalars.read_text().splitlines()]
    assert [r["iter"] for r in rows] == [1, 2]
    for row in rows:
        for key in ("loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox"):
            assert math.isfinite(row[key]) and row[key] > 0, (key, row)
    # What the Runner built from: the searched graphs at the four keys (an unregistered type
    # would have failed the build).
    dumped = Config.fromfile(str(work / fragment.name), import_custom_modules=False).model
    for head, cls, reg in ((dumped.rpn_head, "rpn_cls", "rpn_reg"), (dumped.roi_head.bbox_head, "rcnn_cls", "rcnn_reg")):
        assert (head.loss_cls.type, head.loss_cls.graph.to_dict()) == ("AutoLossGraph", _branch(PAPER_DET, cls))
        assert (head.loss_bbox.type, head.loss_bbox.graph.to_dict(), head.loss_bbox.loss_weight) == \
            ("AutoLossGraph", _branch(PAPER_DET, reg), 10.0)


def test_a_users_base_keeps_its_imports_and_loses_the_replaced_losses_extra_keys(tmp_path):
    """`--base`: the user's config; `_delete_` drops keys of the old loss (SmoothL1's beta) that a
    plain merge would leak into AutoLossGraph's arguments."""
    user = tmp_path / "user.py"
    user.write_text(f"_base_ = ['{CONFIG}']\n"
                    "custom_imports = dict(imports=['json'], allow_failed_imports=False)\n"
                    "model = dict(roi_head=dict(bbox_head=dict(loss_bbox=dict(_delete_=True, type='SmoothL1Loss', beta=0.11, loss_weight=1.0))))\n")
    out = tmp_path / "fragment.py"
    subset = _loss(rcnn_cls=CE, rcnn_reg=_branch(PAPER_DET, "rcnn_reg")["tree"])  # a run that searched two branches
    info = export_fragment(subset, "det", "mmdet", str(out), base=str(user))
    assert (info["base"], info["branches"]) == (str(user), ["rcnn_cls", "rcnn_reg"])
    cfg = Config.fromfile(str(out), import_custom_modules=False)
    assert cfg.custom_imports == dict(imports=["json", "autoloss_worker.mmlab.registry"], allow_failed_imports=False)
    assert cfg.model.roi_head.bbox_head.loss_bbox.to_dict() == dict(
        type="AutoLossGraph", graph=_branch(subset, "rcnn_reg"), branch_kind="box", loss_weight=10.0,
        use_sigmoid=False, use_mask=False)
    assert cfg.model.rpn_head.loss_cls.type == "CrossEntropyLoss", "branches the run did not search keep the config's loss"
    # The inherited pretrained-backbone placeholder, resolved for this backbone as proxy training resolves it.
    assert cfg.model.backbone.init_cfg.checkpoint.startswith("autoloss://shapes-pretrained/mmdet-ResNet-")
    assert "rpn_head" not in out.read_text()


def test_export_refuses_what_cannot_work(tmp_path):
    out = str(tmp_path / "f.py")
    with pytest.raises(ExportUsageError, match=r"--format mmseg does not match the run's task 'det': .* is an mmdet config .*use --format mmdet"):
        export_fragment(PAPER_DET, "det", "mmseg", out)
    with pytest.raises(ExportUsageError, match=r"task 'seg' is not an MMLab task .*--format torch"):
        export_fragment(_loss(loss=CE), "seg", "mmseg", out)
    ins = _loss(**{b["name"]: b["tree"] for b in PAPER_DET["branches"]}, mask=CE)
    with pytest.raises(ExportError, match=r"no loss at model\.roi_head\.mask_head\.loss_mask \(branch mask\)"):
        export_fragment(ins, "ins", "mmdet", out, base=str(CONFIG))
    with pytest.raises(ExportError, match=r"no config key for branch\(es\) \['loss'\]"):
        export_fragment(_loss(loss=CE), "det", "mmdet", out)
    with pytest.raises(ExportError, match="does not exist"):
        export_fragment(PAPER_DET, "det", "mmdet", out, base=str(tmp_path / "missing.py"))
    assert not Path(out).exists()


# Tiny hand-written bases: enough for mmengine to load them and build the loss from the registry.
MMSEG_BASE = """default_scope = 'mmseg'
model = dict(type='EncoderDecoder', decode_head=dict(type='FCNHead', in_channels=8, channels=8, num_classes=3,
             loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
"""
MMPOSE_BASE = """default_scope = 'mmpose'
model = dict(type='TopdownPoseEstimator', head=dict(type='HeatmapHead', in_channels=8, out_channels=2,
             loss=dict(type='KeypointMSELoss', use_target_weight=True)))
"""


@pytest.mark.parametrize("library, base_text, loss_path", [
    ("mmseg", MMSEG_BASE, ("decode_head", "loss_decode")),
    ("mmpose", MMPOSE_BASE, ("head", "loss")),
])
def test_mmseg_and_mmpose_fragments_build_the_searched_loss_from_the_registry(tmp_path, library, base_text, loss_path):
    pytest.importorskip(library, reason=f"{library} is not installed (scripts/setup-mmlab.sh)")
    import importlib

    from mmengine.registry import DefaultScope

    base = tmp_path / "base.py"
    base.write_text(base_text)
    loss = _loss(loss=["square", ["add", "y_hat", ["neg", ["mul", "y", ["log", "y_hat"]]]]])
    out = tmp_path / "fragment.py"
    export_fragment(loss, library, library, str(out), base=str(base))
    with pytest.raises(ExportUsageError, match=f"use --format {library}"):
        export_fragment(loss, library, "mmdet", str(tmp_path / "other.py"), base=str(base))

    cfg = Config.fromfile(str(out))  # imports the registry, as tools/train.py does
    head, key = loss_path
    with DefaultScope.overwrite_default_scope(library):
        module = importlib.import_module(f"{library}.registry").MODELS.build(cfg.model[head][key])
    expected_cls = importlib.import_module(f"autoloss_worker.mmlab.{library}_loss").AutoLossGraph
    assert type(module) is expected_cls
    assert module.branch == loss_from_wire(loss).branches[0]
    assert module.loss_weight == 1.0
