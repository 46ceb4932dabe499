/**
 * TensorBoard scalars without TensorFlow: an event file is a sequence of TFRecords
 *   uint64 length (LE) · uint32 masked CRC32C(length bytes) · data · uint32 masked CRC32C(data)
 * whose data is an `Event` protobuf. We encode the three messages we need by hand:
 *   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
 *   Summary { repeated Value value = 1; }
 *   Value   { string tag = 1; float simple_value = 2; }
 * (tensorflow/core/util/event.proto, tensorflow/core/framework/summary.proto). The first event of a
 * file carries `file_version = "brain.Event:2"`.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import type { ReportModel } from "./model.ts"

// ---------------------------------------------------------------------------------------------
// CRC32C (Castagnoli, reflected polynomial 0x82F63B78) and TFRecord masking

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

export const crc32c = (bytes: Uint8Array): number => {
  let crc = 0xffffffff
  for (const b of bytes) crc = (CRC32C_TABLE[(crc ^ b) & 0xff]! ^ (crc >>> 8)) >>> 0
  return (crc ^ 0xffffffff) >>> 0
}

/** TFRecord's mask: rotate right by 15 and add a constant, so CRCs of CRCs stay well spread. */
export const maskCrc = (crc: number): number => ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0

export const tfRecord = (data: Uint8Array): Uint8Array => {
  const out = new Uint8Array(8 + 4 + data.length + 4)
  const view = new DataView(out.buffer)
  view.setBigUint64(0, BigInt(data.length), true)
  view.setUint32(8, maskCrc(crc32c(out.subarray(0, 8))), true)
  out.set(data, 12)
  view.setUint32(12 + data.length, maskCrc(crc32c(data)), true)
  return out
}

// ---------------------------------------------------------------------------------------------
// Protobuf, the few wire types we need

const varint = (value: bigint): number[] => {
  const out: number[] = []
  let v = BigInt.asUintN(64, value)
  do {
    let byte = Number(v & 0x7fn)
    v >>= 7n
    if (v !== 0n) byte |= 0x80
    out.push(byte)
  } while (v !== 0n)
  return out
}
const key = (field: number, wireType: number): number[] => varint(BigInt((field << 3) | wireType))
const lengthDelimited = (field: number, bytes: ArrayLike<number>): number[] => [...key(field, 2), ...varint(BigInt(bytes.length)), ...Array.from(bytes)]
const fixed64Double = (field: number, v: number): number[] => {
  const b = new Uint8Array(8)
  new DataView(b.buffer).setFloat64(0, v, true)
  return [...key(field, 1), ...b]
}
const fixed32Float = (field: number, v: number): number[] => {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setFloat32(0, v, true)
  return [...key(field, 5), ...b]
}
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

export interface Scalar {
  readonly tag: string
  readonly step: number
  /** Seconds since the epoch. */
  readonly wallTime: number
  readonly value: number
}

export const FILE_VERSION = "brain.Event:2"

export const encodeFileVersionEvent = (wallTime: number): Uint8Array =>
  Uint8Array.from([...fixed64Double(1, wallTime), ...lengthDelimited(3, utf8(FILE_VERSION))])

export const encodeScalarEvent = (s: Scalar): Uint8Array => {
  const value = [...lengthDelimited(1, utf8(s.tag)), ...fixed32Float(2, s.value)]
  const summary = lengthDelimited(1, value)
  return Uint8Array.from([...fixed64Double(1, s.wallTime), ...key(2, 0), ...varint(BigInt(s.step)), ...lengthDelimited(5, summary)])
}

/** A whole event file: the version event, then one event per scalar, in the given order. */
export const encodeEventFile = (scalars: ReadonlyArray<Scalar>, startWallTime: number): Uint8Array => {
  const records = [tfRecord(encodeFileVersionEvent(startWallTime)), ...scalars.map((s) => tfRecord(encodeScalarEvent(s)))]
  const out = new Uint8Array(records.reduce((n, r) => n + r.length, 0))
  let at = 0
  for (const r of records) {
    out.set(r, at)
    at += r.length
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// The search's scalars

export const TAGS = {
  best: "search/best_score",
  topMean: "search/best5_mean",
  candidatesPerMin: "search/candidates_per_min"
} as const

/**
 * Best score and best-5 mean per proxy evaluation (step = evaluations), and candidates proposed per
 * minute per throughput bin (step = bin index). Wall times are the report's estimates.
 */
export const searchScalars = (m: ReportModel): Scalar[] => {
  const scalars: Scalar[] = []
  const start = m.createdAt / 1000
  for (const p of m.curve) {
    const wallTime = start + p.elapsedS
    if (p.best !== null) scalars.push({ tag: TAGS.best, step: p.evaluations, wallTime, value: p.best })
    if (p.topMean !== null) scalars.push({ tag: TAGS.topMean, step: p.evaluations, wallTime, value: p.topMean })
  }
  m.throughput.proposedPerMin.forEach((value, bin) => {
    const wallTime = start + (m.throughput.binStarts[bin] ?? 0) + m.throughput.binS
    scalars.push({ tag: TAGS.candidatesPerMin, step: bin, wallTime, value })
  })
  return scalars
}

export const TB_DIR = "tb"

/**
 * Writes `DIR/tb/events.out.tfevents.<created>.autoloss`, replacing the file an earlier report
 * wrote (its name is fixed per run), so TensorBoard never shows a scalar twice. Returns its path.
 */
export const writeSearchEvents = (dir: string, m: ReportModel): string => {
  const tb = join(dir, TB_DIR)
  mkdirSync(tb, { recursive: true })
  const name = `events.out.tfevents.${Math.floor(m.createdAt / 1000)}.autoloss`
  for (const f of readdirSync(tb)) if (f.startsWith("events.out.tfevents.") && f.endsWith(".autoloss") && f !== name) rmSync(join(tb, f))
  const path = join(tb, name)
  writeFileSync(path, encodeEventFile(searchScalars(m), m.createdAt / 1000))
  return path
}

