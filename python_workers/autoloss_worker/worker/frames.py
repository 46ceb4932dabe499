"""Messages as ZeroMQ frames: `[header, *blobs]`, mirroring `src/protocol/codec.ts`.

The header is one msgpack map. A byte value of at least `BLOB_FRAME_MIN_BYTES` is written there as a
frame reference (msgpack ext `FRAME_REF_EXT_TYPE` holding the 4-byte big-endian frame index) and sent
as its own frame, so megabytes of tensor data are never copied through a msgpack buffer (pyzmq sends
frames above its copy threshold without copying). Smaller byte values stay inline as msgpack bin;
a receiver accepts both. Handlers see `bytes` for inline values and, for blob frames the worker
received, a `memoryview` on ZeroMQ's buffer (no copy; numpy and torch read either).
"""

from __future__ import annotations

from typing import Any, Sequence

import msgpack

from .constants import BLOB_FRAME_MIN_BYTES, FRAME_REF_EXT_TYPE

Blob = bytes | bytearray | memoryview


class FrameError(ValueError):
    """Frames that do not form a message: a bad, repeated or missing frame reference."""


def encode_message(msg: dict) -> list[Blob]:
    """`[header, *blobs]`; the blobs are the message's own byte objects (not copied)."""
    blobs: list[Blob] = []
    header = msgpack.packb(_split(msg, blobs), use_bin_type=True)
    return [header, *blobs]


_SCALARS = frozenset({str, int, float, bool, type(None)})  # values _split need not look into


def _split(value: Any, blobs: list[Blob]) -> Any:
    """Replaces large byte values by frame references; copies only the containers on the way to one."""
    kind = type(value)  # exact types first: this runs on every message, most of it small
    if kind is dict:
        out = None
        for key, v in value.items():
            if type(v) in _SCALARS:
                continue
            new = _split(v, blobs)
            if new is not v:
                out = out if out is not None else dict(value)
                out[key] = new
        return value if out is None else out
    if kind is list or kind is tuple:
        items = None
        for i, v in enumerate(value):
            if type(v) in _SCALARS:
                continue
            new = _split(v, blobs)
            if new is not v:
                items = items if items is not None else list(value)
                items[i] = new
        return value if items is None else items
    if isinstance(value, (bytes, bytearray, memoryview)):
        if (value.nbytes if isinstance(value, memoryview) else len(value)) < BLOB_FRAME_MIN_BYTES:
            return value
        blobs.append(value)
        return msgpack.ExtType(FRAME_REF_EXT_TYPE, len(blobs).to_bytes(4, "big"))  # frame 0 is the header
    if isinstance(value, dict):  # subclasses: rare, same treatment
        return _split(dict(value), blobs)
    return value


def _ref_index(code: int, data: bytes) -> int:
    if code != FRAME_REF_EXT_TYPE:
        raise FrameError(f"unknown msgpack extension type {code}")
    if len(data) != 4:
        raise FrameError(f"a frame reference has 4 bytes, got {len(data)}")
    return int.from_bytes(data, "big")


def _header_only(code: int, data: bytes) -> Any:
    raise FrameError(f"frame reference {_ref_index(code, data)} outside the blob frames 1..0")


def decode_message(frames: Sequence[bytes]) -> Any:
    """The header with every frame reference replaced by its frame's bytes. Raises `FrameError` for a
    bad reference or a blob frame no reference names, msgpack's own errors for an undecodable header."""
    if not frames:
        raise FrameError("a message without frames")
    if len(frames) == 1:  # the common case: no per-message closure
        return msgpack.unpackb(frames[0], raw=False, ext_hook=_header_only)
    used = [False] * len(frames)

    def resolve(code: int, data: bytes) -> bytes:
        index = _ref_index(code, data)
        if not 1 <= index < len(frames):
            raise FrameError(f"frame reference {index} outside the blob frames 1..{len(frames) - 1}")
        if used[index]:
            raise FrameError(f"blob frame {index} is referenced twice")
        used[index] = True
        return frames[index]

    obj = msgpack.unpackb(frames[0], raw=False, ext_hook=resolve)
    missing = [i for i in range(1, len(frames)) if not used[i]]
    if missing:
        raise FrameError(f"blob frame {missing[0]} of {len(frames) - 1} is not referenced by the header")
    return obj
