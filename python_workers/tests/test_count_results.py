"""scripts/count_results.py: the last line of `make test` counts passes, failures and skips of both
suites, and names every skip with its reason. The TAP text below is what `tap --reporter=tap`
printed for a file that planned zero tests (the browser and Slurm tests' way of skipping), a
skipped subtest, a nested `t.skip`, a `t.todo` and a subtest with `t.plan(0, reason)`."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "count_results.py"
_spec = importlib.util.spec_from_file_location("count_results", SCRIPT)
count_results = importlib.util.module_from_spec(_spec)
sys.modules["count_results"] = count_results  # dataclasses look their module up
_spec.loader.exec_module(count_results)

TAP = """TAP version 14
1..3
# Subtest: test/a.test.ts
    1..0 # chromium not installed (run x)
    # time=4.233ms
ok 1 - test/a.test.ts # SKIP chromium not installed (run x)

# Subtest: test/b.test.ts
    ok 1 - sub skipped # SKIP no gpu here
    # Subtest: inner
        ok 1 - nested skip reason # SKIP
        ok 2 - fine
        ok 3 - later # TODO
        1..3
    ok 2 - inner # time=2.711ms

    # Subtest: planned zero
        1..0 # no slurm: x | y
    ok 3 - planned zero # SKIP no slurm: x | y

    ok 4 - ok
    not ok 5 - wrong
    1..5
    # time=23.29ms
not ok 2 - test/b.test.ts # time=23.29ms

# Subtest: test/c.test.ts
    ok 1 - fine
    # Subtest: crashed
        ok 1 - before the crash
    not ok 2 - crashed # time=1.0ms
    1..2
not ok 3 - test/c.test.ts # time=5ms
"""

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="1" failures="1"
skipped="1" tests="5"><testcase classname="python_workers.tests.test_a" name="test_ok" time="0.1"/>
<testcase classname="python_workers.tests.test_a" name="test_bad" time="0.1"><failure message="x">x</failure></testcase>
<testcase classname="python_workers.tests.test_a" name="test_broken" time="0.1"><error message="y">y</error></testcase>
<testcase classname="python_workers.tests.test_b" name="test_mm" time="0"><skipped type="pytest.skip"
message="mmdet not installed">/x.py:3: mmdet not installed</skipped></testcase>
<testcase classname="python_workers.tests.test_a" name="test_ok2" time="0.1"/></testsuite></testsuites>
"""


def test_tap_counts_leaves_and_names_every_skip(tmp_path):
    path = tmp_path / "ts.tap"
    path.write_text(TAP)
    c = count_results.count_tap(str(path))
    # fine, ok, fine, before the crash; wrong; the crashed subtest without a failing leaf
    assert (c.passed, c.failed) == (4, 2)
    assert c.skipped == [
        ("test/a.test.ts", "chromium not installed (run x)"),
        ("test/b.test.ts > sub skipped", "no gpu here"),
        ("test/b.test.ts > inner > nested skip reason", "no reason given"),
        ("test/b.test.ts > inner > later", "todo"),
        ("test/b.test.ts > planned zero", "no slurm: x | y"),
    ]


def test_junit_counts_failures_errors_and_skips(tmp_path):
    path = tmp_path / "py.xml"
    path.write_text(JUNIT)
    c = count_results.count_junit(str(path))
    assert (c.passed, c.failed) == (2, 2)
    assert c.skipped == [("python_workers/tests/test_b.py::test_mm", "mmdet not installed")]


def test_output_ends_with_the_summary_line_after_one_line_per_skip(tmp_path):
    (tmp_path / "ts.tap").write_text(TAP)
    (tmp_path / "py.xml").write_text(JUNIT)
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "ts.tap"), str(tmp_path / "py.xml")],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[-1] == "6 passed, 4 failed, 6 skipped"
    assert sum(line.startswith("skipped: ") for line in out) == 6
    assert "skipped: test/a.test.ts: chromium not installed (run x)" in out
    assert "skipped: python_workers/tests/test_b.py::test_mm: mmdet not installed" in out


def test_a_missing_result_file_is_a_failure(tmp_path):
    assert count_results.count_tap(str(tmp_path / "none.tap")).failed == 1
    assert count_results.count_junit(str(tmp_path / "none.xml")).failed == 1
