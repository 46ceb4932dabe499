"""Segmentation metrics against hand-worked examples and independent per-class / per-pixel references."""

import itertools
import math

import numpy as np
import pytest

from autoloss_worker.metrics.segmentation import (
    boundaries,
    boundary_f1,
    confusion_matrix,
    default_boundary_px,
    mask_boundary_iou,
    segmentation_metrics,
    trimap_biou,
)

IGNORE = 255


# ----------------------------------------------------------------------------- independent references
# Written differently from the module: boolean masks per class, explicit pixel loops.


def reference_region(pred, target, num_classes, ignore=IGNORE):
    valid = target != ignore
    ious, accs, weights = [], [], []
    total = valid.sum()
    correct = 0
    for c in range(num_classes + 1):
        t = (target == c) & valid
        p = (pred == c) & valid
        inter, union = (t & p).sum(), (t | p).sum()
        correct += inter
        if union:
            ious.append(inter / union)
            weights.append(t.sum() / total)
        if t.sum():
            accs.append(inter / t.sum())
    return {
        "miou": np.mean(ious),
        "fwiou": float(np.dot(ious, weights)),
        "gacc": correct / total,
        "macc": np.mean(accs),
    }


def reference_edges(labels):
    """Pixel loop: a pixel is an edge if one of its (up to 8) in-image neighbours has another label."""
    n, h, w = labels.shape
    edges = np.zeros(labels.shape, dtype=bool)
    for b, y, x in itertools.product(range(n), range(h), range(w)):
        for dy, dx in itertools.product((-1, 0, 1), repeat=2):
            yy, xx = y + dy, x + dx
            if 0 <= yy < h and 0 <= xx < w and labels[b, yy, xx] != labels[b, y, x]:
                edges[b, y, x] = True
    return edges


def near(points, others, tol):
    """For each (b, y, x) in `points`: is some point of `others` in image b within chessboard `tol`?"""
    return [any(b == b2 and max(abs(y - y2), abs(x - x2)) <= tol for b2, y2, x2 in others) for b, y, x in points]


def reference_bf1(pred, target, num_classes, tol, ignore=IGNORE):
    pe, te = reference_edges(pred), reference_edges(target) & (target != ignore)
    scores = []
    for c in range(num_classes + 1):
        p_pts = list(zip(*np.nonzero(pe & (pred == c))))
        t_pts = list(zip(*np.nonzero(te & (target == c))))
        if not p_pts and not t_pts:
            continue
        precision = np.mean(near(p_pts, t_pts, tol)) if p_pts else 0.0
        recall = np.mean(near(t_pts, p_pts, tol)) if t_pts else 0.0
        scores.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    return np.mean(scores)


def reference_trimap(pred, target, num_classes, radius, ignore=IGNORE):
    """The band by its definition: the valid pixels within chessboard distance `radius` of a valid
    target edge pixel (edges from the pixel loop above), painted square by square."""
    valid = target != ignore
    band = np.zeros(target.shape, dtype=bool)
    for b, y, x in zip(*np.nonzero(reference_edges(target) & valid)):
        band[b, max(0, y - radius) : y + radius + 1, max(0, x - radius) : x + radius + 1] = True
    ignored = np.where(band & valid, target, ignore)
    return reference_region(pred, ignored, num_classes)["miou"]


def random_maps(rng, n, h, w, num_classes):
    # Blocky random labels, so there are regions and boundaries rather than pure salt-and-pepper.
    coarse = rng.integers(0, num_classes + 1, (n, h // 2, w // 2))
    target = np.kron(coarse, np.ones((1, 2, 2), dtype=np.int64))
    pred = target.copy()
    flip = rng.random(pred.shape) < 0.25
    pred[flip] = rng.integers(0, num_classes + 1, flip.sum())
    return pred, target


# ----------------------------------------------------------------------------- region metrics


def test_region_metrics_hand_worked():
    # 3 classes. Confusion (rows target, cols pred): [[1,1,0],[0,2,0],[1,0,1]]
    target = np.array([[0, 0, 1], [1, 2, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    cm = confusion_matrix(pred, target, num_classes=2)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    m = segmentation_metrics(pred, target, num_classes=2)
    # IoU = [1/3, 2/3, 1/2]; every class has 2 of 6 target pixels.
    assert m["miou"] == pytest.approx(0.5)
    assert m["fwiou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert m["gacc"] == pytest.approx(4 / 6)
    assert m["macc"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)


def test_absent_classes_are_excluded_but_hallucinated_ones_count():
    target = np.array([[0, 0, 1], [1, 2, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    m = segmentation_metrics(pred, target, num_classes=4)  # classes 3, 4 in neither: same numbers
    assert m["miou"] == pytest.approx(0.5) and m["macc"] == pytest.approx(2 / 3)
    pred_h = pred.copy()
    pred_h[0, 0] = 4  # class 4 predicted, absent from target: IoU 0 joins the mean, mAcc ignores it
    m = segmentation_metrics(pred_h, target, num_classes=4)
    assert m["miou"] == pytest.approx((0 + 2 / 3 + 1 / 2 + 0) / 4)
    assert m["macc"] == pytest.approx((0 + 1 + 1 / 2) / 3)


def test_ignore_index_pixels_are_skipped():
    target = np.array([[0, IGNORE, 1], [1, IGNORE, 1]])
    pred = np.array([[0, 1, 1], [0, 0, 1]])
    cm = confusion_matrix(pred, target, num_classes=1)
    assert cm.tolist() == [[1, 0], [1, 2]]
    assert segmentation_metrics(pred, target, 1)["gacc"] == pytest.approx(3 / 4)


def test_single_class_everywhere_and_one_pixel_object():
    target = np.zeros((1, 8, 8), dtype=np.int64)
    # All background, predicted right: region metrics perfect; no boundary anywhere -> BIoU/BF1 undefined.
    m = confusion_matrix(target, target, 3)
    assert m[0, 0] == 64 and m.sum() == 64
    with pytest.raises(ValueError, match="no boundaries"):
        trimap_biou(target, target, 3)
    with pytest.raises(ValueError, match="neither prediction nor target"):
        boundary_f1(target, target, 3)

    target[0, 3, 3] = 2  # a one-pixel object, missed by an all-background prediction
    pred = np.zeros_like(target)
    m = segmentation_metrics(pred, target, num_classes=3)
    assert m["miou"] == pytest.approx((63 / 64 + 0) / 2)
    assert m["gacc"] == pytest.approx(63 / 64)
    assert m["macc"] == pytest.approx((1 + 0) / 2)
    # Class 2's one edge pixel is missed (F1 0); the prediction has no edges, so background's 8 target
    # edge pixels are missed too (F1 0).
    assert m["bf1"] == pytest.approx(0.0)
    # Target edges = the 3x3 block around the pixel; r = 1 widens the band to 5x5 = 25 pixels.
    # Background: target 24, predicted 25, both 24 -> 24/25. Class 2: 0/1.
    assert m["biou"] == pytest.approx((24 / 25 + 0) / 2)


def test_region_metrics_match_reference_on_random_maps():
    rng = np.random.default_rng(0)
    for trial in range(20):
        num_classes = int(rng.integers(1, 5))
        pred, target = random_maps(rng, 3, 12, 12, num_classes)
        if trial % 2:
            target[rng.random(target.shape) < 0.1] = IGNORE
        got = segmentation_metrics(pred, target, num_classes)
        want = reference_region(pred, target, num_classes)
        for key in want:
            assert got[key] == pytest.approx(want[key]), (trial, key)


def test_rejects_bad_labels():
    good = np.zeros((4, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="pred has label 5"):
        confusion_matrix(good + 5, good, num_classes=4)
    with pytest.raises(ValueError, match="target has label 7"):
        confusion_matrix(good, good + 7, num_classes=4)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(good, good[:2], num_classes=4)
    with pytest.raises(ValueError, match="ignore_index"):
        confusion_matrix(good, good, num_classes=4, ignore_index=3)


# ----------------------------------------------------------------------------- boundaries


def test_boundaries_of_a_square():
    labels = np.zeros((6, 6), dtype=np.int64)
    labels[2:4, 2:4] = 1  # 2x2 square
    edges = boundaries(labels)
    # Both 2x2 square pixels (all touch background) and the 12-pixel ring around them; image border is no edge.
    expected = np.zeros((6, 6), dtype=bool)
    expected[1:5, 1:5] = True
    assert np.array_equal(edges, expected)
    wide = boundaries(labels, width=2)
    assert wide.all()  # every pixel of the 6x6 image is within 2 of a label change
    assert np.array_equal(boundaries(labels[None]), expected[None])


def test_boundaries_match_pixel_loop_and_do_not_cross_images():
    rng = np.random.default_rng(1)
    _, target = random_maps(rng, 3, 10, 10, 3)
    assert np.array_equal(boundaries(target), reference_edges(target))
    stacked = np.stack([np.zeros((5, 5), np.int64), np.ones((5, 5), np.int64)])
    assert not boundaries(stacked).any()


# 10x10, a 6x6 square of class 1 at rows/cols 2..7; the prediction is shifted right by one (cols 3..8).
SQUARE_T = np.zeros((1, 10, 10), dtype=np.int64)
SQUARE_T[0, 2:8, 2:8] = 1
SQUARE_P = np.zeros((1, 10, 10), dtype=np.int64)
SQUARE_P[0, 2:8, 3:9] = 1


def test_bf1_shifted_square_hand_worked():
    # Class 1 edges: the 20-pixel perimeters of both squares. Class 0 edges: the 28-pixel rings around
    # them (8x8 perimeters). Tolerance 1: every edge pixel has a partner one column away -> F1 = 1.
    assert boundary_f1(SQUARE_P, SQUARE_T, 1, tolerance=1) == pytest.approx(1.0)
    # Tolerance 0 (exact): class 1 perimeters share the top and bottom rows at cols 3..7 = 10 of 20
    # pixels; class 0 rings share rows 1 and 8 at cols 2..8 = 14 of 28. P = R = 1/2 for both.
    assert boundary_f1(SQUARE_P, SQUARE_T, 1, tolerance=0) == pytest.approx(0.5)
    assert boundary_f1(SQUARE_P, SQUARE_T, 1, tolerance=0) == pytest.approx(reference_bf1(SQUARE_P, SQUARE_T, 1, 0))


def test_trimap_biou_shifted_square_hand_worked():
    # radius 0: band = the 48 target edge pixels (20 perimeter + 28 ring).
    # Class 1: target 20, predicted 20 (14 on the perimeter, 6 on the ring's column 8), both 14 -> 14/26.
    # Class 0: target 28, predicted 28, both 48 - 26 = 22 -> 22/34.
    assert trimap_biou(SQUARE_P, SQUARE_T, 1, radius=0) == pytest.approx((14 / 26 + 22 / 34) / 2)
    # radius 1: band = everything but the 2x2 centre rows/cols 4..5 (96 pixels).
    # Class 1: target 32, predicted 32, both 30 - 4 = 26 -> 26/38. Class 0: 64, 64, 96 - 38 = 58 -> 58/70.
    assert trimap_biou(SQUARE_P, SQUARE_T, 1, radius=1) == pytest.approx((26 / 38 + 58 / 70) / 2)


def test_boundary_metrics_match_references_on_random_maps():
    rng = np.random.default_rng(2)
    for trial in range(6):
        num_classes = int(rng.integers(1, 4))
        pred, target = random_maps(rng, 2, 8, 8, num_classes)
        for tol in (0, 1, 2):
            assert boundary_f1(pred, target, num_classes, tolerance=tol) == pytest.approx(
                reference_bf1(pred, target, num_classes, tol)
            ), (trial, tol)
            assert trimap_biou(pred, target, num_classes, radius=tol) == pytest.approx(
                reference_trimap(pred, target, num_classes, tol)
            ), (trial, tol)


def test_boundary_metrics_perfect_and_bf1_with_ignore():
    rng = np.random.default_rng(3)
    pred, target = random_maps(rng, 2, 8, 8, 2)
    m = segmentation_metrics(target.copy(), target, 2)
    assert m["biou"] == 1.0 and m["bf1"] == 1.0
    target[:, 0, :] = IGNORE
    assert boundary_f1(pred, target, 2, tolerance=1) == pytest.approx(reference_bf1(pred, target, 2, 1))
    for radius in (0, 1, 2):
        assert trimap_biou(pred, target, 2, radius=radius) == pytest.approx(reference_trimap(pred, target, 2, radius))


def test_default_tolerance_follows_the_diagonal():
    assert default_boundary_px(64, 64) == 1  # 0.0075 * 90.5 = 0.68 -> at least 1 px
    assert default_boundary_px(512, 512) == 5  # = Auto Seg-Loss' 5 px on VOC-size images
    assert default_boundary_px(128, 128, frac=0.02) == round(0.02 * math.hypot(128, 128))


# ----------------------------------------------------------------------------- Cheng et al. Boundary IoU


def test_mask_boundary_iou_hand_worked():
    # d = max(1, round(0.02 * 14.1)) = 1: inner bands are the 20-pixel perimeters; they share 10.
    assert mask_boundary_iou(SQUARE_P[0] == 1, SQUARE_T[0] == 1) == pytest.approx(10 / 30)
    # The image border counts as outside: full 5x5 mask -> 16-pixel border band. With a hole in the
    # centre the band adds the hole's 8 neighbours: 16 / 24.
    full = np.ones((5, 5), dtype=bool)
    holed = full.copy()
    holed[2, 2] = False
    assert mask_boundary_iou(holed, full) == pytest.approx(16 / 24)
    assert math.isnan(mask_boundary_iou(np.zeros((4, 4), bool), np.zeros((4, 4), bool)))
