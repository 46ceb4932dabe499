import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import t from "tap"
import { pack } from "msgpackr"
import { decodeMessage, encodeMessage, MessageDecodeError } from "../../src/protocol/codec.ts"
import { MESSAGE_TYPES, PROTOCOL_VERSION, TENSOR_DTYPES } from "../../src/protocol/constants.ts"
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
  shutdown: { type: "shutdown", msg_id: "m8", reason: "bye" }
}

t.test("every message type round-trips through msgpack", async (t) => {
  for (const type of MESSAGE_TYPES) t.same(decodeMessage(encodeMessage(valid[type])), valid[type], type)
})

t.test("decode errors name the reason and the field, and keep the msg_id", async (t) => {
  const fail = (body: Uint8Array, max?: number) => {
    try {
      decodeMessage(body, max)
    } catch (e) {
      if (e instanceof MessageDecodeError) return e
      throw e
    }
    throw new Error("decoded")
  }
  t.equal(fail(pack({ ...valid.job, attempt: 0 })).reason, "schema")
  t.match(fail(pack({ ...valid.job, attempt: 0 })).message, /'job' message at \/attempt/)
  t.equal(fail(pack({ ...valid.job, attempt: 0 })).msgId, "m4")
  t.equal(fail(pack({ ...valid.shutdown, extra: 1 })).reason, "schema")
  t.equal(fail(pack({ ...valid.heartbeat, progress: 1.5 })).reason, "schema")
  t.equal(fail(pack({ ...valid.heartbeat, progress: Number.NaN })).reason, "schema")
  t.equal(fail(pack({ ...valid.job, payload: { t: { dtype: "float32", shape: [1], data: new Uint8Array(4) } }, kind: 5 })).reason, "schema")
  t.equal(fail(pack({ type: "nope", msg_id: "z" })).reason, "unknown-type")
  t.equal(fail(pack({ type: "nope", msg_id: "z" })).msgId, "z")
  t.equal(fail(pack([1, 2])).reason, "not-a-map")
  t.equal(fail(new Uint8Array([0xc1])).reason, "not-a-map")
  t.equal(fail(new Uint8Array([0x82, 0xa1, 0x61])).reason, "msgpack")
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
