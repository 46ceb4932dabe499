import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import t from "tap"
import { pack } from "msgpackr"
import { decodeMessage, encodeMessage, MessageDecodeError } from "../../src/protocol/codec.ts"
import { BLOB_FRAME_MIN_BYTES, MESSAGE_TYPES, PROTOCOL_VERSION, TENSOR_DTYPES } from "../../src/protocol/constants.ts"
import { float64Tensor, tensorValues } from "../../src/protocol/tensors.ts"
import type { Message } from "../../src/protocol/messages.ts"
import { schemaFiles } from "../../src/protocol/schemaFiles.ts"

const schemaDir = join(import.meta.dirname, "..", "..", "protocol", "schemas")

t.test("committed schema files equal the generated ones (run scripts/gen-schemas.ts)", async (t) => {
  const generated = schemaFiles()
  t.same(readdirSync(schemaDir).filter((f) => f.endsWith(".json")).sort(), Object.keys(generated).sort())
  for (const [name, text] of Object.entries(generated)) {
    t.equal(readFileSync(join(schemaDir, name), "utf8"), text, name)
  }
  t.equal(JSON.parse(generated["constants.json"]!).PROTOCOL_VERSION, PROTOCOL_VERSION)
})

const valid: Record<(typeof MESSAGE_TYPES)[number], Message> = {
  hello: { type: "hello", msg_id: "m1", protocol: 1, worker_id: "w", pid: 3, host: "h", device: "cpu", torch: "2.1", jobs: ["ping"], tasks: [] },
  welcome: { type: "welcome", msg_id: "m2", parent_id: "m1", protocol: 1, heartbeat_ms: 1000, liveness: 3, max_frame_bytes: 2048 },
  refuse: { type: "refuse", msg_id: "m3", protocol: 1, worker_protocol: null, reason: "no" },
  job: { type: "job", msg_id: "m4", job_id: "j", kind: "eval-graph", attempt: 1, payload: { t: { dtype: "float32", shape: [1], data: new Uint8Array(4) } } },
  result: { type: "result", msg_id: "m5", job_id: "j", attempt: 1, payload: {} },
  error: { type: "error", msg_id: "m6", job_id: "j", attempt: 2, exc_type: "ValueError", message: "bad", traceback: "tb" },
  heartbeat: { type: "heartbeat", msg_id: "m7", job_id: null, progress: 0.25, dropped: 4 },
  shutdown: { type: "shutdown", msg_id: "m8", reason: "bye" },
  cancel: { type: "cancel", msg_id: "m9", job_id: "j", attempt: 2, reason: "the caller stopped waiting" }
}

t.test("every message type round-trips through msgpack", async (t) => {
  for (const type of MESSAGE_TYPES) {
    const frames = encodeMessage(valid[type])
    t.equal(frames.length, 1, `${type}: small messages are one frame`)
    t.same(decodeMessage(frames), valid[type], type)
  }
})

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")
const fail = (frames: ReadonlyArray<Uint8Array>, max?: number) => {
  try {
    decodeMessage(frames, max)
  } catch (e) {
    if (e instanceof MessageDecodeError) return e
    throw e
  }
  throw new Error("decoded")
}

t.test("large byte values travel as their own frames, referenced from the header", async (t) => {
  const data = new Uint8Array(BLOB_FRAME_MIN_BYTES).map((_, i) => i % 251)
  const msg: Message = { type: "job", msg_id: "m", job_id: "j", kind: "echo", attempt: 1, payload: { data, small: new Uint8Array([0, 255]) } }
  const frames = encodeMessage(msg)
  t.equal(frames.length, 2)
  t.equal(frames[1], data, "the caller's own bytes, not a copy")
  // Hand-assembled (python_workers/tests/test_worker_frames.py checks the same bytes): fixmap 6,
  // fixstr keys and values, attempt 1, payload fixmap 2 with data = fixext4 type 1 holding frame
  // index 1 (d6 01 00000001) and small = bin8 of 2 bytes (c4 02 00ff).
  t.equal(hex(frames[0]!), "86" + "a474797065a36a6f62" + "a66d73675f6964a16d" + "a66a6f625f6964a16a" + "a46b696e64a46563686f" +
    "a7617474656d707401" + "a77061796c6f616482" + "a464617461d60100000001" + "a5736d616c6cc40200ff")
  const decoded = decodeMessage(frames) as Extract<Message, { type: "job" }>
  t.same(decoded, msg)
  // One byte under the threshold stays inline.
  t.equal(encodeMessage({ ...msg, payload: { data: data.subarray(1) } }).length, 1)
  // Nested in arrays and maps, in document order; the message object itself is left untouched.
  const nested: Message = { type: "result", msg_id: "r", job_id: "j", attempt: 1, payload: { a: [1, { t: data }], b: data.subarray(0, BLOB_FRAME_MIN_BYTES) } }
  const nestedFrames = encodeMessage(nested)
  t.equal(nestedFrames.length, 3)
  t.equal((nested.payload["a"] as [number, { t: Uint8Array }])[1].t, data, "not replaced in the caller's object")
  t.same(decodeMessage(nestedFrames), nested)
})

t.test("received blob frames are handed over without a copy", async (t) => {
  const frames = encodeMessage({ type: "result", msg_id: "r", job_id: "j", attempt: 1, payload: { data: new Uint8Array(1 << 20) } })
  const received = frames.map((f) => Buffer.from(f)) // as zeromq.js delivers them: one Buffer per frame
  const decoded = decodeMessage(received) as Extract<Message, { type: "result" }>
  t.equal(decoded.payload["data"], received[1])
})

t.test("frame references are checked: every blob frame used once, no reference outside", async (t) => {
  const frames = encodeMessage({ type: "result", msg_id: "r", job_id: "j", attempt: 1, payload: { data: new Uint8Array(BLOB_FRAME_MIN_BYTES) } })
  t.match(fail([frames[0]!]), { reason: "frames", message: /frame reference 1 outside the blob frames 1\.\.0/ })
  t.match(fail([...frames, new Uint8Array(3)]), { reason: "frames", message: /blob frame 2 of 2 is not referenced/ })
  t.match(fail([pack({ type: "result", msg_id: "r" }), new Uint8Array(3)]), { reason: "frames", message: /blob frame 1 of 1/ })
  // A header referencing frame 1 twice, and one referencing the header (frame 0): hand-built fixext4.
  const ref = (i: number) => [0xd6, 0x01, 0, 0, 0, i]
  const header = (refs: number[][]) => new Uint8Array([0x92, ...refs.flat()])
  t.match(fail([header([ref(1), ref(1)]), new Uint8Array(1)]), { reason: "frames", message: /referenced twice/ })
  t.match(fail([header([ref(0), ref(1)]), new Uint8Array(1)]), { reason: "frames", message: /frame reference 0 outside/ })
  t.match(fail([new Uint8Array([0xd5, 0x01, 0, 1])]), { reason: "frames", message: /has 4 bytes, got 2/ })
  t.match(fail([]), { reason: "frames" })
  t.match(fail(frames, BLOB_FRAME_MIN_BYTES), { reason: "oversized", message: /exceeds the limit/ }, "the limit counts all frames")
})

t.test("decode errors name the reason and the field, and keep the msg_id", async (t) => {
  const failOne = (body: Uint8Array, max?: number) => fail([body], max)
  t.equal(failOne(pack({ ...valid.job, attempt: 0 })).reason, "schema")
  t.match(failOne(pack({ ...valid.job, attempt: 0 })).message, /'job' message at \/attempt/)
  t.equal(failOne(pack({ ...valid.job, attempt: 0 })).msgId, "m4")
  t.equal(failOne(pack({ ...valid.shutdown, extra: 1 })).reason, "schema")
  t.equal(failOne(pack({ ...valid.cancel, attempt: 0 })).reason, "schema")
  t.equal(failOne(pack({ ...valid.heartbeat, progress: 1.5 })).reason, "schema")
  t.equal(failOne(pack({ ...valid.heartbeat, progress: Number.NaN })).reason, "schema")
  t.equal(failOne(pack({ ...valid.job, payload: { t: { dtype: "float32", shape: [1], data: new Uint8Array(4) } }, kind: 5 })).reason, "schema")
  t.equal(failOne(pack({ type: "nope", msg_id: "z" })).reason, "unknown-type")
  t.equal(failOne(pack({ type: "nope", msg_id: "z" })).msgId, "z")
  t.equal(failOne(pack([1, 2])).reason, "not-a-map")
  t.equal(failOne(new Uint8Array([0xc1])).reason, "not-a-map")
  t.equal(failOne(new Uint8Array([0x82, 0xa1, 0x61])).reason, "msgpack")
  t.equal(fail(encodeMessage(valid.shutdown), 4).reason, "oversized")
})

t.test("the tensor schema lists exactly TENSOR_DTYPES", async (t) => {
  const schema = JSON.parse(schemaFiles()["tensor.json"]!) as { properties: { dtype: { anyOf: Array<{ const: string }> } } }
  t.same(schema.properties.dtype.anyOf.map((s) => s.const), [...TENSOR_DTYPES])
})

t.test("float tensors encode little-endian and decode back", async (t) => {
  const w = float64Tensor([1, 2], [1.5, -2])
  t.same([...w.data.slice(0, 8)], [0, 0, 0, 0, 0, 0, 0xf8, 0x3f], "1.5 as IEEE 754 LE")
  t.same([...tensorValues(w)], [1.5, -2])
  t.same([...tensorValues({ dtype: "float32", shape: [1], data: new Uint8Array([0, 0, 0xc0, 0x3f]) })], [1.5])
  t.throws(() => float64Tensor([3], [1]), /needs 3 values/)
  t.throws(() => tensorValues({ ...w, data: w.data.slice(1) }), /needs 16 bytes/)
})
