/**
 * Golden vectors for the loss-graph wire form and operator semantics: `protocol/vectors/graphs.json`.
 *
 *   npx tsx scripts/gen-vectors.ts          # rewrite the file
 *   npx tsx scripts/gen-vectors.ts --check  # exit 1 if the file differs from what would be written
 *
 * Everything is computed by the float64 reference evaluator (`src/graph/evaluate.ts`) and central
 * finite differences (`src/graph/finite-diff.ts`) from inputs drawn with a fixed seed, so the file is
 * a pure function of this script and `test/graph/vectors.test.ts` regenerates it in memory.
 * The Python interpreter must reproduce `output`/`value` and its autograd must match `grads`.
 */
import { readFileSync, writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { EPSILON } from "../src/graph/ops.ts"
import { Rng } from "../src/graph/rng.ts"
import { parseLoss, printLoss } from "../src/graph/syntax.ts"
import { BOX, DENSE, type LossGraph } from "../src/graph/types.ts"
import { validateLoss } from "../src/graph/validate.ts"
import { GRAPH_WIRE_VERSION, encodeLoss } from "../src/graph/wire.ts"
import { randomLoss } from "../src/graph/random.ts"
import { type Shape, type Tensor, branchValue, evaluateBranch } from "../src/graph/evaluate.ts"
import { FD_FLOOR, FD_STEP, KINK_MARGIN, lossGradients, nearestKink } from "../src/graph/finite-diff.ts"

export const VECTORS_PATH = fileURLToPath(new URL("../protocol/vectors/graphs.json", import.meta.url))
export const VECTORS_VERSION = 1
const SEED = 20220601
const RANDOM_CASES = 30

const DENSE_SHAPE: Shape = [2, 3, 2, 2]
const POOL_SHAPE: Shape = [2, 2, 3, 4]
/** One box per sample; boxes have no spatial dims (H = W = 1). */
const BOX_SHAPE: Shape = [6, 1, 1, 1]

interface WireTensor {
  readonly shape: Shape
  readonly data: ReadonlyArray<number>
}

export interface VectorCase {
  readonly name: string
  readonly text: string
  readonly wire_b64: string
  /** Inputs by name, shared by all branches (a branch reads those its kind declares); `one` is omitted. */
  readonly inputs: Record<string, WireTensor>
  /** Elementwise output of the only branch; null for multi-branch losses (see `branches`). */
  readonly output: WireTensor | null
  /** Σ over branches of branch values, unweighted. */
  readonly value: number
  readonly branches: ReadonlyArray<{ readonly name: string; readonly output: WireTensor; readonly value: number }>
  /** ∂value/∂input by central finite differences; null where the loss is not smooth at the inputs. */
  readonly grads: Record<string, WireTensor> | null
  /** Absolute accuracy of `grads` estimated from the FD itself (compare with max(atol, this)). */
  readonly grad_atol: number | null
  readonly note: string
}

export interface Vectors {
  readonly version: number
  readonly graph_wire_version: number
  readonly epsilon: number
  readonly fd: { readonly step: number; readonly floor: number; readonly kink_margin: number }
  readonly description: string
  readonly cases: ReadonlyArray<VectorCase>
}

// ---- inputs -------------------------------------------------------------------------------------

/** Six significant digits: compact JSON, and the value is exactly the double both sides read. */
const short = (x: number): number => Number(x.toPrecision(6))

const numel = (shape: Shape): number => shape[0] * shape[1] * shape[2] * shape[3]

const fill = (shape: Shape, f: (k: number) => number): Tensor => ({
  shape,
  data: Float64Array.from({ length: numel(shape) }, (_, k) => short(f(k)))
})

const uniform = (rng: Rng, shape: Shape, lo: number, hi: number): Tensor => fill(shape, () => lo + (hi - lo) * rng.float())

/** Random sign, magnitude log-uniform in [lo, hi]: exercises sign(x) and values near 0. */
const signedLog = (rng: Rng, shape: Shape, lo: number, hi: number): Tensor =>
  fill(shape, () => (rng.chance(0.5) ? -1 : 1) * lo * Math.exp(Math.log(hi / lo) * rng.float()))

/** Distinct values `sign·(offset + spacing·π(k) + jitter)` with |jitter| < spacing/4, so pooling never nearly ties. */
const spaced = (rng: Rng, shape: Shape, sign: 1 | -1, offset: number, spacing: number): Tensor => {
  const order = Array.from({ length: numel(shape) }, (_, k) => k)
  for (let k = order.length - 1; k > 0; k--) {
    const j = rng.int(k + 1)
    ;[order[k], order[j]] = [order[j]!, order[k]!]
  }
  return fill(shape, (k) => sign * (offset + spacing * (order[k]! + 0.5 * (rng.float() - 0.5))))
}

const probabilities = (rng: Rng, shape: Shape = DENSE_SHAPE): Record<string, Tensor> => ({
  y_hat: uniform(rng, shape, 0.02, 0.98),
  y: uniform(rng, shape, 0.02, 0.98)
})

/** Areas with 0 < i < u < e, as for a predicted and a target box. */
const boxAreas = (rng: Rng, shape: Shape = BOX_SHAPE): Record<string, Tensor> => {
  const i = uniform(rng, shape, 0.1, 1)
  const u = fill(shape, (k) => i.data[k]! + 0.1 + rng.float())
  const e = fill(shape, (k) => u.data[k]! + 0.05 + rng.float())
  return { i, u, e }
}

// ---- cases --------------------------------------------------------------------------------------

interface CaseSpec {
  readonly name: string
  readonly text: string
  readonly inputs: Record<string, Tensor>
  readonly note?: string
  /** Set when the gradient is known not to be comparable, with the reason. */
  readonly noGrads?: string
}

const wireTensor = (t: Tensor): WireTensor => ({ shape: t.shape, data: Array.from(t.data) })

const allFinite = (ts: ReadonlyArray<Tensor>): boolean => ts.every((t) => t.data.every(Number.isFinite))

const buildCase = (spec: CaseSpec): VectorCase => {
  const g = parseLoss(spec.text)
  validateLoss(g)
  if (printLoss(g) !== spec.text) throw new Error(`${spec.name}: text is not in printLoss form: ${printLoss(g)}`)
  const outputs = g.branches.map((b) => evaluateBranch(b, spec.inputs))
  if (!allFinite(outputs)) throw new Error(`${spec.name}: output is not finite`)
  const values = outputs.map(branchValue)
  const names = Object.keys(spec.inputs).filter((n) => n !== "one")
  const { grads, reason, atol } = gradients(g, spec, names)
  const notes = [spec.note, reason].filter((s): s is string => s !== undefined)
  return {
    name: spec.name,
    text: spec.text,
    wire_b64: Buffer.from(encodeLoss(g)).toString("base64"),
    inputs: Object.fromEntries(names.map((n) => [n, wireTensor(spec.inputs[n]!)])),
    output: outputs.length === 1 ? wireTensor(outputs[0]!) : null,
    value: values.reduce((a, b) => a + b, 0),
    branches: g.branches.map((b, k) => ({ name: b.name, output: wireTensor(outputs[k]!), value: values[k]! })),
    grads,
    grad_atol: atol,
    note: notes.join("; ")
  }
}

const gradients = (
  g: LossGraph,
  spec: CaseSpec,
  names: ReadonlyArray<string>
): { grads: Record<string, WireTensor> | null; reason?: string; atol: number | null } => {
  if (spec.noGrads !== undefined) return { grads: null, reason: `no grads: ${spec.noGrads}`, atol: null }
  for (const b of g.branches) {
    const kink = nearestKink(b, spec.inputs)
    if (kink !== undefined) {
      const where = `${b.name}@[${kink.path.join(",")}]`
      return { grads: null, reason: `no grads: ${kink.op} at ${where} is ${kink.distance.toExponential(2)} from its kink`, atol: null }
    }
  }
  const fd = lossGradients(g, spec.inputs, names)
  if (!fd.smooth) {
    const f = fd.firstFailure
    const at = f === undefined ? "" : ` at ${f.input}[${f.index}] (h: ${f.atH.toExponential(3)}, 2h: ${f.at2H.toExponential(3)})`
    return { grads: null, reason: `no grads: finite differences do not converge${at}`, atol: null }
  }
  return {
    grads: Object.fromEntries(names.map((n) => [n, wireTensor(fd.grads[n]!)])),
    atol: Number(fd.errorBound.toPrecision(3))
  }
}

const UNARY_DOMAINS: ReadonlyArray<[op: string, domain: (rng: Rng) => Tensor, why: string]> = [
  ["neg", (r) => signedLog(r, DENSE_SHAPE, 0.05, 2), "both signs"],
  ["abs", (r) => signedLog(r, DENSE_SHAPE, 0.05, 2), "both signs, away from the kink at 0"],
  ["inv", (r) => signedLog(r, DENSE_SHAPE, 1e-3, 3), "both signs, magnitudes down to 1e-3"],
  ["log", (r) => signedLog(r, DENSE_SHAPE, 1e-3, 3), "sign(x)·log(|x|+ε): both signs, magnitudes down to 1e-3"],
  ["exp", (r) => uniform(r, DENSE_SHAPE, -3, 3), "[-3, 3]"],
  ["tanh", (r) => uniform(r, DENSE_SHAPE, -3, 3), "[-3, 3]"],
  ["square", (r) => signedLog(r, DENSE_SHAPE, 0.05, 2), "both signs"],
  ["sqrt", (r) => signedLog(r, DENSE_SHAPE, 1e-3, 3), "sign(x)·sqrt(|x|+ε): both signs, magnitudes down to 1e-3"],
  ["mean_nhw", (r) => signedLog(r, DENSE_SHAPE, 0.05, 2), "N, C, H, W all > 1"],
  ["mean_c", (r) => signedLog(r, DENSE_SHAPE, 0.05, 2), "N, C, H, W all > 1"]
]

const operatorCases = (rng: Rng): CaseSpec[] => {
  const cases: CaseSpec[] = []
  for (const name of ["add", "mul"]) {
    cases.push({
      name: `op_${name}`,
      text: `${name}(y_hat, y)`,
      inputs: { y_hat: signedLog(rng, DENSE_SHAPE, 0.05, 2), y: signedLog(rng, DENSE_SHAPE, 0.05, 2) }
    })
  }
  for (const [name, domain, why] of UNARY_DOMAINS) {
    cases.push({ name: `op_${name}`, text: `${name}(y_hat)`, inputs: { y_hat: domain(rng), y: domain(rng) }, note: why })
    cases.push({ name: `op_${name}_of_y`, text: `${name}(y)`, inputs: { y_hat: domain(rng), y: domain(rng) }, note: why })
  }
  return cases
}

const poolingCases = (rng: Rng): CaseSpec[] => [
  {
    name: "op_max_pool_all_negative",
    text: "max_pool(y_hat)",
    inputs: { y_hat: spaced(rng, POOL_SHAPE, -1, 0.1, 0.1), y: spaced(rng, POOL_SHAPE, -1, 0.1, 0.1) },
    note: "all inputs < 0: zero padding would win at borders and corners"
  },
  {
    name: "op_min_pool_all_positive",
    text: "min_pool(y_hat)",
    inputs: { y_hat: spaced(rng, POOL_SHAPE, 1, 0.1, 0.1), y: spaced(rng, POOL_SHAPE, 1, 0.1, 0.1) },
    note: "all inputs > 0: zero padding would win at borders and corners"
  },
  {
    name: "op_max_pool_of_y_single_row",
    text: "max_pool(y)",
    inputs: { y_hat: spaced(rng, [1, 2, 1, 5], -1, 1, 0.5), y: spaced(rng, [1, 2, 1, 5], -1, 1, 0.5) },
    note: "H = 1: every window is cut by the border"
  },
  {
    name: "op_min_pool_of_y_single_column",
    text: "min_pool(y)",
    inputs: { y_hat: spaced(rng, [2, 1, 5, 1], 1, 1, 0.5), y: spaced(rng, [2, 1, 5, 1], 1, 1, 0.5) },
    note: "W = 1: every window is cut by the border"
  },
  {
    name: "pool_composite",
    text: "add(max_pool(neg(y_hat)), min_pool(mul(y, y)))",
    inputs: { y_hat: spaced(rng, POOL_SHAPE, 1, 0.2, 0.1), y: spaced(rng, POOL_SHAPE, 1, 0.3, 0.1) },
    note: "pooling of computed tensors"
  }
]

const miscCases = (rng: Rng): CaseSpec[] => [
  {
    name: "means_composite",
    text: "mul(mean_c(y_hat), add(mean_nhw(y), mean_nhw(mean_c(mul(y_hat, y)))))",
    inputs: { y_hat: signedLog(rng, DENSE_SHAPE, 0.05, 2), y: signedLog(rng, DENSE_SHAPE, 0.05, 2) },
    note: "aggregations broadcast back and composed"
  },
  {
    name: "one_filled",
    text: "mul(one, add(y, max_pool(one)))",
    inputs: probabilities(rng),
    note: "'one' is not sent: ones shaped like the branch's first other input"
  },
  {
    name: "zeros_sign_convention",
    text: "add(add(log(y), sqrt(y)), add(inv(y), abs(y)))",
    inputs: { y_hat: uniform(rng, DENSE_SHAPE, 0.1, 0.9), y: fill(DENSE_SHAPE, (k) => (k % 3 === 0 ? 1 : k % 3 === 1 ? 0 : -0.5)) },
    noGrads: "log and sqrt jump at y = 0 (sign(0) = 0 gives log(0) = sqrt(0) = 0; inv(0) = 1e12)",
    note: "exact zeros"
  },
  {
    name: "box_giou_like",
    text: "add(one, add(neg(mul(i, inv(u))), mul(add(e, neg(u)), inv(e))))",
    inputs: boxAreas(rng),
    note: "box kind: 1 − i/u + (e − u)/e"
  }
]

/** Paper Table 8, written with the 14 primitives (½ = inv(1 + 1), 16y⁴ = (2y)⁴). */
const TABLE_8: ReadonlyArray<[name: string, text: string, box: boolean]> = [
  ["seg_miou", "neg(mul(inv(add(one, one)), log(mul(tanh(mul(mul(y, inv(add(one, y))), sqrt(y_hat))), add(square(y_hat), y)))))", false],
  ["seg_fwiou", "log(mul(y, log(add(y, mul(add(y, y_hat), inv(y_hat))))))", false],
  ["seg_gacc", "exp(square(add(y, neg(sqrt(y_hat)))))", false],
  ["seg_macc", "tanh(sqrt(mean_nhw(mul(neg(log(y_hat)), sqrt(max_pool(sqrt(add(y, y))))))))", false],
  ["seg_biou", "neg(log(mul(mul(mul(mul(y_hat, square(y_hat)), y), sqrt(neg(min_pool(neg(y_hat))))), exp(square(mul(y_hat, exp(y_hat)))))))", false],
  ["seg_bf1", "exp(add(mean_nhw(mul(neg(max_pool(y)), log(max_pool(y_hat)))), tanh(mean_nhw(add(add(y_hat, y_hat), one)))))", false],
  ["det_rpn_cls", "mul(exp(tanh(y)), inv(y_hat))", false],
  ["det_rpn_reg", "mul(e, inv(add(i, u)))", true],
  ["det_rcnn_cls", "neg(mul(y, log(y_hat)))", false],
  ["det_rcnn_reg", "neg(log(mul(i, inv(e))))", true],
  ["ins_rpn_cls", "neg(mul(mul(y, y_hat), inv(tanh(y_hat))))", false],
  ["ins_rcnn_reg", "neg(mul(sqrt(i), inv(sqrt(e))))", true],
  ["ins_mask", "abs(log(mul(y, y_hat)))", false],
  ["pose", "add(square(add(y_hat, neg(square(square(add(y, y)))))), square(square(y_hat)))", false]
]

const table8 = (name: string): string => TABLE_8.find(([n]) => n === name)![1]

const paperCases = (rng: Rng): CaseSpec[] => [
  ...TABLE_8.map(([name, text, box]): CaseSpec => ({
    name: `table8_${name}`,
    text,
    inputs: box ? boxAreas(rng) : probabilities(rng),
    note: "AutoLoss-Zero Table 8"
  })),
  {
    name: "table8_det_4_branches",
    text: ["rpn_cls", "rpn_reg", "rcnn_cls", "rcnn_reg"].map((b) => `${b}: ${table8(`det_${b}`)}`).join("; "),
    inputs: { ...probabilities(rng), ...boxAreas(rng) },
    note: "multi-branch: value is the unweighted sum of branch values; dense and box branches have different shapes"
  },
  {
    name: "table8_ins_5_branches",
    text: [
      `rpn_cls: ${table8("ins_rpn_cls")}`,
      `rpn_reg: ${table8("det_rpn_reg")}`,
      `rcnn_cls: ${table8("det_rcnn_cls")}`,
      `rcnn_reg: ${table8("ins_rcnn_reg")}`,
      `mask: ${table8("ins_mask")}`
    ].join("; "),
    inputs: { ...probabilities(rng), ...boxAreas(rng) },
    note: "multi-branch: dense branches share y_hat and y here"
  }
]

/**
 * Random graphs as the search draws them (paper §3.2, depth 3). Graphs whose output is not
 * finite at the drawn inputs are skipped (JSON has no inf/NaN), as are two-branch graphs whose
 * box branch uses only `one` (its text would parse back as a dense branch).
 */
const randomCases = (rng: Rng): CaseSpec[] => {
  const cases: CaseSpec[] = []
  while (cases.length < RANDOM_CASES) {
    const k = cases.length
    const twoBranch = k % 5 === 4
    const layout = twoBranch ? [{ name: "cls", kind: DENSE }, { name: "reg", kind: BOX }] : [{ name: "loss", kind: DENSE }]
    const g = randomLoss(layout, rng)
    const signed = k % 2 === 1
    const dense = signed
      ? { y_hat: signedLog(rng, DENSE_SHAPE, 0.01, 2), y: signedLog(rng, DENSE_SHAPE, 0.01, 2) }
      : probabilities(rng)
    const inputs = twoBranch ? { ...dense, ...boxAreas(rng) } : dense
    const text = printLoss(g)
    const reparsed = parseLoss(text)
    if (reparsed.branches.some((b, j) => b.kind.name !== g.branches[j]!.kind.name)) continue
    if (!allFinite(g.branches.map((b) => evaluateBranch(b, inputs)))) continue
    cases.push({
      name: `random_${String(k).padStart(2, "0")}`,
      text,
      inputs,
      note: `randomLoss, ${signed ? "signed inputs" : "probabilities"}`
    })
  }
  return cases
}

export const buildVectors = (): Vectors => {
  const rng = new Rng(SEED)
  const specs = [...operatorCases(rng), ...poolingCases(rng), ...miscCases(rng), ...paperCases(rng), ...randomCases(rng)]
  const names = new Set<string>()
  for (const s of specs) {
    if (names.has(s.name)) throw new Error(`duplicate case name ${s.name}`)
    names.add(s.name)
  }
  return {
    version: VECTORS_VERSION,
    graph_wire_version: GRAPH_WIRE_VERSION,
    epsilon: EPSILON,
    fd: { step: FD_STEP, floor: FD_FLOOR, kink_margin: KINK_MARGIN },
    description:
      "Loss graphs with inputs, the float64 reference output (elementwise, NCHW row-major), value = Σ_branches " +
      "sum(o)/(N·H·W), and central finite-difference gradients of value (step max(|x|, floor)·step) where the " +
      "loss is smooth at the inputs. Generated by scripts/gen-vectors.ts; do not edit by hand.",
    cases: specs.map(buildCase)
  }
}

/** Pretty JSON with numeric arrays kept on one line, so the file stays small and diffable. */
export const formatVectors = (v: Vectors): string =>
  JSON.stringify(v, null, 2).replace(/\[\s*(-?[0-9][-+.0-9e,\s]*?)\s*\]/g, (_, body: string) => `[${body.split(/,\s*/).join(", ")}]`) + "\n"

const main = (argv: ReadonlyArray<string>): number => {
  const text = formatVectors(buildVectors())
  if (argv.includes("--check")) {
    let current = ""
    try {
      current = readFileSync(VECTORS_PATH, "utf8")
    } catch {
      // missing file: reported as stale below
    }
    if (current === text) return 0
    process.stderr.write(`${VECTORS_PATH} is stale: run npx tsx scripts/gen-vectors.ts\n`)
    return 1
  }
  writeFileSync(VECTORS_PATH, text)
  process.stdout.write(`wrote ${VECTORS_PATH} (${(text.length / 1024).toFixed(0)} KiB)\n`)
  return 0
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = main(process.argv.slice(2))
}
