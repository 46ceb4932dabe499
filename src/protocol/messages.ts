/**
 * Messages between the pool (a ZeroMQ ROUTER) and workers (DEALERs), as TypeBox schemas.
 * Frames: the ROUTER sees `[identity, header, ...blobs]`, a DEALER sees `[header, ...blobs]`; the
 * header is one msgpack map whose large byte values are references to the blob frames (`codec.ts`).
 * Every message carries the envelope `{type, msg_id, parent_id?}`; replies set `parent_id` to the
 * `msg_id` they answer. `protocol/README.md` ("Messages") documents the conversation; the JSON
 * Schema files in `protocol/schemas/` are generated from here by `scripts/gen-schemas.ts`.
 */
import Type, { type Static, type TSchema } from "typebox"

/** Raw bytes: Uint8Array in TS, bytes in Python. JSON Schema has no bytes type, hence `x-msgpack`.
 * On the wire: msgpack `bin`, or a frame reference (ext type 1) to a blob frame for large values. */
export const Bytes = Type.Refine(
  Type.Unsafe<Uint8Array>({ "x-msgpack": "bin", description: "raw bytes (msgpack bin, or a reference to a blob frame)" }),
  (value) => value instanceof Uint8Array
)

/** A tensor: raw little-endian C-order bytes; `data` has exactly prod(shape) × itemsize bytes. */
export const Tensor = Type.Object({
  // Spelled out (not mapped from TENSOR_DTYPES) so the static type keeps the literals; a test checks both agree.
  dtype: Type.Union([
    Type.Literal("float32"), Type.Literal("float64"), Type.Literal("int64"),
    Type.Literal("int32"), Type.Literal("uint8"), Type.Literal("bool")
  ]),
  shape: Type.Array(Type.Integer({ minimum: 0 }), { maxItems: 8 }),
  data: Bytes
}, { additionalProperties: false })
export type Tensor = Static<typeof Tensor>

const Id = Type.String({ minLength: 1, maxLength: 128 })
const Count = Type.Integer({ minimum: 0 })
const Attempt = Type.Integer({ minimum: 1 })
/** Job payloads and results are msgpack maps whose shape depends on the job kind. */
const Payload = Type.Record(Type.String(), Type.Unknown())

const message = <T extends string, P extends Record<string, TSchema>>(type: T, properties: P, description: string) =>
  Type.Object({
    type: Type.Literal(type),
    msg_id: Id,
    parent_id: Type.Optional(Id),
    ...properties
  }, { additionalProperties: false, description })

/** Worker → pool, first message on every (re)connect. */
export const Hello = message("hello", {
  protocol: Count,
  worker_id: Id,
  pid: Count,
  host: Type.String({ maxLength: 255 }),
  device: Type.String({ maxLength: 64 }),
  /** Read from package metadata, never by importing torch, so workers start fast. */
  torch: Type.Union([Type.String({ maxLength: 64 }), Type.Null()]),
  jobs: Type.Array(Id, { maxItems: 256 }),
  tasks: Type.Array(Id, { maxItems: 256 })
}, "worker → pool: the first message on every connection")

/** Pool → worker, answer to a compatible hello; the worker adopts the pool's heartbeat period. */
export const Welcome = message("welcome", {
  protocol: Count,
  heartbeat_ms: Type.Integer({ minimum: 10 }),
  liveness: Type.Integer({ minimum: 1 }),
  max_frame_bytes: Type.Integer({ minimum: 1024 })
}, "pool → worker: hello accepted")

/** Pool → worker, answer to an incompatible hello; the worker exits naming both versions. */
export const Refuse = message("refuse", {
  protocol: Count,
  worker_protocol: Type.Union([Count, Type.Null()]),
  reason: Type.String({ maxLength: 4096 })
}, "pool → worker: hello refused")

/** Pool → worker: run one attempt of a job. */
export const Job = message("job", {
  job_id: Id,
  kind: Id,
  attempt: Attempt,
  payload: Payload
}, "pool → worker: run one attempt of a job")

/** Worker → pool: the job attempt succeeded. */
export const Result = message("result", {
  job_id: Id,
  attempt: Attempt,
  payload: Payload
}, "worker → pool: a job attempt succeeded")

/** Worker → pool (a job attempt failed, or a frame was rejected: then `job_id` is null). */
export const ErrorMessage = message("error", {
  job_id: Type.Union([Id, Type.Null()]),
  attempt: Type.Union([Attempt, Type.Null()]),
  exc_type: Type.String({ maxLength: 256 }),
  message: Type.String({ maxLength: 65536 }),
  traceback: Type.String({ maxLength: 262144 })
}, "worker → pool: a job attempt failed or a frame was rejected")

/** Both directions every heartbeat period; any inbound message counts as a sign of life. */
export const Heartbeat = message("heartbeat", {
  job_id: Type.Union([Id, Type.Null()]),
  progress: Type.Union([Type.Number({ minimum: 0, maximum: 1 }), Type.Null()]),
  /** Frames dropped so far because they were oversized or undecodable. */
  dropped: Count
}, "both directions: sign of life, with the current job and its progress")

/** Pool → worker: exit after the current job; worker → pool: leaving (e.g. after SIGTERM). */
export const Shutdown = message("shutdown", {
  reason: Type.String({ maxLength: 4096 })
}, "both directions: the sender is ending the conversation")

/** Pool → worker: the pool stopped waiting for this attempt (it timed out or its caller gave up).
 * The worker stops the job at its next progress report and answers an `error` of type `Cancelled`;
 * a cancel for a job it is not running is ignored. */
export const Cancel = message("cancel", {
  job_id: Id,
  attempt: Attempt,
  reason: Type.String({ maxLength: 4096 })
}, "pool → worker: stop running this job attempt")

export const MESSAGE_SCHEMAS = {
  hello: Hello,
  welcome: Welcome,
  refuse: Refuse,
  job: Job,
  result: Result,
  error: ErrorMessage,
  heartbeat: Heartbeat,
  shutdown: Shutdown,
  cancel: Cancel
} as const

export type Hello = Static<typeof Hello>
export type Welcome = Static<typeof Welcome>
export type Refuse = Static<typeof Refuse>
export type Job = Static<typeof Job>
export type Result = Static<typeof Result>
export type ErrorMessage = Static<typeof ErrorMessage>
export type Heartbeat = Static<typeof Heartbeat>
export type Shutdown = Static<typeof Shutdown>
export type Cancel = Static<typeof Cancel>
export type Message = Hello | Welcome | Refuse | Job | Result | ErrorMessage | Heartbeat | Shutdown | Cancel
