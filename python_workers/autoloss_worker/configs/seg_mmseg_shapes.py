# A small DeepLabV3+ on the generated shapes data, for proxy training on a CPU.
#
# Plain MMSegmentation 1.x config (`python tools/train.py seg_mmseg_shapes.py` trains it with
# autoloss_worker installed). Small on purpose: a ResNet-18 layout (V1c deep stem) at a quarter of
# the width with three stages, dilated to output stride 8, a DeepLabV3+ head (separable ASPP plus
# the stride-4 skip, the paper's seg proxy architecture), 64 x 64 images, 4 shape classes plus
# background. The loss is mmseg's CrossEntropyLoss; autoloss replaces it at
# `decode_head.loss_decode` (autoloss_worker.mmlab.rewrite, task `mmseg`).

default_scope = 'mmseg'

# Written once into ~/.cache/autoloss/shapes-coco/ (AUTOLOSS_DATA_CACHE overrides): RGB PNGs under
# train/ and val/, uint8 label PNGs (0 = background, 1..4 = category id) under train_seg/ and
# val_seg/. `__import__`, not an import statement: it keeps mmengine's config parser in its
# classic mode.
_shapes = __import__('autoloss_worker.mmlab.shapes_data', fromlist=['ensure_shapes_coco'])
data_root = _shapes.ensure_shapes_coco(n_train=256, n_val=64, size=64, num_classes=4, seed=0) + '/'
classes = ('background',) + _shapes.shapes_classes(4)
del _shapes
image_size = (64, 64)
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=image_size),
    pretrained=None,  # nothing can be downloaded here
    backbone=dict(
        type='ResNetV1c', depth=18, stem_channels=16, base_channels=16, num_stages=3,
        strides=(1, 2, 1), dilations=(1, 1, 2), out_indices=(0, 1, 2),  # strides 4, 8, 8
        norm_cfg=norm_cfg, norm_eval=False, style='pytorch', contract_dilation=True,
        # Pretrained on generated shapes data by autoloss (see det_faster_rcnn_shapes.py).
        init_cfg=dict(type='Pretrained', checkpoint='autoloss://shapes-pretrained')),
    decode_head=dict(
        type='DepthwiseSeparableASPPHead', in_channels=64, in_index=2, channels=32,
        dilations=(1, 2, 3, 4),  # an 8 x 8 feature map: the paper's (1, 12, 24, 36) would only see padding
        c1_in_channels=16, c1_channels=16, dropout_ratio=0.1, num_classes=len(classes), norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

dataset_type = 'BaseSegDataset'
metainfo = dict(classes=classes,
                palette=[[0, 0, 0], [217, 77, 64], [77, 191, 77], [64, 102, 217], [217, 191, 51]])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type, data_root=data_root, metainfo=metainfo, img_suffix='.png', seg_map_suffix='.png',
        reduce_zero_label=False, data_prefix=dict(img_path='train/', seg_map_path='train_seg/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, metainfo=metainfo, img_suffix='.png', seg_map_suffix='.png',
        reduce_zero_label=False, data_prefix=dict(img_path='val/', seg_map_path='val_seg/'),
        test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])  # reports aAcc, mIoU, mAcc in percent
test_evaluator = val_evaluator

# Iteration-based, SGD with poly decay as in the paper's seg proxy (lr 0.02 there, for batch 32 and
# a pretrained R50; the proxy schedule of autoloss_worker.mmlab.rewrite replaces the schedule).
max_iters = 1000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=0.0005), clip_grad=None)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)]

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0), dist_cfg=dict(backend='gloo'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'WARNING'
load_from = None
resume = False
randomness = dict(seed=0)
