"""Slot discovery on the configs MMDetection, MMSegmentation and MMPose ship inside their packages
(`<package>/.mim/configs`), against expectations written by hand from reading those files; then
the models built with AutoLossGraph in every searchable slot take one forward/backward on a tiny
synthetic batch with finite losses, and where the graph spells out the config's own loss (CE,
BCE, -log IoU, heatmap MSE) the value and gradients equal the library's module.
Needs the MMLab set (scripts/setup-mmlab.sh); skipped otherwise.
Run: .venv/bin/python -m pytest -q python_workers/tests/test_mmlab_slots_configs.py"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops is not installed (scripts/setup-mmlab.sh)")
for _lib in ("mmdet", "mmseg", "mmpose"):
    pytest.importorskip(_lib, reason=f"{_lib} is not installed (scripts/setup-mmlab.sh)")

from mmengine.config import Config  # noqa: E402

from autoloss_worker.mmlab.rewrite import rewrite_config  # noqa: E402
from autoloss_worker.mmlab.slots import branch_slots, discover_slots  # noqa: E402

torch.set_num_threads(1)


def shipped(library: str, relative: str) -> Path:
    root = Path(importlib.util.find_spec(library).origin).parent / ".mim" / "configs"
    path = root / relative
    assert path.is_file(), f"{library} no longer ships {relative}"
    return path


# (key, branch name, kind, loss type, searchable), read off each config and its _base_ files.
CE_SIG, CE = "CrossEntropyLoss", "CrossEntropyLoss"
FASTER = [
    ("rpn_head.loss_cls", "rpn_cls", "cls_sigmoid", CE_SIG, True),
    ("rpn_head.loss_bbox", "rpn_reg", "box", "L1Loss", True),
    ("roi_head.bbox_head.loss_cls", "rcnn_cls", "cls_softmax", CE, True),
    ("roi_head.bbox_head.loss_bbox", "rcnn_reg", "box", "L1Loss", True),
]
CASCADE_RPN = [
    ("rpn_head.loss_cls", "rpn_cls", "cls_sigmoid", CE_SIG, True),
    ("rpn_head.loss_bbox", "rpn_reg", "box", "SmoothL1Loss", True),
]
CASCADE_STAGES = [row for i in range(3) for row in [
    (f"roi_head.bbox_head.{i}.loss_cls", f"rcnn{i}_cls", "cls_softmax", CE, True),
    (f"roi_head.bbox_head.{i}.loss_bbox", f"rcnn{i}_reg", "box", "SmoothL1Loss", True)]]
DEEPLAB_LIKE = [
    ("decode_head.loss_decode", "loss", "segmentation", CE, True),
    ("auxiliary_head.loss_decode", "aux", "segmentation", CE, True),
]

EXPECTED: dict[tuple[str, str], list[tuple[str, str, str, str, bool]]] = {
    ("mmdet", "faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py"): FASTER,
    ("mmdet", "faster_rcnn/faster-rcnn_r50_fpn_giou_1x_coco.py"): FASTER[:3] + [
        ("roi_head.bbox_head.loss_bbox", "rcnn_reg", "box", "GIoULoss", True)],
    ("mmdet", "mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py"): FASTER + [
        ("roi_head.mask_head.loss_mask", "mask", "mask", CE, True)],
    ("mmdet", "cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py"): CASCADE_RPN + CASCADE_STAGES,
    # three box stages, one mask head shared by them
    ("mmdet", "cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py"): CASCADE_RPN + CASCADE_STAGES + [
        ("roi_head.mask_head.loss_mask", "mask", "mask", CE, True)],
    ("mmdet", "rpn/rpn_r50_fpn_1x_coco.py"): FASTER[:2],
    ("mmdet", "retinanet/retinanet_r50_fpn_1x_coco.py"): [
        ("bbox_head.loss_cls", "cls", "cls_sigmoid", "FocalLoss", True),
        ("bbox_head.loss_bbox", "reg", "box", "L1Loss", True)],
    ("mmdet", "retinanet/retinanet_r18_fpn_1x_coco.py"): [
        ("bbox_head.loss_cls", "cls", "cls_sigmoid", "FocalLoss", True),
        ("bbox_head.loss_bbox", "reg", "box", "L1Loss", True)],
    ("mmdet", "fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py"): [
        ("bbox_head.loss_cls", "cls", "cls_sigmoid", "FocalLoss", True),
        ("bbox_head.loss_bbox", "reg", "box", "IoULoss", True),
        ("bbox_head.loss_centerness", "centerness", "score_bce", CE_SIG, True)],
    ("mmdet", "atss/atss_r50_fpn_1x_coco.py"): [
        ("bbox_head.loss_cls", "cls", "cls_sigmoid", "FocalLoss", True),
        ("bbox_head.loss_bbox", "reg", "box", "GIoULoss", True),
        ("bbox_head.loss_centerness", "centerness", "score_bce", CE_SIG, True)],
    ("mmdet", "gfl/gfl_r50_fpn_1x_coco.py"): [
        ("bbox_head.loss_cls", "cls", "cls_quality", "QualityFocalLoss", True),
        ("bbox_head.loss_dfl", "dfl", "distribution", "DistributionFocalLoss", False),
        ("bbox_head.loss_bbox", "reg", "box", "GIoULoss", True)],
    ("mmdet", "rtmdet/rtmdet_tiny_8xb32-300e_coco.py"): [
        ("bbox_head.loss_cls", "cls", "cls_quality", "QualityFocalLoss", True),
        ("bbox_head.loss_bbox", "reg", "box", "GIoULoss", True)],
    ("mmdet", "yolox/yolox_tiny_8xb8-300e_coco.py"): [
        ("bbox_head.loss_cls", "cls", "cls_quality", CE_SIG, True),
        ("bbox_head.loss_bbox", "reg", "box", "IoULoss", True),
        ("bbox_head.loss_obj", "obj", "score_bce", CE_SIG, True),
        ("bbox_head.loss_l1", "l1", "box", "L1Loss", False)],
    ("mmdet", "detr/detr_r50_8xb2-150e_coco.py"): [
        ("bbox_head.loss_cls", "cls", "cls_softmax", CE, False),
        ("bbox_head.loss_bbox", "reg", "box", "L1Loss", False),
        ("bbox_head.loss_iou", "iou", "box", "GIoULoss", False)],
    ("mmdet", "centernet/centernet_r18_8xb16-crop512-140e_coco.py"): [
        ("bbox_head.loss_center_heatmap", "center_heatmap", "center_heatmap", "GaussianFocalLoss", False),
        ("bbox_head.loss_wh", "wh", "box", "L1Loss", False),
        ("bbox_head.loss_offset", "offset", "box", "L1Loss", False)],
    ("mmseg", "deeplabv3plus/deeplabv3plus_r50-d8_4xb2-40k_cityscapes-512x1024.py"): DEEPLAB_LIKE,
    ("mmseg", "pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py"): DEEPLAB_LIKE,
    ("mmseg", "fcn/fcn_r50-d8_4xb2-40k_cityscapes-512x1024.py"): DEEPLAB_LIKE,
    ("mmseg", "ocrnet/ocrnet_hr18_4xb2-40k_cityscapes-512x1024.py"): [
        ("decode_head.0.loss_decode", "loss0", "segmentation", CE, True),
        ("decode_head.1.loss_decode", "loss1", "segmentation", CE, True)],
    ("mmseg", "segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py"): [
        ("decode_head.loss_decode", "loss", "segmentation", CE, True)],
    ("mmpose", "body_2d_keypoint/topdown_heatmap/coco/td-hm_res50_8xb64-210e_coco-256x192.py"): [
        ("head.loss", "loss", "heatmap", "KeypointMSELoss", True)],
    ("mmpose", "body_2d_keypoint/rtmpose/coco/rtmpose-m_8xb256-420e_coco-256x192.py"): [
        ("head.loss", "loss", "simcc", "KLDiscretLoss", False)],
    ("mmpose", "body_2d_keypoint/simcc/coco/simcc_res50_8xb64-210e_coco-256x192.py"): [
        ("head.loss", "loss", "simcc", "KLDiscretLoss", False)],
    ("mmpose", "body_2d_keypoint/topdown_regression/coco/td-reg_res50_rle-8xb64-210e_coco-256x192.py"): [
        ("head.loss", "loss", "keypoint_regression", "RLELoss", False)],
}


def load(library: str, relative: str) -> Config:
    return Config.fromfile(str(shipped(library, relative)))


@pytest.mark.parametrize(("library", "relative"), list(EXPECTED), ids=[r for _, r in EXPECTED])
def test_shipped_config_slots(library, relative):
    slots = discover_slots(load(library, relative))
    got = [(s.key, s.name, s.kind, s.loss_type, s.searchable) for s in slots]
    assert got == EXPECTED[(library, relative)]
    for s in slots:
        assert s.reason, s.key
        assert (s.branch_kind is not None) == s.searchable


# ----------------------------------------------------------------------------- build, forward, backward

import autoloss_worker.mmlab.registry  # noqa: E402,F401  (AutoLossGraph in the three registries)

CE_TREE = ["neg", ["mul", "y", ["log", "y_hat"]]]
# -(y log p + (1 - y) log(1 - p)): mmdet's sigmoid cross-entropy per class
BCE_TREE = ["neg", ["add", ["mul", "y", ["log", "y_hat"]], ["mul", ["add", "one", ["neg", "y"]], ["log", ["add", "one", ["neg", "y_hat"]]]]]]
NEG_LOG_IOU = ["neg", ["log", ["mul", "i", ["inv", "u"]]]]
HEATMAP_MSE = ["square", ["add", "y_hat", ["neg", "y"]]]
INPUTS = {"dense": ["y_hat", "y", "one"], "box": ["i", "u", "e", "one"]}
TREE_OF_KIND = {"cls_softmax": CE_TREE, "cls_sigmoid": BCE_TREE, "mask": CE_TREE, "segmentation": CE_TREE,
                "heatmap": HEATMAP_MSE, "box": NEG_LOG_IOU, "score_bce": CE_TREE,  # CE over (σ, 1 − σ) is BCE
                "cls_quality": BCE_TREE}  # BCE against the soft targets


def wire(slots):
    return {"v": 1, "branches": [{"name": s.name, "kind": s.branch_kind, "inputs": INPUTS[s.branch_kind],
                                  "tree": TREE_OF_KIND[s.kind]} for s in slots]}


# ResNet-50 stage widths -> ResNet-18's, where a neck or head takes the backbone's outputs.
R18_WIDTH = {256: 64, 512: 128, 1024: 256, 2048: 512}


def _shrink_resnet(cfg: Config) -> None:
    """ResNet-50 -> ResNet-18 (BasicBlock stages 4x narrower): the heads stay as configured."""
    model = cfg.model
    backbone = model.get("backbone", {})
    if not (str(backbone.get("type", "")).startswith("ResNet") and backbone.get("depth") == 50):
        return
    backbone["depth"] = 18
    neck = model.get("neck")
    if isinstance(neck, dict) and isinstance(neck.get("in_channels"), list):  # FPN: the heads see its outputs
        neck["in_channels"] = [R18_WIDTH[c] for c in neck["in_channels"]]
        return
    for key in ("decode_head", "auxiliary_head", "head"):  # heads on the backbone's own outputs
        for head in model.get(key) if isinstance(model.get(key), list) else [model.get(key)]:
            for name in ("in_channels", "c1_in_channels"):
                if isinstance(head, dict) and head.get(name) in R18_WIDTH:
                    head[name] = R18_WIDTH[head[name]]


def cpu_sized(cfg: Config) -> Config:
    """ResNet-18 for ResNet-50, BN for SyncBN (no process group here), fewer sampled RoIs: the
    same heads and losses, a cheaper step."""
    _shrink_resnet(cfg)
    for key in ("decode_head", "auxiliary_head"):  # mmseg heads: 512-channel ASPP/PSP convs -> 128
        for head in cfg.model.get(key) if isinstance(cfg.model.get(key), list) else [cfg.model.get(key)]:
            if isinstance(head, dict) and head.get("channels", 0) > 128:
                head["channels"] = 128

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "SyncBN":
                node["type"] = "BN"
            if node.get("type") == "RandomSampler" and "num" in node:
                node["num"] = min(node["num"], 64)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(cfg.model)
    return cfg


def build(cfg: Config, library: str):
    from mmengine.registry import DefaultScope

    registry = importlib.import_module(f"{library}.registry").MODELS
    with DefaultScope.overwrite_default_scope(library):
        torch.manual_seed(0)
        model = registry.build(copy.deepcopy(cfg.model))
    return model.train()


def det_batch(masks: bool, n: int = 2, size: int = 128):
    import numpy as np
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    gen = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[10.0, 12.0, 70.0, 80.0], [50.0, 40.0, 120.0, 110.0], [20.0, 70.0, 50.0, 100.0]])
    samples = []
    for _ in range(n):
        meta = dict(img_shape=(size, size), pad_shape=(size, size), batch_input_shape=(size, size), ori_shape=(size, size),
                    scale_factor=(1.0, 1.0))
        gt = InstanceData(bboxes=boxes.clone(), labels=torch.tensor([1, 3, 0]))
        if masks:
            m = np.zeros((len(boxes), size, size), dtype=np.uint8)
            for j, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
                m[j, y0:y1, x0:x1] = 1
            gt.masks = BitmapMasks(m, size, size)
        samples.append(DetDataSample(metainfo=meta, gt_instances=gt))
    return torch.randn(n, 3, size, size, generator=gen), samples


def seg_batch(num_classes: int, n: int = 2, size: int = 64):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    gen = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(n):
        labels = torch.randint(0, num_classes, (1, size, size), generator=gen)
        labels[:, :4] = 255  # some ignored pixels
        meta = dict(img_shape=(size, size), pad_shape=(size, size), ori_shape=(size, size))
        samples.append(SegDataSample(metainfo=meta, gt_sem_seg=PixelData(data=labels)))
    return torch.randn(n, 3, size, size, generator=gen), samples


def pose_batch(k: int, n: int = 2, size: tuple[int, int] = (128, 96)):
    from mmengine.structures import InstanceData, PixelData
    from mmpose.structures import PoseDataSample

    gen = torch.Generator().manual_seed(0)
    h, w = size[0] // 4, size[1] // 4
    samples = []
    for _ in range(n):
        weights = (torch.rand(1, k, generator=gen) > 0.3).float()
        samples.append(PoseDataSample(metainfo=dict(input_size=(size[1], size[0])),
                                      gt_fields=PixelData(heatmaps=torch.rand(k, h, w, generator=gen)),
                                      gt_instance_labels=InstanceData(keypoint_weights=weights)))
    return torch.randn(n, 3, *size, generator=gen), samples


def batch_for(library: str, cfg: Config):
    if library == "mmdet":
        return det_batch(masks=any("mask_head" in k for k in _keys(cfg)))
    if library == "mmseg":
        head = cfg.model.decode_head
        head = head[-1] if isinstance(head, list) else head
        return seg_batch(head.num_classes)
    return pose_batch(cfg.model.head.out_channels)


def _keys(cfg: Config) -> list[str]:
    return [s.key for s in discover_slots(cfg)]


def losses_of(model, library: str, batch) -> dict[str, torch.Tensor]:
    inputs, samples = batch
    torch.manual_seed(1)  # samplers draw: the same draw for both models of a comparison
    out = model.loss(inputs, samples)
    return {k: (sum(v) if isinstance(v, list) else v) for k, v in out.items() if "loss" in k}


SEARCHABLE = [c for c, rows in EXPECTED.items() if any(r[4] for r in rows)]


@pytest.mark.parametrize(("library", "relative"), SEARCHABLE, ids=[r for _, r in SEARCHABLE])
def test_autoloss_graph_in_every_searchable_slot_trains(library, relative):
    cfg = cpu_sized(load(library, relative))
    searchable = [s for s in discover_slots(cfg) if s.searchable]
    rewritten = rewrite_config(cfg, wire(searchable), branch_slots(searchable), proxy=None)
    model = build(rewritten, library)
    n_graphs = sum(type(m).__name__ == "AutoLossGraph" for m in model.modules())
    # a slot is built once per use: Cascade Mask R-CNN's one mask_head config serves its 3 stages
    assert n_graphs == len(searchable) + (2 if relative.startswith("cascade_rcnn/cascade-mask") else 0)
    losses = losses_of(model, library, batch_for(library, cfg))
    total = sum(losses.values())
    assert torch.isfinite(total), losses
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


# ----------------------------------------------------------------------------- equal to the library's own loss

# (config, {slot name: (loss key in the model's output, parameter whose gradient only that loss
#  reaches)}, factor: graph value = factor × library value). One pair of models per config.
EQUIVALENT = [
    (("mmdet", "faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py"),
     {"rcnn_cls": ("loss_cls", "roi_head.bbox_head.fc_cls.weight"), "rpn_cls": ("loss_rpn_cls", "rpn_head.rpn_cls.weight")}, 1.0),
    (("mmdet", "fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py"), {"reg": ("loss_bbox", "bbox_head.conv_reg.weight"),
                                                              "centerness": ("loss_centerness", "bbox_head.conv_centerness.weight")}, 1.0),
    # YOLOX: sigmoid CE (sum) of the positives against one-hot × IoU rows as BCE; objectness (sum, every prior) as CE over (σ, 1 − σ)
    (("mmdet", "yolox/yolox_tiny_8xb8-300e_coco.py"), {"cls": ("loss_cls", "bbox_head.multi_level_conv_cls.0.weight"),
                                                       "obj": ("loss_obj", "bbox_head.multi_level_conv_obj.0.weight")}, 1.0),
    (("mmseg", "deeplabv3plus/deeplabv3plus_r50-d8_4xb2-40k_cityscapes-512x1024.py"),
     {"loss": ("decode.loss_", "decode_head.conv_seg.weight"), "aux": ("aux.loss_", "auxiliary_head.conv_seg.weight")}, 1.0),
    # KeypointMSELoss averages over the K joints too; the paper's branch value does not (docs/mmlab.md)
    (("mmpose", "body_2d_keypoint/topdown_heatmap/coco/td-hm_res50_8xb64-210e_coco-256x192.py"),
     {"loss": ("loss_kpt", "head.final_layer.weight")}, 17.0),
]


def _pick(losses: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    found = [v for k, v in losses.items() if k == key or (key.endswith("_") and k.startswith(key))]
    assert len(found) == 1, (key, sorted(losses))
    return found[0]


@pytest.mark.parametrize(("config", "checks", "factor"), EQUIVALENT, ids=[c[1].split("/")[-1] for c, *_ in EQUIVALENT])
def test_graph_equal_to_the_config_loss_gives_its_values_and_gradients(config, checks, factor):
    """CE (softmax R-CNN, segmentation), BCE (sigmoid RPN; YOLOX's soft rows; FCOS centerness and YOLOX objectness as CE over
    (σ, 1 − σ)), -log IoU (FCOS) and squared error (heatmaps) as graphs: the same losses and gradients as the config's modules,
    same weights."""
    library, relative = config
    cfg = cpu_sized(load(library, relative))
    slots = [s for s in discover_slots(cfg) if s.name in checks]
    own = build(cfg, library)
    ours = build(rewrite_config(cfg, wire(slots), branch_slots(slots, weight=lambda s: s.loss_weight), proxy=None), library)
    ours.load_state_dict(own.state_dict())
    batch = batch_for(library, cfg)
    values: dict[str, list[torch.Tensor]] = {name: [] for name in checks}
    grads: dict[str, list[torch.Tensor]] = {name: [] for name in checks}
    for model in (own, ours):
        losses = losses_of(model, library, batch)
        params = dict(model.named_parameters())
        for name, (loss_key, param) in checks.items():
            value = _pick(losses, loss_key)
            (grad,) = torch.autograd.grad(value, params[param], retain_graph=True)
            values[name].append(value.detach())
            grads[name].append(grad)
    for name in checks:
        assert torch.isfinite(values[name][0]) and values[name][0] > 0, name
        torch.testing.assert_close(values[name][1], factor * values[name][0], rtol=1e-4, atol=1e-6, msg=name)
        torch.testing.assert_close(grads[name][1], factor * grads[name][0], rtol=1e-3, atol=1e-6, msg=name)


# ----------------------------------------------------------------------------- the det task on Cascade R-CNN

CASCADE = ("mmdet", "cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py")
GIOU = dict(type="GIoULoss", loss_weight=10.0)  # the paper's regression weight, as the det task's slots


def _cascade_layout(cfg: Config):
    from autoloss_worker.mmlab.det_layout import detector_layout
    from autoloss_worker.tasks.det import BRANCHES

    return detector_layout("det", cfg, BRANCHES)


def _ce_giou_decoded(cfg: Config) -> Config:
    """The config with mmdet's own softmax CrossEntropyLoss and GIoULoss on decoded boxes in every
    slot the det task searches: what the baseline graphs (CE, 1 − GIoU) stand for."""
    cfg = copy.deepcopy(cfg)
    for head in [cfg.model.rpn_head, *cfg.model.roi_head.bbox_head]:
        head.loss_cls = dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0)
        head.loss_bbox = dict(GIOU)
        head.reg_decoded_bbox = True
    return cfg


def test_det_layout_of_shipped_cascade_rcnn_shares_the_rcnn_branches_across_its_stages():
    layout = _cascade_layout(load(*CASCADE))
    assert list(layout.branches) == ["rpn_cls", "rpn_reg", "rcnn_cls", "rcnn_reg"]
    assert [(s.name, s.key, s.loss_weight) for s in layout.slots] == [
        ("rpn_cls", "rpn_head.loss_cls", 1.0), ("rpn_reg", "rpn_head.loss_bbox", 10.0),
        *[row for k in range(3) for row in [("rcnn_cls", f"roi_head.bbox_head.{k}.loss_cls", 1.0),
                                             ("rcnn_reg", f"roi_head.bbox_head.{k}.loss_bbox", 10.0)]]]


def test_cascade_rcnn_trains_with_the_searched_graphs_in_every_stage_and_ce_giou_equal_mmdets():
    """The det task's baseline graphs in the shipped Cascade R-CNN (ResNet-18, CPU-sized): every
    stage's box head holds AutoLossGraph, every stage's losses are finite with finite gradients,
    and they equal the same model with mmdet's CrossEntropyLoss / GIoULoss on decoded boxes in those
    slots (same weights, same batch, same sampler draws), stage weights applied by mmdet alike."""
    from autoloss_worker.tasks.det import baseline_wire

    cfg = cpu_sized(load(*CASCADE))
    layout = _cascade_layout(cfg)
    own = build(_ce_giou_decoded(cfg), "mmdet")
    ours = build(rewrite_config(cfg, baseline_wire(), layout.slots, proxy=None), "mmdet")
    ours.load_state_dict(own.state_dict())
    stages = ours.roi_head.bbox_head
    assert len(stages) == 3
    for head in stages:
        assert type(head.loss_cls).__name__ == type(head.loss_bbox).__name__ == "AutoLossGraph"
        assert head.loss_cls.branch.name == "rcnn_cls" and head.loss_bbox.branch.name == "rcnn_reg"
        assert head.reg_decoded_bbox and not head.loss_cls.use_sigmoid
    batch = det_batch(masks=False)
    theirs, mine = losses_of(own, "mmdet", batch), losses_of(ours, "mmdet", batch)
    stage_keys = {f"s{k}.{name}" for k in range(3) for name in ("loss_cls", "loss_bbox")}
    assert stage_keys | {"loss_rpn_cls", "loss_rpn_bbox"} <= set(mine) and set(mine) == set(theirs)
    for key in mine:
        assert torch.isfinite(mine[key]) and float(mine[key].detach()) > 0, key
        torch.testing.assert_close(mine[key], theirs[key], rtol=2e-4, atol=1e-6, msg=key)
    sum(mine.values()).backward()
    grads = {name: p.grad for name, p in ours.named_parameters() if p.grad is not None}
    for k in range(3):  # each stage's own fc_cls / fc_reg got a gradient from its own losses
        for layer in ("fc_cls", "fc_reg"):
            grad = grads[f"roi_head.bbox_head.{k}.{layer}.weight"]
            assert torch.isfinite(grad).all() and grad.abs().sum() > 0, (k, layer)
