"""The worker loop: a ZeroMQ DEALER that says hello, runs jobs and heartbeats (Paranoid Pirate).

Threads (a zmq socket is not thread-safe, so each socket has exactly one owner):
- the main thread owns the DEALER and does all network I/O: it polls with a timeout equal to the
  heartbeat interval, sends heartbeats (also while a job runs), forwards replies, handles signals;
- one job thread runs handlers one at a time and hands each encoded reply (its frames, not copied)
  back over an inproc PAIR socket it owns. A ten-minute training job therefore never silences the
  heartbeat.

Cancellation: a `cancel` for the running attempt sets its flag; the handler's next `ctx.progress`
call raises `JobCancelled` (a BaseException, so `except Exception` in a handler does not swallow it),
the worker answers an `error` of type `Cancelled` and is idle again. A handler that never reports
progress runs to the end; the pool kills such a worker once its cancel grace period is over.

Liveness: any inbound frame proves the pool alive, also one still waiting unread (this thread
may have been starved of the GIL by a job); after `liveness` silent heartbeat periods the
worker closes the socket (LINGER 0), waits (backoff doubling up to a cap) and reconnects with a
fresh hello. SIGTERM/SIGINT: finish the current job, send its reply and a `shutdown`, exit 0; a
second signal exits at once. A refused hello exits with status 3 and the pool's reason.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket as pysocket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import zmq

from . import constants as C
from .frames import decode_message, encode_message
from .handlers import Handler, JobCancelled, JobContext, default_registry
from .messages import MessageError, check_message, make

EXIT_OK = 0
EXIT_REFUSED = 3


@dataclass(frozen=True)
class CurveKeys:
    """Client key pair plus the pool's public key, Z85 text as zmq prints them."""

    server_public: str
    client_public: str
    client_secret: str


@dataclass
class WorkerConfig:
    connect: str
    worker_id: str
    device: str = "cpu"
    tasks: list[str] = field(default_factory=list)
    curve: CurveKeys | None = None
    max_frame_bytes: int = C.MAX_FRAME_BYTES
    heartbeat_ms: int = C.HEARTBEAT_INTERVAL_MS  # until the pool's welcome says otherwise
    liveness: int = C.HEARTBEAT_LIVENESS
    reconnect_initial_ms: int = C.RECONNECT_INITIAL_MS
    reconnect_max_ms: int = C.RECONNECT_MAX_MS
    hello_timeout_ms: int = C.HELLO_TIMEOUT_MS
    # Exit when this process's parent changes (the pool that spawned us died): no orphan workers.
    parent_pid: int | None = None


@dataclass
class _Running:
    job_id: str
    attempt: int
    msg_id: str
    # Set by the main thread on a matching `cancel`, read by the job thread at each progress report.
    cancelled: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str = ""


def torch_version() -> str | None:
    """Read from package metadata: importing torch would cost seconds before hello."""
    try:
        return metadata.version("torch")[:64]
    except metadata.PackageNotFoundError:
        return None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 20] + "… [truncated]"


def error_message(exc: BaseException | None, exc_type: str, message: str, job_id: str | None,
                  attempt: int | None, parent_id: str | None) -> dict:
    tb = "".join(traceback.format_exception(exc)) if exc is not None else ""
    return make("error", parent_id=parent_id, job_id=job_id, attempt=attempt, exc_type=_clip(exc_type, 256),
                message=_clip(message, 65536), traceback=_clip(tb, 262144))


class Worker:
    def __init__(self, config: WorkerConfig, registry: dict[str, Handler] | None = None):
        self.config = config
        self.registry = registry if registry is not None else default_registry()
        self.ctx = zmq.Context()
        self.dropped = 0  # frames dropped: oversized or undecodable, with no one to answer
        self.refusal: str | None = None
        self._stopping = False
        self._running: _Running | None = None
        self._progress: float | None = None
        self._jobs: queue.Queue[tuple[_Running, str, dict] | None] = queue.Queue()
        self._replies_addr = f"inproc://replies-{id(self)}"
        self._replies = self.ctx.socket(zmq.PAIR)
        self._replies.bind(self._replies_addr)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._dealer: zmq.Socket | None = None
        self._welcomed = False
        self._heartbeat_ms = config.heartbeat_ms
        self._liveness = config.liveness
        self._max_frame = config.max_frame_bytes
        self._job_thread = threading.Thread(target=self._job_loop, name="autoloss-job", daemon=True)

    # -- public -----------------------------------------------------------------------------------

    def run(self) -> int:
        """Serves until stopped (exit 0) or refused (exit 3); reconnects after losing the pool."""
        self._install_signal_handlers()
        self._job_thread.start()
        backoff_ms = self.config.reconnect_initial_ms
        try:
            while not self._stopping:
                outcome = self._serve(self._reconnect())
                if outcome == "refused":
                    return EXIT_REFUSED
                if outcome == "stopped":
                    break
                if self._welcomed:
                    backoff_ms = self.config.reconnect_initial_ms  # the last connection worked
                print(f"autoloss-worker {self.config.worker_id}: pool silent, reconnecting in {backoff_ms} ms",
                      file=sys.stderr, flush=True)
                self._wait(backoff_ms)
                backoff_ms = min(backoff_ms * 2, self.config.reconnect_max_ms)
            return EXIT_OK
        finally:
            self.close()

    def request_stop(self) -> None:
        """Finish the current job, reply, say shutdown and exit (what SIGTERM does)."""
        self._stopping = True
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        self._jobs.put(None)
        if self._job_thread.is_alive():
            self._job_thread.join(timeout=1.0)  # idle: returns at once; a stuck job is abandoned
        self._dealer = None
        self.ctx.destroy(linger=0)  # closes every socket of this context, LINGER 0
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    # -- connection -------------------------------------------------------------------------------

    def _reconnect(self) -> zmq.Socket:
        """Fresh DEALER (LINGER 0) + hello; used for the first connect and for every recovery."""
        if self._dealer is not None:
            self._dealer.close(linger=0)
        dealer = self.ctx.socket(zmq.DEALER)
        dealer.linger = 0
        if self.config.curve is not None:
            dealer.curve_serverkey = self.config.curve.server_public.encode()
            dealer.curve_publickey = self.config.curve.client_public.encode()
            dealer.curve_secretkey = self.config.curve.client_secret.encode()
        dealer.connect(self.config.connect)
        self._dealer = dealer
        self._send(make("hello", protocol=C.PROTOCOL_VERSION, worker_id=self.config.worker_id, pid=os.getpid(),
                        host=pysocket.gethostname()[:255], device=self.config.device[:64], torch=torch_version(),
                        jobs=sorted(self.registry), tasks=list(self.config.tasks)))
        return dealer

    def _serve(self, dealer: zmq.Socket) -> str:
        """One connection's poll loop; returns 'stopped', 'refused' or 'lost'."""
        poller = zmq.Poller()
        poller.register(dealer, zmq.POLLIN)
        poller.register(self._replies, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        self._welcomed = welcomed = False
        last_inbound = time.monotonic()
        next_beat = last_inbound + self._heartbeat_ms / 1000
        while True:
            timeout_ms = max(0, int((next_beat - time.monotonic()) * 1000))
            events = dict(poller.poll(timeout_ms))
            if self._wake_r in events:
                os.read(self._wake_r, 1024)
            if self._replies in events:
                self._send_frames(self._replies.recv_multipart(copy=False))
                self._running, self._progress = None, None
            if dealer in events:
                last_inbound = time.monotonic()
                outcome = self._on_frames(_receive(dealer))
                if outcome == "welcome":
                    self._welcomed = welcomed = True
                    next_beat = min(next_beat, time.monotonic() + self._heartbeat_ms / 1000)
                elif outcome is not None:
                    return outcome
            if self._stopping and self._running is None:
                self._send(make("shutdown", reason="worker stopping"))
                return "stopped"
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + self._heartbeat_ms / 1000
                if self.config.parent_pid is not None and os.getppid() != self.config.parent_pid:
                    print("autoloss-worker: parent process gone, exiting", file=sys.stderr, flush=True)
                    self._stopping = True
                if welcomed:
                    self._send(make("heartbeat", job_id=self._running.job_id if self._running else None,
                                    progress=self._progress, dropped=self.dropped))
                silent_ms = (now - last_inbound) * 1000
                limit_ms = self._heartbeat_ms * self._liveness if welcomed else self.config.hello_timeout_ms
                # Frames waiting unread prove the pool alive too: this thread may have been starved
                # (a job importing torch holds the GIL for a second or more) while they arrived.
                if silent_ms > limit_ms and not dealer.poll(0, zmq.POLLIN):
                    return "lost"

    def _send(self, msg: dict) -> None:
        self._send_frames(encode_message(msg))

    def _send_frames(self, frames: list) -> None:
        assert self._dealer is not None, "send before connect"
        try:
            # Frames above pyzmq's copy threshold go out without a copy; a job's zmq.Frame replies are shared.
            self._dealer.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # pool not reachable right now: heartbeats and liveness will sort it out

    # -- inbound ----------------------------------------------------------------------------------

    def _on_frames(self, frames: list[bytes | memoryview]) -> str | None:
        """Handles one inbound message; never raises. Returns 'welcome', 'refused', 'stopped' or None."""
        if sum(len(f) for f in frames) > self._max_frame:
            self.dropped += 1
            return None
        try:
            obj = decode_message(frames)
        except Exception:  # msgpack raises several unrelated types for malformed input; FrameError
            self.dropped += 1
            return None
        try:
            msg = check_message(obj)
        except MessageError as e:
            if e.msg_id is None:
                self.dropped += 1
            else:
                job_id, attempt = _job_ref(obj)
                self._send(error_message(None, "MessageError", str(e), job_id, attempt, e.msg_id))
            return None
        kind = msg["type"]
        if kind in ("welcome", "refuse") and self._welcomed:
            kind = "unexpected"  # the handshake is over: a late welcome must not retune the connection
        if kind == "welcome":
            if msg["protocol"] != C.PROTOCOL_VERSION:
                return self._refused(f"pool speaks protocol {msg['protocol']}, worker speaks {C.PROTOCOL_VERSION}")
            self._heartbeat_ms = msg["heartbeat_ms"]
            self._liveness = msg["liveness"]
            self._max_frame = msg["max_frame_bytes"]
            return "welcome"
        if kind == "refuse":
            return self._refused(f"pool (protocol {msg['protocol']}) refused this worker (protocol "
                                 f"{C.PROTOCOL_VERSION}): {msg['reason']}")
        if kind == "job":
            self._start_job(msg)
        elif kind == "cancel":
            self._cancel(msg)
        elif kind == "shutdown":
            self._stopping = True
        elif kind != "heartbeat":
            self._send(error_message(None, "UnexpectedMessage", f"the worker does not accept {msg['type']!r} here",
                                     None, None, msg["msg_id"]))
        return None

    def _refused(self, text: str) -> str:
        self.refusal = text
        print(f"autoloss-worker: {text}", file=sys.stderr, flush=True)
        return "refused"

    def _start_job(self, msg: dict) -> None:
        job_id, attempt, parent = msg["job_id"], int(msg["attempt"]), msg["msg_id"]
        if self._running is not None:
            self._send(error_message(None, "WorkerBusy", f"busy with job {self._running.job_id!r}", job_id, attempt, parent))
        elif msg["kind"] not in self.registry:
            self._send(error_message(None, "UnknownJobKind", f"this worker has no job kind {msg['kind']!r} "
                                     f"(it serves {', '.join(sorted(self.registry))})", job_id, attempt, parent))
        elif self._stopping:
            self._send(error_message(None, "WorkerStopping", "worker is shutting down", job_id, attempt, parent))
        else:
            self._running, self._progress = _Running(job_id, attempt, parent), 0.0
            self._jobs.put((self._running, msg["kind"], msg["payload"]))

    def _cancel(self, msg: dict) -> None:
        """Flags the running attempt if the cancel names it; a cancel for any other job is ignored
        (it finished, or the pool's cancel crossed its reply): nothing to stop, nothing to answer."""
        running = self._running
        if running is not None and running.job_id == msg["job_id"] and running.attempt == msg["attempt"]:
            running.cancel_reason = msg["reason"]
            running.cancelled.set()

    # -- job thread -------------------------------------------------------------------------------

    def _job_loop(self) -> None:
        out = self.ctx.socket(zmq.PAIR)
        out.linger = 0
        out.connect(self._replies_addr)
        try:
            while (item := self._jobs.get()) is not None:
                running, kind, payload = item
                out.send_multipart(self._run_job(running, kind, payload))
        finally:
            out.close(linger=0)

    def _run_job(self, running: _Running, kind: str, payload: dict) -> list:
        """The reply's frames: a result, or an error (the handler raised, or the job was cancelled)."""
        ref = (running.job_id, running.attempt, running.msg_id)

        def progress(fraction: float) -> None:
            if running.cancelled.is_set():
                raise JobCancelled(f"job {running.job_id!r} attempt {running.attempt} cancelled by the pool: "
                                   f"{running.cancel_reason}")
            if isinstance(fraction, (int, float)) and 0 <= fraction <= 1:
                self._progress = float(fraction)

        started = time.perf_counter()
        try:
            progress(0.0)  # cancelled while queued: do not start
            result = self.registry[kind](payload, JobContext(device=self.config.device, progress=progress))
            _log_job(kind, payload, started)
            if not isinstance(result, dict):
                raise TypeError(f"job kind {kind!r} returned {type(result).__name__}, not a map")
            frames = encode_message(make("result", parent_id=running.msg_id, job_id=running.job_id,
                                         attempt=running.attempt, payload=result))
            size = sum(f.nbytes if isinstance(f, memoryview) else len(f) for f in frames)
            if size > self._max_frame:
                raise ValueError(f"result of {size} bytes exceeds the message limit of {self._max_frame}")
            return frames
        except JobCancelled as exc:
            return encode_message(error_message(None, "Cancelled", str(exc), *ref))
        except BaseException as exc:  # a job must never take the worker down
            return encode_message(error_message(exc, type(exc).__name__, str(exc) or repr(exc), *ref))

    # -- signals ----------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # tests may run a worker on a thread; they stop it with request_stop()
        def on_signal(signum: int, frame: Any) -> None:
            if self._stopping:
                os._exit(128 + signum)  # second signal: abandon the running job
            self.request_stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)

    def _wait(self, ms: int) -> None:
        """Sleeps up to `ms`, waking early on a stop request."""
        poller = zmq.Poller()
        poller.register(self._wake_r, zmq.POLLIN)
        if poller.poll(ms):
            os.read(self._wake_r, 1024)


JOB_LOG = "AUTOLOSS_JOB_LOG"


def _log_job(kind: str, payload: Any, started: float) -> None:
    """With ``AUTOLOSS_JOB_LOG=FILE`` set, one JSON line per finished job: its kind, the seconds the
    handler took and, for ``eval-losses``, how many losses it screened (``bench/screening.ts`` adds
    them up into the time workers spend screening vs training). Lines of a few dozen bytes are
    appended in one write each, so several workers may share the file."""
    path = os.environ.get(JOB_LOG)
    if not path:
        return
    losses = payload.get("losses") if isinstance(payload, dict) else None
    line = {"kind": kind, "s": round(time.perf_counter() - started, 6), "pid": os.getpid(),
            "losses": len(losses) if isinstance(losses, list) else 1}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


def _receive(sock: zmq.Socket) -> list[bytes | memoryview]:
    """One message: the header frame copied (small, and msgpack reads it once), each blob frame a
    view on ZeroMQ's own buffer, so a 4 MB tensor is not copied on its way to a handler."""
    frames: list[bytes | memoryview] = [sock.recv()]
    while sock.rcvmore:
        frames.append(sock.recv(copy=False).buffer)
    return frames


def _job_ref(obj: Any) -> tuple[str | None, int | None]:
    """Job id and attempt of a rejected message when they look valid, so the pool can fail that attempt."""
    if not isinstance(obj, dict):
        return None, None
    job_id, attempt = obj.get("job_id"), obj.get("attempt")
    job_id = job_id if isinstance(job_id, str) and 1 <= len(job_id) <= 128 else None
    attempt = attempt if isinstance(attempt, int) and not isinstance(attempt, bool) and attempt >= 1 else None
    return job_id, attempt
