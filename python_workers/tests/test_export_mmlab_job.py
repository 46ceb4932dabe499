"""The `export-mmlab` job kind (what `autoloss export --format mm*` submits) refuses malformed
payloads with a ValueError (the CLI's exit 2) before anything is written; the fragment itself is
tested in test_mmlab_export.py and, through the verb, in test/report/export-mmlab.test.ts."""
import pytest

from autoloss_worker.graph import GraphError
from autoloss_worker.mmlab.export import ExportUsageError, export_mmlab_job
from autoloss_worker.worker.handlers import default_registry


def test_the_worker_serves_the_kind():
    assert "export-mmlab" in default_registry()


@pytest.mark.parametrize(
    ("payload", "error", "message"),
    [
        ([], ExportUsageError, "payload must be a map, got list"),
        ({"task": "det"}, ExportUsageError, "needs 'format'"),
        ({"task": "det", "format": "mmdet", "out": "x.py", "bogus": 1}, ExportUsageError, "unknown key.*bogus"),
        ({"task": "det", "format": "mmdet", "out": "x.py", "options": [1]}, ExportUsageError, "'options' must be a map"),
        ({"task": "det", "format": "mmdet", "out": "x.py", "header": [1]}, ExportUsageError, "'header' must be a list of strings"),
        ({"task": "det", "format": "mmdet", "out": "x.py", "loss": {}}, GraphError, "wire version"),
    ],
)
def test_malformed_payloads_are_refused_before_writing(tmp_path, monkeypatch, payload, error, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=message):
        export_mmlab_job(payload)
    assert issubclass(error, ValueError)  # what the CLI maps to exit 2
    assert list(tmp_path.iterdir()) == []
