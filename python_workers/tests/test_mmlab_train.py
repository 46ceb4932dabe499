"""The shipped Faster R-CNN config, rewritten with searched losses, trains in-process with
mmengine's Runner and returns the config's own evaluator result; a NaN/Inf loss stops at once.
Needs mmdet + mmcv with ops (scripts/setup-mmlab.sh); skipped otherwise.
Run: .venv/bin/python -m pytest -q python_workers/tests/test_mmlab_train.py"""

import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops is not installed (scripts/setup-mmlab.sh)")
pytest.importorskip("mmdet", reason="mmdet is not installed (scripts/setup-mmlab.sh)")

from mmengine.config import Config  # noqa: E402

from autoloss_worker.mmlab.rewrite import FASTER_RCNN, ProxySchedule, rewrite_config, train_proxy  # noqa: E402

torch.set_num_threads(1)
CONFIG = Path(__file__).resolve().parents[1] / "autoloss_worker" / "configs" / "det_faster_rcnn_shapes.py"
DENSE, BOX = ["y_hat", "y", "one"], ["i", "u", "e", "one"]
CE = ["neg", ["mul", "y", ["log", "y_hat"]]]


def _loss(**trees):
    kinds = {"rpn_cls": "dense", "rpn_reg": "box", "rcnn_cls": "dense", "rcnn_reg": "box"}
    return {"v": 1, "branches": [{"name": n, "kind": kinds[n], "inputs": DENSE if kinds[n] == "dense" else BOX, "tree": t}
                                 for n, t in trees.items()]}


# The paper's discovered detection losses (Table 8), cross-entropy for the RPN classifier.
PAPER_DET = _loss(
    rpn_cls=CE,
    rpn_reg=["mul", "e", ["inv", ["add", "i", "u"]]],
    rcnn_cls=CE,
    rcnn_reg=["neg", ["log", ["mul", "i", ["inv", "e"]]]],
)


@pytest.fixture(scope="module")
def base_cfg():
    from autoloss_worker.pretrain import resolve_pretrained

    return resolve_pretrained(Config.fromfile(str(CONFIG)), "mmdet", enabled=False)  # random init: no pretraining here


def test_rewrite_puts_each_branch_at_its_key(base_cfg):
    cfg = rewrite_config(base_cfg, PAPER_DET, FASTER_RCNN, ProxySchedule(max_iters=7))
    rpn, bbox = cfg.model.rpn_head, cfg.model.roi_head.bbox_head
    assert rpn.loss_cls.type == "AutoLossGraph" and rpn.loss_cls.graph["name"] == "rpn_cls"
    assert rpn.loss_cls.use_sigmoid is False  # paper: softmax probabilities for classification
    assert (rpn.loss_bbox.graph["name"], rpn.loss_bbox.loss_weight, rpn.reg_decoded_bbox) == ("rpn_reg", 10.0, True)
    assert (bbox.loss_cls.graph["name"], bbox.loss_cls.loss_weight) == ("rcnn_cls", 1.0)
    assert (bbox.loss_bbox.graph["name"], bbox.reg_decoded_bbox) == ("rcnn_reg", True)
    assert cfg.train_cfg == dict(type="IterBasedTrainLoop", max_iters=7, val_interval=7)
    assert cfg.default_hooks.checkpoint is None
    assert "autoloss_worker.mmlab.registry" in cfg.custom_imports.imports
    assert base_cfg.model.rpn_head.loss_cls.type == "CrossEntropyLoss"  # the input config is untouched


def test_rewrite_rejects_a_missing_branch_or_key(base_cfg):
    with pytest.raises(ValueError, match=r"lacks branches \['rcnn_reg'\]"):
        rewrite_config(base_cfg, _loss(rpn_cls=CE, rpn_reg="i", rcnn_cls=CE), FASTER_RCNN)
    from autoloss_worker.mmlab.rewrite import BranchSlot

    with pytest.raises(KeyError, match="model.roi_head.mask_head"):
        rewrite_config(base_cfg, _loss(rpn_cls=CE), [BranchSlot("rpn_cls", "roi_head.mask_head.loss_mask", "dense", 1.0)])


def test_searched_losses_train_and_return_a_finite_bbox_map(base_cfg, tmp_path):
    # 16 of the 64 val images keep the test short (COCOeval still counts all GTs: a low but valid mAP).
    proxy = ProxySchedule(max_iters=3, warmup_iters=0, log_interval=1, extra={"val_dataloader.dataset.indices": 16})
    cfg = rewrite_config(base_cfg, PAPER_DET, FASTER_RCNN, proxy)
    assert cfg.val_dataloader.dataset.indices == 16
    result = train_proxy(cfg, str(tmp_path))
    assert result["invalid"] is False and result["iterations"] == 3
    assert result["metric"] == "coco/bbox_mAP"
    assert math.isfinite(result["value"]) and 0.0 <= result["value"] <= 1.0
    assert not list(tmp_path.rglob("*.pth"))  # no checkpoints in a proxy run


def test_a_network_that_predicts_nothing_scores_zero_instead_of_failing_the_job(base_cfg, tmp_path):
    # A searched loss can leave no detection above the score threshold; CocoMetric then reports
    # no metric at all. That is mAP 0 (the worst valid score), not a failed proxy evaluation.
    proxy = ProxySchedule(max_iters=1, warmup_iters=0, extra={"val_dataloader.dataset.indices": 4,
                                                                "model.test_cfg.rcnn.score_thr": 1.01})
    result = train_proxy(rewrite_config(base_cfg, PAPER_DET, FASTER_RCNN, proxy), str(tmp_path))
    assert (result["invalid"], result["value"], result["metrics"]) == (False, 0.0, {})
    assert "predicted nothing" in result["reason"]


def test_an_infinite_loss_stops_training_after_its_first_iteration(base_cfg, tmp_path):
    exploding = ["exp", ["inv", ["add", "y", ["neg", "y"]]]]  # exp(1/ε) = inf
    cfg = rewrite_config(base_cfg, _loss(rpn_cls=CE, rpn_reg="e", rcnn_cls=exploding, rcnn_reg="e"), FASTER_RCNN,
                         ProxySchedule(max_iters=50, warmup_iters=0))
    result = train_proxy(cfg, str(tmp_path))
    assert result["invalid"] is True and result["value"] is None
    assert result["iterations"] == 1
    assert "inf" in result["reason"]


def test_progress_is_reported_per_iteration_and_a_cancel_stops_training_there(base_cfg, tmp_path):
    """The worker's progress callback is its cancellation point (it raises `JobCancelled`): proxy
    training must call it after every iteration, so a cancelled 50-iteration run stops at the third."""
    from autoloss_worker.worker import JobCancelled

    seen: list[float] = []

    def progress(fraction: float) -> None:
        seen.append(fraction)
        if len(seen) == 3:
            raise JobCancelled("cancelled by the test")

    cfg = rewrite_config(base_cfg, PAPER_DET, FASTER_RCNN, ProxySchedule(max_iters=50, warmup_iters=0))
    with pytest.raises(JobCancelled):
        train_proxy(cfg, str(tmp_path), progress=progress)
    assert seen == [1 / 50, 2 / 50, 3 / 50]

    seen.clear()
    short = ProxySchedule(max_iters=2, warmup_iters=0, extra={"val_dataloader.dataset.indices": 2})
    result = train_proxy(rewrite_config(base_cfg, PAPER_DET, FASTER_RCNN, short), str(tmp_path), progress=seen.append)
    assert result["iterations"] == 2
    assert seen[:2] == [0.5, 1.0] and seen[2:] and set(seen[2:]) == {1.0}, "and once per validation batch"


def test_a_dumped_rewritten_config_reloads_and_builds_the_searched_losses(base_cfg, tmp_path):
    # What an exported fragment relies on: the graph survives Config.dump, and custom_imports
    # registers AutoLossGraph when plain mmengine loads the file.
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope

    from autoloss_worker.graph import to_text

    path = tmp_path / "searched.py"
    rewrite_config(base_cfg, PAPER_DET, FASTER_RCNN, ProxySchedule(max_iters=5)).dump(str(path))
    with DefaultScope.overwrite_default_scope("mmdet"):
        model = MODELS.build(Config.fromfile(str(path)).model)
    assert to_text(model.rpn_head.loss_bbox.branch.tree) == "mul(e, inv(add(i, u)))"
    assert to_text(model.roi_head.bbox_head.loss_bbox.branch.tree) == "neg(log(mul(i, inv(e))))"
    assert model.rpn_head.cls_out_channels == 2 and model.rpn_head.reg_decoded_bbox  # softmax RPN, decoded boxes
