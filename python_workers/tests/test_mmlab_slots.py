"""Slot discovery on hand-built configs (no MMLab library needed: head classes come from a table).
The shipped MMLab configs are covered by test_mmlab_slots_configs.py.
Run: .venv/bin/python -m pytest -q python_workers/tests/test_mmlab_slots.py"""

import pytest

from autoloss_worker.mmlab.slots import SlotError, branch_name, discover_slots, loss_entries, select_slots, slots_job

# MRO class names as the libraries' registries would give them.
MRO = {
    ("mmdet", "RPNHead"): ("RPNHead", "AnchorHead", "BaseDenseHead"),
    ("mmdet", "Shared2FCBBoxHead"): ("Shared2FCBBoxHead", "ConvFCBBoxHead", "BBoxHead"),
    ("mmdet", "FCNMaskHead"): ("FCNMaskHead",),
    ("mmdet", "RetinaHead"): ("RetinaHead", "AnchorHead", "BaseDenseHead"),
    ("mmdet", "FCOSHead"): ("FCOSHead", "AnchorFreeHead", "BaseDenseHead"),
    ("mmdet", "GFLHead"): ("GFLHead", "AnchorHead", "BaseDenseHead"),
    ("mmdet", "DETRHead"): ("DETRHead",),
    ("mmseg", "ASPPHead"): ("ASPPHead", "BaseDecodeHead"),
    ("mmseg", "FCNHead"): ("FCNHead", "BaseDecodeHead"),
    ("mmpose", "HeatmapHead"): ("HeatmapHead", "BaseHead"),
    ("mmpose", "RTMCCHead"): ("RTMCCHead", "BaseHead"),
}


def classes(library, head_type):
    return MRO.get((library, head_type))


def ce(**kw):
    return dict(type="CrossEntropyLoss", **{"loss_weight": 1.0, **kw})


def cascade(stages=3):
    bbox = [dict(type="Shared2FCBBoxHead", loss_cls=ce(use_sigmoid=False), loss_bbox=dict(type="SmoothL1Loss", beta=1.0, loss_weight=1.0))
            for _ in range(stages)]
    return {"default_scope": "mmdet", "model": dict(
        type="CascadeRCNN",
        rpn_head=dict(type="RPNHead", loss_cls=ce(use_sigmoid=True), loss_bbox=dict(type="SmoothL1Loss", loss_weight=1.0)),
        roi_head=dict(type="CascadeRoIHead", bbox_head=bbox,
                      mask_head=[dict(type="FCNMaskHead", loss_mask=ce(use_mask=True)) for _ in range(stages)]),
        train_cfg=dict(rpn=dict(assigner=dict(type="MaxIoUAssigner")), loss_weight_of_nothing=dict(note="no type")),
    )}


def by_key(slots):
    return {s.key: s for s in slots}


def test_cascade_stages_and_masks_are_slots_with_indexed_names():
    slots = discover_slots(cascade(), classes)
    assert [(s.key, s.name, s.kind, s.searchable) for s in slots] == [
        ("rpn_head.loss_cls", "rpn_cls", "cls_sigmoid", True),
        ("rpn_head.loss_bbox", "rpn_reg", "box", True),
        ("roi_head.bbox_head.0.loss_cls", "rcnn0_cls", "cls_softmax", True),
        ("roi_head.bbox_head.0.loss_bbox", "rcnn0_reg", "box", True),
        ("roi_head.bbox_head.1.loss_cls", "rcnn1_cls", "cls_softmax", True),
        ("roi_head.bbox_head.1.loss_bbox", "rcnn1_reg", "box", True),
        ("roi_head.bbox_head.2.loss_cls", "rcnn2_cls", "cls_softmax", True),
        ("roi_head.bbox_head.2.loss_bbox", "rcnn2_reg", "box", True),
        ("roi_head.mask_head.0.loss_mask", "mask0", "mask", True),
        ("roi_head.mask_head.1.loss_mask", "mask1", "mask", True),
        ("roi_head.mask_head.2.loss_mask", "mask2", "mask", True),
    ]
    s = by_key(slots)
    assert s["rpn_head.loss_cls"].use_sigmoid and not s["roi_head.bbox_head.0.loss_cls"].use_sigmoid
    assert dict(s["rpn_head.loss_bbox"].head_settings) == {"reg_decoded_bbox": True}  # delta heads are switched
    assert s["roi_head.mask_head.1.loss_mask"].use_mask and s["roi_head.mask_head.1.loss_mask"].branch_kind == "dense"
    assert s["rpn_head.loss_bbox"].branch_kind == "box"


def test_paper_names_for_the_two_stage_layout():
    for key, name in [("rpn_head.loss_cls", "rpn_cls"), ("rpn_head.loss_bbox", "rpn_reg"), ("roi_head.bbox_head.loss_cls", "rcnn_cls"),
                      ("roi_head.bbox_head.loss_bbox", "rcnn_reg"), ("roi_head.mask_head.loss_mask", "mask"),
                      ("decode_head.loss_decode", "loss"), ("head.loss", "loss"), ("auxiliary_head.loss_decode", "aux"),
                      ("auxiliary_head.1.loss_decode", "aux1"), ("decode_head.0.loss_decode", "loss0"),
                      ("bbox_head.loss_centerness", "centerness"), ("head.heatmap_loss", "heatmap")]:
        assert branch_name(key) == name, key


def test_one_stage_kinds_follow_the_head_not_only_the_loss_type():
    cfg = {"default_scope": "mmdet", "model": dict(
        retina=dict(type="RetinaHead", loss_cls=dict(type="FocalLoss", use_sigmoid=True, gamma=2.0), loss_bbox=dict(type="L1Loss")),
        fcos=dict(type="FCOSHead", loss_cls=dict(type="FocalLoss", use_sigmoid=True), loss_bbox=dict(type="IoULoss"),
                  loss_centerness=ce(use_sigmoid=True)),
        gfl=dict(type="GFLHead", loss_cls=dict(type="QualityFocalLoss", use_sigmoid=True), loss_dfl=dict(type="DistributionFocalLoss"),
                 loss_bbox=dict(type="GIoULoss")),
        detr=dict(type="DETRHead", loss_cls=ce(), loss_bbox=dict(type="L1Loss"), loss_iou=dict(type="GIoULoss")))}
    s = by_key(discover_slots(cfg, classes))
    assert (s["retina.loss_cls"].kind, s["retina.loss_cls"].searchable, s["retina.loss_cls"].use_sigmoid) == ("cls_sigmoid", True, True)
    assert dict(s["retina.loss_bbox"].head_settings) == {"reg_decoded_bbox": True}
    assert s["fcos.loss_bbox"].searchable and dict(s["fcos.loss_bbox"].head_settings) == {}  # FCOS decodes itself
    assert (s["fcos.loss_centerness"].kind, s["fcos.loss_centerness"].searchable, s["fcos.loss_centerness"].use_score) == ("score_bce", True, True)
    assert (s["gfl.loss_cls"].kind, s["gfl.loss_cls"].searchable, s["gfl.loss_cls"].use_quality) == ("cls_quality", True, True)
    assert "IoU quality" in s["gfl.loss_cls"].reason
    assert (s["gfl.loss_dfl"].kind, s["gfl.loss_bbox"].searchable) == ("distribution", True)
    # a head autoloss has no contract for: kinds from the loss types, never searchable
    assert [(s[k].kind, s[k].searchable) for k in ("detr.loss_cls", "detr.loss_bbox", "detr.loss_iou")] == [
        ("cls_softmax", False), ("box", False), ("box", False)]
    assert "DETRHead" in s["detr.loss_iou"].reason


def test_seg_lists_of_heads_and_of_losses_and_pose_heads():
    seg = {"default_scope": "mmseg", "model": dict(
        decode_head=[dict(type="FCNHead", loss_decode=ce()), dict(type="ASPPHead", loss_decode=[ce(), dict(type="DiceLoss")])],
        auxiliary_head=dict(type="FCNHead", loss_decode=ce(use_sigmoid=True, loss_weight=0.4)))}
    slots = discover_slots(seg, classes)
    assert [(s.key, s.name, s.searchable) for s in slots] == [
        ("decode_head.0.loss_decode", "loss0", True), ("decode_head.1.loss_decode.0", "loss1_0", True),
        ("decode_head.1.loss_decode.1", "loss1_1", True), ("auxiliary_head.loss_decode", "aux", False)]
    assert slots[3].loss_weight == 0.4 and "sigmoid" in slots[3].reason
    pose = {"default_scope": "mmpose", "model": dict(head=dict(type="HeatmapHead", loss=dict(type="KeypointMSELoss")))}
    assert [(s.name, s.kind, s.searchable) for s in discover_slots(pose, classes)] == [("loss", "heatmap", True)]
    rtm = {"default_scope": "mmpose", "model": dict(head=dict(type="RTMCCHead", loss=dict(type="KLDiscretLoss")))}
    assert [(s.kind, s.searchable) for s in discover_slots(rtm, classes)] == [("simcc", False)]


def test_unregistered_head_and_non_loss_entries():
    cfg = {"default_scope": "mmdet", "model": dict(
        bbox_head=dict(type="MyHead", loss_cls=ce(), loss_weight=2.0, loss_cfg=dict(note="not a loss: no type")),
        neck=dict(type="FPN", loss_free=[1, 2]))}
    slots = discover_slots(cfg, classes)
    assert [(s.key, s.searchable) for s in slots] == [("bbox_head.loss_cls", False)]
    assert "'MyHead' is not registered in mmdet" in slots[0].reason


def test_selection_and_the_one_paragraph_errors():
    slots = discover_slots(cascade(1), classes)
    assert [s.name for s in select_slots(slots, None)] == ["rpn_cls", "rpn_reg", "rcnn0_cls", "rcnn0_reg", "mask0"]
    assert [s.key for s in select_slots(slots, ["rcnn0_reg", "rpn_head.loss_cls"])] == ["roi_head.bbox_head.0.loss_bbox", "rpn_head.loss_cls"]
    with pytest.raises(SlotError, match=r"no loss slot named nope .*rpn_cls, rpn_reg"):
        select_slots(slots, ["nope"])
    gfl = {"default_scope": "mmdet", "model": dict(bbox_head=dict(type="GFLHead", loss_dfl=dict(type="DistributionFocalLoss")))}
    with pytest.raises(SlotError) as err:
        select_slots(discover_slots(gfl, classes), ["dfl"])
    msg = str(err.value)
    assert "model.bbox_head.loss_dfl" in msg and "DistributionFocalLoss" in msg and "GFLHead" in msg and "It searches" in msg
    assert "\n" not in msg
    with pytest.raises(SlotError, match="none of its 1 slots is searchable"):
        select_slots(discover_slots(gfl, classes), None)
    with pytest.raises(SlotError, match="no loss slots"):
        select_slots([], None)


def test_scope_and_job_payload_errors():
    with pytest.raises(SlotError, match="default_scope is 'mmocr'"):
        discover_slots({"default_scope": "mmocr", "model": {}}, classes)
    with pytest.raises(SlotError, match="unknown key"):
        slots_job({"config": "x.py", "extra": 1})
    with pytest.raises(SlotError, match="'config' must be the path"):
        slots_job({})
    with pytest.raises(SlotError, match="non-empty list"):
        slots_job({"config": "x.py", "branches": "rpn_cls"})


def test_the_worker_serves_a_slots_job(tmp_path):
    """The `slots` job kind through the worker's handler registry, on a config file."""
    pytest.importorskip("mmengine")
    from autoloss_worker.worker.handlers import JobContext, default_registry

    config = tmp_path / "cfg.py"
    config.write_text("default_scope = 'mmocr'\nmodel = dict(type='X')\n")
    handler = default_registry()["slots"]
    with pytest.raises(SlotError, match="default_scope is 'mmocr'"):
        handler({"config": str(config)}, JobContext())
    with pytest.raises(SlotError, match="cannot read the config .*missing.py: FileNotFoundError"):
        handler({"config": str(tmp_path / "missing.py")}, JobContext())


def test_rewrite_puts_the_graph_into_discovered_slots_through_lists():
    """`rewrite_config` with `branch_slots`: cascade stages by index, each head's own settings, the
    sigmoid/softmax reading and reduction kept, the slots left out untouched."""
    pytest.importorskip("mmengine")
    from mmengine.config import Config

    from autoloss_worker.mmlab.rewrite import rewrite_config
    from autoloss_worker.mmlab.slots import branch_slots

    raw = cascade(2)
    raw["model"]["fcos"] = dict(type="FCOSHead", loss_cls=dict(type="FocalLoss", use_sigmoid=True, reduction="sum"),
                                loss_bbox=dict(type="IoULoss", loss_weight=1.5))
    cfg = Config(raw)
    chosen = select_slots(discover_slots(cfg, classes), ["rpn_cls", "rcnn1_cls", "rcnn1_reg", "mask0", "fcos_cls", "fcos_reg"])
    branches = [{"name": s.name, "kind": s.branch_kind, "inputs": ["i", "u", "e", "one"] if s.branch_kind == "box" else ["y_hat", "y", "one"],
                 "tree": "one"} for s in chosen]
    out = rewrite_config(cfg, {"v": 1, "branches": branches}, branch_slots(chosen), proxy=None).model
    graph = lambda d: (d["type"], d["branch_kind"], d.get("use_sigmoid"), d.get("use_mask"), d["loss_weight"], d.get("reduction", "mean"))  # noqa: E731
    assert graph(out.rpn_head.loss_cls) == ("AutoLossGraph", "dense", True, False, 1.0, "mean")
    assert graph(out.roi_head.bbox_head[1].loss_cls) == ("AutoLossGraph", "dense", False, False, 1.0, "mean")
    assert graph(out.roi_head.bbox_head[1].loss_bbox) == ("AutoLossGraph", "box", False, False, 10.0, "mean")  # was smooth L1 on deltas
    assert out.roi_head.bbox_head[1].reg_decoded_bbox is True
    assert graph(out.roi_head.mask_head[0].loss_mask) == ("AutoLossGraph", "dense", False, True, 1.0, "mean")
    assert graph(out.fcos.loss_cls) == ("AutoLossGraph", "dense", True, False, 1.0, "sum")
    assert graph(out.fcos.loss_bbox) == ("AutoLossGraph", "box", False, False, 1.5, "mean")  # already IoU: keeps its weight
    assert "reg_decoded_bbox" not in out.fcos  # FCOSHead takes no such argument
    # left out: the config's own
    assert out.roi_head.bbox_head[0].loss_cls.type == "CrossEntropyLoss" and "reg_decoded_bbox" not in out.roi_head.bbox_head[0]
    assert out.rpn_head.loss_bbox.type == "SmoothL1Loss" and "reg_decoded_bbox" not in out.rpn_head
    assert out.roi_head.mask_head[1].loss_mask.type == "CrossEntropyLoss"
