"""The det task on Cascade R-CNN (``mmlab.det_layout``, ``mmlab.det_samples``): Faster R-CNN's four
branches with rcnn_cls / rcnn_reg shared by the stages, rejection samples that hold every stage's
RoIs exactly as each stage's losses see them in training, ξ = 1 at ground truth, the baseline
passing rejection, a short proxy run on the shipped config, and the refusals.
Run: .venv/bin/python -m pytest -q python_workers/tests/test_mmlab_det_cascade.py"""
from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("mmdet", reason="MMDetection is not installed (scripts/setup-mmlab.sh)")

from autoloss_worker.mmlab.det_records import decode  # noqa: E402
from autoloss_worker.mmlab.slots import SlotError  # noqa: E402
from autoloss_worker.task_jobs import eval_loss_job, task_info_job, train_loss_job  # noqa: E402
from autoloss_worker.tasks import get_task  # noqa: E402
from autoloss_worker.tasks.mmlab_proxy import SHIPPED_CONFIGS  # noqa: E402

torch.set_num_threads(1)
CASCADE = str(SHIPPED_CONFIGS / "det_cascade_rcnn_shapes.py")
STAGE_IOU = (0.5, 0.6, 0.7)  # the shipped config's positive thresholds per stage
SAMPLED = 64  # RoIs each stage samples (RandomSampler num)

# Two stages sharing one bbox_head dict (CascadeRoIHead builds it once per stage): one slot each
# for rcnn_cls / rcnn_reg at roi_head.bbox_head, not per stage.
TWO_STAGES = """
model = dict(
    roi_head=dict(
        num_stages=2, stage_loss_weights=[1, 0.5],
        bbox_head=dict(_delete_=True,
            type='Shared2FCBBoxHead', in_channels=64, fc_out_channels=128, roi_feat_size=7, num_classes=4,
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=True,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))),
    train_cfg=dict(rcnn=[
        dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5, match_low_quality=False,
                           ignore_iof_thr=-1),
             sampler=dict(type='RandomSampler', num=64, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True),
             pos_weight=-1, debug=False),
        dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.6, neg_iou_thr=0.6, min_pos_iou=0.6, match_low_quality=False,
                           ignore_iof_thr=-1),
             sampler=dict(type='RandomSampler', num=64, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True),
             pos_weight=-1, debug=False)]))
"""


@pytest.fixture(scope="module")
def configs(tmp_path_factory) -> dict[str, str]:
    path = tmp_path_factory.mktemp("cascade") / "det_cascade2_shapes.py"
    path.write_text(f"_base_ = {CASCADE!r}\n{TWO_STAGES}")
    return {"three": CASCADE, "two": str(path)}


@pytest.fixture(scope="module")
def task():
    return get_task("det", config=CASCADE, pretrained=False)


def test_the_four_det_branches_with_rcnn_slots_at_every_stage(configs):
    info = task_info_job({"task": "det", "options": {"config": CASCADE, "pretrained": False}})
    assert info["branches"] == [{"name": "rpn_cls", "kind": "dense"}, {"name": "rpn_reg", "kind": "box"},
                                {"name": "rcnn_cls", "kind": "dense"}, {"name": "rcnn_reg", "kind": "box"}]
    three = get_task("det", config=configs["three"], pretrained=False).slot_table
    assert [(s.name, s.key) for s in three[2:]] == [
        (name, f"roi_head.bbox_head.{k}.{loss}") for k in range(3) for name, loss in (("rcnn_cls", "loss_cls"), ("rcnn_reg", "loss_bbox"))]
    # the same branch in each stage: kind, paper weight, softmax, decoded boxes
    assert {(s.kind, s.loss_weight, s.use_sigmoid) for s in three if s.name == "rcnn_cls"} == {("dense", 1.0, False)}
    assert {(s.kind, s.loss_weight, s.head_settings) for s in three if s.name == "rcnn_reg"} == {("box", 10.0, None)}
    two = get_task("det", config=configs["two"], pretrained=False).slot_table
    assert [s.key for s in two[2:]] == ["roi_head.bbox_head.loss_cls", "roi_head.bbox_head.loss_bbox"]


@pytest.mark.parametrize("variant, stages", [("three", 3), ("two", 2)])
def test_samples_hold_every_stage_finite_and_score_one_at_ground_truth(configs, variant, stages):
    from mmdet.structures.bbox import bbox_overlaps

    task = get_task("det", config=configs[variant], pretrained=False)
    samples = task.rejection_samples(3, 0)
    for s in samples:
        branches = s.target.branches
        assert set(branches) == {"rpn_cls", "rpn_reg", "rcnn_cls", "rcnn_reg"}
        assert len(branches["rcnn_cls"].labels) == stages * SAMPLED  # every stage's sampled RoIs
        for name, record in branches.items():
            for key, value in record.loss_inputs(record.leaf[None]).items():
                assert torch.isfinite(value).all(), (name, key)
        reg = branches["rcnn_reg"]
        iou0 = bbox_overlaps(reg.priors, reg.targets, is_aligned=True)  # positives of some stage, not yet exact
        assert bool((iou0 >= STAGE_IOU[0] - 1e-6).all() and (iou0 < 0.95).all())
        gt = {b: task.ground_truth_raw(b, s.target) for b in task.branches}
        assert task.sample_metric(gt, s.target, "bbox_map") == pytest.approx(1.0, abs=1e-5)
        assert task.sample_metric(s.raw, s.target, "bbox_map") < 0.1  # the random network
        for b in task.branches:  # one branch at its recorded prediction: room to improve (random AP ≈ share of positives)
            assert task.sample_metric({**gt, b: s.raw[b]}, s.target, "bbox_map") < 0.5, b


def test_records_are_what_each_stage_loss_sees_in_training(task):
    """One image through mmdet's own CascadeRCNN.loss (hooks on every stage's AutoLossGraph) and
    through the recorder, from the same RNG state: rcnn_cls is the stages' classification inputs
    concatenated, rcnn_reg decodes to the boxes the stages' box losses compare (less the RoIs that
    already are their target)."""
    from autoloss_worker.mmlab.det_samples import _record_one, _searched_heads
    from autoloss_worker.mmlab.seeded import quiet, seeded_model_and_dataset

    cfg = _searched_heads(task.rejection_config, task.baseline_loss, task.slot_table)
    image = task.rejection_samples(1, 0)[0].target.image_index  # one with R-CNN positives to compare
    seen: dict[str, list] = {"cls": [], "reg": []}
    with quiet(), seeded_model_and_dataset(cfg, 0, "mmdet") as (model, dataset, _):
        stages = model.roi_head.bbox_head
        hooks = [h.loss_cls.register_forward_hook(lambda _m, args, _o: seen["cls"].append(args[:2])) for h in stages]
        hooks += [h.loss_bbox.register_forward_hook(lambda _m, args, _o: seen["reg"].append(args[:2])) for h in stages]
        data = dataset[image]
        batch = model.data_preprocessor({"inputs": [data["inputs"]], "data_samples": [data["data_samples"]]}, True)
        torch.manual_seed(3)
        with torch.no_grad():
            losses = model.loss(batch["inputs"], batch["data_samples"])
        for hook in hooks:
            hook.remove()
        torch.manual_seed(3)
        record = _record_one(model, data, 0)
    assert {f"s{k}.loss_cls" for k in range(3)} <= set(losses)
    assert len(seen["cls"]) == len(seen["reg"]) == 3
    cls = record.branches["rcnn_cls"]
    assert torch.equal(cls.logits, torch.cat([scores for scores, _ in seen["cls"]]).double())
    assert torch.equal(cls.labels, torch.cat([labels for _, labels in seen["cls"]]))
    reg = record.branches["rcnn_reg"]
    trained_boxes = torch.cat([boxes for boxes, _ in seen["reg"]]).double()
    trained_targets = torch.cat([targets for _, targets in seen["reg"]]).double()
    assert 0 < len(reg.targets) <= len(trained_targets)
    for box, target in zip(decode(reg.offsets, reg.priors), reg.targets):  # each is a (box, target) a loss compared
        same_target = (trained_targets - target).abs().amax(1) < 1e-4
        assert float((trained_boxes[same_target] - box).abs().amax(1).min()) < 1e-3


def test_the_baseline_passes_rejection_on_every_branch():
    out = eval_loss_job({"task": "det", "loss": get_task("det", config=CASCADE, pretrained=False).baseline_loss, "seed": 0,
                         "options": {"config": CASCADE, "pretrained": False}})
    assert out["passed"] and out["iterations"] == 4 * 500, out["branches"]


def test_a_short_proxy_run_trains_the_graphs_in_every_stage(monkeypatch):
    import autoloss_worker.mmlab.rewrite as rewrite

    trained = {}
    real = rewrite.train_proxy

    def spy(cfg, *args, **kwargs):  # the config the Runner gets
        trained["cfg"] = cfg
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(rewrite, "train_proxy", spy)
    task = get_task("det", config=CASCADE, pretrained=False)
    out = train_loss_job({"task": "det", "loss": task.baseline_loss,
                          "options": {"config": CASCADE, "iterations": 2, "warmup_iters": 1, "val_images": 4, "pretrained": False}})
    assert not out["invalid"] and out["iterations"] == 2
    assert math.isfinite(out["metrics"]["bbox_map"]) and 0.0 <= out["target"] <= 1.0
    heads = trained["cfg"].model.roi_head.bbox_head
    assert [(h.loss_cls.type, h.loss_cls.graph["name"], h.loss_bbox.graph["name"], h.reg_decoded_bbox) for h in heads] == \
        [("AutoLossGraph", "rcnn_cls", "rcnn_reg", True)] * 3
    assert trained["cfg"].model.roi_head.stage_loss_weights == [1, 0.5, 0.25]  # mmdet still weighs the stages


def test_export_writes_the_stage_list_whole_with_the_graphs_in_every_stage(tmp_path):
    """mmengine cannot merge into a base list's items: the fragment gives the whole bbox_head list
    (export_fragment also checks its model equals rewrite_config's)."""
    from mmengine.config import Config

    from autoloss_worker.mmlab.export import export_fragment

    task = get_task("det", config=CASCADE, pretrained=False)
    out = tmp_path / "found_loss_mmdet.py"
    info = export_fragment(task.baseline_loss, "det", "mmdet", str(out), options={"config": CASCADE, "pretrained": False})
    assert info["branches"] == ["rpn_cls", "rpn_reg", "rcnn_cls", "rcnn_reg"]
    roi = Config.fromfile(str(out), import_custom_modules=False).model.roi_head
    assert [(h.loss_cls.type, h.loss_bbox.graph["name"], h.reg_decoded_bbox, h.bbox_coder.target_stds) for h in roi.bbox_head] == [
        ("AutoLossGraph", "rcnn_reg", True, stds) for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])]
    assert "_delete_" not in out.read_text().split("bbox_head=[", 1)[1]


def test_ins_refuses_a_cascade_in_one_paragraph():
    with pytest.raises(SlotError, match=r"ins: the config's roi_head is a cascade \(CascadeRoIHead\); cascades are searched "
                                        r"by the det task only") as err:
        get_task("ins", config=CASCADE, pretrained=False)
    assert "\n" not in str(err.value)
