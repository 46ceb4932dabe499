/**
 * Body encoding and checking: msgpack (plain `pack`/`unpack`, no records or extensions) plus the
 * compiled TypeBox schema of the message's `type`. Pure: no sockets, no Effect.
 */
import { pack, unpack } from "msgpackr"
import Value from "typebox/value"
import { Compile } from "typebox/compile"
import { MAX_FRAME_BYTES, MESSAGE_TYPES, type MessageType } from "./constants.ts"
import { MESSAGE_SCHEMAS, type Message } from "./messages.ts"

export class MessageDecodeError extends Error {
  override readonly name = "MessageDecodeError"
  constructor(
    readonly reason: "oversized" | "msgpack" | "not-a-map" | "unknown-type" | "schema",
    message: string,
    /** The `msg_id` of the offending message when it could be read, so the sender can be answered. */
    readonly msgId: string | undefined = undefined,
    /** The decoded map when msgpack decoding succeeded (e.g. to refuse a hello of another version). */
    readonly raw: Readonly<Record<string, unknown>> | undefined = undefined
  ) {
    super(message)
  }
}

const validators = Object.fromEntries(
  MESSAGE_TYPES.map((type) => [type, Compile(MESSAGE_SCHEMAS[type])])
) as { readonly [K in MessageType]: ReturnType<typeof Compile> }

const isMessageType = (t: unknown): t is MessageType =>
  typeof t === "string" && (MESSAGE_TYPES as ReadonlyArray<string>).includes(t)

export const encodeMessage = (msg: Message): Uint8Array => pack(msg)

/** Decodes and checks one body; throws `MessageDecodeError` naming the first offending field. */
export const decodeMessage = (body: Uint8Array, maxBytes: number = MAX_FRAME_BYTES): Message => {
  if (body.byteLength > maxBytes) {
    throw new MessageDecodeError("oversized", `message of ${body.byteLength} bytes exceeds the limit of ${maxBytes}`)
  }
  let obj: unknown
  try {
    obj = unpack(body)
  } catch (e) {
    throw new MessageDecodeError("msgpack", `undecodable msgpack: ${(e as Error).message}`)
  }
  // Only a plain object is a msgpack map (msgpackr returns class instances for e.g. byte 0xc1).
  if (typeof obj !== "object" || obj === null || Object.getPrototypeOf(obj) !== Object.prototype) {
    throw new MessageDecodeError("not-a-map", "message body is not a msgpack map")
  }
  const rec = obj as Record<string, unknown>
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
