"""The mmpose task on any MMPose config: branches from the config's heatmap slots (a CPMHead's loss
shared by its stages, a list of losses, one per CPM stage or MSPN unit), rejection samples per
branch against MMPose's own forward, proxy training and export with every branch; MMPose's own
configs laid out and refused as documented, built with AutoLossGraph in every searchable slot,
one forward/backward on a synthetic batch, and the squared-error graph equal to K × MMPose's
KeypointMSELoss (values and gradients) in every slot where the config has that loss.

The task-level configs are the shipped ``pose_topdown_shapes.py`` (64 × 64 crops, K = 5, shapes
data) with a tiny CPM (2 stages, 8 × 8 heatmaps) or MSPN (1 stage, 2 units, two target levels).
Run: OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q python_workers/tests/test_mmlab_pose_any_config.py"""
from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops is not installed (scripts/setup-mmlab.sh)")
pytest.importorskip("mmpose", reason="MMPose is not installed (scripts/setup-mmlab.sh)")

from mmengine.config import Config  # noqa: E402

from autoloss_worker.mmlab.rewrite import rewrite_config  # noqa: E402
from autoloss_worker.mmlab.slots import SlotError  # noqa: E402
from autoloss_worker.task_jobs import eval_loss_job, task_info_job, train_loss_job  # noqa: E402
from autoloss_worker.tasks import get_task  # noqa: E402
from autoloss_worker.tasks.mmlab_proxy import SHIPPED_CONFIGS  # noqa: E402
from autoloss_worker.tasks.mmpose_task import SQUARED_ERROR  # noqa: E402
from mmlab_configs import dense_wire, derived_configs  # noqa: E402

torch.set_num_threads(1)
SHIPPED = str(SHIPPED_CONFIGS / "pose_topdown_shapes.py")
# The paper's searched pose loss (Table 8): (ŷ − 16y⁴)² + ŷ⁴.
SIXTEEN = ["square", ["square", ["add", "one", "one"]]]
PAPER_POSE = ["add", ["square", ["add", "y_hat", ["neg", ["mul", SIXTEEN, ["square", ["square", "y"]]]]]],
              ["square", ["square", "y_hat"]]]

_MSE = "dict(type='KeypointMSELoss', use_target_weight=True, loss_weight={w})"


def _pipeline(codec: str, multilevel: bool = False) -> str:
    return f"""
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImage'), dict(type='GetBBoxCenterScale', padding=1.25),
    dict(type='RandomBBoxTransform', shift_factor=0.1, scale_factor=(0.8, 1.2), rotate_prob=0.0),
    dict(type='TopdownAffine', input_size=(64, 64)),
    dict(type='GenerateTarget', encoder={codec}{', multilevel=True' if multilevel else ''}), dict(type='PackPoseInputs')]))
"""


# CPM's stride is 8: 8 × 8 heatmaps for the 64 × 64 crops. MSPN: 16 × 16, one target level per unit.
_CPM_CODEC = "dict(type='MSRAHeatmap', input_size=(64, 64), heatmap_size=(8, 8), sigma=1)"
_MSPN_CODEC = "[dict(type='MegviiHeatmap', input_size=(64, 64), heatmap_size=(16, 16), kernel_size=k) for k in (5, 3)]"


def _cpm(loss: str) -> str:
    return f"""
model = dict(
    backbone=dict(_delete_=True, type='CPM', in_channels=3, out_channels=5, feat_channels=16, middle_channels=8,
                  num_stages=2),
    head=dict(_delete_=True, type='CPMHead', in_channels=5, out_channels=5, num_stages=2, deconv_out_channels=None,
              final_layer=None, loss={loss}, decoder={_CPM_CODEC}))
""" + _pipeline(_CPM_CODEC)


CONFIGS = {
    # one loss shared by the two stages: one branch, both stages' heatmaps side by side
    "cpm": _cpm(_MSE.format(w=1.0)),
    # one loss per stage: two branches with their own weights
    "cpm_list": _cpm(f"[{_MSE.format(w=0.5)}, {_MSE.format(w=1.0)}]"),
    # a stage whose loss is not a heatmap loss: it keeps it, the other stage is searched
    "cpm_mixed": _cpm(f"[{_MSE.format(w=1.0)}, dict(type='KLDiscretLoss', use_target_weight=True)]"),
    # MSPN: one loss per unit, each against its own target level; the last is OHKM, as MMPose's configs
    "mspn": f"""
model = dict(
    # res_top_channels stays 64: MMPose 1.3.2's ResNetTop ignores it and always gives 64 channels
    backbone=dict(_delete_=True, type='MSPN', unit_channels=16, num_stages=1, num_units=2, num_blocks=[1, 1]),
    head=dict(_delete_=True, type='MSPNHead', out_shape=(16, 16), unit_channels=16, out_channels=5, num_stages=1,
              num_units=2, level_indices=[0, 1],
              loss=[{_MSE.format(w=0.25)}, dict(type='KeypointOHKMMSELoss', use_target_weight=True, topk=3)],
              decoder={_MSPN_CODEC}[-1]))
""" + _pipeline(_MSPN_CODEC, multilevel=True),
    # RTMPose-like SimCC head: nothing to search
    "simcc": """
model = dict(head=dict(_delete_=True, type='SimCCHead', in_channels=64, out_channels=5, input_size=(64, 64),
                       in_featuremap_size=(4, 4), simcc_split_ratio=2.0, deconv_out_channels=None,
                       loss=dict(type='KLDiscretLoss', use_target_weight=True),
                       decoder=dict(type='SimCCLabel', input_size=(64, 64), sigma=2.0, simcc_split_ratio=2.0)))
""",
}


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return derived_configs(tmp_path_factory.mktemp("mmpose-configs"), SHIPPED, CONFIGS)


def _task(configs, name: str, **options):
    return get_task("mmpose", config=configs[name], pretrained=False, **options)


# ----------------------------------------------------------------------------- branches

@pytest.mark.parametrize("name, slots", [
    ("shipped", {"loss": ("head.loss", 1.0)}),
    ("cpm", {"loss": ("head.loss", 1.0)}),
    ("cpm_list", {"loss_0": ("head.loss.0", 0.5), "loss_1": ("head.loss.1", 1.0)}),
    ("mspn", {"loss_0": ("head.loss.0", 0.25), "loss_1": ("head.loss.1", 1.0)}),
])
def test_branches_are_the_configs_slots_in_config_order_with_their_weights(configs, name, slots):
    task = _task(configs, name)
    assert list(task.branches) == list(slots) and set(task.branches.values()) == {"dense"}
    assert {s.name: (s.key, s.loss_weight) for s in task.proxy_slots()} == slots
    info = task_info_job({"task": "mmpose", "options": {"config": configs[name], "pretrained": False}})
    assert [b["name"] for b in info["branches"]] == list(slots)
    assert task.baseline_loss == dense_wire({n: SQUARED_ERROR for n in slots})


def test_the_branches_option_searches_a_subset_and_names_unknown_ones(configs):
    task = _task(configs, "mspn", branches="loss_1")
    assert list(task.branches) == ["loss_1"] and task.baseline_loss == dense_wire({"loss_1": SQUARED_ERROR})
    assert list(_task(configs, "mspn", branches=["loss_1", "loss_0"]).branches) == ["loss_0", "loss_1"]  # config order
    with pytest.raises(ValueError, match=r"option branches names loss_2, not branches of the task \(loss_0, loss_1\)"):
        _task(configs, "mspn", branches="loss_2")


# ----------------------------------------------------------------------------- rejection samples

def _mmpose_forward(cfg_path: str, B: int, seed: int) -> list[list[torch.Tensor]]:
    """Per usable instance, the head's heatmaps as MMPose's own forward computes them (every stage
    or unit, in order) for the recorder's instances: the same seeded model, pipeline draws and
    preprocessing. The reference the recorded samples must equal."""
    from autoloss_worker.mmlab.mmpose_samples import _pipeline_with_state
    from autoloss_worker.mmlab.seeded import quiet, seeded_model_and_dataset

    cfg = get_task("mmpose", config=cfg_path, pretrained=False).rejection_config
    out = []
    with quiet(), torch.no_grad(), seeded_model_and_dataset(cfg, seed, "mmpose") as (model, dataset, order):
        for i in order:
            _, packed = _pipeline_with_state(dataset, i)
            batch = model.data_preprocessor({"inputs": [packed["inputs"]], "data_samples": [packed["data_samples"]]}, True)
            if not bool((batch["data_samples"][0].gt_instance_labels.keypoint_weights > 0).any()):
                continue
            heatmaps = model.head(model.extract_feat(batch["inputs"]))
            out.append([h.double() for h in (heatmaps if isinstance(heatmaps, (list, tuple)) else [heatmaps])])
            if len(out) == B:
                return out
    raise AssertionError("too few usable instances")


@pytest.mark.parametrize("name, calls", [
    ("shipped", {"loss": [0]}),
    ("cpm", {"loss": [0, 1]}),  # the shared loss: both stages side by side
    ("cpm_list", {"loss_0": [0], "loss_1": [1]}),
    ("mspn", {"loss_0": [0], "loss_1": [1]}),
])
def test_each_branchs_samples_are_what_its_loss_gets(configs, name, calls):
    task = _task(configs, name)
    samples = task.rejection_samples(3, 0)
    expected = _mmpose_forward(configs[name], 3, 0)
    for s, heads in zip(samples, expected):
        assert list(s.raw) == list(calls)
        for branch, stages in calls.items():
            torch.testing.assert_close(s.raw[branch], torch.cat([heads[k] for k in stages], dim=1), rtol=0, atol=0)
            own = s.target.branches[branch]
            assert own.heatmaps.shape == s.raw[branch].shape and own.weight.shape == (1, 5 * len(stages), 1, 1)
    if name == "mspn":  # each unit against its own level: kernel 5, then 3
        own = samples[0].target.branches
        assert not torch.equal(own["loss_0"].heatmaps, own["loss_1"].heatmaps)


@pytest.mark.parametrize("name", ["cpm", "cpm_list", "mspn"])
def test_ground_truth_gives_xi_one_per_branch_and_xi_is_the_checked_branchs_own(configs, name):
    from autoloss_worker.rejection import with_ground_truth

    task = _task(configs, name)
    single = {branch: _task(configs, name, branches=branch) for branch in task.branches}
    for s in task.rejection_samples(5, 0):
        gt = {b: task.ground_truth_raw(b, s.target) for b in task.branches}
        assert task.sample_metric(gt, s.target, "map") == 1.0
        for branch in task.branches:
            raw = with_ground_truth(task, branch, s.raw[branch], s.target)
            xi = task.sample_metric(raw, s.target, "map")
            assert 0.0 <= xi < 1.0  # a random network
            assert xi == single[branch].sample_metric({branch: s.raw[branch]}, s.target, "map")


def test_eval_loss_on_a_two_branch_loss_gives_a_verdict_per_branch(configs):
    options = {"config": configs["mspn"], "pretrained": False}
    both = eval_loss_job({"task": "mmpose", "options": options, "loss": dense_wire({"loss_0": SQUARED_ERROR, "loss_1": SQUARED_ERROR})})
    assert list(both["branches"]) == ["loss_0", "loss_1"]
    assert all(v["passed"] for v in both["branches"].values()), both["branches"]
    flipped = eval_loss_job({"task": "mmpose", "options": options, "branches": ["loss_0", "loss_1"],
                             "loss": dense_wire({"loss_0": SQUARED_ERROR, "loss_1": ["neg", SQUARED_ERROR]})})
    assert not flipped["passed"]
    assert flipped["branches"]["loss_0"]["passed"] and not flipped["branches"]["loss_1"]["passed"]


def test_the_fast_path_gives_the_reference_protocols_verdict_per_branch(configs):
    from autoloss_worker.fastreject import check_loss
    from autoloss_worker.graph import loss_from_wire
    from autoloss_worker.rejection import RejectionConfig

    loss = dense_wire({"loss_0": SQUARED_ERROR, "loss_1": PAPER_POSE})
    short = {"iterations": 100}
    reference = check_loss(_task(configs, "cpm_list"), loss_from_wire(loss), "map", 0, RejectionConfig(**short))
    fast = eval_loss_job({"task": "mmpose", "options": {"config": configs["cpm_list"], "pretrained": False, "rejection": short},
                          "branches": ["loss_0", "loss_1"], "loss": loss})
    for branch in ("loss_0", "loss_1"):
        assert fast["branches"][branch]["score"] == pytest.approx(reference[branch].score, abs=1e-9)
        assert fast["branches"][branch]["gradNorms"] == pytest.approx(reference[branch].grad_norms, rel=1e-9)


# ----------------------------------------------------------------------------- proxy training, export

@pytest.mark.parametrize("name", ["mspn"])  # a list of losses, the last one OHKM in the config
def test_proxy_training_with_every_branch_searched_gives_a_finite_metric(configs, name):
    task = _task(configs, name)
    loss = dense_wire({b: PAPER_POSE for b in task.branches})
    rewritten = rewrite_config(task.proxy_config(), loss, task.proxy_slots(), proxy=None)
    for slot in task.proxy_slots():
        node = rewritten.model.head.loss[int(slot.key.rsplit(".", 1)[1])]
        assert node["type"] == "AutoLossGraph" and node["loss_weight"] == slot.loss_weight
    out = train_loss_job({"task": "mmpose", "loss": loss, "options": {"config": configs[name], "pretrained": False,
                                                                       "iterations": 2, "warmup_iters": 1}})
    assert not out["invalid"] and out["iterations"] == 2 and 0.0 <= out["metrics"]["map"] <= 1.0


def test_a_subset_keeps_the_configs_own_loss_in_the_other_slots(configs):
    task = _task(configs, "mspn", branches="loss_0")
    slots = [s for s in task.proxy_slots() if s.name in task.branches]  # as proxy_train passes them
    first, second = rewrite_config(task.proxy_config(), task.baseline_loss, slots, proxy=None).model.head.loss
    assert first["type"] == "AutoLossGraph" and second["type"] == "KeypointOHKMMSELoss"


@pytest.mark.parametrize("name", ["cpm", "cpm_list", "mspn"])
def test_export_writes_every_searched_branch_into_its_slot(configs, name, tmp_path: Path):
    from autoloss_worker.mmlab.export import export_fragment

    task = _task(configs, name)
    loss = dense_wire({b: PAPER_POSE for b in task.branches})
    out = export_fragment(loss, "mmpose", "mmpose", str(tmp_path / "found.py"),
                          options={"config": configs[name], "pretrained": False})
    assert out["branches"] == list(task.branches)
    written = Config.fromfile(out["path"], import_custom_modules=False)
    for slot in task.proxy_slots():
        node = written.model.head.loss
        node = node if slot.key == "head.loss" else node[int(slot.key.rsplit(".", 1)[1])]
        assert node["type"] == "AutoLossGraph" and node["loss_weight"] == slot.loss_weight
        assert node["graph"]["name"] == slot.name


# ----------------------------------------------------------------------------- refused

def test_a_config_with_nothing_searchable_is_refused_naming_the_slot(configs):
    with pytest.raises(SlotError, match=r"mmpose: no loss of this config can be searched\. the mmpose task cannot search "
                                        r"the loss at model\.head\.loss \(KLDiscretLoss in SimCCHead, kind simcc\): .*It "
                                        r"searches top-down heatmap heads"):
        _task(configs, "simcc")


def test_a_slot_kept_with_its_loss_cannot_be_named(configs):
    assert list(_task(configs, "cpm_mixed").branches) == ["loss_0"]
    for name in ("loss_1", "head.loss.1"):
        with pytest.raises(SlotError, match=r"the mmpose task cannot search the loss at model\.head\.loss\.1 \(KLDiscretLoss "
                                            r"in CPMHead, kind simcc\): KLDiscretLoss is not a heatmap loss"):
            _task(configs, "cpm_mixed", branches=name)


# ----------------------------------------------------------------------------- MMPose's own configs

def zoo(relative: str) -> str:
    path = Path(importlib.util.find_spec("mmpose").origin).parent / ".mim" / "configs" / relative
    assert path.is_file(), f"mmpose no longer ships {relative}"
    return str(path)


TD = "body_2d_keypoint/topdown_heatmap/coco/"
_MSPN_ITEMS = {"loss_0": ("head.loss.0", 0.25), "loss_1": ("head.loss.1", 0.25), "loss_2": ("head.loss.2", 0.25),
               "loss_3": ("head.loss.3", 1.0)}
# (config under mmpose/.mim/configs, its branches {name: (key, loss_weight)} or the refusal's words,
#  the slots kept with the config's loss), read off the config files: layouts only, nothing built.
ZOO = [
    (TD + "td-hm_res50_8xb64-210e_coco-256x192.py", {"loss": ("head.loss", 1.0)}, []),
    (TD + "td-hm_hrnet-w32_8xb64-210e_coco-256x192.py", {"loss": ("head.loss", 1.0)}, []),
    (TD + "td-hm_vipnas-mbv3_8xb64-210e_coco-256x192.py", {"loss": ("head.loss", 1.0)}, []),
    (TD + "td-hm_cpm_8xb64-210e_coco-256x192.py", {"loss": ("head.loss", 1.0)}, []),  # shared by 6 stages
    (TD + "td-hm_hourglass52_8xb32-210e_coco-256x256.py", {"loss": ("head.loss", 1.0)}, []),  # CPMHead, 1 stage
    (TD + "td-hm_mspn50_8xb32-210e_coco-256x192.py", _MSPN_ITEMS, []),
    (TD + "td-hm_rsn18_8xb32-210e_coco-256x192.py", _MSPN_ITEMS, []),
    (TD + "td-hm_3xmspn50_8xb32-210e_coco-256x192.py",
     {f"loss_{i}": (f"head.loss.{i}", 1.0 if i % 4 == 3 else 0.25) for i in range(12)}, []),
    ("face_2d_keypoint/topdown_heatmap/wflw/td-hm_hrnetv2-w18_awing-8xb64-60e_wflw-256x256.py",
     {"loss": ("head.loss", 1.0)}, []),  # AdaptiveWingLoss
    # refused: not heatmap losses, or heads / estimators calling their losses otherwise
    ("body_2d_keypoint/rtmpose/coco/rtmpose-m_8xb256-420e_coco-256x192.py",
     r"model\.head\.loss \(KLDiscretLoss in RTMCCHead, kind simcc", None),
    ("body_2d_keypoint/simcc/coco/simcc_res50_8xb64-210e_coco-256x192.py",
     r"model\.head\.loss \(KLDiscretLoss in SimCCHead, kind simcc", None),
    ("body_2d_keypoint/topdown_regression/coco/td-reg_res50_rle-8xb64-210e_coco-256x192.py",
     r"model\.head\.loss \(RLELoss in RLEHead, kind keypoint_regression", None),
    ("body_2d_keypoint/integral_regression/coco/ipr_res50_dsnt-8xb64-210e_coco-256x256.py",
     r"model\.head\.loss \(MultipleLossWrapper in DSNTHead, kind keypoint_regression", None),
    (TD + "td-hm_hrnet-w32_udp-regress-8xb64-210e_coco-256x192.py",
     r"model\.head\.loss \(CombinedTargetMSELoss in HeatmapHead, .*UDP's combined targets", None),
    (TD + "td-hm-vis_res50_8xb64-210e_coco-aic-256x192-merge.py", r"model\.head\.loss \(BCELoss in VisPredictHead", None),
    ("body_2d_keypoint/associative_embedding/coco/ae_hrnet-w32_8xb24-300e_coco-512x512.py",
     r"cannot search BottomupPoseEstimator: it computes its losses in BottomupPoseEstimator\.loss", None),
    ("body_2d_keypoint/dekr/coco/dekr_hrnet-w32_8xb10-140e_coco-512x512.py", r"cannot search BottomupPoseEstimator", None),
    ("body_3d_keypoint/image_pose_lift/h36m/image-pose-lift_tcn_8xb64-200e_h36m.py", r"cannot search PoseLifter", None),
    ("hand_3d_keypoint/internet/interhand3d/internet_res50_4xb16-20e_interhand3d-256x256.py",
     r"no loss slots .*InternetHead uses the losses it defaults to", None),
]


@pytest.mark.parametrize("relative, branches, kept", ZOO, ids=[z[0].split("/")[-1].removesuffix(".py") for z in ZOO])
def test_mmposes_own_configs_are_laid_out_as_documented(relative, branches, kept):
    from autoloss_worker.mmlab.pose_layout import estimator_layout

    cfg = Config.fromfile(zoo(relative))
    if isinstance(branches, str):
        with pytest.raises(SlotError, match=branches) as refused:
            estimator_layout(cfg)
        assert "Traceback" not in str(refused.value) and "\n" not in str(refused.value)
        assert "top-down heatmap heads" in str(refused.value)  # what is supported
        return
    layout = estimator_layout(cfg)
    assert {s.name: (s.key, s.loss_weight) for s in layout.slots} == branches and list(layout.branches) == list(branches)
    assert sorted(k for k in layout.kept if "." not in k) == kept  # kept is keyed by name and by key


def test_the_visibility_heads_wrapped_heatmap_loss_is_kept_with_its_reason():
    from autoloss_worker.mmlab.pose_layout import estimator_layout
    from autoloss_worker.mmlab.slots import discover_slots

    cfg = Config.fromfile(zoo(TD + "td-hm-vis_res50_8xb64-210e_coco-aic-256x192-merge.py"))
    wrapped = next(s for s in discover_slots(cfg) if s.key == "head.pose_cfg.loss")
    assert wrapped.searchable  # discovery alone: a HeatmapHead's loss
    with pytest.raises(SlotError, match="no loss of this config can be searched"):
        estimator_layout(cfg)


# ----------------------------------------------------------------------------- built: AutoLossGraph in MMPose's configs

import autoloss_worker.mmlab.registry  # noqa: E402,F401  (AutoLossGraph in the registries)

R18_WIDTH = {256: 64, 512: 128, 1024: 256, 2048: 512}
# (config, its batch's crop (h, w), the slots whose own loss is KeypointMSELoss: compared with the graph)
BUILT = [
    (TD + "td-hm_res50_8xb64-210e_coco-256x192.py", (128, 96), ["loss"]),  # ResNet-18 for 50
    (TD + "td-hm_hrnet-w32_8xb64-210e_coco-256x192.py", (128, 96), ["loss"]),
    (TD + "td-hm_vipnas-mbv3_8xb64-210e_coco-256x192.py", (128, 96), ["loss"]),
    (TD + "td-hm_cpm_8xb64-210e_coco-256x192.py", (64, 48), ["loss"]),  # 6 stages, 8 × 6 heatmaps
    (TD + "td-hm_mspn50_8xb32-210e_coco-256x192.py", (128, 96), ["loss_0", "loss_1", "loss_2"]),  # loss_3: OHKM
    (TD + "td-hm_rsn18_8xb32-210e_coco-256x192.py", (128, 96), ["loss_0", "loss_1", "loss_2"]),
    ("face_2d_keypoint/topdown_heatmap/wflw/td-hm_hrnetv2-w18_awing-8xb64-60e_wflw-256x256.py", (128, 128), []),
]


def _cpu_sized(cfg: Config) -> Config:
    backbone = cfg.model.backbone
    if backbone.get("type") == "ResNet" and backbone.get("depth") == 50:
        backbone["depth"] = 18
        cfg.model.head["in_channels"] = R18_WIDTH[cfg.model.head["in_channels"]]
    backbone.pop("init_cfg", None)  # no checkpoint downloads
    return cfg


def _build(cfg: Config):
    from mmengine.registry import DefaultScope
    from mmpose.registry import MODELS

    with DefaultScope.overwrite_default_scope("mmpose"):
        torch.manual_seed(0)
        model = MODELS.build(copy.deepcopy(cfg.model))
    return model.double().train()  # float64: gradients compared through a whole backbone


def _batch(model, cfg: Config, size: tuple[int, int], n: int = 2):
    """A synthetic batch whose target heatmaps have the head's output size (one level per MSPN
    target level), random keypoint weights with some joints at 0."""
    from mmengine.structures import InstanceData, PixelData
    from mmpose.structures import MultilevelPixelData, PoseDataSample

    gen = torch.Generator().manual_seed(0)
    inputs = torch.randn(n, 3, *size, generator=gen, dtype=torch.float64)
    model.eval()
    with torch.no_grad():
        out = model.head(model.extract_feat(inputs))
    model.train()
    out = out if isinstance(out, (list, tuple)) else [out]
    k, (h, w) = out[-1].shape[1], out[-1].shape[-2:]
    levels = max(cfg.model.head.get("level_indices") or [0]) + 1 if cfg.model.head.type == "MSPNHead" else 0
    samples = []
    for _ in range(n):
        if levels:
            fields = MultilevelPixelData(heatmaps=[torch.rand(k, h, w, generator=gen, dtype=torch.float64)
                                                   for _ in range(levels)])
            weights = (torch.rand(levels, 1, k, generator=gen) > 0.3).double()  # MSPNHead reads (L, N, K)
        else:
            fields = PixelData(heatmaps=torch.rand(k, h, w, generator=gen, dtype=torch.float64))
            weights = (torch.rand(1, k, generator=gen) > 0.3).double()
        samples.append(PoseDataSample(metainfo=dict(input_size=(size[1], size[0])), gt_fields=fields,
                                      gt_instance_labels=InstanceData(keypoint_weights=weights)))
    return inputs, samples


def _loss_outputs(model, slots) -> dict[str, list[torch.Tensor]]:
    """Every call's value of each slot's loss module, in call order, filled by forward hooks."""
    outputs: dict[str, list[torch.Tensor]] = {}
    for slot in slots:
        module = model.head.loss_module
        module = module if slot.key == "head.loss" else module[int(slot.key.rsplit(".", 1)[1])]
        calls = outputs.setdefault(slot.name, [])
        # a clone: CPMHead and MSPNHead add the later calls onto the first one's tensor in place
        module.register_forward_hook(lambda m, args, out, calls=calls: calls.append(out.clone()))
    return outputs


@pytest.mark.parametrize("relative, size, compared", BUILT, ids=[b[0].split("/")[-1].removesuffix(".py") for b in BUILT])
def test_autoloss_graph_in_every_slot_trains_and_equals_keypoint_mse_times_k(relative, size, compared):
    from autoloss_worker.mmlab.pose_layout import estimator_layout

    cfg = _cpu_sized(Config.fromfile(zoo(relative)))
    layout = estimator_layout(cfg)
    wire = dense_wire({s.name: SQUARED_ERROR for s in layout.slots})
    own, ours = _build(cfg), _build(rewrite_config(cfg, wire, layout.slots, proxy=None))
    assert sum(type(m).__name__ == "AutoLossGraph" for m in ours.modules()) == len(layout.slots)
    ours.load_state_dict(own.state_dict())
    batch = _batch(own, cfg, size)
    values, grads = {}, {}
    for tag, model in (("own", own), ("ours", ours)):
        outputs = _loss_outputs(model, layout.slots)
        losses = model.loss(*batch)
        total = sum(v for k, v in losses.items() if k.startswith("loss"))
        assert torch.isfinite(total), (tag, losses)
        params = [p for p in model.parameters() if p.requires_grad]  # CPMHead may have none of its own
        for name in compared:
            value = sum(outputs[name])
            values[tag, name] = [o.detach() for o in outputs[name]]
            grads[tag, name] = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        total.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    k = cfg.model.head.out_channels
    scale = {name: max(float(k * g.abs().max()) for g in grads["own", name] if g is not None) for name in compared}
    for name in compared:
        for theirs, mine in zip(values["own", name], values["ours", name], strict=True):
            assert theirs > 0
            torch.testing.assert_close(mine, k * theirs, rtol=1e-9, atol=0, msg=lambda m, name=name: f"{name}: {m}")
        for theirs, mine in zip(grads["own", name], grads["ours", name], strict=True):
            assert (theirs is None) == (mine is None)
            if theirs is not None:
                # float64; atol relative to the largest gradient: summation order through a deep backbone
                torch.testing.assert_close(mine, k * theirs, rtol=1e-7, atol=1e-9 * scale[name], msg=lambda m, name=name: f"{name}: {m}")

