"""OKS against a hand-computed case and COCOeval; keypoint mAP on perfect / perturbed predictions."""

import contextlib
import io
import math

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from autoloss_worker.data.coco import to_coco, write_coco
from autoloss_worker.data.shapes import KEYPOINT_SIGMAS, generate_shapes
from autoloss_worker.metrics.keypoints import keypoint_map, oks


def test_oks_hand_computed():
    gt = np.array([[10, 10, 2], [20, 10, 2], [20, 20, 1], [10, 20, 0], [15, 15, 2]], dtype=np.float64)
    # Offsets: (3, 4) -> d^2 25; (0, 0) -> 0; (1, 0) -> 1; k=3 unlabelled (ignored); (0, 2) -> 4.
    pred = np.array([[13, 14], [20, 10], [21, 20], [99, 99], [15, 17]], dtype=np.float64)
    sigmas = np.array([0.1, 0.1, 0.1, 0.1, 0.08])
    # e = d^2 / (2 * area * (2 sigma)^2), area 100: 2 * 100 * 0.04 = 8 and 2 * 100 * 0.0256 = 5.12.
    expected = (math.exp(-25 / 8) + 1.0 + math.exp(-1 / 8) + math.exp(-4 / 5.12)) / 4
    assert oks(pred, gt, area=100.0, sigmas=sigmas) == pytest.approx(expected)
    assert oks(gt, gt, area=100.0, sigmas=sigmas) == 1.0


def test_oks_errors():
    gt = np.zeros((5, 3))
    with pytest.raises(ValueError, match="no labelled keypoint"):
        oks(np.zeros((5, 2)), gt, area=10.0)
    with pytest.raises(ValueError, match="K = 5"):
        oks(np.zeros((4, 2)), gt, area=10.0)


def test_oks_agrees_with_cocoeval_compute_oks():
    split = generate_shapes(6, seed=5)
    gt = to_coco(split)
    rng = np.random.default_rng(0)
    preds = _predictions(gt, rng, noise_px=1.5)
    evaluator = _cocoeval(gt, preds)
    checked = 0
    for ann in gt["annotations"]:
        if ann["num_keypoints"] == 0:
            continue
        own = [p for p in preds if p["ann_id"] == ann["id"]][0]
        ious = evaluator.computeOks(ann["image_id"], ann["category_id"])  # (dets, gts), score-sorted
        dets = sorted(
            [p for p in preds if p["image_id"] == ann["image_id"] and p["category_id"] == ann["category_id"]],
            key=lambda p: -p["score"],
        )
        gts = [a for a in gt["annotations"] if a["image_id"] == ann["image_id"] and a["category_id"] == ann["category_id"]]
        want = ious[dets.index(own), gts.index(ann)]
        got = oks(np.array(own["keypoints"]).reshape(-1, 3), np.array(ann["keypoints"]).reshape(-1, 3), ann["area"])
        assert got == pytest.approx(want)
        checked += 1
    assert checked > 5


def _predictions(gt, rng, noise_px):
    preds = []
    for ann in gt["annotations"]:
        kp = np.array(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        kp[:, :2] += rng.normal(0.0, noise_px, (kp.shape[0], 2)) if noise_px else 0.0
        kp[:, 2] = 1.0
        preds.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "keypoints": kp.reshape(-1).tolist(),
                "score": float(rng.uniform(0.5, 1.0)),
                "ann_id": ann["id"],  # extra field, carried through loadRes unchanged
            }
        )
    return preds


def _cocoeval(gt_dict, preds):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_dict
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes([dict(p) for p in preds]), iouType="keypoints")
        ev.params.kpt_oks_sigmas = KEYPOINT_SIGMAS
        ev.evaluate()
    return ev


@pytest.fixture(scope="module")
def gt_split():
    return generate_shapes(24, seed=9)


def test_perfect_predictions_score_one(gt_split):
    gt = to_coco(gt_split)
    assert keypoint_map(gt, _predictions(gt, np.random.default_rng(1), noise_px=0.0)) == pytest.approx(1.0)


def test_perturbed_predictions_score_lower_and_monotonically(gt_split):
    gt = to_coco(gt_split)
    small = keypoint_map(gt, _predictions(gt, np.random.default_rng(2), noise_px=0.5))
    large = keypoint_map(gt, _predictions(gt, np.random.default_rng(2), noise_px=2.0))
    assert 0.0 <= large < small < 1.0
    assert keypoint_map(gt, []) == 0.0


def test_keypoint_map_equals_direct_cocoeval_on_written_files(gt_split, tmp_path):
    gt_dict = to_coco(gt_split)
    preds = _predictions(gt_dict, np.random.default_rng(3), noise_px=1.0)
    json_path = write_coco(gt_split, tmp_path, "val")
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(json_path))
        ev = COCOeval(coco, coco.loadRes([dict(p) for p in preds]), iouType="keypoints")
        ev.params.kpt_oks_sigmas = KEYPOINT_SIGMAS
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert keypoint_map(gt_dict, preds) == pytest.approx(ev.stats[0])
    assert 0.0 < ev.stats[0] < 1.0


def test_keypoint_map_does_not_mutate_inputs(gt_split):
    gt = to_coco(gt_split)
    preds = _predictions(gt, np.random.default_rng(4), noise_px=1.0)
    before = (repr(gt), repr(preds))
    keypoint_map(gt, preds)
    assert (repr(gt), repr(preds)) == before


def test_keypoint_map_without_labelled_ground_truth_raises(gt_split):
    gt = to_coco(gt_split)
    for ann in gt["annotations"]:
        ann["keypoints"] = [0.0] * len(ann["keypoints"])
        ann["num_keypoints"] = 0
    with pytest.raises(ValueError, match="no annotation with labelled keypoints"):
        keypoint_map(gt, [{"image_id": 1, "category_id": 1, "keypoints": [1.0] * 15, "score": 1.0}])
