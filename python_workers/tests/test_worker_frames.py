"""Messages as ZeroMQ frames (`autoloss_worker.worker.frames`), against the TS codec's bytes."""

from __future__ import annotations

import msgpack
import pytest

from autoloss_worker.worker.constants import BLOB_FRAME_MIN_BYTES
from autoloss_worker.worker.frames import FrameError, decode_message, encode_message


def _job(payload: dict) -> dict:
    return {"type": "job", "msg_id": "m", "job_id": "j", "kind": "echo", "attempt": 1, "payload": payload}


def test_large_bytes_become_frames_with_the_same_header_bytes_as_typescript():
    data = bytes(i % 251 for i in range(BLOB_FRAME_MIN_BYTES))
    frames = encode_message(_job({"data": data, "small": b"\x00\xff"}))
    assert len(frames) == 2 and frames[1] is data, "the message's own bytes, not a copy"
    # Hand-assembled; test/protocol/messages.test.ts expects the same bytes from the TS encoder.
    assert frames[0].hex() == ("86" "a474797065a36a6f62" "a66d73675f6964a16d" "a66a6f625f6964a16a" "a46b696e64a46563686f"
                               "a7617474656d707401" "a77061796c6f616482" "a464617461d60100000001" "a5736d616c6cc40200ff")
    assert decode_message(frames) == _job({"data": data, "small": b"\x00\xff"})


def test_threshold_nesting_and_the_callers_message_left_alone():
    data = b"\x07" * BLOB_FRAME_MIN_BYTES
    assert len(encode_message(_job({"d": data[1:]}))) == 1, "one byte under the threshold stays inline"
    msg = _job({"a": [1, {"t": data}], "b": bytearray(data), "c": memoryview(data).cast("d")})
    frames = encode_message(msg)
    assert len(frames) == 4 and msg["payload"]["a"][1]["t"] is data
    back = decode_message([bytes(f) for f in frames])
    assert back["payload"] == {"a": [1, {"t": data}], "b": data, "c": data}


def test_frame_references_are_checked():
    frames = [bytes(f) for f in encode_message(_job({"d": b"\x00" * BLOB_FRAME_MIN_BYTES}))]
    ref = lambda i: b"\xd6\x01" + i.to_bytes(4, "big")  # noqa: E731 fixext4 of type 1
    cases = [
        ([frames[0]], "frame reference 1 outside the blob frames 1..0"),
        ([*frames, b"x"], "blob frame 2 of 2 is not referenced"),
        ([b"\x92" + ref(1) + ref(1), b"x"], "referenced twice"),
        ([b"\x92" + ref(0) + ref(1), b"x"], "frame reference 0 outside"),
        ([b"\xd5\x01\x00\x01"], "has 4 bytes, got 2"),
        ([msgpack.packb(msgpack.ExtType(5, b"abcd"))], "unknown msgpack extension type 5"),
        ([], "without frames"),
    ]
    for bad, match in cases:
        with pytest.raises(FrameError, match=match.replace(".", r"\.")):
            decode_message(bad)
