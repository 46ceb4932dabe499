/** Float tensors on the wire (`Tensor` in messages.ts): raw little-endian bytes, C order. */
import { endianness } from "node:os"
import type { Tensor } from "./messages.ts"

const LITTLE = endianness() === "LE"

const count = (shape: ReadonlyArray<number>): number => shape.reduce((a, b) => a * b, 1)

export const float64Tensor = (shape: ReadonlyArray<number>, values: ArrayLike<number>): Tensor => {
  if (values.length !== count(shape)) throw new Error(`shape [${shape.join(", ")}] needs ${count(shape)} values, got ${values.length}`)
  const f = Float64Array.from(values)
  const bytes = new Uint8Array(f.buffer)
  if (!LITTLE) {
    const view = new DataView(f.buffer)
    for (let i = 0; i < f.length; i++) view.setFloat64(i * 8, f[i]!, true)
  }
  return { dtype: "float64", shape: [...shape], data: bytes }
}

/** Decodes a float32/float64 wire tensor to float64 values. */
export const tensorValues = (t: Tensor): Float64Array => {
  const size = t.dtype === "float64" ? 8 : t.dtype === "float32" ? 4 : 0
  if (size === 0) throw new Error(`tensorValues: dtype ${t.dtype} is not a float type`)
  const n = count(t.shape)
  if (t.data.byteLength !== n * size) throw new Error(`tensor [${t.shape.join(", ")}] of ${t.dtype} needs ${n * size} bytes, got ${t.data.byteLength}`)
  const view = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength)
  const out = new Float64Array(n)
  for (let i = 0; i < n; i++) out[i] = size === 8 ? view.getFloat64(i * 8, true) : view.getFloat32(i * 4, true)
  return out
}
