"""The det task (Faster R-CNN inside an MMDetection config) behind the generic Task interface:
task-info, the per-image metric, the rejection protocol on recorded samples, and a tiny proxy run."""
from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("mmdet", reason="MMDetection is not installed (scripts/setup-mmlab.sh)")

from autoloss_worker.graph import loss_from_wire  # noqa: E402
from autoloss_worker.fastreject import check_branch, fast_config_for  # noqa: E402
from autoloss_worker.task_jobs import eval_loss_job, eval_losses_job, task_info_job, train_loss_job  # noqa: E402
from autoloss_worker.tasks import get_task  # noqa: E402
from autoloss_worker.mmlab.det_records import ap_101, box_factor, encode  # noqa: E402
from autoloss_worker.tasks.det import ONE_MINUS_GIOU, baseline_wire  # noqa: E402
from autoloss_worker.tasks.losses import compile_loss  # noqa: E402

torch.set_num_threads(1)
FLIPPED_CE = ["mul", "y", ["log", "y_hat"]]
WITHOUT_Y = ["neg", ["log", "y_hat"]]  # pushes every class up alike: the ranking stays random
PAPER_RCNN_REG = ["neg", ["log", ["mul", "i", ["inv", "e"]]]]


def _loss(**trees):
    wire = baseline_wire()
    for b in wire["branches"]:
        b["tree"] = trees.get(b["name"], b["tree"])
    return compile_loss(loss_from_wire(wire))


@pytest.fixture(scope="module")
def task():
    return get_task("det")


@pytest.fixture(scope="module")
def samples(task):
    return task.rejection_samples(5, 0)


def test_task_info_lists_the_four_branches_with_kinds():
    info = task_info_job({"task": "det"})
    assert info["branches"] == [{"name": "rpn_cls", "kind": "dense"}, {"name": "rpn_reg", "kind": "box"},
                                {"name": "rcnn_cls", "kind": "dense"}, {"name": "rcnn_reg", "kind": "box"}]
    assert info["metric"] == info["defaultMetric"] == "bbox_map"


def test_unknown_config_is_named():
    with pytest.raises(ValueError, match="nope.py"):
        get_task("det", config="/nope.py")


def test_ap_101_by_hand():
    # ranks: TP, FP, TP -> precision 1, 1/2, 2/3, made monotone 1, 2/3, 2/3; recall 1/2, 1/2, 1.
    # Recall points 0..0.50 (51) take precision 1, 0.51..1 (50) take 2/3.
    ap = ap_101(torch.tensor([0.9, 0.8, 0.7]), torch.tensor([True, False, True]))
    assert ap == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert ap_101(torch.tensor([0.1, 0.2]), torch.tensor([False, False])) == 0.0


def test_box_factor_is_the_removed_share_of_the_localisation_error():
    priors = torch.tensor([[0.0, 0.0, 10.0, 10.0]], dtype=torch.float64)
    targets = torch.tensor([[2.0, 0.0, 12.0, 10.0]], dtype=torch.float64)  # IoU0 = 80/120 = 2/3
    assert box_factor(torch.zeros(1, 4, dtype=torch.float64), priors, targets) == pytest.approx(0.0)
    assert box_factor(encode(targets, priors), priors, targets) == pytest.approx(1.0)
    halfway = torch.tensor([[1.0, 0.0, 11.0, 10.0]], dtype=torch.float64)  # IoU 90/110
    assert box_factor(encode(halfway, priors), priors, targets) == pytest.approx((9 / 11 - 2 / 3) / (1 / 3))


def test_samples_score_one_at_ground_truth_and_low_as_recorded(task, samples):
    for s in samples:
        gt = {b: task.ground_truth_raw(b, s.target) for b in task.branches}
        assert task.sample_metric(gt, s.target, "bbox_map") == pytest.approx(1.0, abs=1e-5)
        assert task.sample_metric(s.raw, s.target, "bbox_map") < 0.1  # random predictions


# The baseline (CE, 1 − GIoU) passing on every branch is checked by the eval-loss job test below,
# sign-flipped CE on rpn_cls by the first-failure test.
@pytest.mark.parametrize("branch, tree, passes", [
    ("rcnn_cls", FLIPPED_CE, False), ("rpn_cls", WITHOUT_Y, False), ("rcnn_cls", WITHOUT_Y, False),
    ("rpn_reg", ["neg", ONE_MINUS_GIOU], False), ("rcnn_reg", ["neg", "i"], False),
    ("rcnn_reg", PAPER_RCNN_REG, True),
])
def test_rejection_per_branch(task, samples, branch, tree, passes):
    result = check_branch(task, _loss(**{branch: tree})[branch], branch, samples, "bbox_map")
    assert not result.invalid
    assert result.passed is passes, (result.score, result.metric_after)


def test_eval_loss_job_checks_all_four_branches(samples):
    out = eval_loss_job({"task": "det", "loss": baseline_wire()})
    assert out["passed"] and out["iterations"] == 4 * 500
    assert len(out["gradNorms"]) == 4 * 5 and all(n is not None and n > 0 for n in out["gradNorms"])


def test_the_verified_rcnn_reg_rule_rejects_early_only_losses_the_full_protocol_rejects(task, samples):
    # The search's job (the rule on, fastreject.VERIFIED_EARLY_REJECT) against the paper's protocol
    # sample by sample without any early reject (check_branch), on losses that pass, fail slowly
    # and cannot move the metric.
    trees = [PAPER_RCNN_REG, ONE_MINUS_GIOU, ["neg", "i"], ["log", ["exp", ["neg", "i"]]],
             ["mean_c", ["mul", ["neg", "one"], ["sqrt", "i"]]], ["sqrt", ["square", ["sqrt", "e"]]]]
    wires = []
    for tree in trees:
        wire = baseline_wire()
        wire["branches"] = [dict(b, tree=tree) for b in wire["branches"] if b["name"] == "rcnn_reg"]
        wires.append(wire)
    out = eval_losses_job({"task": "det", "options": {"branches": "rcnn_reg"}, "losses": [{"loss": w} for w in wires]})
    full = [check_branch(task, _loss(rcnn_reg=t)["rcnn_reg"], "rcnn_reg", samples, "bbox_map") for t in trees]
    assert [r["passed"] for r in out["results"]] == [f.passed for f in full]
    assert [f.passed for f in full][:2] == [True, True]
    floors = [t for t, _ in fast_config_for(task).rule_for("rcnn_reg").floors]
    early = [(r, f) for r, f in zip(out["results"], full) if r["iterations"] < f.iterations]
    assert early and all(r["iterations"] in floors and not r["passed"] for r, _ in early)
    for r, f in zip(out["results"], full):
        if (r, f) not in early:
            assert r["iterations"] == f.iterations and r["score"] == pytest.approx(f.score, abs=1e-9)


def test_no_early_reject_rule_on_det_samples_it_was_not_verified_on():
    from autoloss_worker.tasks.mmlab_proxy import SHIPPED_CONFIGS

    assert fast_config_for(get_task("det")).rule_for("rcnn_reg").floors
    assert not fast_config_for(get_task("det")).rule_for("rcnn_cls").floors  # verified per branch
    cascade = get_task("det", config=str(SHIPPED_CONFIGS / "det_cascade_rcnn_shapes.py"))
    assert not fast_config_for(cascade).rule_for("rcnn_reg").floors  # another config records other samples
    assert not fast_config_for("ins").rule_for("rcnn_reg").floors


def test_four_branch_train_loss_returns_a_finite_bbox_map():
    out = train_loss_job({"task": "det", "loss": baseline_wire(),
                          "options": {"iterations": 2, "warmup_iters": 1, "val_images": 4, "pretrained": False}})
    assert not out["invalid"] and out["iterations"] == 2
    assert math.isfinite(out["metrics"]["bbox_map"]) and 0.0 <= out["target"] <= 1.0


def test_eval_loss_job_stops_at_the_first_failing_branch(samples):
    wire = baseline_wire()
    wire["branches"][0]["tree"] = FLIPPED_CE  # rpn_cls, the first branch
    out = eval_loss_job({"task": "det", "loss": wire})
    assert not out["passed"] and out["score"] < 0
    assert out["iterations"] == 500 and len(out["gradNorms"]) == 5


def test_decode_equals_mmdet_delta2bbox():
    from mmdet.models.task_modules.coders.delta_xywh_bbox_coder import delta2bbox

    from autoloss_worker.mmlab.det_records import decode

    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(50, 2, generator=gen, dtype=torch.float64) * 100
    priors = torch.cat([xy, xy + 1 + torch.rand(50, 2, generator=gen, dtype=torch.float64) * 40], dim=1)
    offsets = torch.randn(50, 4, generator=gen, dtype=torch.float64) * 3  # some beyond the dw/dh clamp
    want = delta2bbox(priors, offsets, means=(0.0,) * 4, stds=(1.0,) * 4, max_shape=None)
    torch.testing.assert_close(decode(offsets, priors), want, rtol=1e-9, atol=1e-5)  # same formula, other rounding order
    torch.testing.assert_close(decode(encode(priors + 2, priors), priors), priors + 2)


# ---------------------------------------------------------------- branch subset (option "branches")

def test_branch_subset_is_what_task_info_lists_and_unknown_names_are_named():
    info = task_info_job({"task": "det", "options": {"branches": "rcnn_reg, rcnn_cls"}})
    assert info["branches"] == [{"name": "rcnn_cls", "kind": "dense"}, {"name": "rcnn_reg", "kind": "box"}]  # task order
    with pytest.raises(ValueError, match="mask"):
        get_task("det", branches="rcnn_cls,mask")
    with pytest.raises(ValueError, match="twice"):
        get_task("det", branches="rcnn_cls,rcnn_cls")


def test_branch_subset_rejection_checks_only_its_branches(samples):
    task = get_task("det", branches="rcnn_cls,rcnn_reg")
    wire = task.baseline_loss
    assert [b["name"] for b in wire["branches"]] == ["rcnn_cls", "rcnn_reg"]
    out = eval_loss_job({"task": "det", "loss": wire, "options": {"branches": "rcnn_cls,rcnn_reg"}})
    assert out["passed"] and out["iterations"] == 2 * 500 and len(out["gradNorms"]) == 2 * 5
    with pytest.raises(ValueError, match="rpn_cls"):
        eval_loss_job({"task": "det", "loss": baseline_wire(), "options": {"branches": "rcnn_cls,rcnn_reg"}})


def test_branch_subset_proxy_training_keeps_the_config_losses_elsewhere(monkeypatch):
    import autoloss_worker.tasks.mmlab_proxy as mmlab_proxy
    from autoloss_worker.mmlab.rewrite import rewrite_config

    seen = {}

    def fake_train(config, wire, slots, options, **kw):  # records what the real one would rewrite
        seen["cfg"] = rewrite_config(config, wire, slots, None)
        return "trained"

    monkeypatch.setattr(mmlab_proxy, "mmlab_proxy_train", fake_train)
    task = get_task("det", branches="rcnn_cls,rcnn_reg")
    assert task.proxy_train(task.baseline_loss, 0, metric="bbox_map") == "trained"
    model = seen["cfg"].model
    assert model.rpn_head.loss_cls.type == "CrossEntropyLoss" and model.rpn_head.loss_bbox.type == "L1Loss"
    assert model.roi_head.bbox_head.loss_cls.graph["name"] == "rcnn_cls"
    assert model.roi_head.bbox_head.loss_bbox.graph["name"] == "rcnn_reg"


@pytest.mark.parametrize("branch, tree", [
    ("rpn_cls", ["neg", ["mul", "y", ["log", "y_hat"]]]),
    ("rcnn_reg", ["neg", ["log", ["mul", "i", ["inv", "e"]]]]),
    ("rpn_reg", ["max_pool", ["mul", "e", ["inv", "u"]]]),
])
def test_the_objective_built_in_one_go_equals_the_per_sample_one(task, samples, branch, tree):
    # DetTask.joint_loss_inputs builds all B samples' loss inputs in one call; values and
    # gradients of the rejection objective must be those of the per-sample construction.
    from autoloss_worker.fastreject.engines import sample_objective
    from autoloss_worker.tasks.base import Task

    loss = _loss(**{branch: tree})[branch]

    class PerSample:  # the same task without its one-call path: Task's per-sample default
        def joint_loss_inputs(self, *args, **kwargs):
            return Task.joint_loss_inputs(self, *args, **kwargs)

        def __getattr__(self, name):
            return getattr(task, name)

    def value_and_grads(t):
        preds = [s.raw[branch].detach().clone().requires_grad_(True) for s in samples]
        value = sample_objective(t, loss, branch, preds, samples, "bbox_map")
        return value.item(), torch.autograd.grad(value, preds)

    assert type(task).joint_loss_inputs is not Task.joint_loss_inputs  # det builds them in one call
    v1, g1 = value_and_grads(task)
    v2, g2 = value_and_grads(PerSample())
    assert v1 == pytest.approx(v2, rel=1e-12)
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-15)
