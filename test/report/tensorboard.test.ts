import t from "tap"
import { spawnSync } from "node:child_process"
import { readdirSync } from "node:fs"
import { join } from "node:path"
import { buildReportModel } from "../../src/report/model.ts"
import { loadRun } from "../../src/report/run-data.ts"
import {
  crc32c, encodeScalarEvent, maskCrc, searchScalars, TAGS, tfRecord, writeSearchEvents
} from "../../src/report/tensorboard.ts"
import { CREATED_AT, tempDir, writeSyntheticRun } from "./fixture.ts"

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)

t.test("CRC32C check values (RFC 3720 B.4 and the classic '123456789')", async (t) => {
  t.equal(crc32c(bytes("123456789")), 0xe3069283)
  t.equal(crc32c(new Uint8Array(32)), 0x8a9136aa, "32 zero bytes")
  t.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43, "32 0xff bytes")
  t.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e, "ascending 0..31")
  t.equal(crc32c(new Uint8Array(0)), 0)
  // mask: rotate right 15, add 0xa282ead8 (mod 2^32)
  t.equal(maskCrc(0), 0xa282ead8)
  t.equal(maskCrc(0x00008000), (1 + 0xa282ead8) >>> 0)
})

t.test("TFRecord framing: little-endian length, masked CRCs of length and data", async (t) => {
  const data = bytes("hello")
  const r = tfRecord(data)
  const view = new DataView(r.buffer)
  t.equal(r.length, 8 + 4 + 5 + 4)
  t.equal(view.getBigUint64(0, true), 5n)
  t.equal(view.getUint32(8, true), maskCrc(crc32c(r.subarray(0, 8))))
  t.same([...r.subarray(12, 17)], [...data])
  t.equal(view.getUint32(17, true), maskCrc(crc32c(data)))
})

t.test("a scalar Event's protobuf bytes, by hand", async (t) => {
  const e = encodeScalarEvent({ tag: "a", step: 300, wallTime: 1.5, value: 0.5 })
  const expected = [
    0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, // wall_time = 1.5 (double, field 1)
    0x10, 0xac, 0x02, // step = 300 (varint, field 2)
    0x2a, 10, // summary (field 5), 10 bytes
    0x0a, 8, // value (field 1), 8 bytes
    0x0a, 1, 0x61, // tag = "a"
    0x15, 0, 0, 0, 0x3f // simple_value = 0.5 (float, field 2)
  ]
  t.same([...e], expected)
})

/** An independent reader: CRC32C bit by bit, protobuf walked field by field, in plain Python. */
const PY_READER = String.raw`
import json, struct, sys

def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF

def masked(crc):
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF

def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]; i += 1
        value |= (b & 0x7F) << shift; shift += 7
        if not b & 0x80:
            return value, i

def fields(buf):
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 1:
            v = buf[i:i + 8]; i += 8
        elif wt == 5:
            v = buf[i:i + 4]; i += 4
        elif wt == 2:
            n, i = varint(buf, i); v = buf[i:i + n]; i += n
        else:
            raise ValueError("wire type %d" % wt)
        yield num, wt, v

data = open(sys.argv[1], "rb").read()
events, i = [], 0
while i < len(data):
    header = data[i:i + 8]
    (length,) = struct.unpack("<Q", header)
    (hcrc,) = struct.unpack("<I", data[i + 8:i + 12])
    assert hcrc == masked(crc32c(header)), "length crc"
    body = data[i + 12:i + 12 + length]
    (dcrc,) = struct.unpack("<I", data[i + 12 + length:i + 16 + length])
    assert dcrc == masked(crc32c(body)), "data crc"
    i += 16 + length
    ev = {}
    for num, wt, v in fields(body):
        if num == 1: ev["wall_time"] = struct.unpack("<d", v)[0]
        elif num == 2: ev["step"] = v
        elif num == 3: ev["file_version"] = v.decode()
        elif num == 5:
            for _, _, value in fields(v):
                for n2, _, x in fields(value):
                    if n2 == 1: ev["tag"] = x.decode()
                    elif n2 == 2: ev["value"] = struct.unpack("<f", x)[0]
    events.append(ev)
print(json.dumps(events))
`

t.test("the event file written for a run decodes with an independent Python reader", async (t) => {
  const dir = tempDir(t)
  await writeSyntheticRun(dir)
  const model = buildReportModel(loadRun(dir))
  const path = writeSearchEvents(dir, model)
  t.same(readdirSync(join(dir, "tb")), [`events.out.tfevents.${CREATED_AT / 1000}.autoloss`])
  writeSearchEvents(dir, model)
  t.equal(readdirSync(join(dir, "tb")).length, 1, "a second report replaces the file")

  const py = spawnSync(".venv/bin/python", ["-c", PY_READER, path], { encoding: "utf8" })
  t.equal(py.status, 0, py.stderr)
  const events = JSON.parse(py.stdout) as Array<{ wall_time: number; step?: number; file_version?: string; tag?: string; value?: number }>
  t.same(events[0], { wall_time: CREATED_AT / 1000, file_version: "brain.Event:2" })
  const scalars = events.slice(1)
  t.equal(scalars.length, searchScalars(model).length)
  const best = scalars.filter((e) => e.tag === TAGS.best)
  t.same(best.map((e) => e.step), [1, 2, 3, 4, 5, 6, 7])
  t.same(best.map((e) => Math.round(e.value! * 1e6) / 1e6), [0.3, 0.4, 0.4, 0.4, 0.5, 0.5, 0.5], "float32 of the best scores")
  const top = scalars.filter((e) => e.tag === TAGS.topMean)
  t.same(top.map((e) => e.step), [6, 7])
  t.ok(Math.abs(top[1]!.value! - 0.35) < 1e-6)
  t.ok(Math.abs(best[0]!.wall_time - (CREATED_AT / 1000 + 1.1)) < 1e-6, "wall time = estimated finish")
  const rate = scalars.filter((e) => e.tag === TAGS.candidatesPerMin)
  t.equal(rate.length, 25)
  t.equal(rate.filter((e) => e.value === 12).length, 13)
})
