/**
 * Protocol constants shared by the control plane and the Python workers.
 * `scripts/gen-schemas.ts` writes them to `protocol/schemas/constants.json`; the Python worker's
 * `autoloss_worker/worker/constants.py` is checked against that file by a test.
 */

/** Bump on any incompatible change to a message; `hello` carries it and a mismatch is refused. */
export const PROTOCOL_VERSION = 1

/** Heartbeat period in both directions, in ms. The pool tells workers its value in `welcome`. */
export const HEARTBEAT_INTERVAL_MS = 1000
/** Missed heartbeats before a peer is declared dead (3-5 is reasonable: zguide ch. 4). */
export const HEARTBEAT_LIVENESS = 3
/** Worker reconnect backoff after losing the pool: initial delay, doubled up to the max (ms). */
export const RECONNECT_INITIAL_MS = 1000
export const RECONNECT_MAX_MS = 32000
/** Largest message body either side accepts, in bytes; bigger frames are dropped and counted. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024

export const MESSAGE_TYPES = [
  "hello", "welcome", "refuse", "job", "result", "error", "heartbeat", "shutdown"
] as const
export type MessageType = (typeof MESSAGE_TYPES)[number]

/** Tensor element types a `Tensor` may carry; bytes are little-endian, C order. */
export const TENSOR_DTYPES = ["float32", "float64", "int64", "int32", "uint8", "bool"] as const
export type TensorDtype = (typeof TENSOR_DTYPES)[number]
export const DTYPE_BYTES: Record<TensorDtype, number> = {
  float32: 4, float64: 8, int64: 8, int32: 4, uint8: 1, bool: 1
}
