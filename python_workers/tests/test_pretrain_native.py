"""Shapes-pretrained encoders of the native tasks (autoloss_worker.pretrain.native): only the encoder
is pretrained and loaded, deterministically, cached and keyed by what the weights depend on, and
the task option ``pretrained`` is what switches it on. A tiny recipe keeps each test to seconds.
Run: .venv/bin/python -m pytest -q python_workers/tests/test_pretrain_native.py"""

import dataclasses

import pytest
import torch

from autoloss_worker.pretrain import Recipe
from autoloss_worker.pretrain import cache as pretrain_cache
from autoloss_worker.pretrain import native
from autoloss_worker.tasks.pose import PoseTask
from autoloss_worker.tasks.seg import SegTask

TINY = Recipe(images=8, size=32, iterations=3, batch_size=4)


@pytest.fixture(autouse=True)
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOLOSS_PRETRAIN_CACHE", str(tmp_path / "pretrained"))
    monkeypatch.setattr(native, "NATIVE_RECIPE", TINY)
    monkeypatch.setattr(native, "_LOADED", {})
    return tmp_path / "pretrained"


def _state(model, keys):
    return {k: v.clone() for k, v in model.state_dict().items() if k in keys}


@pytest.mark.parametrize("make", [lambda **o: SegTask(width=4, **o), lambda **o: PoseTask(width=4, **o)], ids=["seg", "pose"])
def test_pretrained_option_replaces_the_encoder_and_nothing_else(make):
    plain = make().build_model(seed=3)
    task = make(pretrained=True)
    model = task.build_model(seed=3)
    spec = task.encoder_spec()
    encoder_keys = {k for k in plain.state_dict() if spec.encoder.owns(k)}
    other_keys = set(plain.state_dict()) - encoder_keys
    assert encoder_keys and other_keys
    # The decoder / head keep the seed's own initialisation ...
    for k in other_keys:
        assert torch.equal(model.state_dict()[k], plain.state_dict()[k]), k
    # ... the encoder's weights are the checkpoint's, which pretraining moved away from initialisation.
    saved = torch.load(pretrain_cache.checkpoint_path(spec.name()), weights_only=True)
    assert set(saved) == encoder_keys
    for k in encoder_keys:
        assert torch.equal(model.state_dict()[k], saved[k]), k
    moved = [k for k in encoder_keys if k.endswith("weight") and not torch.equal(saved[k], plain.state_dict()[k])]
    assert moved


def test_pretraining_is_deterministic():
    spec = SegTask(width=4).encoder_spec()
    first, second = spec.train(None), spec.train(None)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_the_checkpoint_is_built_once_and_reused(monkeypatch, tiny):
    SegTask(width=4, pretrained=True).build_model(seed=0)
    built = sorted(p.name for p in tiny.glob("native-seg-*.pth"))
    assert len(built) == 1
    monkeypatch.setattr(native, "_LOADED", {})  # a fresh worker process: reads the file, does not train
    monkeypatch.setattr(native.NativeSpec, "train", lambda self, progress: pytest.fail("trained again"))
    SegTask(width=4, pretrained=True).build_model(seed=1)
    assert sorted(p.name for p in tiny.glob("native-seg-*.pth")) == built


def test_the_cache_key_covers_task_network_and_recipe(monkeypatch):
    seg4, seg8 = SegTask(width=4).encoder_spec(), SegTask(width=8).encoder_spec()
    pose4 = PoseTask(width=4).encoder_spec()
    assert len({seg4.name(), seg8.name(), pose4.name()}) == 3
    assert seg4.name().startswith("native-seg-") and pose4.name().startswith("native-pose-")
    assert SegTask(width=4).encoder_spec().name() == seg4.name()
    monkeypatch.setattr(native, "NATIVE_RECIPE", dataclasses.replace(TINY, iterations=4))
    assert SegTask(width=4).encoder_spec().name() != seg4.name()


def test_a_checkpoint_that_does_not_fit_the_network_is_refused(monkeypatch):
    task = SegTask(width=4, pretrained=True)
    monkeypatch.setattr(native, "native_encoder_state", lambda spec: {"enc1.0.weight": torch.zeros(4, 3, 3, 3)})
    with pytest.raises(ValueError, match="does not fit the network"):
        task.build_model(seed=0)


def test_the_pretrain_command_builds_a_native_encoder(capsys, tiny):
    from autoloss_worker.pretrain.__main__ import main

    assert main(["--native", "seg", "--quiet"]) == 0
    out = capsys.readouterr().out.strip()
    built = list(tiny.glob("native-seg-*.pth"))
    assert len(built) == 1 and out == f"native seg: {built[0]}"
    assert not list(tiny.glob("native-pose-*"))


@pytest.mark.parametrize("make", [lambda **o: SegTask(width=4, train_images=32, **o),
                                  lambda **o: PoseTask(width=4, train_images=16, **o)], ids=["seg", "pose"])
def test_rejection_samples_come_from_the_random_network_pretrained_or_not(make):
    """As the MMLab tasks do (and the paper's protocol): pretraining changes where proxy training
    starts, not what the rejection protocol sees."""
    plain, pretrained = make().rejection_samples(2, seed=5), make(pretrained=True).rejection_samples(2, seed=5)
    for a, b in zip(plain, pretrained):
        assert a.raw.keys() == b.raw.keys() and all(torch.equal(a.raw[k], b.raw[k]) for k in a.raw)
