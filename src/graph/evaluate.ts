/**
 * Reference evaluator: the 14 primitive operators in float64 with plain loops on NCHW tensors.
 * It is deliberately independent of any tensor library; the golden vectors in `protocol/vectors/`
 * come from here and the Python torch interpreter must reproduce them.
 *
 * Conventions (paper Table 1, ε = EPSILON = 1e-12): sign(0) = 0, so log(0) = sqrt(0) = 0;
 * pooling is 3×3, stride 1, padding 1, and padded cells never win (they are skipped, which is the
 * same as padding with −inf for max and +inf for min).
 */
import { EPSILON, type OpName } from "./ops.ts"
import type { Branch, LossGraph, Node } from "./types.ts"

export type Shape = [number, number, number, number]

/** A dense float64 tensor of shape (N, C, H, W), row-major (w fastest). */
export interface Tensor {
  shape: Shape
  data: Float64Array
}

export class EvaluationError extends Error {
  override readonly name = "EvaluationError"
}

const numel = (shape: Shape): number => shape[0] * shape[1] * shape[2] * shape[3]

export const tensor = (shape: Shape, data: ArrayLike<number>): Tensor => {
  if (data.length !== numel(shape)) {
    throw new EvaluationError(`tensor of shape [${shape.join(",")}] needs ${numel(shape)} values, got ${data.length}`)
  }
  return { shape: [...shape], data: Float64Array.from(data) }
}

export const filled = (shape: Shape, value: number): Tensor => ({
  shape: [...shape],
  data: new Float64Array(numel(shape)).fill(value)
})

const sameShape = (a: Shape, b: Shape): boolean => a.every((d, k) => d === b[k])

/** sign(x)·g(|x|): the paper's odd extension that keeps log and sqrt defined for negative inputs. */
const sign = (x: number): number => (x > 0 ? 1 : x < 0 ? -1 : x)

const map = (x: Tensor, f: (v: number) => number): Tensor => {
  const out = new Float64Array(x.data.length)
  for (let k = 0; k < out.length; k++) out[k] = f(x.data[k]!)
  return { shape: x.shape, data: out }
}

const zip = (op: OpName, a: Tensor, b: Tensor, f: (u: number, v: number) => number): Tensor => {
  // No broadcasting: every input of a branch has the branch's (N, C, H, W) and all ops preserve it.
  if (!sameShape(a.shape, b.shape)) {
    throw new EvaluationError(`${op}: operand shapes differ: [${a.shape.join(",")}] vs [${b.shape.join(",")}]`)
  }
  const out = new Float64Array(a.data.length)
  for (let k = 0; k < out.length; k++) out[k] = f(a.data[k]!, b.data[k]!)
  return { shape: a.shape, data: out }
}

/** Mean over N, H, W for each channel, written back to every position of that channel. */
const meanNHW = (x: Tensor): Tensor => {
  const [N, C, H, W] = x.shape
  const out = new Float64Array(x.data.length)
  const plane = H * W
  for (let c = 0; c < C; c++) {
    let sum = 0
    for (let n = 0; n < N; n++) {
      const base = (n * C + c) * plane
      for (let k = 0; k < plane; k++) sum += x.data[base + k]!
    }
    const mean = sum / (N * plane)
    for (let n = 0; n < N; n++) out.fill(mean, (n * C + c) * plane, (n * C + c + 1) * plane)
  }
  return { shape: x.shape, data: out }
}

/** Mean over C for each (n, h, w), written back to every channel. */
const meanC = (x: Tensor): Tensor => {
  const [N, C, H, W] = x.shape
  const out = new Float64Array(x.data.length)
  const plane = H * W
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < plane; k++) {
      let sum = 0
      for (let c = 0; c < C; c++) sum += x.data[(n * C + c) * plane + k]!
      const mean = sum / C
      for (let c = 0; c < C; c++) out[(n * C + c) * plane + k] = mean
    }
  }
  return { shape: x.shape, data: out }
}

/** 3×3 pooling, stride 1, padding 1; only in-bounds cells compete, so padding never wins. */
const pool3x3 = (x: Tensor, better: (candidate: number, best: number) => boolean): Tensor => {
  const [N, C, H, W] = x.shape
  const out = new Float64Array(x.data.length)
  for (let p = 0; p < N * C; p++) {
    const base = p * H * W
    for (let h = 0; h < H; h++) {
      for (let w = 0; w < W; w++) {
        let best = x.data[base + h * W + w]!
        for (let dh = -1; dh <= 1; dh++) {
          const hh = h + dh
          if (hh < 0 || hh >= H) continue
          for (let dw = -1; dw <= 1; dw++) {
            const ww = w + dw
            if (ww < 0 || ww >= W) continue
            const v = x.data[base + hh * W + ww]!
            // NaN propagates, as in max_pool2d: a NaN candidate always wins.
            if (Number.isNaN(v) || better(v, best)) best = v
          }
        }
        out[base + h * W + w] = best
      }
    }
  }
  return { shape: x.shape, data: out }
}

/** Applies one operator to already evaluated operands. Exhaustive over `OpName`. */
export const applyOp = (op: OpName, args: ReadonlyArray<Tensor>): Tensor => {
  const a = args[0]
  if (a === undefined) throw new EvaluationError(`${op}: missing operand`)
  switch (op) {
    case "add":
    case "mul": {
      const b = args[1]
      if (b === undefined) throw new EvaluationError(`${op}: missing second operand`)
      return op === "add" ? zip(op, a, b, (u, v) => u + v) : zip(op, a, b, (u, v) => u * v)
    }
    case "neg":
      return map(a, (v) => -v)
    case "abs":
      return map(a, Math.abs)
    case "inv":
      return map(a, (v) => 1 / (v + EPSILON))
    case "log":
      return map(a, (v) => sign(v) * Math.log(Math.abs(v) + EPSILON))
    case "exp":
      return map(a, Math.exp)
    case "tanh":
      return map(a, Math.tanh)
    case "square":
      return map(a, (v) => v * v)
    case "sqrt":
      return map(a, (v) => sign(v) * Math.sqrt(Math.abs(v) + EPSILON))
    case "mean_nhw":
      return meanNHW(a)
    case "mean_c":
      return meanC(a)
    case "max_pool":
      return pool3x3(a, (v, best) => v > best)
    case "min_pool":
      return pool3x3(a, (v, best) => v < best)
    default: {
      const unhandled: never = op
      throw new EvaluationError(`unknown operator '${String(unhandled)}'`)
    }
  }
}

/**
 * Completes a branch's inputs: `one` defaults to ones shaped like the first other input present
 * (in `order`, else in insertion order), and every input must share that shape.
 */
export const withOnes = (inputs: Readonly<Record<string, Tensor>>, order?: ReadonlyArray<string>): Record<string, Tensor> => {
  const names = [...(order ?? []), ...Object.keys(inputs)].filter((name) => name !== "one" && inputs[name] !== undefined)
  const first = names[0] === undefined ? undefined : inputs[names[0]]
  const one = inputs["one"]
  const reference = first ?? one
  if (reference === undefined) throw new EvaluationError("no input tensors given")
  for (const [name, t] of Object.entries(inputs)) {
    if (!sameShape(t.shape, reference.shape)) {
      throw new EvaluationError(`input '${name}' has shape [${t.shape.join(",")}], expected [${reference.shape.join(",")}]`)
    }
  }
  return one === undefined ? { ...inputs, one: filled(reference.shape, 1) } : { ...inputs }
}

const evalTree = (node: Node, inputs: Readonly<Record<string, Tensor>>): Tensor => {
  if (node.type === "input") {
    const t = inputs[node.name]
    if (t === undefined) throw new EvaluationError(`input '${node.name}' was not provided`)
    return t
  }
  return applyOp(node.op, node.args.map((child) => evalTree(child, inputs)))
}

/** Elementwise output (N, C, H, W) of a tree; `one` may be omitted from `inputs`. */
export const evaluateNode = (node: Node, inputs: Readonly<Record<string, Tensor>>): Tensor =>
  evalTree(node, withOnes(inputs))

/** The inputs a branch reads: those its kind declares, with `one` shaped like the first present. */
export const branchInputs = (branch: Branch, inputs: Readonly<Record<string, Tensor>>): Record<string, Tensor> =>
  withOnes(pick(inputs, branch.kind.inputs), branch.kind.inputs)

/** Elementwise output of a branch (see `branchInputs`). */
export const evaluateBranch = (branch: Branch, inputs: Readonly<Record<string, Tensor>>): Tensor =>
  evalTree(branch.root, branchInputs(branch, inputs))

/** `L = Σ o / (N·H·W)`: the paper's branch value (no normalisation over C). */
export const branchValue = (out: Tensor): number => {
  let sum = 0
  for (const v of out.data) sum += v
  return sum / (out.shape[0] * out.shape[2] * out.shape[3])
}

/**
 * Unweighted sum of branch values; each branch reads only the inputs its kind declares
 * (task loss weights are applied by the task, not here).
 */
export const lossValue = (g: LossGraph, inputs: Readonly<Record<string, Tensor>>): number =>
  g.branches.reduce((total, b) => total + branchValue(evaluateBranch(b, inputs)), 0)

const pick = (inputs: Readonly<Record<string, Tensor>>, names: ReadonlyArray<string>): Record<string, Tensor> => {
  const out: Record<string, Tensor> = {}
  for (const name of names) {
    const t = inputs[name]
    if (t !== undefined) out[name] = t
  }
  return out
}
