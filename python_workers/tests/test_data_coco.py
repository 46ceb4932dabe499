"""COCO export: loads with pycocotools, round-trips masks, boxes, keypoints and the PNG files."""

import contextlib
import io
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from autoloss_worker.data.coco import to_coco, write_coco
from autoloss_worker.data.shapes import NUM_KEYPOINTS, generate_shapes


@pytest.fixture(scope="module")
def split():
    return generate_shapes(10, seed=11)


def _load(path):
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def test_written_json_loads_and_round_trips(split, tmp_path):
    json_path = write_coco(split, tmp_path, "eval", image_ids_start=100)
    assert json_path == tmp_path / "eval.json"
    coco = _load(json_path)
    assert sorted(coco.getImgIds()) == list(range(100, 110))
    assert sorted(coco.getCatIds()) == [1, 2, 3, 4]
    for cat in coco.loadCats(coco.getCatIds()):
        assert len(cat["keypoints"]) == NUM_KEYPOINTS
        assert all(1 <= a <= NUM_KEYPOINTS and 1 <= b <= NUM_KEYPOINTS for a, b in cat["skeleton"])

    for i, instances in enumerate(split.instances):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[100 + i]))
        assert len(anns) == len(instances)
        for ann, inst in zip(sorted(anns, key=lambda a: a["id"]), instances):
            assert ann["category_id"] == inst.category
            assert np.array_equal(coco.annToMask(ann).astype(bool), inst.mask)
            assert np.array_equal(mask_utils.decode(ann["segmentation"]).astype(bool), inst.mask)
            x0, y0, x1, y1 = inst.box
            assert ann["bbox"] == [x0, y0, x1 - x0, y1 - y0]
            assert ann["area"] == inst.mask.sum() and ann["iscrowd"] == 0
            assert np.array_equal(np.array(ann["keypoints"], dtype=np.float32).reshape(-1, 3), inst.keypoints)
            assert ann["num_keypoints"] == int((inst.keypoints[:, 2] > 0).sum())


def test_written_pngs_match_arrays(split, tmp_path):
    write_coco(split, tmp_path, "train")
    meta = json.loads((tmp_path / "train.json").read_text())
    for i, entry in enumerate(meta["images"]):
        rgb = np.asarray(Image.open(tmp_path / "train" / entry["file_name"]))
        assert rgb.shape == (64, 64, 3) and (entry["width"], entry["height"]) == (64, 64)
        expected = np.round(split.images[i].transpose(1, 2, 0) * 255.0).astype(np.uint8)
        assert np.array_equal(rgb, expected)
        seg = np.asarray(Image.open(tmp_path / "train_seg" / entry["file_name"]))
        assert seg.dtype == np.uint8 and np.array_equal(seg, split.semantic[i])


def test_annotation_ids_are_unique_and_start_at_one(split):
    gt = to_coco(split)
    ids = [a["id"] for a in gt["annotations"]]
    assert ids == list(range(1, sum(len(x) for x in split.instances) + 1))
    json.dumps(gt)  # must be JSON-serialisable as is (RLE counts are str)
