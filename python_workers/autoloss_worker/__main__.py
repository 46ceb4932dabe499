"""Run a worker: connects to an autoloss pool and serves jobs until stopped.

    python -m autoloss_worker --connect ipc:///tmp/autoloss-x/pool.sock --device cpu --id w0 --threads 1
    python -m autoloss_worker --connect tcp://head:5555 --device cuda:0 --curve-keys-file worker-keys.json

Exit status: 0 after a clean stop (SIGTERM/SIGINT or the pool's shutdown), 2 on bad arguments,
3 when the pool refused the worker (e.g. protocol versions differ; the message names both).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m autoloss_worker", description=__doc__.split("\n")[0])
    p.add_argument("--connect", required=True, help="pool endpoint: ipc://PATH or tcp://HOST:PORT")
    p.add_argument("--device", default="cpu", help="cpu or cuda:N (default cpu)")
    p.add_argument("--id", dest="worker_id", default=None, help="worker id (default HOST-PID)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (sets OMP_NUM_THREADS)")
    p.add_argument("--tasks", default="", help="comma-separated task kinds this worker serves")
    p.add_argument("--curve-keys-file", default=None,
                   help="JSON with server_public, client_public, client_secret (from `autoloss keys`)")
    p.add_argument("--curve-server-key", default=None, help="pool public key (Z85), overrides the file's")
    p.add_argument("--max-frame-bytes", type=int, default=None)
    p.add_argument("--parent-pid", type=int, default=None, help="exit when this process is no longer our parent")
    args = p.parse_args(argv)
    if not (args.connect.startswith("ipc://") or args.connect.startswith("tcp://")):
        p.error(f"--connect must start with ipc:// or tcp://, got {args.connect!r}")
    if args.connect.startswith("tcp://") and args.curve_keys_file is None:
        p.error("tcp endpoints need CURVE keys: pass --curve-keys-file (see `npx autoloss keys --run DIR`)")
    if not (args.device == "cpu" or (args.device.startswith("cuda:") and args.device[5:].isdigit())):
        p.error(f"--device must be cpu or cuda:N, got {args.device!r}")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    return args


def _curve(args: argparse.Namespace):
    from .worker import CurveKeys

    if args.curve_keys_file is None:
        return None
    with open(args.curve_keys_file, encoding="utf-8") as f:
        keys = json.load(f)
    try:
        return CurveKeys(server_public=args.curve_server_key or keys["server_public"],
                         client_public=keys["client_public"], client_secret=keys["client_secret"])
    except KeyError as e:
        raise SystemExit(f"autoloss-worker: {args.curve_keys_file} lacks the key {e.args[0]!r}") from None


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.threads is not None:
        # Set before torch is imported (lazily, by the first job that needs it).
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    from .worker import Worker, WorkerConfig
    from .worker import constants as C

    config = WorkerConfig(
        connect=args.connect,
        worker_id=args.worker_id or f"{socket.gethostname()}-{os.getpid()}",
        device=args.device,
        tasks=[t for t in args.tasks.split(",") if t],
        curve=_curve(args),
        max_frame_bytes=args.max_frame_bytes or C.MAX_FRAME_BYTES,
        parent_pid=args.parent_pid,
    )
    return Worker(config).run()


if __name__ == "__main__":
    sys.exit(main())
