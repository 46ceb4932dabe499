"""Warm-started MMLab proxies (option ``warm_start``, ``autoloss_worker.pretrain.warm_start``): the
searched branches' output layers are found in every shipped config's model, the loader leaves out
exactly those layers' weights, and a warm-started training starts from the whole pretrained model
with those layers at the config's own initialisation from the training's seed. The pretraining
images are a seed stream of their own. Tiny recipes keep each test to seconds.
Run: .venv/bin/python -m pytest -q python_workers/tests/test_warm_start.py"""
from __future__ import annotations

import json

import pytest
import torch

from autoloss_worker.mmlab.rewrite import BranchSlot
from autoloss_worker.pretrain.warm_start import load_warm_start, output_layers


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOLOSS_PRETRAIN_CACHE", str(tmp_path / "pretrained"))
    return tmp_path / "pretrained"


def _slot(name: str, key: str) -> BranchSlot:
    return BranchSlot(name, key, "dense", 1.0)


# ----------------------------------------------------------------------------- pure: which layers

def test_each_slot_names_its_heads_output_layer_and_nothing_that_only_shares_its_prefix():
    keys = ["roi_head.bbox_head.fc_reg.weight", "roi_head.bbox_head.fc_reg.bias", "roi_head.bbox_head.fc_cls.weight",
            "roi_head.bbox_head.shared_fcs.0.weight", "roi_head.bbox_head.1.fc_cls.weight", "bbox_head.rtm_cls.0.weight",
            "bbox_head.rtm_cls.1.weight"]
    slots = [_slot("rcnn_reg", "roi_head.bbox_head.loss_bbox"), _slot("stage", "roi_head.bbox_head.1.loss_cls"),
             _slot("cls", "bbox_head.loss_cls"), _slot("again", "roi_head.bbox_head.loss_bbox")]
    assert output_layers(slots, keys) == ["roi_head.bbox_head.fc_reg", "roi_head.bbox_head.1.fc_cls", "bbox_head.rtm_cls"]


def test_a_head_without_a_known_output_layer_is_refused_naming_the_branch():
    with pytest.raises(ValueError, match=r"branch rcnn_reg: the head at model.roi_head.bbox_head has none of the layers fc_reg"):
        output_layers([_slot("rcnn_reg", "roi_head.bbox_head.loss_bbox")], ["roi_head.bbox_head.my_reg.weight"])
    with pytest.raises(ValueError, match=r"branch odd \(model.head.loss_odd\)"):
        output_layers([_slot("odd", "head.loss_odd")], ["head.final_layer.weight"])
    with pytest.raises(ValueError, match="more than one"):
        output_layers([_slot("cls", "bbox_head.loss_cls")], ["bbox_head.conv_cls.weight", "bbox_head.retina_cls.weight"])


# ----------------------------------------------------------------------------- the loader

def test_the_loader_leaves_out_exactly_the_named_layers(cache):
    from mmengine.runner.checkpoint import CheckpointLoader

    import autoloss_worker.pretrain.resolve  # noqa: F401  (registers the autoloss:// scheme)

    state = {k: torch.full((2,), float(i)) for i, k in enumerate(
        ["a.fc_reg.weight", "a.fc_reg.bias", "a.fc_reg_x.weight", "b.fc_cls.weight", "c.w"])}
    cache.mkdir(parents=True)
    torch.save({"state_dict": state, "meta": {"metrics": {"m": 0.5}}}, cache / "mmdet-model-X-0123.pth")
    loaded = CheckpointLoader.load_checkpoint("autoloss://warm-start/mmdet-model-X-0123?without=a.fc_reg,b.fc_cls")
    assert sorted(loaded["state_dict"]) == ["a.fc_reg_x.weight", "c.w"]
    assert torch.equal(loaded["state_dict"]["c.w"], state["c.w"]) and loaded["meta"] == {"metrics": {"m": 0.5}}
    assert sorted(load_warm_start("autoloss://warm-start/mmdet-model-X-0123")["state_dict"]) == sorted(state)
    with pytest.raises(ValueError, match="no warm-start checkpoint .*mmdet-model-Y-9.pth"):
        load_warm_start("autoloss://warm-start/mmdet-model-Y-9?without=a")


# ----------------------------------------------------------------------------- the shipped configs

@pytest.fixture
def mmlab():
    pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops is not installed (scripts/setup-mmlab.sh)")
    for library in ("mmdet", "mmseg", "mmpose"):
        pytest.importorskip(library, reason=f"{library} is not installed (scripts/setup-mmlab.sh)")


SHIPPED = {  # (task, config file) -> branch -> the layer producing its prediction, read off mmdet/mmseg/mmpose's heads
    ("det", "det_faster_rcnn_shapes.py"): {"rpn_cls": ["rpn_head.rpn_cls"], "rpn_reg": ["rpn_head.rpn_reg"],
                                           "rcnn_cls": ["roi_head.bbox_head.fc_cls"], "rcnn_reg": ["roi_head.bbox_head.fc_reg"]},
    ("det", "det_cascade_rcnn_shapes.py"): {"rcnn_cls": [f"roi_head.bbox_head.{i}.fc_cls" for i in range(3)],
                                            "rcnn_reg": [f"roi_head.bbox_head.{i}.fc_reg" for i in range(3)]},
    ("det", "det_retinanet_shapes.py"): {"cls": ["bbox_head.retina_cls"], "reg": ["bbox_head.retina_reg"]},
    ("det", "det_fcos_shapes.py"): {"cls": ["bbox_head.conv_cls"], "reg": ["bbox_head.conv_reg"],
                                    "centerness": ["bbox_head.conv_centerness"]},
    ("ins", "ins_mask_rcnn_shapes.py"): {"mask": ["roi_head.mask_head.conv_logits"]},
    ("mmseg", "seg_mmseg_shapes.py"): {"loss": ["decode_head.conv_seg"]},
    ("mmpose", "pose_topdown_shapes.py"): {"loss": ["head.final_layer"]},
}


@pytest.mark.parametrize(("task_name", "config"), list(SHIPPED))
def test_the_output_layers_of_the_shipped_configs(mmlab, task_name, config):
    from autoloss_worker.tasks import get_task
    from autoloss_worker.tasks.mmlab_proxy import SHIPPED_CONFIGS

    task = get_task(task_name, config=str(SHIPPED_CONFIGS / config))
    keys = list(task.build_model(0).state_dict())
    for branch, layers in SHIPPED[(task_name, config)].items():
        assert output_layers([s for s in task.proxy_slots() if s.name == branch], keys) == layers, branch


# ----------------------------------------------------------------------------- a warm-started det proxy

@pytest.fixture
def tiny_recipes(mmlab, monkeypatch):
    from autoloss_worker.pretrain import Recipe, resolve, whole_model

    monkeypatch.setattr(resolve, "DEFAULT_RECIPE", Recipe(images=8, size=32, iterations=3, batch_size=4))
    monkeypatch.setattr(whole_model, "WARM_START_RECIPE", whole_model.WarmStartRecipe(iterations=2, warmup_iters=1))


def _det(**options):
    from autoloss_worker.tasks import get_task

    task = get_task("det", branches="rcnn_reg", iterations=2, warmup_iters=1, val_images=4, **options)
    return task, [s for s in task.proxy_slots() if s.name in task.branches]


def test_a_warm_started_model_is_the_pretrained_one_but_for_the_searched_layer(tiny_recipes, cache):
    from mmengine.runner.checkpoint import load_checkpoint

    from autoloss_worker.tasks.mmlab_proxy import build_config_model

    task, slots = _det(warm_start=True)
    url = task.warm_start(slots)
    assert url.startswith("autoloss://warm-start/mmdet-model-FasterRCNN-") and url.endswith("?without=roi_head.bbox_head.fc_reg")
    assert _det(warm_start=True, data_seed=101)[0].warm_start(slots) == url, "held-out trainings start from the same model"
    assert _det()[0].warm_start(slots) is None
    (path,) = cache.glob("mmdet-model-*.pth")
    saved = torch.load(path, weights_only=True)["state_dict"]

    # what mmengine's Runner does: the config's own init_weights from the seed, then load_from, not strictly
    fresh = build_config_model(task.proxy_config(), 5, "mmdet").state_dict()
    model = build_config_model(task.proxy_config(), 5, "mmdet")
    load_checkpoint(model, url, map_location="cpu", strict=False)
    loaded = model.state_dict()
    assert sorted(loaded) == sorted(saved), "the checkpoint is the whole model"
    for key, value in loaded.items():
        expected = fresh[key] if key.startswith("roi_head.bbox_head.fc_reg.") else saved[key]
        assert torch.equal(value, expected), key
    assert not torch.equal(saved["roi_head.bbox_head.fc_cls.weight"], fresh["roi_head.bbox_head.fc_cls.weight"]), "pretraining moved the weights"
    assert not torch.equal(saved["roi_head.bbox_head.fc_reg.weight"], fresh["roi_head.bbox_head.fc_reg.weight"])


def test_a_warm_started_training_loads_it_and_the_default_loads_nothing(tiny_recipes, monkeypatch):
    from autoloss_worker.mmlab import rewrite

    url = _det(warm_start=True)[0].warm_start(_det()[1])  # pretrains the whole model (a training of its own)
    seen = []
    real = rewrite.train_proxy

    def spy(cfg, *args, **kwargs):
        seen.append(cfg.load_from)
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(rewrite, "train_proxy", spy)
    for options in ({"warm_start": True}, {}):
        task, slots = _det(**options)
        result = task.proxy_train(task.baseline_loss, seed=0, metric="bbox_map")
        assert not result.invalid and result.iterations == 2 and 0.0 <= result.target <= 1.0
    assert seen == [url, None]


def test_the_whole_model_is_pretrained_on_its_own_image_stream_and_keyed_by_config_and_recipe(tiny_recipes, monkeypatch):
    from mmengine.config import Config

    from autoloss_worker.mmlab import shapes_data
    from autoloss_worker.pretrain import whole_model
    from autoloss_worker.pretrain.whole_model import ModelSpec, WarmStartRecipe

    drawn = []
    real = shapes_data.reseed_shapes_data
    monkeypatch.setattr(shapes_data, "reseed_shapes_data", lambda cfg, seed, stream="": drawn.append((seed, stream)) or real(cfg, seed, stream))
    task, slots = _det(warm_start=True)
    task.warm_start(slots)
    assert drawn == [(0, "pretrain")]

    cfg = task.proxy_config()
    spec = ModelSpec.of("mmdet", cfg)
    assert spec.name() == ModelSpec.of("mmdet", Config.fromstring(cfg.pretty_text, ".py")).name()
    other = Config.fromstring(cfg.pretty_text, ".py")
    other.optim_wrapper.optimizer.lr = 0.01
    assert ModelSpec.of("mmdet", other).name() != spec.name()
    assert ModelSpec.of("mmdet", cfg, WarmStartRecipe(iterations=3)).name() != spec.name()
    assert spec.recipe == whole_model.WARM_START_RECIPE


def test_the_pretraining_stream_draws_other_images_than_the_search_at_the_same_seed(tmp_path):
    from autoloss_worker.mmlab.shapes_data import ensure_shapes_coco, shapes_seed_of

    search = ensure_shapes_coco(n_train=4, n_val=2, size=32, num_classes=2, seed=0, cache=tmp_path)
    pretrain = ensure_shapes_coco(n_train=4, n_val=2, size=32, num_classes=2, seed=0, cache=tmp_path, stream="pretrain")
    assert pretrain.endswith("n4-2_s32_c2_seed0_pretrain")
    for split in ("train", "val"):
        a, b = (json.loads(open(f"{root}/{split}.json").read())["annotations"] for root in (search, pretrain))
        assert [x["bbox"] for x in a] != [x["bbox"] for x in b], split
    cfg = {"train_dataloader": {"dataset": {"data_root": pretrain + "/"}}}
    assert shapes_seed_of(cfg) is None, "no search mistakes it for its own data"


def test_the_pretrain_cli_builds_the_model_the_task_starts_from(tiny_recipes, cache, capsys):
    from autoloss_worker.pretrain.__main__ import main
    from autoloss_worker.tasks.det import DEFAULT_CONFIG

    assert main(["--config", DEFAULT_CONFIG, "--warm-start", "--quiet"]) == 0
    lines = dict(line.rsplit(": ", 1) for line in capsys.readouterr().out.splitlines())  # nothing else on stdout
    built = lines[f"{DEFAULT_CONFIG} (warm start)"]
    task, slots = _det(warm_start=True)
    name = task.warm_start(slots).removeprefix("autoloss://warm-start/").split("?")[0]
    assert built == str(cache / f"{name}.pth") and len(list(cache.glob("mmdet-model-*.pth"))) == 1
