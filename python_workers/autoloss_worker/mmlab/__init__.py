"""MMLab adapters: search losses inside unchanged MMDetection, MMPose and MMSegmentation configs.

    from autoloss_worker.mmlab.rewrite import rewrite_config, train_proxy
    cfg = rewrite_config(Config.fromfile(path), loss_wire)    # AutoLossGraph at each searched key
    result = train_proxy(cfg, work_dir)                       # {"metric", "value", "invalid", ...}

Modules: `inputs` (raw predictions -> graph inputs, torch only), `branch` (which wire branch a
config names), `mmdet_loss` (`AutoLossGraph` for mmdet), `registry` (explicit registration + a
self-check; what `custom_imports` names), `rewrite` (configs, proxy schedule, in-process training),
`export` (a searched loss as a config fragment for the library's own tools/train.py),
`shapes_data` (the generated data as COCO, cached), `det_samples` (the `det`/`ins` tasks'
loss-rejection samples from a random Faster/Mask R-CNN; the tasks are `autoloss_worker.tasks.det`/`ins`),
`mmseg_samples` / `mmpose_samples` (the same for the `mmseg` / `mmpose` tasks), `det_layout` /
`seg_layout` / `pose_layout` (which slots of a config the `det` / `mmseg` / `mmpose` tasks search). Nothing here imports an MMLab library until a
module that needs it is imported, so the worker runs without them.
"""
