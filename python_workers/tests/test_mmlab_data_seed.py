"""Held-out data for the MMLab tasks: a config on the generated shapes data reports the seed it is
drawn from, and the option ``data_seed`` redraws train, val and test data from another seed (what
the search's held-out trainings set), while a config on other data is left alone and refused the
option with a clear error."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("mmdet", reason="MMDetection is not installed (scripts/setup-mmlab.sh)")

from mmengine.config import Config  # noqa: E402

from autoloss_worker.mmlab.shapes_data import ensure_shapes_coco, reseed_shapes_data, shapes_seed_of  # noqa: E402
from autoloss_worker.task_jobs import task_info_job  # noqa: E402
from autoloss_worker.tasks import get_task  # noqa: E402


def _config(root: str) -> Config:
    """The data part of a shipped config, on ``root``."""
    return Config(dict(
        train_dataloader=dict(dataset=dict(data_root=root + "/", ann_file="train.json", data_prefix=dict(img="train/"))),
        val_dataloader=dict(dataset=dict(data_root=root + "/", ann_file="val.json", data_prefix=dict(img="val/"))),
        val_evaluator=dict(type="CocoMetric", ann_file=root + "/val.json", metric=["bbox"]),
        test_evaluator=[dict(type="CocoMetric", ann_file=root + "/val.json"), dict(type="Other", ann_file="/elsewhere/val.json")],
        model=dict(type="X")))


def test_a_config_on_shapes_data_is_redrawn_from_another_seed(tmp_path):
    root = ensure_shapes_coco(n_train=4, n_val=2, size=32, num_classes=2, seed=0, cache=tmp_path)
    cfg = _config(root)
    assert shapes_seed_of(cfg) == 0
    other = reseed_shapes_data(cfg, 7)
    new = str(tmp_path / "n4-2_s32_c2_seed7")
    assert other.train_dataloader.dataset.data_root == new + "/"
    assert other.val_dataloader.dataset.data_root == new + "/"
    assert other.val_evaluator.ann_file == new + "/val.json"
    assert other.test_evaluator[0].ann_file == new + "/val.json"
    assert other.test_evaluator[1].ann_file == "/elsewhere/val.json", "a path outside the shapes directory stays"
    assert shapes_seed_of(other) == 7
    assert cfg.val_evaluator.ann_file == root + "/val.json", "the original config is not changed"
    # same sizes and classes, other images
    before, after = (json.loads((p / "val.json").read_text()) for p in (tmp_path / "n4-2_s32_c2_seed0", tmp_path / "n4-2_s32_c2_seed7"))
    assert len(before["images"]) == len(after["images"]) == 2 and before["categories"] == after["categories"]
    assert before["annotations"] != after["annotations"]


def test_a_config_on_other_data_has_no_data_seed_and_refuses_one(tmp_path):
    cfg = _config(str(tmp_path / "my_coco"))
    assert shapes_seed_of(cfg) is None
    with pytest.raises(ValueError, match=r"option data_seed: the config does not train on autoloss's generated shapes data"):
        reseed_shapes_data(cfg, 7)


def test_the_det_task_reports_its_data_seed_and_trains_held_out_runs_on_redrawn_data(tmp_path):
    info = task_info_job({"task": "det"})
    assert info["dataSeed"] == 0, "the shipped det config is on shapes data drawn from seed 0"
    task = get_task("det", data_seed=3)
    assert task.data_seed() == 3
    cfg = task.proxy_config()
    assert cfg.train_dataloader.dataset.data_root.rstrip("/").endswith("_seed3")
    assert cfg.val_evaluator.ann_file.endswith("_seed3/val.json")
    assert get_task("det").proxy_config().val_evaluator.ann_file.endswith("_seed0/val.json")
