"""Drives a real worker process through a fake pool (a pyzmq ROUTER)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

import msgpack
import pytest
import zmq

from autoloss_worker.worker import Worker, WorkerConfig
from autoloss_worker.worker.constants import PROTOCOL_VERSION as PROTOCOL
from autoloss_worker.worker.frames import decode_message, encode_message
from autoloss_worker.worker.handlers import default_registry
from autoloss_worker.worker.messages import check_message, make


class FakePool:
    """A pyzmq ROUTER standing in for the pool, driving one real worker process."""

    def __init__(self, endpoint: str | None = None):
        self._dir = tempfile.TemporaryDirectory(prefix="autoloss-test-")
        self.endpoint = endpoint or f"ipc://{self._dir.name}/pool.sock"
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.linger = 0
        self.router.bind(self.endpoint)
        self.proc: subprocess.Popen | None = None
        self.identity: bytes | None = None
        # Like the real pool, heartbeat the worker while waiting, or it presumes the pool dead.
        self.beating = True

    def spawn(self, *extra: str) -> subprocess.Popen:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "autoloss_worker", "--connect", self.endpoint,
                                      "--id", "test-worker", "--threads", "1", *extra],
                                     stderr=subprocess.PIPE, text=True, env=env)
        return self.proc

    def recv(self, timeout_s: float = 10.0, skip_heartbeats: bool = True) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "no message from the worker in time"
            if not self.router.poll(int(min(left, 0.05) * 1000)):
                if self.beating and self.identity is not None:
                    self.send(make("heartbeat", job_id=None, progress=None, dropped=0))
                continue
            identity, *frames = self.router.recv_multipart()
            self.identity = identity
            self.last_frames = frames
            msg = decode_message(frames)
            if skip_heartbeats and msg.get("type") == "heartbeat":
                continue
            return msg

    def send(self, msg: dict) -> None:
        self.send_raw(*encode_message(msg))

    def send_raw(self, *frames: bytes) -> None:
        assert self.identity is not None, "worker has not said hello yet"
        self.router.send_multipart([self.identity, *frames])

    def handshake(self, heartbeat_ms: int = 100) -> dict:
        hello = self.recv()
        assert hello["type"] == "hello", hello
        self.send(make("welcome", parent_id=hello["msg_id"], protocol=PROTOCOL, heartbeat_ms=heartbeat_ms,
                       liveness=3, max_frame_bytes=1 << 20))
        return hello

    def job(self, kind: str, payload: dict, job_id: str = "j1", attempt: int = 1, timeout_s: float = 10.0) -> dict:
        msg = make("job", job_id=job_id, kind=kind, attempt=attempt, payload=payload)
        self.send(msg)
        reply = self.recv(timeout_s)
        assert reply.get("parent_id") == msg["msg_id"], reply
        return reply

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        self.ctx.destroy(linger=0)
        self._dir.cleanup()


@pytest.fixture(scope="module")
def pool():
    """One worker process shared by the tests of this module (spawning costs ~0.5 s)."""
    p = FakePool()
    p.spawn()
    p.hello = p.handshake()
    yield p
    p.close()


def test_hello_describes_the_worker(pool):
    hello = check_message(pool.hello)
    assert hello["protocol"] == PROTOCOL and hello["worker_id"] == "test-worker" and hello["device"] == "cpu"
    assert {"ping", "echo", "sleep"} <= set(hello["jobs"])
    assert hello["pid"] == pool.proc.pid


def test_ping_and_echo_round_trip(pool):
    reply = pool.job("ping", {}, job_id="p1")
    assert reply["type"] == "result" and reply["job_id"] == "p1" and reply["payload"] == {"pong": True}
    payload = {"a": [1, 2.5, None], "b": b"\x00\xff", "nested": {"s": "é"}}
    reply = pool.job("echo", payload, job_id="e1", attempt=2)
    assert check_message(reply)["payload"] == payload and reply["attempt"] == 2


def test_failing_job_reports_type_message_and_traceback(pool):
    reply = pool.job("sleep", {"seconds": -1}, job_id="bad")
    assert reply["type"] == "error" and reply["job_id"] == "bad" and reply["attempt"] == 1
    assert reply["exc_type"] == "ValueError" and "'seconds'" in reply["message"]
    assert "handlers.py" in reply["traceback"]


def test_unknown_job_kind_is_an_error_naming_it(pool):
    reply = pool.job("no-such-kind", {}, job_id="u1")
    assert reply["type"] == "error" and reply["exc_type"] == "UnknownJobKind" and "no-such-kind" in reply["message"]


def test_heartbeats_continue_during_a_long_job(pool):
    msg = make("job", job_id="long", kind="sleep", attempt=1, payload={"seconds": 0.7})
    pool.send(msg)
    beats = []
    while True:
        reply = pool.recv(skip_heartbeats=False)
        if reply["type"] != "heartbeat":
            break
        beats.append(reply)
    assert reply["type"] == "result" and reply["payload"] == {"slept": 0.7}
    during = [b for b in beats if b["job_id"] == "long"]
    assert len(during) >= 3, beats  # 100 ms period over 0.7 s
    progress = [b["progress"] for b in during]
    assert progress == sorted(progress) and 0 <= progress[0] and progress[-1] <= 1


def test_a_second_job_while_busy_is_refused(pool):
    pool.send(make("job", job_id="slow", kind="sleep", attempt=1, payload={"seconds": 0.3}))
    pool.send(make("job", job_id="extra", kind="ping", attempt=1, payload={}))
    first = pool.recv()
    assert first["type"] == "error" and first["job_id"] == "extra" and first["exc_type"] == "WorkerBusy"
    assert pool.recv()["job_id"] == "slow"


def test_large_bytes_travel_as_blob_frames_both_ways(pool):
    blob = bytes(range(256)) * 2048  # 512 KiB, under the 1 MiB limit of this connection
    reply = pool.job("echo", {"blob": blob, "small": b"\x01"}, job_id="big")
    assert reply["type"] == "result" and reply["payload"] == {"blob": blob, "small": b"\x01"}
    assert [len(f) for f in pool.last_frames[1:]] == [len(blob)], "the blob came back as its own frame"


def test_tensors_in_blob_frames_reach_handlers_as_views_and_compute_right(pool):
    """Blob frames reach a handler as views on ZeroMQ's buffer (not copied); tensor
    decoding must take them like bytes. 2×1×96×96 float64 = 144 KiB per tensor, so both travel as
    blob frames; the loss mean((ŷ − y)²) over N·H·W is checked by hand."""
    import numpy as np

    from autoloss_worker.worker.tensors import numpy_to_tensor

    rng = np.random.default_rng(3)
    y_hat, y = rng.random((2, 1, 96, 96)), rng.random((2, 1, 96, 96))
    loss = {"v": 1, "branches": [{"name": "loss", "kind": "dense", "inputs": ["y_hat", "y", "one"],
                                  "tree": ["square", ["add", "y_hat", ["neg", "y"]]]}]}
    inputs = {"y_hat": numpy_to_tensor(y_hat), "y": numpy_to_tensor(y)}
    assert all(len(t["data"]) >= 65536 for t in inputs.values())
    reply = pool.job("eval-graph", {"loss": loss, "inputs": inputs}, job_id="views", timeout_s=60)
    assert reply["type"] == "result", reply
    assert reply["payload"]["total"] == pytest.approx(((y_hat - y) ** 2).sum() / (2 * 96 * 96), rel=1e-12)


def test_receive_copies_the_header_and_views_the_blob_frames():
    from autoloss_worker.worker.loop import _receive

    ctx = zmq.Context()
    try:
        a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        a.bind("inproc://receive-test")
        b.connect("inproc://receive-test")
        blob = bytes(range(256)) * 512
        a.send_multipart([b"head", blob, b"x"])
        frames = _receive(b)
        assert frames[0] == b"head" and type(frames[0]) is bytes
        assert all(isinstance(f, memoryview) for f in frames[1:])
        assert [bytes(f) for f in frames[1:]] == [blob, b"x"]
        a.send(b"single")
        assert _receive(b) == [b"single"], "a one-frame message is just its header"
    finally:
        ctx.destroy(linger=0)


def _until(pool: FakePool, msg_type: str, timeout_s: float = 10.0) -> dict:
    """The next message of `msg_type`, skipping heartbeats and anything else."""
    deadline = time.monotonic() + timeout_s
    while True:
        msg = pool.recv(max(0.01, deadline - time.monotonic()))
        if msg["type"] == msg_type:
            return msg


def test_cancel_stops_a_running_job_and_the_worker_serves_the_next_at_once(pool):
    pool.send(make("job", job_id="doomed", kind="sleep", attempt=3, payload={"seconds": 30}))
    time.sleep(0.2)
    pool.send(make("cancel", job_id="doomed", attempt=2, reason="an older attempt"))  # not the running one: ignored
    time.sleep(0.2)
    t0 = time.monotonic()
    pool.send(make("cancel", job_id="doomed", attempt=3, reason="the caller stopped waiting"))
    err = _until(pool, "error")
    stopped_s = time.monotonic() - t0
    assert err["job_id"] == "doomed" and err["attempt"] == 3 and err["exc_type"] == "Cancelled"
    assert "the caller stopped waiting" in err["message"]
    assert stopped_s < 1.0, stopped_s  # the sleep handler reports progress every 50 ms
    assert pool.job("ping", {}, job_id="next")["payload"] == {"pong": True}


def test_a_cancel_for_a_job_the_worker_is_not_running_is_harmless(pool):
    pool.send(make("cancel", job_id="never-seen", attempt=1, reason="stale"))
    pool.send(make("cancel", job_id="next", attempt=1, reason="already finished"))
    reply = pool.job("ping", {}, job_id="after-cancels")
    assert reply["type"] == "result" and reply["job_id"] == "after-cancels", "no reply to the cancels came first"


def test_a_handler_that_never_reports_progress_runs_to_its_end(pool):
    pool.send(make("job", job_id="stubborn", kind="sleep", attempt=1, payload={"seconds": 0.4, "progress": False}))
    time.sleep(0.1)
    pool.send(make("cancel", job_id="stubborn", attempt=1, reason="timeout"))
    reply = _until(pool, "result")
    assert reply["job_id"] == "stubborn" and reply["payload"] == {"slept": 0.4}


def _mutations(rng: random.Random, valid: list[bytes]) -> bytes:
    choice = rng.randrange(6)
    base = bytearray(rng.choice(valid))
    if choice == 0:  # random bytes
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 64)))
    if choice == 1:  # flip bytes
        for _ in range(rng.randrange(1, 4)):
            base[rng.randrange(len(base))] = rng.getrandbits(8)
        return bytes(base)
    if choice == 2:  # truncate
        return bytes(base[: rng.randrange(len(base))])
    if choice == 3:  # valid msgpack, wrong shape
        return msgpack.packb(rng.choice([1, "x", [1, 2], {"type": "job"}, {"type": "job", "msg_id": "m", "job_id": 3},
                                         {"type": "nope", "msg_id": "z"}, {"type": "result", "msg_id": "r", "job_id": "q",
                                                                         "attempt": 1, "payload": {}}]))
    if choice == 4:  # a valid job with a wrong field type
        return msgpack.packb({"type": "job", "msg_id": "mm", "job_id": "fz", "kind": "ping", "attempt": "one", "payload": {}})
    return bytes(base) + bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 16)))


def test_ten_thousand_garbage_frames_leave_the_worker_serving(pool):
    rng = random.Random(1234)
    valid = [msgpack.packb(m, use_bin_type=True) for m in (
        make("job", job_id="v", kind="ping", attempt=1, payload={}),
        make("heartbeat", job_id=None, progress=None, dropped=0),
        make("welcome", protocol=PROTOCOL, heartbeat_ms=100, liveness=3, max_frame_bytes=1 << 20))]
    for i in range(10_000):
        if i % 997 == 0:
            pool.send_raw(b"x" * (1 << 19), b"x" * ((1 << 19) + 1))  # oversized: 1 MiB + 1 over both frames
        elif i % 499 == 0:
            pool.send_raw(b"a", b"b")  # wrong frame count
        else:
            body = _mutations(rng, valid)
            if b"ping" in body and b"job" in body:
                continue  # a mutation may still be a valid ping job; keep replies unambiguous
            pool.send_raw(body)
    # Drain until the worker answers a fresh ping: it survived and still serves. While this test sent
    # and did not read, the worker's outbound queue filled and it dropped replies (it never blocks on
    # a peer that does not read), which may include the first probe's: probe again every second, as
    # the pool re-dispatches after a timeout.
    probes: set[str] = set()
    deadline = time.monotonic() + 30
    next_probe = 0.0
    while time.monotonic() < deadline:
        if time.monotonic() >= next_probe:
            probe = make("job", job_id="after-fuzz", kind="ping", attempt=len(probes) + 1, payload={})
            # A fresh msg_id differs from the fuzzed messages' ids by one digit, and a byte flip can
            # forge it: a garbage frame's error then names the probe as its parent (a CI run failed so).
            # Flips keep lengths, so an id of another length and prefix cannot be forged.
            probe["msg_id"] = f"after-fuzz-probe-{len(probes) + 1}"
            probes.add(probe["msg_id"])
            pool.send(probe)
            next_probe = time.monotonic() + 1.0
        msg = pool.recv(timeout_s=30, skip_heartbeats=False)
        if msg.get("parent_id") in probes:
            if msg["type"] == "error" and msg["exc_type"] == "WorkerBusy":
                # an earlier probe's ping is still running (a loaded machine); the pool would retry too
                assert msg["message"] == "busy with job 'after-fuzz'", msg
                continue
            assert msg["type"] == "result" and msg["payload"] == {"pong": True}, repr(msg)
            break
        if msg["type"] == "error":
            check_message(msg)
            assert msg["job_id"] in (None, "fz", "q", "v"), msg
    else:
        pytest.fail("worker did not answer after the fuzzing")
    assert pool.proc.poll() is None
    beat = pool.recv(skip_heartbeats=False)
    while beat["type"] != "heartbeat":
        beat = pool.recv(skip_heartbeats=False)
    assert beat["dropped"] > 100  # undecodable / oversized frames were counted


def test_sigterm_finishes_the_running_job_then_exits_cleanly():
    p = FakePool()
    try:
        p.spawn()
        p.handshake()
        p.send(make("job", job_id="last", kind="sleep", attempt=1, payload={"seconds": 0.5}))
        time.sleep(0.2)
        p.proc.send_signal(signal.SIGTERM)
        result = p.recv()
        assert result["type"] == "result" and result["job_id"] == "last"
        assert p.recv()["type"] == "shutdown"
        assert p.proc.wait(timeout=10) == 0
    finally:
        p.close()


def test_refused_worker_exits_naming_both_versions():
    p = FakePool()
    try:
        p.spawn()
        hello = p.recv()
        p.send(make("refuse", parent_id=hello["msg_id"], protocol=7, worker_protocol=hello["protocol"],
                    reason="protocol mismatch"))
        assert p.proc.wait(timeout=10) == 3
        err = p.proc.stderr.read()
        assert "protocol 7" in err and f"protocol {PROTOCOL}" in err, err
    finally:
        p.close()


def test_worker_reconnects_with_a_new_hello_when_the_pool_goes_silent():
    p = FakePool()
    config = WorkerConfig(connect=p.endpoint, worker_id="threaded", reconnect_initial_ms=50, reconnect_max_ms=100)
    worker = Worker(config, default_registry())
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        first = p.handshake(heartbeat_ms=50)  # then stay silent: liveness 3 × 50 ms
        second = p.recv(timeout_s=5)
        assert second["type"] == "hello" and second["msg_id"] != first["msg_id"]
        p.send(make("welcome", protocol=PROTOCOL, heartbeat_ms=50, liveness=3, max_frame_bytes=1 << 20))
        assert p.job("ping", {}, job_id="again")["payload"] == {"pong": True}
    finally:
        worker.request_stop()
        thread.join(timeout=5)
        p.close()
    assert not thread.is_alive()
