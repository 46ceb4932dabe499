# A small RetinaNet on the generated shapes data (COCO format): the shipped one-stage detector of
# the det task (`make search TASK=det CONFIG=python_workers/autoloss_worker/configs/det_retinanet_shapes.py`).
#
# Plain MMDetection 3.x config. Data, pipelines, evaluator, optimiser and schedule are the
# two-stage config's (`_base_`); the model is rebuilt: the same backbone (a ResNet-18 layout at a
# quarter of the width, so the same shapes-pretrained checkpoint) and FPN on three levels (strides
# 4, 8, 16), a RetinaHead with two 64-channel convolutions per branch and 6 anchors per position
# (sizes 12-48 px at stride 4, scaled per level; the shapes are 8-64 px). Its losses are RetinaNet's
# sigmoid FocalLoss (γ = 2, α = 0.25) and GIoU on decoded boxes (`reg_decoded_bbox=True`, weight 2
# as mmdet's ATSS/GIoU configs): both are graphs of the search space, so the det task's baseline
# on this config is the config's own losses. autoloss replaces `bbox_head.loss_cls` (branch `cls`)
# and `bbox_head.loss_bbox` (branch `reg`); `autoloss slots --config` lists them.

_base_ = 'det_faster_rcnn_shapes.py'

# The proxy schedule this config needs (autoloss reads it; mmengine ignores it). The sigmoid head
# starts from a 0.01 prior and learns later than the two-stage heads: the baseline's bbox mAP (seed
# 0) is 0.003 after the det task's default 150 iterations, 0.086 after 300, 0.136 after 450 and
# 0.280 after 750. At 150 every loss would score about 0. Explicit `iterations=` still wins.
autoloss_proxy = dict(iterations=450)

strides = [4, 8, 16]
model = dict(
    _delete_=True,
    type='RetinaNet',
    data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(
        type='ResNet', depth=18, base_channels=16, stem_channels=16, num_stages=3, strides=(1, 2, 2),
        dilations=(1, 1, 1), out_indices=(0, 1, 2),
        frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch',
        # the two-stage config's backbone, hence its shapes-pretrained checkpoint (autoloss_worker.pretrain)
        init_cfg=dict(type='Pretrained', checkpoint='autoloss://shapes-pretrained')),
    neck=dict(type='FPN', in_channels=[16, 32, 64], out_channels=64, num_outs=3),
    bbox_head=dict(
        type='RetinaHead', num_classes=4, in_channels=64, stacked_convs=2, feat_channels=64,
        anchor_generator=dict(type='AnchorGenerator', octave_base_scale=3, scales_per_octave=2,
                              ratios=[0.5, 1.0, 2.0], strides=strides),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0], target_stds=[0.1, 0.1, 0.2, 0.2]),
        reg_decoded_bbox=True,
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0, ignore_iof_thr=-1),
        sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1, debug=False),
    test_cfg=dict(nms_pre=300, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=50))
