/**
 * Protocol constants shared by the control plane and the Python workers.
 * `scripts/gen-schemas.ts` writes them to `protocol/schemas/constants.json`; the Python worker's
 * `autoloss_worker/worker/constants.py` is checked against that file by a test.
 */

/** Bump on any incompatible change to a message; `hello` carries it and a mismatch is refused.
 * 2: large byte values travel as extra ZeroMQ frames (`FRAME_REF_EXT_TYPE`); `cancel` message. */
export const PROTOCOL_VERSION = 2

/** Heartbeat period in both directions, in ms. The pool tells workers its value in `welcome`. */
export const HEARTBEAT_INTERVAL_MS = 1000
/** Missed heartbeats before a peer is declared dead. The zguide's 3-5 assumes peers that answer
 * promptly; a Python worker's heartbeat thread shares the GIL with a job that imports torch/MMLab,
 * and on a loaded 2-core machine (load 12) that starved it past 3 s, so healthy workers were killed. */
export const HEARTBEAT_LIVENESS = 10
/** Worker reconnect backoff after losing the pool: initial delay, doubled up to the max (ms). */
export const RECONNECT_INITIAL_MS = 1000
export const RECONNECT_MAX_MS = 32000
/** Largest message either side accepts, in bytes (all its frames together); bigger ones are dropped and counted. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024
/** msgpack extension type of a frame reference: 4 bytes, big-endian index of the frame holding the bytes. */
export const FRAME_REF_EXT_TYPE = 1
/** Byte values at least this long are sent as their own frame rather than inline msgpack `bin`:
 * no copy into (or out of) the msgpack buffer; below it, a frame costs more than the copy. */
export const BLOB_FRAME_MIN_BYTES = 64 * 1024

export const MESSAGE_TYPES = [
  "hello", "welcome", "refuse", "job", "result", "error", "heartbeat", "shutdown", "cancel"
] as const
export type MessageType = (typeof MESSAGE_TYPES)[number]

/** Tensor element types a `Tensor` may carry; bytes are little-endian, C order. */
export const TENSOR_DTYPES = ["float32", "float64", "int64", "int32", "uint8", "bool"] as const
export type TensorDtype = (typeof TENSOR_DTYPES)[number]
export const DTYPE_BYTES: Record<TensorDtype, number> = {
  float32: 4, float64: 8, int64: 8, int32: 4, uint8: 1, bool: 1
}
