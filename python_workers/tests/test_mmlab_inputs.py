"""MMLab adapters, torch-only parts: raw predictions -> graph inputs, and branch resolution.
Run: .venv/bin/python -m pytest -q python_workers/tests/test_mmlab_inputs.py"""

import pytest
import torch

from autoloss_worker.graph import GraphError
from autoloss_worker.mmlab.branch import resolve_branch
from autoloss_worker.mmlab.inputs import box_inputs, classification_inputs, mask_inputs, segmentation_inputs

torch.set_num_threads(1)


def test_box_inputs_match_hand_computed_areas():
    pred = torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 2.0, 2.0]])
    target = torch.tensor([[2.0, 1.0, 6.0, 5.0], [3.0, 4.0, 5.0, 7.0]])
    got = box_inputs(pred, target)
    # Pair 1 overlaps in a 2 x 3 patch: i = 6, u = 16 + 16 - 6 = 26, enclosing 6 x 5 = 30.
    # Pair 2 is disjoint: i = 0, u = 4 + 6 = 10, enclosing 5 x 7 = 35.
    assert got["i"].shape == (2, 1, 1, 1)
    assert got["i"].flatten().tolist() == [6.0, 0.0]
    assert got["u"].flatten().tolist() == [26.0, 10.0]
    assert got["e"].flatten().tolist() == [30.0, 35.0]


def test_box_inputs_gradient_flows_to_predicted_boxes():
    pred = torch.tensor([[0.0, 0.0, 4.0, 4.0]], requires_grad=True)
    got = box_inputs(pred, torch.tensor([[2.0, 1.0, 6.0, 5.0]]))
    got["i"].sum().backward()
    # i = (x1 - 2) * (y1 - 1) with x1 = y1 = 4: di/dx1 = 3, di/dy1 = 2, x0 and y0 are not binding.
    assert pred.grad.tolist() == [[0.0, 0.0, 3.0, 2.0]]


def test_softmax_classification_one_hot_with_background_last_and_ignored_rows():
    scores = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [5.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    labels = torch.tensor([0, 2, -100, 7])  # class 0, background (last column), ignored, out of range
    got = classification_inputs(scores, labels, use_sigmoid=False, ignore_index=-100)
    assert got.y_hat.shape == (4, 3, 1, 1)
    torch.testing.assert_close(got.y_hat[:, :, 0, 0], scores.softmax(1))
    assert got.y[:, :, 0, 0].tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]]
    assert got.valid.tolist() == [True, True, False, False]


def test_sigmoid_classification_background_is_the_zero_row():
    scores = torch.tensor([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
    labels = torch.tensor([1, 2, -1])  # class 1, background (= C), negative = invalid
    got = classification_inputs(scores, labels, use_sigmoid=True)
    torch.testing.assert_close(got.y_hat[:, :, 0, 0], scores.sigmoid())
    assert got.y[:, :, 0, 0].tolist() == [[0, 1], [0, 0], [0, 0]]
    assert got.valid.tolist() == [True, True, False]


def test_mask_inputs_are_foreground_then_background():
    logits = torch.tensor([[[0.0, 2.0]]])  # (1, 1, 2)
    target = torch.tensor([[[1.0, 0.0]]])
    got = mask_inputs(logits, target)
    assert got.y_hat.shape == (1, 2, 1, 2)
    p = torch.sigmoid(torch.tensor(2.0)).item()
    torch.testing.assert_close(got.y_hat[0, :, 0, :], torch.tensor([[0.5, p], [0.5, 1 - p]]))
    assert got.y[0, :, 0, :].tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_segmentation_inputs_zero_the_target_of_ignored_pixels():
    logits = torch.zeros(1, 3, 1, 2)
    labels = torch.tensor([[[2, 255]]])
    got = segmentation_inputs(logits, labels, ignore_index=255)
    assert got.y[0, :, 0, :].tolist() == [[0, 0], [0, 0], [1, 0]]
    assert got.valid.tolist() == [[[[True, False]]]]
    torch.testing.assert_close(got.y_hat, torch.full((1, 3, 1, 2), 1 / 3))


def test_resolve_branch_accepts_the_three_wire_shapes():
    tree = ["neg", ["log", ["mul", "i", ["inv", "e"]]]]
    bare = resolve_branch(tree, branch_kind="box", branch="rcnn_reg")
    assert (bare.name, bare.kind, bare.inputs) == ("rcnn_reg", "box", ("i", "u", "e", "one"))
    one = {"name": "rcnn_reg", "kind": "box", "inputs": ["i", "u", "e", "one"], "tree": tree}
    assert resolve_branch(one) == bare
    whole = {"v": 1, "branches": [dict(one), {"name": "rcnn_cls", "kind": "dense", "inputs": ["y_hat", "y", "one"], "tree": "y_hat"}]}
    assert resolve_branch(whole, branch="rcnn_reg") == bare
    assert resolve_branch(tuple(tree), branch_kind="box", branch="rcnn_reg") == bare  # config tuples


def test_resolve_branch_errors_name_the_problem():
    with pytest.raises(GraphError, match="branch_kind"):
        resolve_branch(["neg", "y"])
    with pytest.raises(GraphError, match="leaf|input"):
        resolve_branch(["neg", "y_hat"], branch_kind="box")
    whole = {"v": 1, "branches": [{"name": "a", "kind": "dense", "inputs": ["y_hat", "y", "one"], "tree": "y"}] * 1}
    with pytest.raises(GraphError, match="no branch 'b'"):
        resolve_branch(whole, branch="b")
    with pytest.raises(GraphError, match="kind is 'dense'"):
        resolve_branch(whole, branch_kind="box")
