"""Protocol constants; mirror `src/protocol/constants.ts` (a test compares them with
`protocol/schemas/constants.json`, which is generated from the TS side)."""

# 2: large byte values travel as extra ZeroMQ frames (FRAME_REF_EXT_TYPE); `cancel` message.
PROTOCOL_VERSION = 2

# Heartbeat period in ms, both directions. The pool's `welcome` overrides it for this connection.
HEARTBEAT_INTERVAL_MS = 1000
# Silent heartbeat periods before the peer is presumed dead (the zguide's 3-5 starved healthy
# workers whose heartbeat thread waited on the GIL during torch/MMLab imports on a loaded machine).
HEARTBEAT_LIVENESS = 10
# Reconnect backoff after losing the pool: initial delay in ms, doubled per failure up to the max.
RECONNECT_INITIAL_MS = 1000
RECONNECT_MAX_MS = 32000
# Largest message accepted, in bytes (all its frames together); bigger ones are dropped and counted.
MAX_FRAME_BYTES = 64 * 1024 * 1024
# msgpack extension type of a frame reference: 4 bytes, big-endian index of the frame holding the bytes.
FRAME_REF_EXT_TYPE = 1
# Byte values at least this long are sent as their own frame rather than inline msgpack bin (no copy
# into the msgpack buffer; below it a frame costs more than the copy). Equals pyzmq's copy_threshold,
# above which pyzmq sends a frame without copying it.
BLOB_FRAME_MIN_BYTES = 64 * 1024

MESSAGE_TYPES = ("hello", "welcome", "refuse", "job", "result", "error", "heartbeat", "shutdown", "cancel")
TENSOR_DTYPES = ("float32", "float64", "int64", "int32", "uint8", "bool")
DTYPE_BYTES = {"float32": 4, "float64": 8, "int64": 8, "int32": 4, "uint8": 1, "bool": 1}

# How long the worker waits for `welcome`/`refuse` after `hello` before trying again, in ms.
HELLO_TIMEOUT_MS = 5000
