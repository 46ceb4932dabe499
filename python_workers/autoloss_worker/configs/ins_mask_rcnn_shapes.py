# A small Mask R-CNN on the generated shapes data (COCO format, instance masks as RLE), for proxy
# training on a CPU.
#
# Plain MMDetection 3.x config: the shipped Faster R-CNN (`det_faster_rcnn_shapes.py`: backbone,
# FPN, RPN, box head, data, schedule) plus a mask head, the way mmdet's own mask-rcnn configs
# extend their faster-rcnn bases. The mask head is small on purpose: RoIs pooled to 7 x 7, two
# 64-channel convolutions, one deconvolution to 14 x 14 masks (objects are 8-64 px here, so mmdet's
# usual 28 x 28 would mostly resample the same pixels). The losses are mmdet's own; autoloss
# replaces the Faster R-CNN four and `roi_head.mask_head.loss_mask` (autoloss_worker.mmlab.rewrite).

_base_ = ['./det_faster_rcnn_shapes.py']

mask_size = 14

model = dict(
    type='MaskRCNN',
    roi_head=dict(
        mask_roi_extractor=dict(
            type='SingleRoIExtractor', roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=1),
            out_channels=64, featmap_strides=[4, 8, 16], finest_scale=28),
        mask_head=dict(
            type='FCNMaskHead', num_convs=2, roi_feat_size=7, in_channels=64, conv_out_channels=64,
            num_classes=4, class_agnostic=False,
            loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))),
    train_cfg=dict(rcnn=dict(mask_size=mask_size)),
    test_cfg=dict(rcnn=dict(mask_thr_binary=0.5)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),  # RLE -> BitmapMasks (poly2mask)
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_evaluator = dict(metric=['bbox', 'segm'])
test_evaluator = dict(metric=['bbox', 'segm'])
