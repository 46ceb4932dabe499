"""Protocol constants; mirror `src/protocol/constants.ts` (a test compares them with
`protocol/schemas/constants.json`, which is generated from the TS side)."""

PROTOCOL_VERSION = 1

# Heartbeat period in ms, both directions. The pool's `welcome` overrides it for this connection.
HEARTBEAT_INTERVAL_MS = 1000
# Silent heartbeat periods before the peer is presumed dead (3-5 is reasonable, zguide ch. 4).
HEARTBEAT_LIVENESS = 3
# Reconnect backoff after losing the pool: initial delay in ms, doubled per failure up to the max.
RECONNECT_INITIAL_MS = 1000
RECONNECT_MAX_MS = 32000
# Largest message body accepted, in bytes; bigger frames are dropped and counted.
MAX_FRAME_BYTES = 64 * 1024 * 1024

MESSAGE_TYPES = ("hello", "welcome", "refuse", "job", "result", "error", "heartbeat", "shutdown")
TENSOR_DTYPES = ("float32", "float64", "int64", "int32", "uint8", "bool")
DTYPE_BYTES = {"float32": 4, "float64": 8, "int64": 8, "int32": 4, "uint8": 1, "bool": 1}

# How long the worker waits for `welcome`/`refuse` after `hello` before trying again, in ms.
HELLO_TIMEOUT_MS = 5000
