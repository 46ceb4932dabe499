"""The mmseg task on any MMSegmentation config: branches from the config's slots (an auxiliary
head, a CascadeEncoderDecoder's list of decode heads, a list of losses), rejection samples per
branch against mmseg's own forward, proxy training and export with every branch, mmseg's own
CrossEntropyLoss as the reference for the baseline graph, and the configs refused.

The configs are the shipped ``seg_mmseg_shapes.py`` (tiny backbone, shapes data) with a PSPNet-like
auxiliary FCNHead (loss_weight 0.4) or turned into an OCRNet-like CascadeEncoderDecoder.
Run: OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q python_workers/tests/test_mmlab_seg_any_config.py"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops is not installed (scripts/setup-mmlab.sh)")
pytest.importorskip("mmseg", reason="MMSegmentation is not installed (scripts/setup-mmlab.sh)")

from mmengine.config import Config  # noqa: E402

from autoloss_worker.mmlab.rewrite import rewrite_config  # noqa: E402
from autoloss_worker.mmlab.slots import SlotError  # noqa: E402
from autoloss_worker.task_jobs import eval_loss_job, task_info_job, train_loss_job  # noqa: E402
from autoloss_worker.tasks import get_task  # noqa: E402
from autoloss_worker.tasks.mmlab_proxy import SHIPPED_CONFIGS  # noqa: E402
from autoloss_worker.tasks.mmseg_task import CE  # noqa: E402
from mmlab_configs import dense_wire, derived_configs  # noqa: E402

torch.set_num_threads(1)
SHIPPED = str(SHIPPED_CONFIGS / "seg_mmseg_shapes.py")
# −½·log(tanh(y/(1+y)·√ŷ)·(ŷ² + y)): the paper's searched mIoU loss (Table 8), not CE
PAPER_MIOU = ["mul", ["neg", ["mul", "one", ["inv", ["add", "one", "one"]]]],
              ["log", ["mul", ["tanh", ["mul", ["mul", "y", ["inv", ["add", "one", "y"]]], ["sqrt", "y_hat"]]],
                       ["add", ["square", "y_hat"], "y"]]]]

_HEAD = "num_classes=5, norm_cfg=dict(type='BN', requires_grad=True), align_corners=False"
_CE = "dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight={w})"
# Shipped backbone outputs: (16, 32, 64) channels at strides 4, 8, 8.
CONFIGS = {
    "psp": f"""
model = dict(auxiliary_head=dict(type='FCNHead', in_channels=32, in_index=1, channels=16, num_convs=1,
                                 concat_input=False, dropout_ratio=0.1, {_HEAD}, loss_decode={_CE.format(w=0.4)}))
""",
    "ocr": f"""
model = dict(type='CascadeEncoderDecoder', num_stages=2, decode_head=[
    dict(type='FCNHead', in_channels=64, in_index=2, channels=16, num_convs=1, concat_input=False,
         dropout_ratio=-1, {_HEAD}, loss_decode={_CE.format(w=0.4)}),
    dict(type='OCRHead', in_channels=64, in_index=2, channels=16, ocr_channels=16, dropout_ratio=-1, {_HEAD},
         loss_decode={_CE.format(w=1.0)})])
""",
    "ce_dice": """
model = dict(decode_head=dict(loss_decode=[dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                                           dict(type='DiceLoss', loss_weight=0.5)]))
""",
    "sigmoid": """
model = dict(decode_head=dict(loss_decode=dict(_delete_=True, type='CrossEntropyLoss', use_sigmoid=True)))
""",
    "stdc_aux": f"""
model = dict(auxiliary_head=dict(type='STDCHead', in_channels=32, in_index=1, channels=16, num_convs=1,
                                 concat_input=False, boundary_threshold=0.1, {_HEAD},
                                 loss_decode={_CE.format(w=1.0)}))
""",
    "depth": """
model = dict(type='DepthEstimator')
""",
}


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return derived_configs(tmp_path_factory.mktemp("mmseg-configs"), SHIPPED, CONFIGS)


def _task(configs, name: str, **options):
    return get_task("mmseg", config=configs[name], pretrained=False, **options)


# ----------------------------------------------------------------------------- branches

@pytest.mark.parametrize("name, slots", [
    ("shipped", {"loss": ("decode_head.loss_decode", 1.0)}),
    ("psp", {"loss": ("decode_head.loss_decode", 1.0), "aux": ("auxiliary_head.loss_decode", 0.4)}),
    ("ocr", {"loss0": ("decode_head.0.loss_decode", 0.4), "loss1": ("decode_head.1.loss_decode", 1.0)}),
    ("ce_dice", {"loss_0": ("decode_head.loss_decode.0", 1.0), "loss_1": ("decode_head.loss_decode.1", 0.5)}),
])
def test_branches_are_the_configs_slots_in_config_order_with_their_weights(configs, name, slots):
    task = _task(configs, name)
    assert list(task.branches) == list(slots) and set(task.branches.values()) == {"dense"}
    assert {s.name: (s.key, s.loss_weight) for s in task.proxy_slots()} == slots
    info = task_info_job({"task": "mmseg", "options": {"config": configs[name], "pretrained": False}})
    assert [b["name"] for b in info["branches"]] == list(slots)
    assert task.baseline_loss == dense_wire({n: CE for n in slots})


def test_the_shipped_config_keeps_its_single_branch_loss():
    task = get_task("mmseg")
    assert task.branches == {"loss": "dense"} and task_info_job({"task": "mmseg"})["branches"] == [{"name": "loss", "kind": "dense"}]


def test_the_branches_option_searches_a_subset_and_names_unknown_ones(configs):
    task = _task(configs, "psp", branches="aux")
    assert list(task.branches) == ["aux"] and task.baseline_loss == dense_wire({"aux": CE})
    assert list(_task(configs, "psp", branches="aux,loss").branches) == ["loss", "aux"]  # config order
    with pytest.raises(ValueError, match="option branches names decode, not branches of the task \\(loss, aux\\)"):
        _task(configs, "psp", branches="decode")


# ----------------------------------------------------------------------------- rejection samples

def _mmseg_forward(cfg_path: str, B: int, seed: int) -> dict[str, torch.Tensor]:
    """Each head's logits as mmseg's own forward computes them for the recorder's batch (the same
    seeded model, images and preprocessing), resized to the label size as ``loss_by_feat`` does:
    the reference the recorded samples must equal."""
    from autoloss_worker.mmlab.seeded import quiet, seeded_model_and_dataset

    cfg = get_task("mmseg", config=cfg_path, pretrained=False).rejection_config
    with quiet(), torch.no_grad(), seeded_model_and_dataset(cfg, seed, "mmseg") as (model, dataset, order):
        items = [dataset[i] for i in order[:B]]
        batch = model.data_preprocessor({"inputs": [d["inputs"] for d in items],
                                         "data_samples": [d["data_samples"] for d in items]}, True)
        feats = model.extract_feat(batch["inputs"])
        size = batch["inputs"].shape[-2:]  # the padded batch: labels are padded to it too
        if isinstance(model.decode_head, torch.nn.ModuleList):  # cascade: the second head reads the first's logits
            first = model.decode_head[0](feats)
            out = {"loss0": first, "loss1": model.decode_head[1](feats, first)}
        else:
            out = {"loss": model.decode_head(feats)}
        if model.with_auxiliary_head:
            out["aux"] = model.auxiliary_head(feats)
        return {name: torch.nn.functional.interpolate(logits, size=size, mode="bilinear", align_corners=False).double()
                for name, logits in out.items()}


@pytest.mark.parametrize("name", ["shipped", "psp", "ocr"])
def test_each_branchs_samples_are_its_heads_logits_at_label_size(configs, name):
    task = _task(configs, name)
    samples = task.rejection_samples(3, 0)
    expected = _mmseg_forward(configs[name], 3, 0)
    assert list(samples[0].raw) == list(task.branches)
    for b, s in enumerate(samples):
        for branch, raw in s.raw.items():
            assert raw.shape == (1, 5, 64, 64)
            torch.testing.assert_close(raw, expected[branch][b : b + 1], rtol=0, atol=0)
    # the random heads differ from each other: each branch really is its own head's prediction
    first, second = samples[0].raw.values() if len(samples[0].raw) == 2 else (None, None)
    assert first is None or not torch.equal(first, second)


def test_a_list_of_losses_gives_each_item_the_same_logits(configs):
    samples = _task(configs, "ce_dice").rejection_samples(2, 0)
    expected = _mmseg_forward(configs["ce_dice"], 2, 0)["loss"]
    for b, s in enumerate(samples):
        assert torch.equal(s.raw["loss_0"], expected[b : b + 1]) and torch.equal(s.raw["loss_1"], expected[b : b + 1])


@pytest.mark.parametrize("name", ["psp", "ocr"])
def test_ground_truth_gives_xi_one_per_branch_and_xi_is_the_checked_branchs_own(configs, name):
    from autoloss_worker.rejection import with_ground_truth

    task = _task(configs, name)
    single = {branch: _task(configs, name, branches=branch) for branch in task.branches}
    for s in task.rejection_samples(5, 0):
        gt = {b: task.ground_truth_raw(b, s.target) for b in task.branches}
        assert task.sample_metric(gt, s.target, "miou") == 1.0
        for branch in task.branches:
            raw = with_ground_truth(task, branch, s.raw[branch], s.target)
            xi = task.sample_metric(raw, s.target, "miou")
            assert xi < 1.0  # a random head (all background scores about 0.5 here)
            assert xi == single[branch].sample_metric({branch: s.raw[branch]}, s.target, "miou")


def test_eval_loss_on_a_two_branch_loss_gives_a_verdict_per_branch(configs):
    options = {"config": configs["psp"], "pretrained": False}
    both = eval_loss_job({"task": "mmseg", "options": options, "loss": dense_wire({"loss": CE, "aux": CE})})
    assert both["passed"] and list(both["branches"]) == ["loss", "aux"]
    assert all(v["passed"] and v["score"] >= 0.6 for v in both["branches"].values())
    flipped = eval_loss_job({"task": "mmseg", "options": options, "branches": ["loss", "aux"],
                             "loss": dense_wire({"loss": CE, "aux": ["neg", CE]})})
    assert not flipped["passed"]
    assert flipped["branches"]["loss"]["passed"] and not flipped["branches"]["aux"]["passed"]


def test_the_fast_path_gives_the_reference_protocols_verdict_per_branch(configs):
    from autoloss_worker.fastreject import check_loss
    from autoloss_worker.graph import loss_from_wire
    from autoloss_worker.rejection import RejectionConfig

    loss = dense_wire({"loss": CE, "aux": PAPER_MIOU})
    short = {"iterations": 100}  # the reference steps sample by sample: keep it cheap
    reference = check_loss(_task(configs, "psp"), loss_from_wire(loss), "miou", 0, RejectionConfig(**short))
    fast = eval_loss_job({"task": "mmseg", "options": {"config": configs["psp"], "pretrained": False, "rejection": short},
                          "branches": ["loss", "aux"], "loss": loss})
    for branch in ("loss", "aux"):
        assert fast["branches"][branch]["score"] == pytest.approx(reference[branch].score, abs=1e-9)
        assert fast["branches"][branch]["gradNorms"] == pytest.approx(reference[branch].grad_norms, rel=1e-9)


# ----------------------------------------------------------------------------- proxy training, export

@pytest.mark.parametrize("name", ["psp", "ocr"])
def test_proxy_training_with_both_branches_searched_gives_finite_metrics(configs, name):
    task = _task(configs, name)
    loss = dense_wire({b: PAPER_MIOU for b in task.branches})
    rewritten = rewrite_config(task.proxy_config(), loss, task.proxy_slots(), proxy=None)
    for slot in task.proxy_slots():
        node = rewritten.model
        for part in slot.key.split("."):
            node = node[int(part)] if part.isdigit() else node[part]
        assert node["type"] == "AutoLossGraph" and node["loss_weight"] == slot.loss_weight
    out = train_loss_job({"task": "mmseg", "loss": loss, "options": {"config": configs[name], "pretrained": False,
                                                                     "iterations": 2, "warmup_iters": 1}})
    assert not out["invalid"] and out["iterations"] == 2
    assert set(out["metrics"]) == {"miou", "macc", "gacc"} and all(0.0 <= v <= 1.0 for v in out["metrics"].values())


def test_a_subset_keeps_the_configs_own_loss_in_the_other_slots(configs):
    task = _task(configs, "ce_dice", branches="loss_0")
    slots = [s for s in task.proxy_slots() if s.name in task.branches]  # as proxy_train passes them
    rewritten = rewrite_config(task.proxy_config(), task.baseline_loss, slots, proxy=None)
    first, second = rewritten.model.decode_head.loss_decode
    assert first["type"] == "AutoLossGraph" and second["type"] == "DiceLoss"


@pytest.mark.parametrize("name, slot", [("psp", "aux"), ("ocr", "loss0")])
def test_the_baseline_graph_in_a_weighted_slot_equals_mmsegs_cross_entropy(configs, name, slot):
    """CE as a graph in the aux head (PSPNet-like) or the first cascade head (OCRNet-like), both
    loss_weight 0.4: the head's ``loss_by_feat`` gives what mmseg's CrossEntropyLoss gives there,
    on one synthetic batch with ignored pixels."""
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules

    from autoloss_worker.mmlab import registry  # noqa: F401  (registers AutoLossGraph)

    register_all_modules(init_default_scope=True)
    task = _task(configs, name)
    key = next(s.key for s in task.proxy_slots() if s.name == slot).rsplit(".", 1)[0]  # the head owning the slot
    own = Config.fromfile(configs[name])
    ours = rewrite_config(own, task.baseline_loss, task.proxy_slots(), proxy=None)

    def head(cfg):
        node = cfg.model
        for part in key.split("."):
            node = node[int(part)] if part.isdigit() else node[part]
        return MODELS.build(node)

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn((2, 5, 16, 16), generator=gen, dtype=torch.float64)  # resized to 32 × 32 by loss_by_feat
    labels = torch.randint(0, 5, (2, 1, 32, 32), generator=gen)
    labels[:, :, :6] = 255  # an unlabelled band
    samples = []
    for b in range(2):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=labels[b])
        samples.append(s)
    theirs = head(own).loss_by_feat(logits, samples)["loss_ce"]
    mine = head(ours).loss_by_feat(logits, samples)["loss_autoloss"]
    torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12)
    unweighted = torch.nn.functional.cross_entropy(  # the reference's own arithmetic, independently
        torch.nn.functional.interpolate(logits, size=(32, 32), mode="bilinear", align_corners=False),
        labels[:, 0], ignore_index=255, reduction="sum") / labels.numel()
    torch.testing.assert_close(mine, 0.4 * unweighted, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["psp", "ocr", "ce_dice"])
def test_export_writes_every_searched_branch_into_its_slot(configs, name, tmp_path: Path):
    from autoloss_worker.mmlab.export import export_fragment

    task = _task(configs, name)
    loss = dense_wire({b: PAPER_MIOU for b in task.branches})
    out = export_fragment(loss, "mmseg", "mmseg", str(tmp_path / "found.py"),
                          options={"config": configs[name], "pretrained": False})
    assert out["branches"] == list(task.branches)
    written = Config.fromfile(out["path"], import_custom_modules=False)
    for slot in task.proxy_slots():
        node = written.model
        for part in slot.key.split("."):
            node = node[int(part)] if part.isdigit() else node[part]
        assert node["type"] == "AutoLossGraph" and node["loss_weight"] == slot.loss_weight
        assert node["graph"]["name"] == slot.name


# ----------------------------------------------------------------------------- MMSegmentation's own configs

# (config under mmseg/.mim/configs, its branches {name: (key, loss_weight)} or the refusal's words,
#  the slots kept with the config's loss), read off the config files: layouts only, nothing built.
_WITH_AUX = {"loss": ("decode_head.loss_decode", 1.0), "aux": ("auxiliary_head.loss_decode", 0.4)}
ZOO = [
    ("pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py", _WITH_AUX, []),
    ("upernet/upernet_r50_4xb2-40k_cityscapes-512x1024.py", _WITH_AUX, []),
    ("deeplabv3plus/deeplabv3plus_r50-d8_4xb2-40k_cityscapes-512x1024.py", _WITH_AUX, []),
    ("ocrnet/ocrnet_hr18_4xb2-40k_cityscapes-512x1024.py",
     {"loss0": ("decode_head.0.loss_decode", 0.4), "loss1": ("decode_head.1.loss_decode", 1.0)}, []),
    # STDCHead's boundary losses (sigmoid CE + Dice) keep theirs; the FCN auxiliary heads are searched
    ("stdc/stdc1_4xb12-80k_cityscapes-512x1024.py",
     {"loss": ("decode_head.loss_decode", 1.0), "aux0": ("auxiliary_head.0.loss_decode", 1.0),
      "aux1": ("auxiliary_head.1.loss_decode", 1.0)}, ["aux2_0", "aux2_1"]),
    ("danet/danet_r50-d8_4xb2-40k_cityscapes-512x1024.py", {"aux": ("auxiliary_head.loss_decode", 0.4)}, ["loss"]),
    ("point_rend/pointrend_r50_4xb2-80k_cityscapes-512x1024.py", {"loss0": ("decode_head.0.loss_decode", 1.0)}, ["loss1"]),
    ("pidnet/pidnet-s_2xb6-120k_1024x1024-cityscapes.py", "PIDHead computes its losses in PIDHead.loss_by_feat", None),
]


@pytest.mark.parametrize("relative, branches, kept", ZOO, ids=[z[0].split("/")[0] for z in ZOO])
def test_mmsegmentations_own_configs_are_laid_out_as_documented(relative, branches, kept):
    import importlib.util

    from autoloss_worker.mmlab.seg_layout import segmentor_layout

    path = Path(importlib.util.find_spec("mmseg").origin).parent / ".mim" / "configs" / relative
    cfg = Config.fromfile(str(path))
    if isinstance(branches, str):
        with pytest.raises(SlotError, match=f"mmseg: no loss of this config can be searched.*{branches}"):
            segmentor_layout(cfg)
        return
    layout = segmentor_layout(cfg)
    assert {s.name: (s.key, s.loss_weight) for s in layout.slots} == branches and list(layout.branches) == list(branches)
    assert sorted(k for k in layout.kept if "." not in k) == kept  # kept is keyed by name and by key


# ----------------------------------------------------------------------------- refused

def test_a_config_with_nothing_searchable_is_refused_naming_the_slot(configs):
    with pytest.raises(SlotError, match=r"mmseg: no loss of this config can be searched\. autoloss cannot search the loss "
                                        r"at model\.decode_head\.loss_decode \(CrossEntropyLoss .*use_sigmoid=True"):
        _task(configs, "sigmoid")


def test_a_head_with_its_own_loss_by_feat_keeps_its_loss_and_cannot_be_named(configs):
    assert list(_task(configs, "stdc_aux").branches) == ["loss"]  # the STDC auxiliary head keeps its CE
    with pytest.raises(SlotError, match=r"cannot search the loss at model\.auxiliary_head\.loss_decode .*"
                                        r"STDCHead computes its losses in STDCHead\.loss_by_feat"):
        _task(configs, "stdc_aux", branches="aux")


def test_a_segmentor_computing_its_losses_elsewhere_is_refused(configs):
    with pytest.raises(SlotError, match=r"cannot search DepthEstimator: it computes its losses in DepthEstimator\.loss"):
        _task(configs, "depth")
