"""`AutoLossGraph` for MMSegmentation and MMPose: the libraries' call signatures, ignored pixels and
invisible joints, compared with their own cross-entropy / MSE losses and with the interpreter.
Skipped when the library is not installed (scripts/setup-mmlab.sh).
Run: .venv/bin/python -m pytest -q python_workers/tests/test_mmlab_seg_pose.py"""

import pytest
import torch

from autoloss_worker.graph import branch_value, compile_branch
from autoloss_worker.mmlab.branch import resolve_branch

torch.set_num_threads(1)
CE = ["neg", ["mul", "y", ["log", "y_hat"]]]
SQUARED_ERROR = ["square", ["add", "y_hat", ["neg", "y"]]]
POOLED = ["mul", ["max_pool", "y_hat"], ["neg", ["log", ["add", "one", ["neg", ["abs", ["add", "y_hat", ["neg", "y"]]]]]]]]


def _mmseg():
    pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops is not installed (scripts/setup-mmlab.sh)")
    pytest.importorskip("mmseg", reason="mmsegmentation is not installed (scripts/setup-mmlab.sh)")
    from autoloss_worker.mmlab import registry  # noqa: F401  (registers and self-checks)
    from autoloss_worker.mmlab.mmseg_loss import AutoLossGraph

    return AutoLossGraph


def _mmpose():
    pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops is not installed (scripts/setup-mmlab.sh)")
    pytest.importorskip("mmpose", reason="mmpose is not installed (scripts/setup-mmlab.sh)")
    from autoloss_worker.mmlab import registry  # noqa: F401
    from autoloss_worker.mmlab.mmpose_loss import AutoLossGraph

    return AutoLossGraph


def test_mmseg_ce_graph_equals_mmseg_cross_entropy_with_ignored_pixels():
    AutoLossGraph = _mmseg()
    from mmseg.models.losses import CrossEntropyLoss
    from mmseg.registry import MODELS

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 4, (2, 5, 6), generator=gen)
    labels[0, :2] = 255
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope("mmseg"):  # as in an mmseg config (default_scope='mmseg')
        module = MODELS.build(dict(type="AutoLossGraph", graph=CE, loss_name="loss_ce_graph"))
    assert isinstance(module, AutoLossGraph) and module.loss_name == "loss_ce_graph"
    ours = module(logits, labels, ignore_index=255)
    theirs = CrossEntropyLoss()(logits, labels, ignore_index=255)
    torch.testing.assert_close(ours, theirs, rtol=1e-7, atol=1e-9)  # log(p + ε) vs log_softmax
    (g_ours,) = torch.autograd.grad(ours, logits)
    (g_theirs,) = torch.autograd.grad(theirs, logits)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-7, atol=1e-9)
    assert g_ours[0, :, :2].abs().sum() == 0  # ignored pixels get no gradient


def test_mmseg_rejects_a_loss_name_mmseg_would_not_backpropagate():
    AutoLossGraph = _mmseg()
    with pytest.raises(AssertionError, match="loss_"):
        AutoLossGraph(graph=CE, loss_name="ce")


def test_mmpose_squared_error_is_k_times_keypoint_mse_with_target_weights():
    AutoLossGraph = _mmpose()
    from mmpose.models.losses import KeypointMSELoss

    gen = torch.Generator().manual_seed(1)
    out = torch.rand(2, 3, 4, 5, generator=gen, dtype=torch.float64)
    target = torch.rand(2, 3, 4, 5, generator=gen, dtype=torch.float64)
    weights = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]], dtype=torch.float64)
    ours = AutoLossGraph(graph=SQUARED_ERROR, loss_weight=2.0)(out, target, weights)
    theirs = KeypointMSELoss(use_target_weight=True, loss_weight=2.0)(out, target, weights)
    # KeypointMSELoss averages over K too; the paper's branch value does not (Σ / (B·H·W)).
    torch.testing.assert_close(ours, 3 * theirs, rtol=1e-12, atol=1e-12)


def test_mmpose_value_equals_the_interpreter_on_visible_joints():
    AutoLossGraph = _mmpose()
    gen = torch.Generator().manual_seed(2)
    out = torch.rand(2, 3, 6, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.rand(2, 3, 6, 6, generator=gen, dtype=torch.float64)
    weights = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    got = AutoLossGraph(graph=POOLED)(out, target, weights)
    (g_got,) = torch.autograd.grad(got, out)
    o = compile_branch(resolve_branch(POOLED, branch_kind="dense"))({"y_hat": out, "y": target})
    expected = branch_value(o * weights[:, :, None, None])
    (g_expected,) = torch.autograd.grad(expected, out)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_got, g_expected, rtol=1e-12, atol=1e-12)
