"""The pose proxy task: crops, heatmap targets and decoding, visibility weights, rejection, training."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from autoloss_worker.fastreject import check_loss
from autoloss_worker.tasks import elementwise, get_task
from autoloss_worker.tasks.losses import WEIGHT_KEY, branch_output, training_value
from autoloss_worker.tasks.pose import (
    PoseNet,
    decode_heatmaps,
    gaussian_heatmaps,
    heatmap_to_image,
    image_to_heatmap,
    single_object_ap,
)

torch.set_num_threads(1)

SMALL = {"train_images": 24, "eval_images": 16, "threads": 1}
MSE = {"loss": elementwise(lambda t: (t["y_hat"] - t["y"]) ** 2, mixes_samples=False)}


def test_coordinate_maps_are_inverse_and_follow_the_stride():
    boxes = np.array([[3.5, -2.0, 0.4], [10.0, 20.0, 1.5]])
    xy = np.array([[[7.0, 1.0], [3.5, -2.0]], [[12.0, 25.0], [10.0, 20.0]]])
    h = image_to_heatmap(xy, boxes)
    assert np.allclose(heatmap_to_image(h, boxes), xy)
    # Heatmap cell 0 is crop pixels [0, 4): its centre, crop coordinate 2, is x0 + 2·scale.
    assert np.allclose(heatmap_to_image(np.zeros((2, 1, 2)), boxes)[:, 0], boxes[:, :2] + 2 * boxes[:, 2:3])


def test_gaussian_peaks_at_its_centre_and_decodes_within_a_quarter_cell():
    centres = torch.tensor([[[5.0, 7.0], [3.3, 8.9], [10.6, 2.2], [6.49, 6.51]]], dtype=torch.float64)
    hm = gaussian_heatmaps(centres, 16, sigma=1.0)  # (1, 4, 16, 16)
    assert hm[0, 0, 7, 5] == 1.0 and hm[0, 0].max() == 1.0
    assert hm[0, 0, 7, 6] == pytest.approx(math.exp(-0.5))
    coords, maxval = decode_heatmaps(hm)
    assert torch.equal(coords[0, 0], torch.tensor([5.0, 7.0], dtype=torch.float64))  # exact centre: no offset
    assert (coords - centres).abs().max() <= 0.25 + 1e-12
    assert torch.allclose(coords[0, 1], torch.tensor([3.25, 8.75], dtype=torch.float64))  # argmax (3, 9), towards 4 and 8
    assert maxval[0, 0] == 1.0


def test_crops_resample_the_image_bilinearly_at_the_crop_pixel_centres():
    task = get_task("pose", **SMALL)
    crops = task.eval_crops
    split = task.eval_split()
    m = 3
    image_index = int(crops.image_ids[m]) - 1
    x0, y0, scale = crops.boxes[m]
    j = np.arange(task.options.crop) + 0.5
    # Continuous image coordinate c sits at pixel index c − 0.5 (pixel k covers [k, k+1)).
    rows, cols = np.meshgrid(y0 + j * scale - 0.5, x0 + j * scale - 0.5, indexing="ij")
    for channel in range(3):
        expected = ndimage.map_coordinates(split.images[image_index, channel], [rows, cols], order=1, mode="grid-constant", cval=0.0)
        assert np.allclose(crops.images[m, channel].numpy(), expected, atol=1e-5)


def test_targets_weights_and_decoding_agree_with_the_keypoints():
    crops = get_task("pose", **SMALL).eval_crops
    labelled = crops.keypoints[..., 2] > 0
    weights = crops.weights.numpy() > 0
    assert not (weights & ~labelled).any()  # unlabelled joints (v = 0) never count
    assert weights.mean() > 0.7
    coords, _ = decode_heatmaps(crops.heatmaps.double())
    xy = heatmap_to_image(coords.numpy(), crops.boxes)
    centres = image_to_heatmap(crops.keypoints[..., :2], crops.boxes)
    inside = weights & ((centres >= 0.5) & (centres <= 15 - 0.5)).all(-1)  # a full cell from the border
    error_cells = np.abs(xy - crops.keypoints[..., :2]).max(-1) / (4 * crops.boxes[:, 2:3])
    assert error_cells[inside].max() <= 0.25 + 1e-6


def test_perfect_heatmaps_score_full_marks():
    task = get_task("pose", **SMALL)
    for s in task.rejection_samples(5, 0):
        assert task.sample_metric({"loss": s.target.heatmaps}, s.target, "map") == 1.0
    assert single_object_ap(0.5) == 0.1 and single_object_ap(0.949) == 0.9 and single_object_ap(0.49) == 0.0


def test_joints_that_do_not_count_add_nothing_to_value_or_gradient():
    y_hat = torch.rand((2, 5, 4, 4), dtype=torch.float64, requires_grad=True)
    y = torch.rand((2, 5, 4, 4), dtype=torch.float64)
    weight = torch.ones((2, 5, 1, 1), dtype=torch.float64)
    weight[1, 3] = 0
    value = training_value(branch_output(MSE["loss"], {"y_hat": y_hat, "y": y, WEIGHT_KEY: weight}))
    expected = (((y_hat - y) ** 2).sum() - ((y_hat[1, 3] - y[1, 3]) ** 2).sum()) / (2 * 4 * 4)
    assert value.item() == pytest.approx(expected.item())
    value.backward()
    assert (y_hat.grad[1, 3] == 0).all() and (y_hat.grad[0, 3] != 0).all()


def test_model_predicts_heatmaps_at_a_quarter_of_the_crop():
    assert PoseNet(keypoints=5, width=4)(torch.zeros(2, 3, 64, 64)).shape == (2, 5, 16, 16)


def test_rejection_passes_mse_and_rejects_its_negation_at_paper_constants():
    task = get_task("pose", **SMALL)
    good = check_loss(task, MSE, "map")["loss"]
    bad = check_loss(task, {"loss": elementwise(lambda t: -((t["y_hat"] - t["y"]) ** 2))}, "map")["loss"]
    assert good.passed and good.score >= 0.6 and good.iterations == 500
    assert not bad.passed and not bad.invalid


def test_proxy_training_reports_map_and_stops_on_nan():
    task = get_task("pose", **SMALL)
    ok = task.proxy_train(MSE, seed=0, metric="map", budget=3)
    assert not ok.invalid and ok.iterations == 3 and set(ok.metrics) == {"map"} and 0.0 <= ok.target <= 1.0
    bad = task.proxy_train({"loss": elementwise(lambda t: t["y_hat"] * math.inf)}, seed=0, metric="map", budget=30)
    assert bad.invalid and bad.iterations == 1 and bad.metrics == {"map": 0.0}
