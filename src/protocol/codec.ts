/**
 * Message encoding and checking. A message is a list of ZeroMQ frames: a header frame (one msgpack
 * map, no records) and one blob frame per large byte value. A byte value of at least
 * `BLOB_FRAME_MIN_BYTES` is written in the header as a frame reference (msgpack ext
 * `FRAME_REF_EXT_TYPE`, 4-byte big-endian frame index) and sent as its own frame, so megabytes of
 * tensor data are never copied into or out of a msgpack buffer: zeromq.js sends a Uint8Array frame
 * and hands a received one over without copying. The receiver puts the frames back in place and
 * checks the result against the compiled TypeBox schema of its `type`. Pure: no sockets, no Effect.
 */
import { addExtension, Packr, unpack } from "msgpackr"
import Value from "typebox/value"
import { Compile } from "typebox/compile"
import { BLOB_FRAME_MIN_BYTES, FRAME_REF_EXT_TYPE, MAX_FRAME_BYTES, MESSAGE_TYPES, type MessageType } from "./constants.ts"
import { MESSAGE_SCHEMAS, type Message } from "./messages.ts"

export class MessageDecodeError extends Error {
  override readonly name = "MessageDecodeError"
  constructor(
    readonly reason: "oversized" | "msgpack" | "frames" | "not-a-map" | "unknown-type" | "schema",
    message: string,
    /** The `msg_id` of the offending message when it could be read, so the sender can be answered. */
    readonly msgId: string | undefined = undefined,
    /** The decoded map when msgpack decoding succeeded (e.g. to refuse a hello of another version). */
    readonly raw: Readonly<Record<string, unknown>> | undefined = undefined
  ) {
    super(message)
  }
}

/** Stands in the header for the bytes sent as frame `index`. */
class FrameRef {
  constructor(readonly index: number) {}
}

class FrameRefError extends Error {}

/** The frames of the message being decoded; the extension hook below resolves references in it. */
let inbound: { readonly frames: ReadonlyArray<Uint8Array>; readonly used: boolean[] } | undefined

// msgpackr's extension table is process-wide; ext type 1 means nothing to msgpackr itself (it
// would throw "Unknown extension"), and outside `decodeMessage` it still throws.
addExtension({
  Class: FrameRef,
  type: FRAME_REF_EXT_TYPE,
  pack: (ref: FrameRef) => {
    const data = Buffer.alloc(4)
    data.writeUInt32BE(ref.index)
    return data
  },
  unpack: (data: Uint8Array) => {
    if (!inbound) throw new FrameRefError("a frame reference outside a framed message")
    if (data.byteLength !== 4) throw new FrameRefError(`a frame reference has 4 bytes, got ${data.byteLength}`)
    const index = new DataView(data.buffer, data.byteOffset, 4).getUint32(0)
    const frame = inbound.frames[index]
    if (index === 0 || frame === undefined) throw new FrameRefError(`frame reference ${index} outside the blob frames 1..${inbound.frames.length - 1}`)
    if (inbound.used[index]) throw new FrameRefError(`blob frame ${index} is referenced twice`)
    inbound.used[index] = true
    return frame
  }
})

// The README's settings: map headers as small as Python's msgpack writes them.
const packr = new Packr({ useRecords: false, variableMapSize: true })

const isPlainObject = (v: object): v is Record<string, unknown> => Object.getPrototypeOf(v) === Object.prototype

/** Replaces large byte values by frame references, appending them to `blobs`; copies only the
 * containers on the way to a replaced value, everything else is shared with `value`. */
const splitBlobs = (value: unknown, blobs: Uint8Array[]): unknown => {
  if (typeof value !== "object" || value === null) return value
  if (value instanceof Uint8Array) {
    if (value.byteLength < BLOB_FRAME_MIN_BYTES) return value
    blobs.push(value)
    return new FrameRef(blobs.length) // frame 0 is the header
  }
  if (Array.isArray(value)) {
    let out: unknown[] | undefined
    for (let i = 0; i < value.length; i++) {
      const v = splitBlobs(value[i], blobs)
      if (v !== value[i]) (out ??= value.slice())[i] = v
    }
    return out ?? value
  }
  if (!isPlainObject(value)) return value
  let out: Record<string, unknown> | undefined
  for (const key in value) {
    const v = splitBlobs(value[key], blobs)
    if (v !== value[key]) (out ??= { ...value })[key] = v
  }
  return out ?? value
}

/** `[header, ...blobs]`; the blobs are the caller's own Uint8Arrays (not copied: do not mutate them
 * until sent). */
export const encodeMessage = (msg: Message): Uint8Array[] => {
  const blobs: Uint8Array[] = []
  const header = packr.pack(splitBlobs(msg, blobs))
  return [header, ...blobs]
}

const validators = Object.fromEntries(
  MESSAGE_TYPES.map((type) => [type, Compile(MESSAGE_SCHEMAS[type])])
) as { readonly [K in MessageType]: ReturnType<typeof Compile> }

const isMessageType = (t: unknown): t is MessageType =>
  typeof t === "string" && (MESSAGE_TYPES as ReadonlyArray<string>).includes(t)

/** Decodes and checks one message from its frames (header first); throws `MessageDecodeError`
 * naming the first offending field or frame. Byte values are views on the frames, not copies. */
export const decodeMessage = (frames: ReadonlyArray<Uint8Array>, maxBytes: number = MAX_FRAME_BYTES): Message => {
  const header = frames[0]
  if (header === undefined) throw new MessageDecodeError("frames", "a message without frames")
  let total = 0
  for (const f of frames) total += f.byteLength
  if (total > maxBytes) {
    throw new MessageDecodeError("oversized", `message of ${total} bytes exceeds the limit of ${maxBytes}`)
  }
  let obj: unknown
  inbound = { frames, used: [] }
  let used: boolean[]
  try {
    obj = unpack(header)
  } catch (e) {
    if (e instanceof FrameRefError) throw new MessageDecodeError("frames", e.message)
    throw new MessageDecodeError("msgpack", `undecodable msgpack: ${(e as Error).message}`)
  } finally {
    used = inbound.used
    inbound = undefined
  }
  for (let i = 1; i < frames.length; i++) {
    if (!used[i]) throw new MessageDecodeError("frames", `blob frame ${i} of ${frames.length - 1} is not referenced by the header`)
  }
  // Only a plain object is a msgpack map (msgpackr returns class instances for e.g. byte 0xc1).
  if (typeof obj !== "object" || obj === null || !isPlainObject(obj)) {
    throw new MessageDecodeError("not-a-map", "message body is not a msgpack map")
  }
  const rec = obj
  const msgId = typeof rec["msg_id"] === "string" ? rec["msg_id"] : undefined
  const type = rec["type"]
  if (!isMessageType(type)) {
    throw new MessageDecodeError("unknown-type", `unknown message type ${JSON.stringify(type)}`, msgId, rec)
  }
  if (!validators[type].Check(obj)) {
    const first = Value.Errors(MESSAGE_SCHEMAS[type], obj)[0]
    const where = first ? `${first.instancePath || "/"}: ${first.message}` : "does not match its schema"
    throw new MessageDecodeError("schema", `invalid '${type}' message at ${where}`, msgId, rec)
  }
  return obj as Message
}
