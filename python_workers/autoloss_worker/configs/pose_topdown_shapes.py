# A small top-down heatmap pose estimator (SimpleBaseline layout) on the generated shapes data,
# for proxy training on a CPU.
#
# Plain MMPose 1.x config (`python tools/train.py pose_topdown_shapes.py` trains it with
# autoloss_worker installed). Small on purpose: a ResNet-18 layout at a quarter of the width with
# three stages (output stride 16), two deconvolutions to 1/4 of the input, 64 x 64 crops and
# 16 x 16 heatmaps. Every object is a "person": the ground-truth boxes stand in for the detector
# (bbox_file=None), as in the paper's SimpleBaseline proxy. The loss is mmpose's KeypointMSELoss
# with target weights (visible joints only); autoloss replaces it at `head.loss`
# (autoloss_worker.mmlab.rewrite, task `mmpose`).

default_scope = 'mmpose'

# Written once into ~/.cache/autoloss/shapes-coco/ (AUTOLOSS_DATA_CACHE overrides): COCO keypoint
# annotations (5 keypoints per object, categories 1..4). `__import__`, not an import statement: it
# keeps mmengine's config parser in its classic mode.
_shapes = __import__('autoloss_worker.mmlab.shapes_data', fromlist=['ensure_shapes_coco'])
data_root = _shapes.ensure_shapes_coco(n_train=256, n_val=64, size=64, num_classes=4, seed=0) + '/'
del _shapes

# Every class has K = 5 keypoints (4 extreme or corner points, then the centre) and one sigma
# vector (autoloss_worker.data.shapes.KEYPOINT_SIGMAS). Which point is "left" depends on the class
# (a disc's 2nd point is its right extreme, a triangle's its right vertex, a square's its top-right
# corner), so no horizontal flip here: one swap table cannot serve every class.
dataset_info = dict(
    dataset_name='autoloss_shapes',
    keypoint_info={
        0: dict(name='point_1', id=0, color=[255, 128, 0], type='', swap=''),
        1: dict(name='point_2', id=1, color=[0, 255, 0], type='', swap=''),
        2: dict(name='point_3', id=2, color=[51, 153, 255], type='', swap=''),
        3: dict(name='point_4', id=3, color=[255, 51, 255], type='', swap=''),
        4: dict(name='centre', id=4, color=[255, 255, 255], type='', swap=''),
    },
    skeleton_info={
        0: dict(link=('point_1', 'centre'), id=0, color=[255, 128, 0]),
        1: dict(link=('point_2', 'centre'), id=1, color=[0, 255, 0]),
        2: dict(link=('point_3', 'centre'), id=2, color=[51, 153, 255]),
        3: dict(link=('point_4', 'centre'), id=3, color=[255, 51, 255]),
    },
    joint_weights=[1.0, 1.0, 1.0, 1.0, 1.0],
    sigmas=[0.10, 0.10, 0.10, 0.10, 0.08])

codec = dict(type='MSRAHeatmap', input_size=(64, 64), heatmap_size=(16, 16), sigma=1)

model = dict(
    type='TopdownPoseEstimator',
    data_preprocessor=dict(
        type='PoseDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(
        type='ResNet', depth=18, stem_channels=16, base_channels=16, num_stages=3, strides=(1, 2, 2),
        dilations=(1, 1, 1), out_indices=(2,), norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
        # Pretrained on generated shapes data by autoloss (see det_faster_rcnn_shapes.py).
        init_cfg=dict(type='Pretrained', checkpoint='autoloss://shapes-pretrained')),
    head=dict(
        type='HeatmapHead', in_channels=64, out_channels=5, deconv_out_channels=(32, 32), deconv_kernel_sizes=(4, 4),
        loss=dict(type='KeypointMSELoss', use_target_weight=True), decoder=codec),
    test_cfg=dict(flip_test=False))

dataset_type = 'CocoDataset'
data_mode = 'topdown'
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale', padding=1.25),
    # Mild shift and scale; no rotation: the shapes world keeps objects within ±30° so that the
    # keypoint order stays unambiguous.
    dict(type='RandomBBoxTransform', shift_factor=0.1, scale_factor=(0.8, 1.2), rotate_prob=0.0),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale', padding=1.25),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='PackPoseInputs'),
]
train_dataloader = dict(
    batch_size=32, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type, data_root=data_root, data_mode=data_mode, metainfo=dataset_info, ann_file='train.json',
        data_prefix=dict(img='train/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=0, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, data_mode=data_mode, metainfo=dataset_info, ann_file='val.json',
        bbox_file=None, data_prefix=dict(img='val/'), test_mode=True, pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric', ann_file=data_root + 'val.json')  # OKS keypoint AP: coco/AP
test_evaluator = val_evaluator

# Adam with a warm-up, as SimpleBaseline (lr 5e-4 for batch 256 there; the proxy schedule of
# autoloss_worker.mmlab.rewrite replaces this schedule).
max_iters = 1000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=3e-3))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=25, start_factor=0.001, by_epoch=False),
    dict(type='CosineAnnealingLR', begin=25, end=max_iters, T_max=max_iters - 25, by_epoch=False),
]

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=max_iters, by_epoch=False),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='PoseVisualizationHook', enable=False))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0), dist_cfg=dict(backend='gloo'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='PoseLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
log_level = 'WARNING'
load_from = None
resume = False
randomness = dict(seed=0)
