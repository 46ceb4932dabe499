# A small Cascade R-CNN on the generated shapes data (COCO format): the shipped cascade of the det
# task (`make search TASK=det CONFIG=python_workers/autoloss_worker/configs/det_cascade_rcnn_shapes.py`).
#
# Plain MMDetection 3.x config. Everything but the RoI head is the Faster R-CNN config's (`_base_`):
# data, pipelines, evaluator, schedule, the backbone (hence its shapes-pretrained checkpoint,
# autoloss_worker.pretrain), FPN and RPN. The RoI head is mmdet's Cascade R-CNN at the base config's
# size: three stages of the half-width box head, positives at IoU 0.5 / 0.6 / 0.7, each stage
# regressing class-agnostic deltas with its own (tighter) target stds and weighted 1 / 0.5 / 0.25,
# as `cascade-rcnn_r50_fpn_1x_coco.py`; 64 sampled RoIs per stage as the base config's R-CNN.
# autoloss searches det's four branches here: rpn_cls, rpn_reg, and rcnn_cls / rcnn_reg shared by
# the three stages (`roi_head.bbox_head.<k>.loss_cls` / `.loss_bbox`, k = 0, 1, 2; docs/mmlab.md).

_base_ = 'det_faster_rcnn_shapes.py'

strides = [4, 8, 16]
num_classes = 4


def _box_head(stds):
    return dict(
        type='Shared2FCBBoxHead', in_channels=64, fc_out_channels=128, roi_feat_size=7, num_classes=num_classes,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=stds),
        reg_class_agnostic=True,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))


def _rcnn(iou):
    return dict(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=iou, neg_iou_thr=iou, min_pos_iou=iou,
                      match_low_quality=False, ignore_iof_thr=-1),
        sampler=dict(type='RandomSampler', num=64, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True),
        pos_weight=-1, debug=False)


model = dict(
    type='CascadeRCNN',
    roi_head=dict(
        _delete_=True,
        type='CascadeRoIHead',
        num_stages=3,
        stage_loss_weights=[1, 0.5, 0.25],
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor', roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=1),
            out_channels=64, featmap_strides=strides, finest_scale=28),
        bbox_head=[_box_head([0.1, 0.1, 0.2, 0.2]), _box_head([0.05, 0.05, 0.1, 0.1]),
                   _box_head([0.033, 0.033, 0.067, 0.067])]),
    train_cfg=dict(rcnn=[_rcnn(0.5), _rcnn(0.6), _rcnn(0.7)]))
del _box_head, _rcnn
