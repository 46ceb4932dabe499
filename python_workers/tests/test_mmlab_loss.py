"""`AutoLossGraph` under mmdet's loss contract: equal to the core interpreter (values and
gradients, with weights and avg_factor as mmdet's heads pass them) and to mmdet's own losses for
graphs that spell them out. Needs mmdet + mmcv (scripts/setup-mmlab.sh); skipped otherwise.
Run: .venv/bin/python -m pytest -q python_workers/tests/test_mmlab_loss.py"""

import pytest
import torch
import torch.nn.functional as F

mmcv_ops = pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops is not installed (scripts/setup-mmlab.sh)")
pytest.importorskip("mmdet", reason="mmdet is not installed (scripts/setup-mmlab.sh)")

from mmdet.models.losses import CrossEntropyLoss, GIoULoss, IoULoss, QualityFocalLoss  # noqa: E402
from mmdet.registry import MODELS  # noqa: E402

from autoloss_worker.graph import branch_value, compile_branch  # noqa: E402
from autoloss_worker.mmlab import registry  # noqa: E402
from autoloss_worker.mmlab.branch import resolve_branch  # noqa: E402
from autoloss_worker.mmlab.mmdet_loss import AutoLossGraph  # noqa: E402

torch.set_num_threads(1)
EPS = torch.finfo(torch.float32).eps  # mmdet's weight_reduce_loss adds it to avg_factor

CE = ["neg", ["mul", "y", ["log", "y_hat"]]]
# Binary cross-entropy: -(y log p + (1 - y) log(1 - p))
BCE = ["neg", ["add", ["mul", "y", ["log", "y_hat"]], ["mul", ["add", "one", ["neg", "y"]], ["log", ["add", "one", ["neg", "y_hat"]]]]]]
NEG_LOG_IOU = ["neg", ["log", ["mul", "i", ["inv", "u"]]]]
# 1 - GIoU = 1 - i/u + (e - u)/e
ONE_MINUS_GIOU = ["add", "one", ["add", ["neg", ["mul", "i", ["inv", "u"]]], ["mul", ["add", "e", ["neg", "u"]], ["inv", "e"]]]]
PAPER_RCNN_REG = ["neg", ["log", ["mul", "i", ["inv", "e"]]]]
PAPER_RPN_REG = ["mul", "e", ["inv", ["add", "i", "u"]]]
WITH_MEAN = ["mul", ["mean_nhw", "y_hat"], ["neg", ["log", ["add", "y_hat", "y"]]]]  # mixes samples


def _boxes(n, gen):
    xy = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 20
    wh = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 10 + 2
    return torch.cat([xy, xy + wh], dim=1)


@pytest.mark.parametrize("tree", [CE, WITH_MEAN])
def test_cls_branch_equals_the_interpreter_with_weights_and_avg_factor(tree):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 3, 1, 3, 2, 3, 0])  # 3 = background
    weight = torch.tensor([1.0, 1.0, 0.0, 2.0, 1.0, 0.0, 0.5], dtype=torch.float64)
    module = AutoLossGraph(graph=tree, branch_kind="dense", loss_weight=1.5)
    got = module(logits, labels, weight, avg_factor=4.0)
    got.backward()
    grad_module = logits.grad.clone()

    # Reference: the core interpreter on the rows mmdet trains (weight > 0), branch value times the
    # row count turns the mean into a sum; then weight, avg_factor (+eps), loss_weight as mmdet does.
    logits.grad = None
    keep = weight > 0
    y_hat = logits.softmax(1)[keep][:, :, None, None]
    y = F.one_hot(labels[keep], 4).to(torch.float64)[:, :, None, None]
    out = compile_branch(resolve_branch(tree, branch_kind="dense"))({"y_hat": y_hat, "y": y})
    expected = 1.5 * branch_value(out * weight[keep][:, None, None, None]) * keep.sum() / (4.0 + EPS)
    expected.backward()
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_module, logits.grad, rtol=1e-12, atol=1e-12)
    assert grad_module[~keep].abs().sum() == 0  # dropped rows get no gradient


def test_cls_reduction_none_and_sum_follow_mmdet():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    module = AutoLossGraph(graph=CE, branch_kind="dense")
    per = -torch.log(logits.softmax(1)[[0, 1], [0, 1]])
    torch.testing.assert_close(module(logits, labels, reduction_override="none"), per)
    torch.testing.assert_close(module(logits, labels, reduction_override="sum"), per.sum())
    torch.testing.assert_close(module(logits, labels), per.mean())


def test_softmax_ce_graph_equals_mmdet_cross_entropy():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(9, 5, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 5, (9,), generator=gen)
    weight = torch.rand(9, generator=gen, dtype=torch.float64)
    ours = AutoLossGraph(graph=CE, branch_kind="dense")(logits, labels, weight, avg_factor=6.0)
    theirs = CrossEntropyLoss(use_sigmoid=False)(logits, labels, weight, avg_factor=6.0)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-9)  # mmdet casts weights to float32


def test_sigmoid_bce_graph_equals_mmdet_binary_cross_entropy():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(8, 3, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 3, 2, 3, 1, 1, 3, 0])  # 3 = background for a 3-class sigmoid head
    weight = torch.tensor([1, 1, 1, 0, 1, 1, 1, 1], dtype=torch.float64)
    ours = AutoLossGraph(graph=BCE, branch_kind="dense", use_sigmoid=True)(logits, labels, weight, avg_factor=5.0)
    theirs = CrossEntropyLoss(use_sigmoid=True)(logits, labels, weight, avg_factor=5.0)
    torch.testing.assert_close(ours, theirs.to(ours.dtype), rtol=1e-6, atol=1e-9)  # mmdet computes BCE in float32


@pytest.mark.parametrize("tree, mmdet_loss", [(NEG_LOG_IOU, IoULoss(mode="log", eps=1e-12)), (ONE_MINUS_GIOU, GIoULoss(eps=1e-12))])
def test_box_graphs_equal_mmdet_iou_losses_with_box_weights(tree, mmdet_loss):
    gen = torch.Generator().manual_seed(3)
    target = _boxes(6, gen)
    pred = (target + torch.randn(6, 4, generator=gen, dtype=torch.float64)).requires_grad_(True)
    weight = torch.tensor([1, 1, 0, 1, 1, 0], dtype=torch.float64)[:, None].expand(6, 4)  # (N, 4) as heads pass it
    ours = AutoLossGraph(graph=tree, branch_kind="box", loss_weight=10.0)(pred, target, weight, avg_factor=4.0)
    (g_ours,) = torch.autograd.grad(ours, pred)
    mmdet_loss.loss_weight = 10.0
    theirs = mmdet_loss(pred, target, weight, avg_factor=4.0)
    (g_theirs,) = torch.autograd.grad(theirs, pred)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("tree", [PAPER_RCNN_REG, PAPER_RPN_REG])
def test_paper_box_losses_equal_the_interpreter(tree):
    gen = torch.Generator().manual_seed(4)
    target = _boxes(5, gen)
    pred = (target + torch.randn(5, 4, generator=gen, dtype=torch.float64)).requires_grad_(True)
    got = AutoLossGraph(graph=tree, branch_kind="box", loss_weight=10.0)(pred, target, avg_factor=5.0)
    (g_got,) = torch.autograd.grad(got, pred)
    # Independent areas: i, u, e written out here for (x0, y0, x1, y1) boxes.
    lo, hi = torch.max(pred[:, :2], target[:, :2]), torch.min(pred[:, 2:], target[:, 2:])
    i = (hi - lo).clamp(min=0).prod(1)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    u = area(pred) + area(target) - i
    e = (torch.max(pred[:, 2:], target[:, 2:]) - torch.min(pred[:, :2], target[:, :2])).prod(1)
    col = lambda t: t[:, None, None, None]  # noqa: E731
    out = compile_branch(resolve_branch(tree, branch_kind="box"))({"i": col(i), "u": col(u), "e": col(e)})
    expected = 10.0 * branch_value(out) * 5 / (5.0 + EPS)
    (g_expected,) = torch.autograd.grad(expected, pred)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_got, g_expected, rtol=1e-12, atol=1e-12)


def test_zero_weight_anchors_do_not_poison_the_loss():
    # mmdet hands the box loss every anchor; unsampled ones (weight 0) may have no overlap, where
    # -log(i/e) is huge (and 0 * inf would be NaN). They must not contribute.
    pred = torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 1.0, 1.0]], requires_grad=True)
    target = torch.tensor([[0.0, 0.0, 4.0, 4.0], [50.0, 50.0, 60.0, 60.0]])
    weight = torch.tensor([[1.0] * 4, [0.0] * 4])
    loss = AutoLossGraph(graph=["log", ["inv", "i"]], branch_kind="box")(pred, target, weight, avg_factor=1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()
    torch.testing.assert_close(loss, torch.tensor(-torch.log(torch.tensor(16.0 + 1e-12)).item()), rtol=1e-5, atol=1e-5)
    all_zero = AutoLossGraph(graph=["log", ["inv", "i"]], branch_kind="box")(pred, target, torch.zeros(2, 4), avg_factor=1.0)
    assert all_zero.item() == 0.0 and all_zero.requires_grad


def test_mask_mode_equals_mmdet_mask_cross_entropy():
    gen = torch.Generator().manual_seed(5)
    pred = torch.randn(3, 4, 5, 5, generator=gen, dtype=torch.float64)  # 4 classes
    target = (torch.rand(3, 5, 5, generator=gen) > 0.5).to(torch.float64)
    labels = torch.tensor([2, 0, 3])
    # CE over the (fg, bg) channel pair is per-pixel BCE; mmdet averages it over N·H·W.
    ours = AutoLossGraph(graph=CE, branch_kind="dense", use_mask=True)(pred, target, labels)
    theirs = CrossEntropyLoss(use_mask=True)(pred, target, labels)
    torch.testing.assert_close(ours, theirs.squeeze(0), rtol=1e-9, atol=1e-9)  # mmdet returns shape (1,)


@pytest.mark.parametrize("shape", [(9,), (9, 1)])
def test_score_mode_ce_equals_mmdet_sigmoid_cross_entropy_on_soft_targets(shape):
    """FCOS / ATSS centerness: CE over (σ, 1 − σ) against (t, 1 − t) is mmdet's sigmoid
    CrossEntropyLoss with a soft target; with weights (one of them 0) and an avg_factor."""
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=True)
    targets = torch.rand(*shape, generator=gen, dtype=torch.float64)
    weight = torch.tensor([1.0, 0.5, 0.0, 2.0, 1.0, 1.0, 0.3, 1.0, 1.0], dtype=torch.float64).reshape(shape)
    ours = AutoLossGraph(graph=CE, branch_kind="dense", use_score=True, loss_weight=2.0)
    theirs = CrossEntropyLoss(use_sigmoid=True, loss_weight=2.0)
    for w in (None, weight):
        got = ours(logits, targets, w, avg_factor=5.0)
        (g_ours,) = torch.autograd.grad(got, logits)
        expected = theirs(logits, targets, w, avg_factor=5.0)
        (g_theirs,) = torch.autograd.grad(expected, logits)
        # mmdet's binary_cross_entropy casts its weights to float32: compare at that precision
        torch.testing.assert_close(got, expected.to(got.dtype), rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(g_ours, g_theirs.to(g_ours.dtype), rtol=1e-6, atol=1e-9)
    with pytest.raises(AssertionError, match="exclude each other"):
        AutoLossGraph(graph=CE, branch_kind="dense", use_score=True, use_sigmoid=True)


def test_quality_mode_qfl_graph_equals_mmdet_quality_focal_loss():
    """GFL / RTMDet classification: QualityFocalLoss (β = 2) written as BCE · (y − ŷ)² on soft
    targets (labels, IoU quality), with label weights and an avg_factor."""
    from autoloss_worker.tasks.det import QFL

    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(8, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 3, 2, 3, 1, 3, 0, 2])  # 3 = background
    quality = torch.rand(8, generator=gen, dtype=torch.float64)
    weight = torch.tensor([1.0, 1.0, 0.0, 1.0, 2.0, 1.0, 1.0, 0.5], dtype=torch.float64)
    ours = AutoLossGraph(graph=QFL, branch_kind="dense", use_sigmoid=True, use_quality=True, loss_weight=1.5)
    theirs = QualityFocalLoss(use_sigmoid=True, beta=2.0, loss_weight=1.5)
    got = ours(logits, (labels, quality), weight, avg_factor=3.0)
    (g_ours,) = torch.autograd.grad(got, logits)
    expected = theirs(logits, (labels, quality), weight, avg_factor=3.0)
    (g_theirs,) = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(got, expected.to(got.dtype), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(g_ours, g_theirs.to(g_ours.dtype), rtol=1e-6, atol=1e-9)
    with pytest.raises(AssertionError, match="use_quality needs use_sigmoid"):
        AutoLossGraph(graph=QFL, branch_kind="dense", use_quality=True)


def test_registry_builds_the_module_by_name_and_rejects_a_clash():
    assert "mmdet.AutoLossGraph" in registry.REGISTERED
    built = MODELS.build(dict(type="AutoLossGraph", graph=PAPER_RPN_REG, branch_kind="box", loss_weight=10.0))
    assert isinstance(built, AutoLossGraph) and built.loss_weight == 10.0
    assert registry.register_all(("mmdet",)) == ["mmdet.AutoLossGraph"]  # idempotent
    other = type("AutoLossGraph", (torch.nn.Module,), {})
    MODELS._module_dict["AutoLossGraph"] = other
    try:
        with pytest.raises(registry.RegistrationError, match="different 'AutoLossGraph'"):
            registry.register_all(("mmdet",))
    finally:
        MODELS._module_dict["AutoLossGraph"] = AutoLossGraph


def test_bad_graphs_fail_when_the_config_is_built():
    with pytest.raises(ValueError, match="unknown operator 'pow'"):
        MODELS.build(dict(type="AutoLossGraph", graph=["pow", "y_hat"], branch_kind="dense"))


def test_quality_mode_takes_yolox_soft_rows_and_gives_its_sigmoid_cross_entropy():
    """YOLOXHead calls loss_cls(scores of the positives (P, C), rows (P, C)): one-hot × IoU rows, sum reduction."""
    torch.manual_seed(0)
    pred = torch.randn(6, 4, requires_grad=True)  # float32: mmdet's binary CE casts the targets to float
    rows = F.one_hot(torch.tensor([0, 3, 1, 1, 2, 0]), 4).float() * torch.rand(6, 1)
    ours = AutoLossGraph(graph=BCE, branch_kind="dense", use_sigmoid=True, use_quality=True, reduction="sum")(pred, rows)
    reference = F.binary_cross_entropy_with_logits(pred, rows, reduction="sum")
    mmdet = CrossEntropyLoss(use_sigmoid=True, reduction="sum")(pred, rows)
    assert torch.allclose(ours, reference, rtol=1e-5) and torch.allclose(mmdet, reference)
    (g_ours,), (g_ref,) = torch.autograd.grad(ours, pred), torch.autograd.grad(reference, pred)
    assert torch.allclose(g_ours, g_ref, rtol=1e-4, atol=1e-7)
    with pytest.raises(AssertionError, match="soft rows"):  # an integer tensor is neither rows nor a pair
        AutoLossGraph(graph=BCE, branch_kind="dense", use_sigmoid=True, use_quality=True)(pred, torch.tensor([0, 3, 1, 1, 2, 0]))
