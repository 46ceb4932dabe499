"""fastreject: same verdicts as the straightforward protocol, batching changes nothing, caches
and exits do what they claim."""
from __future__ import annotations

import math

import pytest
import torch

from autoloss_worker.fastreject import (
    DEFAULT_FAST,
    NO_EARLY_REJECT,
    EarlyReject,
    FastConfig,
    Screener,
    canonical_text,
    check_branch,
    displacement_ratio,
    loss_key,
    run_batch,
    run_stream,
    static_reason,
)
from autoloss_worker.fastreject.metrics import exact_gain, metric_gain
from autoloss_worker.graph import OpNode, loss_from_wire
from autoloss_worker.rejection import RejectionConfig
from rejection_reference import reference_check
from autoloss_worker.tasks import get_task
from autoloss_worker.tasks.losses import compile_loss

torch.set_num_threads(1)

# 16×16 rejection samples: 4× cheaper than the default 32×32, same protocol.
TINY_SEG = {"train_images": 48, "eval_images": 8, "threads": 1, "rejection_size": 16}
CE = ["neg", ["mul", "y", ["log", "y_hat"]]]


def wire(tree) -> dict:
    return {"v": 1, "branches": [{"name": "loss", "kind": "dense", "inputs": ["y_hat", "y", "one"], "tree": tree}]}


def flat(rows):
    return [x for row in rows for x in row]


def graph(tree):
    return loss_from_wire(wire(tree))


# A small fixed stream in the generator's style: passing, slow-failing, tiny-gradient, non-finite,
# pooling / channel-mean / sample-mean operators, and a static reject.
STREAM = [
    CE,
    ["exp", ["square", ["add", "y", ["neg", ["sqrt", "y_hat"]]]]],
    ["neg", ["mul", "y", "y_hat"]],
    ["add", "y", "y_hat"],  # Σ_c softmax = 1: a gradient of rounding noise only
    ["mul", "y_hat", ["exp", ["inv", "y"]]],  # inv(0) = 1e12: infinite at the first step
    ["mean_nhw", ["square", ["add", "y", ["neg", ["sqrt", ["mul", "y_hat", "y_hat"]]]]]],
    ["neg", ["min_pool", ["mul", "y", "y_hat"]]],
    ["mul", ["tanh", ["max_pool", "y_hat"]], ["mul", ["max_pool", "one"], ["sqrt", "y"]]],
    ["mean_c", ["min_pool", ["add", "y_hat", "y"]]],
    ["log", ["abs", ["add", "y", "y_hat"]]],
    ["neg", ["mul", "y_hat", ["log", "y_hat"]]],  # no y: static
]


@pytest.fixture(scope="module")
def task():
    return get_task("seg", **TINY_SEG)


# ----------------------------------------------------------------------------- static + cache


def test_static_reason_needs_both_prediction_and_target():
    assert static_reason(graph(CE).branches[0]) is None
    assert "prediction" in static_reason(graph(["exp", ["add", "y", "one"]]).branches[0])
    assert "target" in static_reason(graph(["neg", ["mul", "y_hat", ["log", "y_hat"]]]).branches[0])
    box = loss_from_wire({"v": 1, "branches": [{"name": "reg", "kind": "box", "inputs": ["i", "u", "e", "one"],
                                                 "tree": ["log", "one"]}]})
    assert "prediction" in static_reason(box.branches[0])


def test_canonical_text_sorts_commutative_arguments_only():
    a = OpNode("add", ("y_hat", OpNode("mul", ("y", "one"))))
    b = OpNode("add", (OpNode("mul", ("one", "y")), "y_hat"))
    assert canonical_text(a) == canonical_text(b) == "add(mul(one, y), y_hat)"
    # a non-commutative operator keeps its order (no binary non-commutative op exists; unary nest)
    assert canonical_text(OpNode("neg", (OpNode("log", ("y",)),))) == "neg(log(y))"
    assert loss_key(graph(["add", "y", "y_hat"])) == loss_key(graph(["add", "y_hat", "y"]))
    assert loss_key(graph(["add", "y", "y_hat"])) != loss_key(graph(["mul", "y", "y_hat"]))


def test_screener_decides_statics_and_repeats_without_running_the_protocol(task):
    ran: list[int] = []

    def runner(graphs, branches=None):
        ran.append(len(graphs))
        return Screener(task, "miou", 0, RejectionConfig(iterations=5), FastConfig()).run_protocol(graphs, branches)

    s = Screener(task, "miou", 0, RejectionConfig(iterations=5), FastConfig(), runner=runner)
    v = s.screen([graph(CE), graph(["neg", ["mul", "y_hat", "y"]]), graph(["neg", "y_hat"]), graph(["neg", ["mul", "y", "y_hat"]])])
    assert [x.stage for x in v] == ["protocol", "protocol", "static", "cache"]
    assert ran == [2]  # CE and neg(mul(y_hat, y)); the swapped repeat reused the verdict
    assert v[3].passed == v[1].passed and v[3].score == v[1].score
    again = s.screen([graph(CE)])
    assert again[0].stage == "cache" and ran == [2] and s.cache.hits == 2


# ----------------------------------------------------------------------------- batching


def test_batching_gives_the_one_at_a_time_results(task):
    config = RejectionConfig(iterations=25)
    samples = task.rejection_samples(5, 0)
    graphs = [graph(t) for t in STREAM[:10]]
    losses = [compile_loss(g)["loss"] for g in graphs]
    together = run_batch(task, "loss", losses, samples, "miou", config)
    for g, loss, r in zip(graphs, losses, together):
        alone = run_batch(task, "loss", [loss], samples, "miou", config)[0]
        protocol = check_branch(task, loss, "loss", samples, "miou", config)
        for x in (alone, protocol):
            assert (r.passed, r.invalid, r.iterations) == (x.passed, x.invalid, x.iterations)
            assert r.score == pytest.approx(x.score, abs=1e-12)
            assert r.grad_norms == pytest.approx(x.grad_norms, rel=1e-9, nan_ok=True)
            assert flat(r.fingerprint) == pytest.approx(flat(x.fingerprint), rel=1e-9, abs=1e-20, nan_ok=True)


def test_levels_engine_matches_the_per_tree_engine(task):
    config = RejectionConfig(iterations=15)
    samples = task.rejection_samples(5, 0)
    graphs = [graph(t) for t in STREAM[:10]]
    trees = [g.branches[0].tree for g in graphs]
    a = run_batch(task, "loss", [compile_loss(g)["loss"] for g in graphs], samples, "miou", config, record=(5,))
    b = run_batch(task, "loss", None, samples, "miou", config, engine="levels", trees=trees, record=(5,))
    for x, y in zip(a, b):
        assert (x.passed, x.invalid, x.iterations, x.score) == (y.passed, y.invalid, y.iterations, y.score)
        assert x.grad_norms == pytest.approx(y.grad_norms, rel=1e-9, nan_ok=True)
        assert x.trace == y.trace


# ----------------------------------------------------------------------------- exits


def test_exact_exits_nonfinite_and_zero_gradient(task):
    samples = task.rejection_samples(5, 0)
    inf, zero = (compile_loss(graph(t))["loss"] for t in (["mul", "y_hat", ["exp", ["inv", "y"]]], ["exp", "one"]))
    r_inf, r_zero = run_batch(task, "loss", [inf, zero], samples, "miou")
    assert r_inf.invalid and r_inf.iterations == 1 and r_inf.score == -1.0 and not r_inf.passed
    assert "non-finite loss value" in r_inf.reason
    assert not r_zero.invalid and r_zero.iterations == 1 and r_zero.score == 0.0 and r_zero.grad_norms == [0.0] * 5


def test_displacement_ratio_of_constant_gradient_momentum_sgd():
    assert displacement_ratio(500, 500, 0.9) == pytest.approx(1.0)
    assert displacement_ratio(10, 500, 0.0) == pytest.approx(50.0)  # plain SGD: linear in steps
    # momentum 0.9: step n moves lr·g·(1 − 0.9ⁿ)/0.1; after 1 step lr·g, after 2 steps lr·g·(1 + 1.9)
    assert displacement_ratio(1, 2, 0.9) == pytest.approx(2.9)
    # simulate constant-gradient momentum SGD directly
    p, v, path = 0.0, 0.0, []
    for _ in range(40):
        v = 0.9 * v + 1.0
        p += v
        path.append(p)
    assert displacement_ratio(7, 40, 0.9) == pytest.approx(path[39] / path[6])


def test_early_reject_drops_hopeless_losses_and_keeps_cross_entropy(task):
    samples = task.rejection_samples(5, 0)
    rule = EarlyReject(floors=((10, 0.3),))
    ce, flat = (compile_loss(graph(t))["loss"] for t in (CE, ["add", "y", "y_hat"]))
    r_ce, r_flat = run_batch(task, "loss", [ce, flat], samples, "miou", RejectionConfig(iterations=60), early_reject=rule)
    assert r_flat.iterations == 10 and not r_flat.passed and r_flat.reason.startswith("early reject")
    assert r_ce.iterations == 60 and r_ce.trace[0][0] == 10 and r_ce.trace[0][2] >= 0.3


def test_vectorised_metric_equals_the_tasks_own(task):
    samples = task.rejection_samples(5, 0)
    gen = torch.Generator().manual_seed(3)
    initial = torch.cat([s.raw["loss"] for s in samples])
    P = initial + 2.0 * torch.randn((4, *initial.shape), generator=gen, dtype=initial.dtype)
    for metric in ("miou", "fwiou", "gacc", "macc"):
        before = [task.sample_metric({"loss": s.raw["loss"]}, s.target, metric) for s in samples]
        assert metric_gain(task, "loss", P, samples, metric, before) == pytest.approx(
            exact_gain(task, "loss", P, samples, metric, before), abs=1e-12)


# ----------------------------------------------------------------------------- agreement


def test_exact_exits_only_agree_with_the_reference_on_a_short_protocol(task):
    config = RejectionConfig(iterations=25, threshold=0.15)  # short: lower η so that some pass
    graphs = [graph(t) for t in STREAM]
    fast = Screener(task, "miou", 0, config, FastConfig(early_reject={})).screen(graphs)
    ref = [reference_check(task, g, "miou", 0, config) for g in graphs]
    assert [v.passed for v in fast] == [r.passed for r in ref]
    assert any(r.passed for r in ref) and not all(r.passed for r in ref)
    for v, r in zip(fast, ref):
        if v.stage == "protocol":
            assert v.invalid == r.invalid and v.score == pytest.approx(r.score, abs=1e-12)


def test_production_agrees_with_the_reference_at_paper_constants(task):
    # Every constant of the protocol is the paper's (B = 5, 500 steps, lr, momentum, η) and the
    # verified early reject is on; samples are 16×16 to keep the reference affordable here
    # (bench/rejection.py checks the default 32×32 on a long stream).
    picks = [CE, ["add", "y", "y_hat"], ["mul", "y_hat", ["exp", ["inv", "y"]]], ["neg", ["mul", "y_hat", ["log", "y_hat"]]],
             ["mean_c", ["min_pool", ["add", "y_hat", "y"]]]]
    graphs = [graph(t) for t in picks]
    fast = Screener(task, "miou", 0, fast=DEFAULT_FAST).screen(graphs)
    ref = [reference_check(task, g, "miou", 0) for g in graphs]
    assert [v.passed for v in fast] == [r.passed for r in ref] == [True, False, False, False, False]
    assert fast[0].iterations == 500 and fast[0].score == pytest.approx(ref[0].score, abs=1e-12)
    assert fast[2].invalid and ref[2].invalid and math.isclose(fast[2].score, -1.0)


def test_continuous_batching_matches_chunked_batches(task):
    config = RejectionConfig(iterations=15)
    rule = EarlyReject(floors=((5, 0.3),))
    samples = task.rejection_samples(5, 0)
    trees = [graph(t).branches[0].tree for t in STREAM[:10]]
    chunked = run_batch(task, "loss", None, samples, "miou", config, engine="levels", trees=trees, early_reject=rule)
    streamed = run_stream(task, "loss", trees, samples, "miou", config, width=3, early_reject=rule)  # forces refills
    for x, y in zip(chunked, streamed):
        assert (x.passed, x.invalid, x.iterations, x.reason) == (y.passed, y.invalid, y.iterations, y.reason)
        assert x.score == pytest.approx(y.score, abs=1e-12)
        assert x.grad_norms == pytest.approx(y.grad_norms, rel=1e-9, nan_ok=True)
        assert flat(x.fingerprint) == pytest.approx(flat(y.fingerprint), rel=1e-9, abs=1e-20, nan_ok=True)
    assert any(r.reason.startswith("early reject") for r in streamed) and any(r.iterations == 15 for r in streamed)


def test_verified_early_reject_only_under_the_protocol_it_was_verified_for():
    from autoloss_worker.fastreject import fast_config_for

    assert fast_config_for("seg").rule_for("loss").floors  # the paper's constants: the verified rule
    assert fast_config_for("seg", RejectionConfig(threads=2)).rule_for("loss").floors  # not protocol constants
    for changed in (RejectionConfig(iterations=40), RejectionConfig(threshold=0.5), RejectionConfig(lr=1e-2)):
        assert fast_config_for("seg", changed).rule_for("loss") == NO_EARLY_REJECT
    assert fast_config_for("pose").rule_for("loss") == NO_EARLY_REJECT  # no rule verified for pose
