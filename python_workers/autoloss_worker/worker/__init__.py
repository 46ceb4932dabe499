"""Long-lived job worker over ZeroMQ: `python -m autoloss_worker --connect ENDPOINT ...`."""

from .constants import PROTOCOL_VERSION
from .handlers import JobCancelled, JobContext, default_registry
from .loop import CurveKeys, Worker, WorkerConfig
from .messages import MessageError, check_message, check_tensor

__all__ = ["PROTOCOL_VERSION", "CurveKeys", "JobCancelled", "JobContext", "MessageError", "Worker", "WorkerConfig",
           "check_message", "check_tensor", "default_registry"]
