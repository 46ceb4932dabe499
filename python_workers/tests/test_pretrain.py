"""Shapes-pretrained backbones (autoloss_worker.pretrain): deterministic, keyed by what the weights
depend on, built once under concurrency, loaded by the shipped configs through init_cfg, and never
forced on a config of the user's. A tiny recipe keeps every test to seconds. The first half uses a
toy backbone and needs no MMLab library; the second builds mmdet's ResNet from the shipped config.
Run: .venv/bin/python -m pytest -q python_workers/tests/test_pretrain.py"""

import dataclasses
import logging
import subprocess
import sys
import threading

import pytest
import torch
from torch import nn

from autoloss_worker.data.shapes import split_seed
from autoloss_worker.pretrain import PLACEHOLDER, PRETRAIN_SPLIT, Recipe, Spec, ensure_checkpoint
from autoloss_worker.pretrain import train as pretrain_train
from autoloss_worker.pretrain.data import Normalisation

TINY = Recipe(images=8, size=32, iterations=3, batch_size=4)
SHIPPED_NORM = Normalisation((123.675, 116.28, 103.53), (58.395, 57.12, 57.375), True)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOLOSS_PRETRAIN_CACHE", str(tmp_path / "pretrained"))
    return tmp_path / "pretrained"


class Toy(nn.Module):
    """Two levels (strides 2 and 4), BN included: what the loop and the state_dict must handle."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU())

    def forward(self, x):
        a = self.a(x)
        return a, self.b(a)


@pytest.fixture
def toy(monkeypatch):
    """Backbone configs {"type": "Toy", "width": w} build a Toy; the library is "torch" (for its version)."""
    monkeypatch.setattr(pretrain_train, "build_backbone", lambda library, cfg: Toy(cfg["width"]))
    return Spec("torch", {"type": "Toy", "width": 4}, SHIPPED_NORM, TINY)


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pretraining_is_deterministic_and_moves_the_weights(toy):
    first = pretrain_train.pretrain_backbone("torch", toy.backbone, toy.norm, TINY)
    second = pretrain_train.pretrain_backbone("torch", toy.backbone, toy.norm, TINY)
    assert _equal(first, second)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY.seed)
        fresh = Toy(4).state_dict()
    assert not torch.equal(fresh["a.0.weight"], first["a.0.weight"]) and not torch.equal(fresh["b.0.weight"], first["b.0.weight"])
    assert not torch.equal(fresh["a.1.running_mean"], first["a.1.running_mean"]), "BN statistics are part of the checkpoint"
    other = pretrain_train.pretrain_backbone("torch", toy.backbone, toy.norm, dataclasses.replace(TINY, seed=1))
    assert not torch.equal(other["a.0.weight"], first["a.0.weight"])


def test_the_checkpoint_file_is_the_same_bytes_when_built_twice(toy, tmp_path, monkeypatch):
    path = ensure_checkpoint(toy, quiet=True)
    assert path.name == f"{toy.name()}.pth" and path.name.startswith("torch-Toy-")
    one = path.read_bytes()
    monkeypatch.setenv("AUTOLOSS_PRETRAIN_CACHE", str(tmp_path / "again"))
    assert ensure_checkpoint(toy, quiet=True).read_bytes() == one
    assert _equal(torch.load(path, weights_only=True), pretrain_train.pretrain_backbone("torch", toy.backbone, toy.norm, TINY))


def test_the_cache_key_follows_the_backbone_normalisation_and_recipe_not_init_cfg():
    backbone = {"type": "ResNet", "depth": 18, "base_channels": 16, "strides": (1, 2, 2)}
    pre = {"type": "DetDataPreprocessor", "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375], "bgr_to_rgb": True}
    name = Spec.of("torch", backbone, pre, TINY).name()
    assert Spec.of("torch", {**backbone, "init_cfg": dict(type="Pretrained", checkpoint="x.pth")}, pre, TINY).name() == name
    assert Spec.of("torch", {**backbone, "strides": [1, 2, 2]}, pre, TINY).name() == name, "a tuple is its list"
    assert Spec.of("torch", {**backbone, "base_channels": 32}, pre, TINY).name() != name
    assert Spec.of("torch", {**backbone, "depth": 34}, pre, TINY).name() != name
    assert Spec.of("torch", backbone, {**pre, "std": [1.0, 1.0, 1.0]}, TINY).name() != name
    assert Spec.of("torch", backbone, {**pre, "bgr_to_rgb": False}, TINY).name() != name
    assert Spec.of("torch", backbone, pre, dataclasses.replace(TINY, iterations=4)).name() != name


def test_a_change_to_the_pretraining_code_rebuilds(toy, monkeypatch):
    from autoloss_worker.pretrain import cache

    before = toy.name()
    monkeypatch.setattr(cache, "code_version", lambda: "edited")
    assert toy.name() != before


def test_two_builders_at_once_train_once(toy, monkeypatch):
    calls = []
    real = pretrain_train.pretrain_backbone
    started = threading.Barrier(2)

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    def build():
        started.wait()
        paths.append(ensure_checkpoint(toy, quiet=True))

    monkeypatch.setattr(pretrain_train, "pretrain_backbone", counted)
    paths: list = []
    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(paths) == 2 and paths[0] == paths[1]
    assert sorted(p.suffix for p in paths[0].parent.iterdir()) == [".json", ".lock", ".pth"], "no temporary file left"


def test_the_pretraining_images_come_from_a_split_no_search_uses():
    used = {split_seed(name, seed) for name in ("train", "val", "eval") for seed in range(100)}
    assert PRETRAIN_SPLIT not in ("train", "val", "eval") and split_seed(PRETRAIN_SPLIT, 0) not in used


def test_an_unresolved_placeholder_says_what_to_do():
    from autoloss_worker.pretrain import resolve

    with pytest.raises(ValueError, match=r"is a placeholder .* `python -m autoloss_worker.pretrain --config CFG`"):
        resolve.load_autoloss_checkpoint(PLACEHOLDER)


def test_the_cli_answers_help():
    out = subprocess.run([sys.executable, "-m", "autoloss_worker.pretrain", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--config CFG" in out.stdout


# ----------------------------------------------------------------------------- mmdet's ResNet, the shipped configs

@pytest.fixture
def mmdet(monkeypatch):
    pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops is not installed (scripts/setup-mmlab.sh)")
    pytest.importorskip("mmdet", reason="mmdet is not installed (scripts/setup-mmlab.sh)")
    from autoloss_worker.pretrain import resolve

    monkeypatch.setattr(resolve, "DEFAULT_RECIPE", TINY)  # what the shipped configs resolve to here


def _det_cfg():
    from mmengine.config import Config

    from autoloss_worker.tasks.det import DEFAULT_CONFIG

    return Config.fromfile(DEFAULT_CONFIG)


def test_normalisation_matches_mmdets_preprocessor(mmdet):
    from mmdet.models.data_preprocessors import DetDataPreprocessor

    rgb = torch.rand(2, 3, 8, 8).numpy()
    pre = DetDataPreprocessor(mean=list(SHIPPED_NORM.mean), std=list(SHIPPED_NORM.std), bgr_to_rgb=True)
    bgr_uint8 = torch.from_numpy((rgb * 255.0).round()).flip(1).to(torch.uint8)  # what LoadImageFromFile hands it
    theirs = pre({"inputs": list(bgr_uint8), "data_samples": None})["inputs"]
    assert torch.allclose(SHIPPED_NORM.apply(rgb), theirs, atol=1e-5)


def test_the_shipped_det_config_loads_the_pretrained_weights(mmdet, cache):
    from autoloss_worker.pretrain import resolve_pretrained
    from autoloss_worker.tasks import get_task
    from autoloss_worker.tasks.mmlab_proxy import build_config_model

    cfg = _det_cfg()
    resolved = get_task("det").proxy_config()
    assert cfg.model.backbone.init_cfg.checkpoint == PLACEHOLDER, "the shipped config asks for the placeholder"
    url = resolved.model.backbone.init_cfg.checkpoint
    assert url.startswith(PLACEHOLDER + "/mmdet-ResNet-") and resolved.model.backbone.init_cfg.type == "Pretrained"
    model = build_config_model(resolved, 0, "mmdet")  # init_weights(): mmengine's PretrainedInit, the autoloss:// scheme
    (checkpoint,) = cache.glob("*.pth")
    saved = torch.load(checkpoint, weights_only=True)
    assert _equal(model.backbone.state_dict(), saved)
    again = pretrain_train.pretrain_backbone("mmdet", cfg.model.backbone, SHIPPED_NORM, TINY)
    assert _equal(again, saved), "deterministic on the real backbone too"

    assert get_task("det", pretrained=False).proxy_config().model.backbone.init_cfg is None
    random_init = build_config_model(get_task("det").rejection_config, 0, "mmdet")
    assert not torch.equal(random_init.backbone.conv1.weight, saved["conv1.weight"]), "rejection: random init"
    assert resolve_pretrained(cfg, "mmdet").model.backbone.init_cfg.checkpoint == url


def test_a_users_config_is_left_alone(mmdet, tmp_path, cache):
    from mmengine.config import Config

    from autoloss_worker.pretrain import resolve_pretrained
    from autoloss_worker.tasks import get_task
    from autoloss_worker.tasks.det import DEFAULT_CONFIG

    own = tmp_path / "own.py"
    own.write_text(f"_base_ = ['{DEFAULT_CONFIG}']\n"  # the shipped value is a dict: an override merges
                   "model = dict(backbone=dict(init_cfg=dict(checkpoint='/my/imagenet.pth')))\n")
    cfg = Config.fromfile(str(own))
    assert resolve_pretrained(cfg, "mmdet") is cfg and cfg.model.backbone.init_cfg.checkpoint == "/my/imagenet.pth"
    none = tmp_path / "none.py"
    none.write_text(f"_base_ = ['{DEFAULT_CONFIG}']\nmodel = dict(backbone=dict(init_cfg=None))\n")
    cfg = Config.fromfile(str(none))
    assert resolve_pretrained(cfg, "mmdet") is cfg
    assert get_task("det", config=str(none)).proxy_config().model.backbone.init_cfg is None
    assert not cache.exists(), "nothing was pretrained or recorded"


def test_an_inherited_and_edited_backbone_gets_its_own_checkpoint(mmdet, tmp_path):
    from mmengine.config import Config

    from autoloss_worker.pretrain import resolve_pretrained
    from autoloss_worker.tasks.det import DEFAULT_CONFIG

    wider = tmp_path / "wider.py"
    wider.write_text(f"_base_ = ['{DEFAULT_CONFIG}']\nmodel = dict(backbone=dict(base_channels=32))\n")
    url = resolve_pretrained(Config.fromfile(str(wider)), "mmdet").model.backbone.init_cfg.checkpoint
    assert url.startswith(PLACEHOLDER + "/mmdet-ResNet-")
    assert url != resolve_pretrained(_det_cfg(), "mmdet").model.backbone.init_cfg.checkpoint


def test_a_build_prints_progress_lines_up_to_100_percent_and_quiet_prints_none(toy, capsys, tmp_path, monkeypatch):
    ensure_checkpoint(dataclasses.replace(toy, recipe=dataclasses.replace(TINY, iterations=20)))
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "%" in ln]
    # 20 iterations: one line per tenth (every 2 iterations), percentages increasing, the last at 100%.
    assert [ln.split(" (")[1].split(" iterations")[0] for ln in lines] == [f"{2 * k}/20" for k in range(1, 11)]
    assert lines[-1].startswith("autoloss: pretraining 100% ")
    monkeypatch.setenv("AUTOLOSS_PRETRAIN_CACHE", str(tmp_path / "quiet"))
    ensure_checkpoint(dataclasses.replace(toy, recipe=dataclasses.replace(TINY, iterations=20)), quiet=True)
    assert capsys.readouterr().err == ""


def test_a_build_silences_mmengine_info_lines_and_restores_the_level(toy, capsys):
    from mmengine.logging import MMLogger, print_log

    def chatty(*args, **kwargs):
        print_log("KaimingInit: one paragraph per parameter", logger="current", level=logging.INFO)
        print_log("a real warning", logger="current", level=logging.WARNING)
        return real(*args, **kwargs)

    class Recorder(logging.Handler):  # what reaches the logger's handlers, whatever stream they write to
        def __init__(self) -> None:
            super().__init__(logging.NOTSET)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    real = pretrain_train.pretrain_backbone
    logger = MMLogger.get_current_instance()
    before = logger.level
    logger.setLevel(logging.INFO)  # as a fresh mmengine logger is
    recorder = Recorder()
    logger.addHandler(recorder)
    import autoloss_worker.pretrain.train as module
    module.pretrain_backbone, saved = chatty, module.pretrain_backbone
    try:
        ensure_checkpoint(toy)
        assert logger.level == logging.INFO, "the level is restored"
    finally:
        module.pretrain_backbone = saved
        logger.removeHandler(recorder)
        logger.setLevel(before)
    assert recorder.messages == ["a real warning"]
    assert "autoloss: pretraining 100% " in capsys.readouterr().err
