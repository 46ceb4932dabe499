"""fastreject.gradient / the ``closed`` engine: closed-form values and gradients equal autograd's on
the interpreter's own trees, and the engine decides as the autograd engine does."""
from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from autoloss_worker.fastreject import EarlyReject, run_batch
from autoloss_worker.fastreject.gradient import TreeGradient, max_pool_backward, max_pool_with_indices
from autoloss_worker.graph import ARITY, OP_NAMES, Branch, OpNode, compile_branch, loss_from_wire
from autoloss_worker.rejection import RejectionConfig
from autoloss_worker.tasks import get_task
from autoloss_worker.tasks.losses import BranchLoss, branch_output, compile_loss, tree_uses

torch.set_num_threads(1)

DENSE = ("y_hat", "y", "one")


def random_tree(rng: random.Random, depth: int):
    """The paper's random initialisation: every root→leaf path has ``depth`` operators."""
    if depth == 0:
        return rng.choice(DENSE)
    op = rng.choice(OP_NAMES)
    return OpNode(op, tuple(random_tree(rng, depth - 1) for _ in range(ARITY[op])))


def autograd_reference(tree, y_hat: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Σ o and ∂Σo/∂y_hat through the graph interpreter and autograd, samples independent the way
    the rejection protocol evaluates them (one at a time when the tree has ``mean_nhw``)."""
    loss = BranchLoss(compile_branch(Branch("loss", "dense", DENSE, tree)))
    leaf = y_hat.clone().requires_grad_(True)
    one = torch.ones_like(y)
    if tree_uses(tree, "mean_nhw"):
        value = sum(branch_output(loss, {"y_hat": leaf[b : b + 1], "y": y[b : b + 1], "one": one[b : b + 1]}).sum()
                    for b in range(y.shape[0]))
    else:
        value = branch_output(loss, {"y_hat": leaf, "y": y, "one": one}).sum()
    if not value.requires_grad:
        return value.detach(), None
    (grad,) = torch.autograd.grad(value, leaf, allow_unused=True)
    return value.detach(), grad


def inputs(kind: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn((3, 4, 6, 6), generator=gen, dtype=torch.float64)
    y = F.one_hot(torch.randint(0, 4, (3, 6, 6), generator=gen), 4).permute(0, 3, 1, 2).double()
    if kind == "softmax":  # what the seg task feeds: positive, the fast sign-free paths
        return torch.softmax(logits, dim=1), y
    y_hat = logits.clone()  # signed, with exact zeros and exact ties: the sign and pooling edge cases
    y_hat[:, :, ::3, ::2] = 0.0
    y_hat[:, :, 1::3, :] = y_hat[:, :, 1::3, :1]
    return y_hat, y


@pytest.mark.parametrize("kind", ["softmax", "signed"])
def test_closed_form_equals_autograd_on_random_trees(kind):
    rng = random.Random(17)
    y_hat, y = inputs(kind, 5)
    checked = 0
    for _ in range(400):
        tree = random_tree(rng, rng.choice((1, 2, 3)))
        value, grad = autograd_reference(tree, y_hat, y)
        bound = TreeGradient(tree, {"y_hat"}).bind({"y": y, "one": torch.ones_like(y)})
        v, grads = bound({"y_hat": y_hat})
        assert torch.allclose(v, value, rtol=1e-12, atol=0, equal_nan=True), tree
        g = grads.get("y_hat")
        if grad is None:  # no y_hat leaf: nothing flows back
            assert g is None, tree
            continue
        assert g is not None, tree
        assert torch.allclose(g, grad, rtol=1e-12, atol=1e-300, equal_nan=True), tree
        checked += 1
    assert checked > 120  # a good part of the random trees read y_hat


def test_gradient_of_cross_entropy_by_hand():
    # d/dŷ Σ −y·log(ŷ) = −y / (ŷ + ε) for ŷ > 0 (ops: log(x) = sign(x)·log(|x| + ε))
    y_hat, y = inputs("softmax", 1)
    tree = OpNode("neg", (OpNode("mul", ("y", OpNode("log", ("y_hat",)))),))
    v, grads = TreeGradient(tree, {"y_hat"}).bind({"y": y, "one": torch.ones_like(y)})({"y_hat": y_hat})
    assert v.item() == pytest.approx((-y * torch.log(y_hat + 1e-12)).sum().item(), rel=1e-14)
    assert torch.allclose(grads["y_hat"], -y / (y_hat + 1e-12), rtol=1e-15, atol=0)


def test_constant_subtrees_are_evaluated_once_at_bind():
    y_hat, y = inputs("softmax", 2)
    # tanh(y / (1 + y)) does not depend on y_hat: bound once; only the y_hat side runs per call
    tree = OpNode("mul", (OpNode("tanh", (OpNode("mul", ("y", OpNode("inv", (OpNode("add", ("one", "y")),)))),)),
                          OpNode("square", ("y_hat",))))
    program = TreeGradient(tree, {"y_hat"})
    bound = program.bind({"y": y, "one": torch.ones_like(y)})
    assert [program.nodes[i].op for i in bound.fixed] == ["tanh"]  # the constant child of the variable mul
    v, grads = bound({"y_hat": y_hat})
    c = torch.tanh(y * (1 / (1 + y + 1e-12)))
    assert torch.allclose(grads["y_hat"], c * 2 * y_hat, rtol=1e-14, atol=0)


def test_max_pool_winner_and_backward_are_autograds_bit_for_bit():
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 3, (2, 3, 7, 5), generator=gen).double()  # many exact ties
    value, index = max_pool_with_indices(x)
    ref_value, ref_index = F.max_pool2d(x, 3, 1, 1, return_indices=True)
    assert torch.equal(value, ref_value) and torch.equal(index, ref_index)
    a = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    leaf = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(F.max_pool2d(leaf, 3, 1, 1), leaf, a)
    assert torch.equal(max_pool_backward(a, index), expected)


# ----------------------------------------------------------------------------- the engine

TINY_SEG = {"train_images": 48, "eval_images": 8, "threads": 1, "rejection_size": 16}
TREES = [
    ["neg", ["mul", "y", ["log", "y_hat"]]],
    ["exp", ["square", ["add", "y", ["neg", ["sqrt", "y_hat"]]]]],
    ["add", "y", "y_hat"],
    ["mul", "y_hat", ["exp", ["inv", "y"]]],  # non-finite at step 1
    ["mean_nhw", ["square", ["add", "y", ["neg", ["sqrt", ["mul", "y_hat", "y_hat"]]]]]],
    ["neg", ["min_pool", ["mul", "y", "y_hat"]]],
    ["mul", ["tanh", ["max_pool", "y_hat"]], ["mul", ["max_pool", "one"], ["sqrt", "y"]]],
    ["mean_c", ["min_pool", ["add", "y_hat", "y"]]],
    ["exp", "one"],  # constant: zero gradient
    ["neg", ["mul", ["tanh", ["mul", "y", "y_hat"]], "one"]],
]


def graph(tree):
    return loss_from_wire({"v": 1, "branches": [{"name": "loss", "kind": "dense", "inputs": list(DENSE), "tree": tree}]})


def assert_same_rows(a, b):
    for x, y in zip(a, b):
        assert (x.passed, x.invalid, x.iterations, x.reason) == (y.passed, y.invalid, y.iterations, y.reason)
        assert x.score == pytest.approx(y.score, abs=1e-12)
        assert x.grad_norms == pytest.approx(y.grad_norms, rel=1e-9, nan_ok=True)
        assert [t for t, _, _ in x.trace] == [t for t, _, _ in y.trace]
        assert [g for _, g, _ in x.trace] == pytest.approx([g for _, g, _ in y.trace], abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_closed_engine_decides_as_the_autograd_engine_on_seg(dtype):
    task = get_task("seg", **TINY_SEG)
    samples = task.rejection_samples(5, 0)
    graphs = [graph(t) for t in TREES]
    config = RejectionConfig(iterations=30, threshold=0.15)
    rule = EarlyReject(floors=((10, 0.05),))
    kw = dict(early_reject=rule, record=(5, 20), dtype=dtype)
    tree = run_batch(task, "loss", [compile_loss(g)["loss"] for g in graphs], samples, "miou", config, **kw)
    closed = run_batch(task, "loss", None, samples, "miou", config, engine="closed",
                       trees=[g.branches[0].tree for g in graphs], **kw)
    assert_same_rows(closed, tree)
    outcomes = {(r.passed, r.invalid, r.iterations) for r in closed}
    assert (False, True, 1) in outcomes and any(r.passed for r in closed) and any(r.iterations == 10 for r in closed)


def test_closed_engine_on_a_task_without_softmax_inputs():
    # pose: y_hat = raw heatmaps and a per-joint weight; the adjoints go back through autograd
    task = get_task("pose", train_images=24, eval_images=8, threads=1)
    samples = task.rejection_samples(5, 0)
    graphs = [graph(t) for t in TREES[:3] + [["neg", ["exp", ["exp", "y_hat"]]], ["square", ["add", "y_hat", ["neg", "y"]]]]]
    config = RejectionConfig(iterations=40)
    tree = run_batch(task, "loss", [compile_loss(g)["loss"] for g in graphs], samples, "map", config, record=(20,))
    closed = run_batch(task, "loss", None, samples, "map", config, engine="closed",
                       trees=[g.branches[0].tree for g in graphs], record=(20,))
    assert_same_rows(closed, tree)


def test_production_decides_as_the_reference_at_a_threshold_equal_to_the_score():
    # η set to the reference's own g (and to the next float above it): a decision that depends on
    # the last bit of g. The production path (closed engine, torch.optim.SGD's update, the task's
    # metric; no early reject, whose floors are for the paper's η and T) must land on the same side
    # as the reference every time.
    from autoloss_worker.fastreject import FastConfig, Screener
    from rejection_reference import reference_check

    task = get_task("seg", **TINY_SEG)
    picks = [TREES[0], TREES[1], ["log", ["abs", ["add", "y", "y_hat"]]], ["inv", ["log", ["add", "y", "y_hat"]]]]
    graphs = [graph(t) for t in picks]
    base = RejectionConfig(iterations=40)
    scores = [reference_check(task, g, "miou", 0, base).score for g in graphs]
    assert len({round(s, 6) for s in scores}) > 1 and all(0 < s < 1 for s in scores)
    for g, score in zip(graphs, scores):
        for eta, expected in ((score, True), (float(torch.nextafter(torch.tensor(score), torch.tensor(2.0))), False)):
            config = RejectionConfig(iterations=40, threshold=eta)
            fast = Screener(task, "miou", 0, config, FastConfig(engine="closed")).screen([g])[0]
            assert reference_check(task, g, "miou", 0, config).passed is expected
            assert fast.passed is expected and fast.score == score
