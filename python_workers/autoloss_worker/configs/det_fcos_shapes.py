# A small FCOS on the generated shapes data (COCO format): the shipped anchor-free one-stage detector
# of the det task, with three searchable slots (`make search TASK=det
# CONFIG=python_workers/autoloss_worker/configs/det_fcos_shapes.py`).
#
# Plain MMDetection 3.x config on the RetinaNet config (`_base_`: its data, pipelines, evaluator,
# optimiser, schedule, backbone -- so the same shapes-pretrained checkpoint -- and FPN on strides
# 4, 8, 16), the detector and head replaced: an FCOSHead of
# two 64-channel convolutions per branch in mmdet's "tricks" form (norm_on_bbox, centerness on the
# regression branch, centre sampling, GIoU; `fcos_r50-caffe_fpn_gn-head-center-normbbox-centeronreg-
# giou_1x_coco.py`). Regress ranges are 4x each level's stride (mmdet's are 8x on strides 8-128):
# the shapes are 8-64 px, so a point's largest distance to its box edge is at most ~40 px, and 8x
# would leave the stride-16 level empty. Losses: sigmoid FocalLoss (γ = 2, α = 0.25), GIoU on the
# decoded distances and sigmoid BCE for centerness; all are graphs of the search space, so the det
# task's baseline on this config is the config's own losses. autoloss replaces
# `bbox_head.loss_cls` (branch `cls`), `bbox_head.loss_bbox` (`reg`) and
# `bbox_head.loss_centerness` (`centerness`); `autoloss slots --config` lists them.

_base_ = 'det_retinanet_shapes.py'

# The proxy this config needs (autoloss reads it; mmengine ignores it): det's default 150
# iterations, not the RetinaNet config's 450. The baseline's bbox mAP (seed 0, shapes-pretrained
# backbone, one torch thread, 2 trainings side by side on 2 cores): 0.234 after 150 iterations
# (46 s), 0.301 after 300 (89 s), 0.327 after 450 (129 s), 0.320 after 750 (195 s); on seeds 1-3,
# 0.153 after 150 and 0.324 after 750 (bench/results/fidelity-det-fcos.json: the 150-iteration
# proxy ranks a 14-loss panel with Kendall tau 0.71 against 750 iterations). GN, centre
# sampling and centerness let it learn early; RetinaNet's 0.01-prior sigmoid head with MaxIoU
# anchors scores 0.003 at 150.
autoloss_proxy = dict(iterations=150)

model = dict(
    type='FCOS',
    bbox_head=dict(
        _delete_=True, type='FCOSHead', num_classes=4, in_channels=64, stacked_convs=2, feat_channels=64,
        strides=[4, 8, 16], regress_ranges=((-1, 16), (16, 32), (32, 1e8)),
        norm_on_bbox=True, centerness_on_reg=True, center_sampling=True, center_sample_radius=1.5,
        conv_bias=True,
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=1.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    # FCOS assigns by its regress ranges and centre sampling: no assigner or sampler
    train_cfg=None)
