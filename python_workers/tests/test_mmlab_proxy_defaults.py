"""A config's declared proxy schedule (`autoloss_proxy = dict(iterations=..., warmup_iters=...)`)
replaces the task's defaults, explicit options still win, the whole job path (task_info) reports
the effective value, and a bad declaration names the file and the key."""
from __future__ import annotations

import pytest

pytest.importorskip("mmdet", reason="MMDetection is not installed (scripts/setup-mmlab.sh)")

from mmengine.config import Config  # noqa: E402

from autoloss_worker.task_jobs import task_info_job  # noqa: E402
from autoloss_worker.tasks.det import DetOptions  # noqa: E402
from autoloss_worker.tasks.mmlab_proxy import SHIPPED_CONFIGS, config_proxy_defaults  # noqa: E402

FASTER = str(SHIPPED_CONFIGS / "det_faster_rcnn_shapes.py")
RETINANET = str(SHIPPED_CONFIGS / "det_retinanet_shapes.py")


def _config(tmp_path, body: str) -> str:
    path = tmp_path / "declared.py"
    path.write_text(f"_base_ = {FASTER!r}\n{body}\n")
    return str(path)


def _info(config: str, **options) -> dict:
    return task_info_job({"task": "det", "options": {"config": config, "pretrained": False, **options}})


def test_a_config_without_a_declaration_keeps_the_task_defaults():
    assert config_proxy_defaults(Config.fromfile(FASTER), FASTER) == {}
    assert _info(FASTER)["iterations"] == DetOptions().iterations


def test_the_declared_schedule_replaces_the_defaults_and_explicit_options_win(tmp_path):
    config = _config(tmp_path, "autoloss_proxy = dict(iterations=37, warmup_iters=7)")
    assert _info(config)["iterations"] == 37
    assert _info(config, iterations=5)["iterations"] == 5
    from autoloss_worker.tasks import get_task

    task = get_task("det", config=config, pretrained=False)
    assert (task.options.iterations, task.options.warmup_iters) == (37, 7)
    task = get_task("det", config=config, pretrained=False, warmup_iters=3)
    assert (task.options.iterations, task.options.warmup_iters) == (37, 3)


def test_the_shipped_one_stage_config_declares_a_longer_proxy():
    declared = config_proxy_defaults(Config.fromfile(RETINANET), RETINANET)
    assert declared["iterations"] > DetOptions().iterations
    assert _info(RETINANET)["iterations"] == declared["iterations"]


@pytest.mark.parametrize("body, words", [
    ("autoloss_proxy = 450", "autoloss_proxy must be a dict"),
    ("autoloss_proxy = dict(iters=450)", "unknown key(s) iters (known: iterations, warmup_iters)"),
    ("autoloss_proxy = dict(iterations=0)", "autoloss_proxy.iterations must be a positive integer, got 0"),
    ("autoloss_proxy = dict(iterations=4.5)", "autoloss_proxy.iterations must be a positive integer, got 4.5"),
    ("autoloss_proxy = dict(warmup_iters=-1)", "autoloss_proxy.warmup_iters must be a non-negative integer, got -1"),
])
def test_a_bad_declaration_names_the_file_and_the_key(tmp_path, body, words):
    config = _config(tmp_path, body)
    with pytest.raises(ValueError) as err:
        _info(config)
    assert words in str(err.value) and "declared.py" in str(err.value)
