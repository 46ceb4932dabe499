"""The worker's hand-written message checks agree with the generated JSON Schema files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings, strategies as st

from autoloss_worker.worker import constants as C
from autoloss_worker.worker.messages import MessageError, check_message, check_tensor, make


def schema_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "protocol" / "schemas"


def _validator(name: str):
    schema = json.loads((schema_dir() / f"{name}.json").read_text())

    # JSON Schema has no bytes type: the schemas mark msgpack bin with "x-msgpack": "bin".
    def x_msgpack(validator, value, instance, schema):
        if value == "bin" and not isinstance(instance, bytes):
            yield jsonschema.ValidationError(f"{instance!r} is not bytes")

    cls = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"x-msgpack": x_msgpack})
    return cls(schema)


VALIDATORS = {t: _validator(t) for t in C.MESSAGE_TYPES}
TENSOR = _validator("tensor")

VALID = {
    "hello": make("hello", protocol=1, worker_id="w", pid=12, host="h", device="cpu", torch=None, jobs=["ping"], tasks=[]),
    "welcome": make("welcome", parent_id="m1", protocol=1, heartbeat_ms=1000, liveness=3, max_frame_bytes=1 << 20),
    "refuse": make("refuse", protocol=1, worker_protocol=2, reason="mismatch"),
    "job": make("job", job_id="j", kind="ping", attempt=1, payload={"x": [1, 2]}),
    "result": make("result", job_id="j", attempt=2, payload={}),
    "error": make("error", job_id=None, attempt=None, exc_type="ValueError", message="m", traceback=""),
    "heartbeat": make("heartbeat", job_id="j", progress=0.5, dropped=0),
    "shutdown": make("shutdown", reason="bye"),
    "cancel": make("cancel", job_id="j", attempt=1, reason="the caller stopped waiting"),
}

# Values that break one field each: (field, bad value)
BAD_VALUES = [None, -1, 0, 1.5, 2.0, True, "", "x" * 129, "ok", [], ["a"], {}, {"k": 1}, {1: 2}, b"b", float("nan"), 1e9]


def _python_ok(msg) -> bool:
    try:
        check_message(msg)
        return True
    except MessageError:
        return False


def _has_non_finite(x) -> bool:
    if isinstance(x, float):
        return x != x or x in (float("inf"), float("-inf"))
    if isinstance(x, dict):
        return any(_has_non_finite(v) for v in x.values())
    return isinstance(x, list) and any(_has_non_finite(v) for v in x)


def _schema_ok(msg) -> bool:
    kind = msg.get("type") if isinstance(msg, dict) else None
    if not (isinstance(kind, str) and kind in VALIDATORS):
        return False
    # Two deliberate differences from the jsonschema library, both outside what JSON can express:
    # NaN/inf pass its min/max checks but our checks (and TypeBox) reject them where a number is
    # constrained; non-string map keys make it raise.
    envelope = {k: v for k, v in msg.items() if k != "payload"}
    if _has_non_finite(envelope):
        return False
    try:
        return VALIDATORS[kind].is_valid(msg)
    except TypeError:
        return False


def test_constants_match_the_generated_file():
    generated = json.loads((schema_dir() / "constants.json").read_text())
    for name in ("PROTOCOL_VERSION", "HEARTBEAT_INTERVAL_MS", "HEARTBEAT_LIVENESS", "RECONNECT_INITIAL_MS",
                 "RECONNECT_MAX_MS", "MAX_FRAME_BYTES", "FRAME_REF_EXT_TYPE", "BLOB_FRAME_MIN_BYTES", "DTYPE_BYTES"):
        assert getattr(C, name) == generated[name], name
    assert list(C.MESSAGE_TYPES) == generated["MESSAGE_TYPES"]
    assert list(C.TENSOR_DTYPES) == generated["TENSOR_DTYPES"]


@pytest.mark.parametrize("kind", C.MESSAGE_TYPES)
def test_valid_examples_pass_both(kind):
    assert _schema_ok(VALID[kind]) and _python_ok(VALID[kind])


@pytest.mark.parametrize("kind", C.MESSAGE_TYPES)
def test_every_single_field_corruption_is_judged_alike(kind):
    base = VALID[kind]
    cases = [{k: v for k, v in base.items() if k != field} for field in base]  # each field missing
    cases += [{**base, "extra": 1}]
    cases += [{**base, field: bad} for field in list(base) + ["parent_id"] for bad in BAD_VALUES]
    for msg in cases:
        assert _python_ok(msg) == _schema_ok(msg), msg


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.sampled_from(C.MESSAGE_TYPES), st.data())
def test_random_field_values_are_judged_alike(kind, data):
    msg = copy.deepcopy(VALID[kind])
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 300), st.floats(allow_nan=True),
                        st.text(max_size=4), st.binary(max_size=3))
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=6)
    for field in data.draw(st.lists(st.sampled_from(sorted(msg)), max_size=3)):
        msg[field] = data.draw(values)
    assert _python_ok(msg) == _schema_ok(msg), msg


def test_tensor_check_agrees_with_the_tensor_schema():
    good = {"dtype": "float32", "shape": [2, 3], "data": b"\x00" * 24}
    cases = [good, {**good, "dtype": "float16"}, {**good, "shape": [-1]}, {**good, "shape": [1] * 9},
             {**good, "data": "text"}, {**good, "extra": 1}, {k: v for k, v in good.items() if k != "data"}]
    for t in cases:
        try:
            check_tensor(t)
            ok = True
        except MessageError:
            ok = False
        assert ok == TENSOR.is_valid(t), t


def test_errors_name_the_field_and_keep_the_msg_id():
    with pytest.raises(MessageError, match="attempt") as e:
        check_message({**VALID["job"], "attempt": 0})
    assert e.value.msg_id == VALID["job"]["msg_id"]
