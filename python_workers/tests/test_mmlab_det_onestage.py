"""The det task on one-stage detectors (RetinaNet, FCOS, ATSS, GFL, RTMDet, YOLOX): branches from the discovered
slots, sigmoid classification, point-head, GFL, YOLOX, centerness and objectness records with their ξ factors, the
equivalence of the baseline graphs with mmdet's own losses *inside the heads*, and the one-paragraph refusals."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmdet", reason="MMDetection is not installed (scripts/setup-mmlab.sh)")

from autoloss_worker.mmlab.det_records import (CenterSizeBoxRecord, ClsRecord, ObjectnessRecord,  # noqa: E402
                                               PointBoxRecord, ScoreRecord, ap_101, cls_factor, decode_distances,
                                               score_factor, stride_boxes, unit_boxes)
from autoloss_worker.mmlab.slots import SlotError  # noqa: E402
from autoloss_worker.task_jobs import eval_loss_job, task_info_job  # noqa: E402
from autoloss_worker.tasks import get_task  # noqa: E402
from autoloss_worker.tasks.det import BCE, CE, FOCAL, IOU_LOSSES, ONE_MINUS_GIOU, QFL, DetOptions  # noqa: E402
from autoloss_worker.tasks.mmlab_proxy import SHIPPED_CONFIGS  # noqa: E402

torch.set_num_threads(1)
RETINANET = str(SHIPPED_CONFIGS / "det_retinanet_shapes.py")
FCOS = str(SHIPPED_CONFIGS / "det_fcos_shapes.py")
MIM = Path(importlib.util.find_spec("mmdet").origin).parent / ".mim" / "configs"
NEG_LOG_IOU = ["neg", ["log", ["mul", "i", ["inv", "u"]]]]  # mmdet's IoULoss (mode 'log')

# FCOS and ATSS variants of the shipped RetinaNet (same data and backbone), small heads.
FCOS_HEAD = """
model = dict(
    bbox_head=dict(_delete_=True, type='FCOSHead', num_classes=4, in_channels=64, stacked_convs=1, feat_channels=32,
        strides=[4, 8, 16], regress_ranges=((-1, 16), (16, 32), (32, 1e8)), norm_on_bbox=True, centerness_on_reg=True,
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=1.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=dict(_delete_=True, allowed_border=-1, pos_weight=-1, debug=False))
"""
ATSS_HEAD = """
model = dict(
    bbox_head=dict(_delete_=True, type='ATSSHead', num_classes=4, in_channels=64, stacked_convs=1, feat_channels=32,
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=4, scales_per_octave=1, strides=[4, 8, 16]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0], target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='IoULoss', loss_weight=2.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=dict(_delete_=True, assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1, pos_weight=-1, debug=False))
"""
# GFL: QualityFocalLoss on IoU-quality targets, GIoU on the integral of the box distributions,
# DistributionFocalLoss on those distributions (kept: not searchable)
GFL_HEAD = """
model = dict(
    bbox_head=dict(_delete_=True, type='GFLHead', num_classes=4, in_channels=64, stacked_convs=1, feat_channels=32,
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=4, scales_per_octave=1, strides=[4, 8, 16]),
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25), reg_max=16,
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(_delete_=True, assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1, pos_weight=-1, debug=False))
"""
RTMDET_HEAD = """
model = dict(
    bbox_head=dict(_delete_=True, type='RTMDetHead', num_classes=4, in_channels=64, stacked_convs=1, feat_channels=32,
        anchor_generator=dict(type='MlvlPointGenerator', offset=0, strides=[4, 8, 16]),
        bbox_coder=dict(type='DistancePointBBoxCoder'),
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(_delete_=True, assigner=dict(type='DynamicSoftLabelAssigner', topk=13), allowed_border=-1, pos_weight=-1,
                   debug=False))
"""
# YOLOX: sigmoid CE of the positives against one-hot × IoU rows, 1 − IoU² on decoded boxes, sigmoid
# CE objectness on every prior (all summed, divided by the positives by the head); SimOTA assigns.
YOLOX_HEAD = """
model = dict(
    bbox_head=dict(_delete_=True, type='YOLOXHead', num_classes=4, in_channels=64, feat_channels=32, stacked_convs=1,
        strides=(4, 8, 16), norm_cfg=dict(type='BN', momentum=0.03, eps=0.001), act_cfg=dict(type='Swish'),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='sum', loss_weight=1.0),
        loss_bbox=dict(type='IoULoss', mode='square', eps=1e-16, reduction='sum', loss_weight=5.0),
        loss_obj=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='sum', loss_weight=1.0),
        loss_l1=dict(type='L1Loss', reduction='sum', loss_weight=1.0)),
    train_cfg=dict(_delete_=True, assigner=dict(type='SimOTAAssigner', center_radius=2.5)))
"""
IOU_SQUARE = IOU_LOSSES["square"]


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("onestage")
    paths = {"retinanet": RETINANET}
    for name, head in (("fcos", FCOS_HEAD), ("atss", ATSS_HEAD), ("gfl", GFL_HEAD), ("rtmdet", RTMDET_HEAD), ("yolox", YOLOX_HEAD)):
        path = root / f"det_{name}_shapes.py"
        path.write_text(f"_base_ = {RETINANET!r}\n{head}")
        paths[name] = str(path)
    return paths


def _task(path: str, **options):
    return get_task("det", config=path, pretrained=False, **options)


# ----------------------------------------------------------------------------- records, by hand

def test_sigmoid_cls_record_background_is_the_all_zero_row_and_ground_truth_scores_one():
    logits = torch.tensor([[0.3, -0.2], [0.1, 0.4], [-0.5, 0.2]], dtype=torch.float64)
    labels = torch.tensor([1, 2, 0])  # C = 2 classes; label 2 is background
    record = ClsRecord(logits=logits, labels=labels, others=logits[:0], sigmoid=True)
    inputs = record.loss_inputs(logits[None])
    assert torch.equal(inputs["y"][:, :, 0, 0], torch.tensor([[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]], dtype=torch.float64))
    assert torch.allclose(inputs["y_hat"][:, :, 0, 0], logits.sigmoid())
    gt = record.ground_truth()[0]
    assert torch.equal(gt, torch.tensor([[-10.0, 10.0], [-10.0, -10.0], [10.0, -10.0]], dtype=torch.float64))
    assert record.factor(gt) == 1.0


def test_sigmoid_cls_factor_ranks_by_the_class_sigmoid():
    logits = torch.tensor([[2.0, -1.0], [0.0, 1.0], [-2.0, -3.0]], dtype=torch.float64)
    labels = torch.tensor([0, 2, 1])
    # class 0 column: 2.0 (TP), 0.0 (bg), -2.0 (class 1): TP first -> AP 1.
    # class 1 column: -1.0 (class 0), 1.0 (bg), -3.0 (TP): TP ranked third -> precision 1/3 at recall 1.
    expected = (1.0 + ap_101(torch.tensor([-1.0, 1.0, -3.0]), torch.tensor([False, False, True]))) / 2
    assert cls_factor(logits, labels, logits[:0], sigmoid=True) == pytest.approx(expected)
    assert expected == pytest.approx((1 + 1 / 3) / 2)


def test_point_box_decoding_equals_mmdets_distance_coder_and_the_factor_is_one_at_ground_truth():
    from mmdet.models.task_modules.coders import DistancePointBBoxCoder

    points = torch.tensor([[20.0, 30.0], [50.0, 40.0]], dtype=torch.float64)
    strides = torch.tensor([4.0, 8.0], dtype=torch.float64)
    raw = torch.tensor([[0.1, -0.3, 0.5, 0.0], [1.2, 0.4, -0.7, 0.2]], dtype=torch.float64)
    reference = DistancePointBBoxCoder().decode(points, raw.exp() * strides[:, None])
    assert torch.allclose(decode_distances(raw, points, strides), reference)
    assert torch.allclose(decode_distances(torch.zeros_like(raw), points, strides), unit_boxes(points, strides))
    targets = torch.tensor([[10.0, 22.0, 31.0, 45.0], [30.0, 33.0, 70.0, 61.0]], dtype=torch.float64)
    record = PointBoxRecord(raw=raw, points=points, strides=strides, targets=targets)
    gt = record.ground_truth()[0]
    assert torch.allclose(decode_distances(gt, points, strides), targets)
    assert record.factor(gt) == pytest.approx(1.0)
    assert record.factor(torch.zeros_like(raw)) == 0.0  # the unit box is the factor's prior


# ----------------------------------------------------------------------------- the task

def test_retinanet_branches_come_from_its_slots():
    info = task_info_job({"task": "det", "options": {"config": RETINANET, "pretrained": False}})
    assert info["branches"] == [{"name": "cls", "kind": "dense"}, {"name": "reg", "kind": "box"}]
    task = _task(RETINANET)
    cls, reg = task.slot_table
    assert (cls.key, cls.use_sigmoid, cls.loss_weight) == ("bbox_head.loss_cls", True, 1.0)
    assert (reg.key, reg.head_settings, reg.loss_weight) == ("bbox_head.loss_bbox", {"reg_decoded_bbox": True}, 2.0)
    assert [b["tree"] for b in task.baseline_loss["branches"]] == [FOCAL, ONE_MINUS_GIOU]


def test_the_shipped_fcos_config_searches_its_three_slots_with_its_own_losses_as_baseline():
    info = task_info_job({"task": "det", "options": {"config": FCOS, "pretrained": False}})
    assert info["branches"] == [{"name": "cls", "kind": "dense"}, {"name": "reg", "kind": "box"},
                                {"name": "centerness", "kind": "dense"}]
    task = _task(FCOS)
    assert [(s.key, s.loss_weight) for s in task.slot_table] == [
        ("bbox_head.loss_cls", 1.0), ("bbox_head.loss_bbox", 1.0), ("bbox_head.loss_centerness", 1.0)]
    assert [b["tree"] for b in task.baseline_loss["branches"]] == [FOCAL, ONE_MINUS_GIOU, CE]
    assert info["iterations"] == DetOptions().iterations  # declared: det's default 150, not RetinaNet's 450


@pytest.mark.parametrize("variant", ["retinanet", "fcos", "atss", "gfl", "rtmdet", "yolox"])
def test_samples_score_one_at_ground_truth_low_as_recorded_and_the_baseline_passes(variants, variant):
    task = _task(variants[variant])
    samples = task.rejection_samples(5, 0)
    score = {"fcos": ["centerness"], "atss": ["centerness"], "yolox": ["obj"]}.get(variant, [])
    assert list(task.branches) == ["cls", "reg"] + score
    for s in samples:
        assert set(s.target.branches) == set(task.branches)
        assert s.target.branches["cls"].sigmoid
        gt = {b: task.ground_truth_raw(b, s.target) for b in task.branches}
        assert task.sample_metric(gt, s.target, "bbox_map") == pytest.approx(1.0, abs=1e-6)
        for b in ("cls", "reg", "obj")[:len(task.branches) if variant == "yolox" else 2]:  # the random network, one branch at a time
            assert task.sample_metric({**gt, b: s.raw[b]}, s.target, "bbox_map") < 0.1, b
    if "centerness" in task.branches:  # an image with one positive prior can land near its target by chance
        random = [task.sample_metric({**gt, "centerness": s.raw["centerness"]}, s.target, "bbox_map")
                  for s in samples for gt in [{b: task.ground_truth_raw(b, s.target) for b in task.branches}]]
        assert max(random) < 0.5 and sum(random) / len(random) < 0.1, random
    out = eval_loss_job({"task": "det", "loss": task.baseline_loss, "seed": 0,
                         "options": {"config": variants[variant], "pretrained": False}})
    assert out["passed"], out["branches"]


def test_score_record_by_hand():
    targets = torch.tensor([0.2, 0.9, 0.5, 0.0], dtype=torch.float64)
    # a constant 0.5 errs by 0.3 + 0.4 + 0 + 0.5 = 1.2; σ = (0.3, 0.7, 0.5, 0.1) by 0.1 + 0.2 + 0 + 0.1 = 0.4
    logits = torch.logit(torch.tensor([0.3, 0.7, 0.5, 0.1], dtype=torch.float64))
    tol = 1 / (1 + math.exp(10))  # σ(−10): every error is forgiven this much (the 0.5 target's 0 stays 0)
    assert score_factor(logits, targets) == pytest.approx(1 - (0.4 - 3 * tol) / (1.2 - 3 * tol), abs=1e-12)
    assert score_factor(torch.zeros(4, dtype=torch.float64), targets) == 0.0
    assert score_factor(-logits * 5, targets) == 0.0, "worse than the constant: clamped at 0"
    record = ScoreRecord(logits=torch.zeros(4, dtype=torch.float64), targets=targets)
    assert record.factor(record.ground_truth()[0]) == 1.0, "the target 0 is clamped to σ(−10), within the tolerance"
    env = record.loss_inputs(record.ground_truth())
    assert env["y_hat"].shape == (4, 2, 1, 1)
    assert torch.allclose(env["y"][:, 0, 0, 0], targets) and torch.allclose(env["y"][:, 1, 0, 0], 1 - targets)
    assert torch.allclose(env["y_hat"][:, 0, 0, 0], targets, atol=5e-5)


@pytest.mark.parametrize("variant", ["fcos", "atss"])
def test_centerness_records_are_the_heads_own_targets_and_rejection_tells_bce_from_its_sign_flip(variants, variant):
    task = _task(variants[variant], branches="centerness")
    assert list(task.branches) == ["centerness"]
    assert task.baseline_loss["branches"][0]["tree"] == CE, "CE over (σ, 1 − σ) is the heads' BCE"
    for s in task.rejection_samples(5, 0):
        r = s.target.branches["centerness"]
        assert r.targets.shape == r.logits.shape and r.targets.shape[0] > 0
        assert bool(((r.targets > 0) & (r.targets <= 1)).all()), "centres inside their boxes: scores in (0, 1]"
    options = {"config": variants[variant], "pretrained": False, "branches": "centerness"}
    ce = eval_loss_job({"task": "det", "loss": task.baseline_loss, "seed": 0, "options": options})
    assert ce["passed"], ce["branches"]
    flipped = {**task.baseline_loss, "branches": [{**task.baseline_loss["branches"][0], "tree": ["mul", "y", ["log", "y_hat"]]}]}
    out = eval_loss_job({"task": "det", "loss": flipped, "seed": 0, "options": options})
    assert not out["passed"], out["branches"]


def test_rtmdet_cls_record_carries_the_assigners_soft_targets_and_rejection_tells_qfl_from_its_sign_flip(variants):
    task = _task(variants["rtmdet"], branches="cls")
    assert task.baseline_loss["branches"][0]["tree"] == QFL
    for s in task.rejection_samples(5, 0):
        r = s.target.branches["cls"]
        fg = r.labels < r.logits.shape[1]
        assert r.scores is not None and bool(fg.any())
        assert bool(((r.scores[fg] > 0) & (r.scores[fg] <= 1)).all()), "positives: IoU qualities in (0, 1]"
        y = r.loss_inputs(r.leaf[None])["y"][:, :, 0, 0]
        assert torch.equal(y[fg, r.labels[fg]], r.scores[fg]) and float(y[~fg].abs().sum()) == 0.0
    options = {"config": variants["rtmdet"], "pretrained": False, "branches": "cls"}
    assert eval_loss_job({"task": "det", "loss": task.baseline_loss, "seed": 0, "options": options})["passed"]
    flipped = {**task.baseline_loss, "branches": [{**task.baseline_loss["branches"][0], "tree": ["neg", QFL]}]}
    assert not eval_loss_job({"task": "det", "loss": flipped, "seed": 0, "options": options})["passed"]


def test_gfl_records_carry_the_quality_of_the_located_boxes_and_rejection_tells_qfl_from_its_sign_flip(variants):
    task = _task(variants["gfl"])
    assert [b["tree"] for b in task.baseline_loss["branches"]] == [QFL, ONE_MINUS_GIOU]
    assert [s.key for s in task.slot_table] == ["bbox_head.loss_cls", "bbox_head.loss_bbox"]  # loss_dfl kept
    for s in task.rejection_samples(5, 0):
        cls, reg = s.target.branches["cls"], s.target.branches["reg"]
        fg = cls.labels < cls.logits.shape[1]
        assert 0 < reg.targets.shape[0] <= int(fg.sum()) and float(cls.scores[~fg].abs().sum()) == 0.0
        # the box record starts at the positive anchors (offsets 0)
        assert float(reg.offsets.abs().sum()) == 0.0 and reg.factor(reg.offsets) == 0.0
        # quality of the box at the reg branch's ground truth: 1 unless the object lies beyond the 16 bins
        assert bool((cls.scores[fg] > 0).all()) and bool((cls.scores[fg] <= 1 + 1e-9).all())
        assert float(cls.scores[fg].max()) == pytest.approx(1.0)
    options = {"config": variants["gfl"], "pretrained": False}
    assert eval_loss_job({"task": "det", "loss": task.baseline_loss, "seed": 0, "options": options})["passed"]
    cls_branch, reg_branch = task.baseline_loss["branches"]
    for flipped in ([{**cls_branch, "tree": ["neg", QFL]}, reg_branch], [cls_branch, {**reg_branch, "tree": ["neg", ONE_MINUS_GIOU]}]):
        out = eval_loss_job({"task": "det", "loss": {**task.baseline_loss, "branches": flipped}, "seed": 0, "options": options})
        assert not out["passed"], out["branches"]


def test_yolox_records_follow_simota_and_rejection_tells_each_baseline_loss_from_its_sign_flip(variants):
    task = _task(variants["yolox"])
    assert [b["tree"] for b in task.baseline_loss["branches"]] == [BCE, IOU_SQUARE, CE]  # the config's own three
    assert [(s.key, s.loss_weight, s.reduction) for s in task.slot_table] == [
        ("bbox_head.loss_cls", 1.0, "sum"), ("bbox_head.loss_bbox", 5.0, "sum"), ("bbox_head.loss_obj", 1.0, "sum")]
    for s in task.rejection_samples(5, 0):
        cls, reg, obj = (s.target.branches[b] for b in ("cls", "reg", "obj"))
        assert isinstance(reg, CenterSizeBoxRecord) and isinstance(obj, ObjectnessRecord)
        positives = int(obj.targets.sum())
        # cls: the positives only (YOLOX's loss_cls rows), every other prior a fixed competitor
        assert len(cls.labels) == positives > 0 and len(cls.labels) + len(cls.others) == len(obj.targets)
        assert bool((cls.labels < cls.logits.shape[1]).all()) and cls.scores is None
        assert 0 < reg.targets.shape[0] <= positives
        assert set(torch.unique(obj.targets).tolist()) == {0.0, 1.0}
    options = {"config": variants["yolox"], "pretrained": False}
    assert eval_loss_job({"task": "det", "loss": task.baseline_loss, "seed": 0, "options": options})["passed"]
    branches = task.baseline_loss["branches"]
    for i in range(3):
        flipped = [{**b, "tree": ["neg", b["tree"]]} if j == i else b for j, b in enumerate(branches)]
        out = eval_loss_job({"task": "det", "loss": {**task.baseline_loss, "branches": flipped}, "seed": 0, "options": options})
        assert not out["passed"] and not out["branches"][branches[i]["name"]]["passed"], (i, out["branches"])


def test_yolox_box_decoding_equals_the_heads_and_the_objectness_factor_is_the_positives_ap():
    import torch.nn as nn
    from mmdet.models.dense_heads import YOLOXHead

    points = torch.tensor([[20.0, 30.0], [50.0, 40.0]], dtype=torch.float64)
    strides = torch.tensor([4.0, 8.0], dtype=torch.float64)
    raw = torch.tensor([[0.1, -0.3, 0.5, 0.0], [1.2, 0.4, -0.7, 0.2]], dtype=torch.float64)
    priors = torch.cat([points, strides[:, None].repeat(1, 2)], dim=1)
    reference = YOLOXHead._bbox_decode(nn.Module(), priors, raw[None])[0]  # uses no attribute of the head
    record = CenterSizeBoxRecord(raw=raw, points=points, strides=strides,
                                 targets=torch.tensor([[10.0, 22.0, 31.0, 45.0], [30.0, 33.0, 70.0, 61.0]], dtype=torch.float64))
    assert torch.allclose(record.decode(raw, points, strides), reference)
    assert torch.allclose(record.decode(torch.zeros_like(raw), points, strides), stride_boxes(points, strides))
    gt = record.ground_truth()[0]
    assert torch.allclose(record.decode(gt, points, strides), record.targets)
    assert record.factor(gt) == pytest.approx(1.0) and record.factor(torch.zeros_like(raw)) == 0.0
    # objectness: AP of the positives ranked by σ. Positives 2nd and 4th of five: precision 1/2 at
    # recall 1/2 and 2/4 at recall 1, so 1/2 at every recall point
    targets = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    logits = torch.tensor([3.0, 2.0, 1.0, 0.0, -1.0], dtype=torch.float64)
    objectness = ObjectnessRecord(logits=logits, targets=targets)
    assert objectness.factor(logits) == pytest.approx(0.5)
    # positives 1st and 3rd: precision 1 up to recall 1/2 (51 of the 101 points), 2/3 after (50 points)
    assert objectness.factor(torch.tensor([2.0, 3.0, 0.0, 1.0, -1.0], dtype=torch.float64)) == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert objectness.factor(objectness.ground_truth()[0]) == 1.0


def test_yolox_slots_of_mmdets_own_config():
    from mmengine.config import Config

    from autoloss_worker.mmlab.slots import discover_slots

    slots = {s.name: s for s in discover_slots(Config.fromfile(str(MIM / "yolox/yolox_tiny_8xb8-300e_coco.py")))}
    assert (slots["obj"].searchable, slots["obj"].kind, slots["obj"].use_score) == (True, "score_bce", True)
    assert (slots["cls"].searchable, slots["cls"].kind, slots["cls"].use_quality) == (True, "cls_quality", True)
    assert not slots["l1"].searchable and "raw offsets" in slots["l1"].reason


@pytest.mark.parametrize("config, words", [
    ("vfnet/vfnet_r50_fpn_1x_coco.py", r"cannot search VFNetHead: it computes its losses in VFNetHead\.loss_by_feat"),
    ("htc/htc_r50_fpn_1x_coco.py", r"cannot search HybridTaskCascadeRoIHead: it computes its cascade losses in "
                                   r"HybridTaskCascadeRoIHead\.loss"),
    ("detr/detr_r50_8xb2-150e_coco.py", r"cannot search the loss at model\.bbox_head\.loss_cls \(CrossEntropyLoss in DETRHead"),
])
def test_configs_det_cannot_search_get_one_paragraph(config, words):
    with pytest.raises(SlotError, match=words) as err:
        get_task("det", config=str(MIM / config), pretrained=False)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- equivalence in the heads

def _head_losses(cfg, tree_of, seed=0):
    """loss_by_feat of the config's bbox_head on random head outputs and two synthetic images:
    with the config's own losses (tree_of None) or the graphs ``tree_of[name]`` at the task's
    slots; the losses and their gradients w.r.t. the head outputs."""
    import copy

    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.structures import InstanceData

    import autoloss_worker.mmlab.registry  # noqa: F401
    from autoloss_worker.mmlab.rewrite import replace_losses
    from autoloss_worker.tasks.det import baseline_wire

    register_all_modules(init_default_scope=True)
    cfg = copy.deepcopy(cfg)
    task_slots = get_task("det", config=cfg.filename, pretrained=False).slot_table
    if tree_of is not None:
        replace_losses(cfg, baseline_wire({s.name: s.kind for s in task_slots}, tree_of), task_slots)
    else:  # the baseline's layout, the config's losses
        for s in task_slots:
            if s.head_settings:
                cfg.model.bbox_head.update(s.head_settings)
    head_cfg = dict(cfg.model.bbox_head, train_cfg=cfg.model.train_cfg, test_cfg=cfg.model.test_cfg)
    torch.manual_seed(seed)
    head = MODELS.build(head_cfg)
    feats = [torch.randn(2, 64, 128 // s, 128 // s) for s in (4, 8, 16)]
    outs = [[o.detach().requires_grad_() for o in level] for level in head(feats)]
    gts = []
    for boxes, labels in (([[10, 12, 40, 50], [60, 20, 100, 44]], [0, 2]), ([[30, 30, 90, 100]], [3])):
        g = InstanceData()
        g.bboxes, g.labels = torch.tensor(boxes, dtype=torch.float32), torch.tensor(labels)
        gts.append(g)
    metas = [dict(img_shape=(128, 128), pad_shape=(128, 128), batch_input_shape=(128, 128))] * 2
    losses = head.loss_by_feat(*outs, gts, metas)
    values = {k: sum(v) if isinstance(v, list) else v for k, v in losses.items()}
    grads = {k: torch.autograd.grad(v, [o for level in outs for o in level], allow_unused=True, retain_graph=True)
             for k, v in values.items()}
    return values, grads


@pytest.mark.parametrize("variant, trees", [
    ("retinanet", {"cls": FOCAL, "reg": ONE_MINUS_GIOU}),  # FocalLoss (γ 2, α 0.25), GIoULoss
    # GIoULoss weighted by centerness targets; centerness: sigmoid CrossEntropyLoss against CE over (σ, 1 − σ)
    ("fcos", {"cls": FOCAL, "reg": ONE_MINUS_GIOU, "centerness": CE}),
    # IoULoss (mode 'log') weighted by centerness targets. Equal only where boxes overlap: mmdet
    # clamps IoU at 1e-6 (−log = 13.8), the graph's log(0) is log(ε) = −27.6; ATSS's positives
    # are anchors overlapping their object (FCOS's random boxes need not: its test takes GIoU).
    ("atss", {"cls": FOCAL, "reg": NEG_LOG_IOU, "centerness": CE}),
    # QualityFocalLoss (β 2) on the dynamic soft-label assigner's IoU-quality targets; GIoULoss
    # weighted by those targets
    ("rtmdet", {"cls": QFL, "reg": ONE_MINUS_GIOU}),
    # GFL: QualityFocalLoss on the IoU of the integral boxes; GIoULoss on them weighted by the
    # class scores; its DistributionFocalLoss is the config's own in both
    ("gfl", {"cls": QFL, "reg": ONE_MINUS_GIOU}),
    # YOLOX: sigmoid CrossEntropyLoss (sum) against one-hot × IoU rows; IoULoss (mode 'square', sum);
    # objectness sigmoid CrossEntropyLoss (sum) over every prior; divided by the positives by the head
    ("yolox", {"cls": BCE, "reg": IOU_SQUARE, "obj": CE}),
])
def test_baseline_graphs_equal_mmdets_losses_inside_the_head(variants, variant, trees):
    from mmengine.config import Config

    cfg = Config.fromfile(variants[variant])
    own, own_grads = _head_losses(cfg, None)
    graph, graph_grads = _head_losses(cfg, trees)
    assert set(own) == set(graph)
    for key in own:
        assert float(graph[key].detach()) == pytest.approx(float(own[key].detach()), rel=2e-4), key
        assert math.isfinite(float(own[key].detach())) and float(own[key].detach()) > 0, key
        for a, b in zip(own_grads[key], graph_grads[key]):
            if a is None or b is None:
                assert a is None and b is None
                continue
            assert torch.allclose(a, b, rtol=1e-3, atol=1e-7), key


def test_bce_graph_equals_sigmoid_cross_entropy_inside_retinanet(variants):
    from mmengine.config import Config

    cfg = Config.fromfile(variants["retinanet"])
    cfg.model.bbox_head.loss_cls = dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0)
    path = Path(variants["fcos"]).parent / "det_retinanet_bce.py"
    path.write_text(cfg.pretty_text)
    cfg = Config.fromfile(str(path))
    trees = {b["name"]: b["tree"] for b in get_task("det", config=str(path), pretrained=False).baseline_loss["branches"]}
    assert trees["cls"] == BCE  # not FocalLoss: the baseline is binary CE
    own, own_grads = _head_losses(cfg, None)
    graph, graph_grads = _head_losses(cfg, {"cls": BCE, "reg": ONE_MINUS_GIOU})
    assert float(graph["loss_cls"].detach()) == pytest.approx(float(own["loss_cls"].detach()), rel=1e-4)
    for a, b in zip(own_grads["loss_cls"], graph_grads["loss_cls"]):
        assert (a is None and b is None) or torch.allclose(a, b, rtol=1e-3, atol=1e-7)


def test_export_of_a_one_stage_run_writes_its_slots(tmp_path):
    from mmengine.config import Config

    from autoloss_worker.mmlab.export import export_fragment

    task = _task(RETINANET)
    out = tmp_path / "found_loss_mmdet.py"
    info = export_fragment(task.baseline_loss, "det", "mmdet", str(out), options={"config": RETINANET, "pretrained": False})
    assert info["branches"] == ["cls", "reg"]  # export_fragment also checks the model equals rewrite_config's
    head = Config.fromfile(str(out), import_custom_modules=False).model.bbox_head
    assert (head.loss_cls.type, head.loss_cls.use_sigmoid, head.loss_bbox.loss_weight) == ("AutoLossGraph", True, 2.0)
    assert head.type == "RetinaHead" and head.reg_decoded_bbox
