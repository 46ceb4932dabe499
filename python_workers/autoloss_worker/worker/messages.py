"""Hand-written checks of incoming protocol messages, mirroring `protocol/schemas/*.json`.

jsonschema would cost ~100 ms of import at every worker start; these checks do the same job and a
test (`tests/test_worker_messages.py`) verifies that they agree with the schema files.
"""

from __future__ import annotations

import itertools
import os
from typing import Any, Callable

from .constants import MESSAGE_TYPES, TENSOR_DTYPES


class MessageError(ValueError):
    """A message that does not match its schema; `msg_id` is set when it could be read."""

    def __init__(self, message: str, msg_id: str | None = None):
        super().__init__(message)
        self.msg_id = msg_id


# -- field checks: each returns None when the value is acceptable, else a short description ---------

def _is_int(v: Any) -> bool:
    # JSON Schema's "integer" admits 2.0 (zero fractional part) but not booleans.
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (isinstance(v, float) and v.is_integer())


def _id(v: Any) -> str | None:
    return None if isinstance(v, str) and 1 <= len(v) <= 128 else "must be a string of 1..128 characters"


def _count(v: Any) -> str | None:
    return None if _is_int(v) and v >= 0 else "must be an integer >= 0"


def _attempt(v: Any) -> str | None:
    return None if _is_int(v) and v >= 1 else "must be an integer >= 1"


def _text(max_len: int) -> Callable[[Any], str | None]:
    return lambda v: None if isinstance(v, str) and len(v) <= max_len else f"must be a string of at most {max_len} characters"


def _nullable(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    return lambda v: None if v is None else check(v)


def _min_int(lo: int) -> Callable[[Any], str | None]:
    return lambda v: None if _is_int(v) and v >= lo else f"must be an integer >= {lo}"


def _payload(v: Any) -> str | None:
    if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
        return "must be a map with string keys"
    return None


def _ids(v: Any) -> str | None:
    if not isinstance(v, list) or len(v) > 256 or any(_id(x) for x in v):
        return "must be a list of at most 256 ids"
    return None


def _progress(v: Any) -> str | None:
    ok = v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1)
    return None if ok else "must be null or a number in [0, 1]"


_FIELDS: dict[str, dict[str, Callable[[Any], str | None]]] = {
    "hello": {"protocol": _count, "worker_id": _id, "pid": _count, "host": _text(255), "device": _text(64),
              "torch": _nullable(_text(64)), "jobs": _ids, "tasks": _ids},
    "welcome": {"protocol": _count, "heartbeat_ms": _min_int(10), "liveness": _min_int(1),
                "max_frame_bytes": _min_int(1024)},
    "refuse": {"protocol": _count, "worker_protocol": _nullable(_count), "reason": _text(4096)},
    "job": {"job_id": _id, "kind": _id, "attempt": _attempt, "payload": _payload},
    "result": {"job_id": _id, "attempt": _attempt, "payload": _payload},
    "error": {"job_id": _nullable(_id), "attempt": _nullable(_attempt), "exc_type": _text(256),
              "message": _text(65536), "traceback": _text(262144)},
    "heartbeat": {"job_id": _nullable(_id), "progress": _progress, "dropped": _count},
    "shutdown": {"reason": _text(4096)},
    "cancel": {"job_id": _id, "attempt": _attempt, "reason": _text(4096)},
}
assert set(_FIELDS) == set(MESSAGE_TYPES), "every message type needs its field checks"


def check_message(obj: Any) -> dict:
    """Returns `obj` when it is a valid message, else raises `MessageError` naming the field."""
    if not isinstance(obj, dict):
        raise MessageError("message body is not a msgpack map")
    msg_id = obj.get("msg_id") if isinstance(obj.get("msg_id"), str) else None
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise MessageError(f"unknown message type {kind!r}", msg_id)
    fields = _FIELDS[kind]
    envelope = {"type", "msg_id", "parent_id"}
    for key in obj:
        if key not in envelope and key not in fields:
            raise MessageError(f"invalid {kind!r} message: unexpected field {key!r}", msg_id)
    for key, check in itertools.chain((("msg_id", _id),), fields.items()):
        if key not in obj:
            raise MessageError(f"invalid {kind!r} message: missing field {key!r}", msg_id)
        problem = check(obj[key])
        if problem:
            raise MessageError(f"invalid {kind!r} message: {key} {problem}", msg_id)
    if "parent_id" in obj and _id(obj["parent_id"]):
        raise MessageError(f"invalid {kind!r} message: parent_id {_id(obj['parent_id'])}", msg_id)
    return obj


def check_tensor(obj: Any) -> dict:
    """Checks the tensor schema (`protocol/schemas/tensor.json`); byte count is checked on decode."""
    if not isinstance(obj, dict) or set(obj) != {"dtype", "shape", "data"}:
        raise MessageError("a tensor is a map with exactly the keys dtype, shape, data")
    if obj["dtype"] not in TENSOR_DTYPES:
        raise MessageError(f"tensor dtype {obj['dtype']!r} is not one of {', '.join(TENSOR_DTYPES)}")
    shape = obj["shape"]
    if not isinstance(shape, list) or len(shape) > 8 or not all(_is_int(d) and d >= 0 for d in shape):
        raise MessageError("tensor shape must be a list of at most 8 integers >= 0")
    if not isinstance(obj["data"], (bytes, memoryview)):
        raise MessageError("tensor data must be raw bytes (msgpack bin or a blob frame)")
    return obj


# -- builders ------------------------------------------------------------------------------------

_counter = itertools.count(1)
_prefix = f"w{os.getpid()}-"


def new_msg_id() -> str:
    return f"{_prefix}{next(_counter)}"


def make(msg_type: str, /, parent_id: str | None = None, **fields: Any) -> dict:
    """A new message with a fresh msg_id; `parent_id` names the message it answers, if any."""
    msg: dict = {"type": msg_type, "msg_id": new_msg_id(), **fields}
    if parent_id is not None:
        msg["parent_id"] = parent_id
    return msg
