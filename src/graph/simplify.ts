/**
 * Automatic simplification of loss graphs: a rewrite system run bottom-up to a fixpoint, over the
 * operator semantics exactly as the evaluator defines them (ε = 1e-12, sign(0) = 0, 3×3 pooling with
 * padding that never wins, means broadcast back).
 *
 * Every rule is one of two kinds:
 * - `exact`: the rewritten node computes bitwise the same float64 values as the original for every
 *   input (NaN and ±Inf included; only the sign of a zero may differ, which no operator or sum can
 *   tell apart), so the loss value is unchanged bit for bit, and so is its gradient except where noted
 *   (`abs(x) → x` for x ≥ 0: at x = 0 exactly, autograd's subgradient of abs is 0, the identity's is
 *   1). The same holds in float32, except for constant folding: two trees of `one` equal in float64
 *   may round differently in float32 (by an ulp of the constant).
 * - `rounding`: equal in real arithmetic, the float64 results differ by rounding only. The bound is
 *   stated per rule, relative to the magnitude |v| of the node's value. ε-sized or rounding-sized
 *   changes can still be amplified downstream by an ill-conditioned operator (inv of a quantity
 *   that cancels to ~0), which is why every result is also checked numerically by
 *   `verifySimplification`.
 *
 * Not rewritten on purpose (they are NOT identities under ε): inv(inv(x)) ≠ x, sqrt(one) = 1 + 5e-13,
 * log(one) = 1e-12 ≠ 0, inv(one) = 1 − 1e-12, inv(neg(x)) ≠ neg(inv(x)), square(sqrt(x)) = |x| + ε,
 * exp(log(x)) ≠ x. Folding log(one) to 0 looks harmless but inv(log(one)) = 1/(2e-12) = 5e11 while
 * inv(0) = 1e12. Pooling is not idempotent: max_pool(max_pool(x)) is a 5×5 pool.
 *
 * Every rule makes the tree strictly smaller (a `neg` is only moved when it cancels with another,
 * so `max_pool(neg(y))` stays as written), so the rewriting ends and never increases the size.
 */
import { applyOp, branchValue, evaluateBranch, filled, tensor, type Shape, type Tensor } from "./evaluate.ts"
import { centralDifferences } from "./finite-diff.ts"
import { type OpName } from "./ops.ts"
import { Rng } from "./rng.ts"
import { printNode } from "./syntax.ts"
import { input, op } from "./types.ts"
import type { Branch, LossGraph, Node, OpNode } from "./types.ts"
import { sizeOf } from "./validate.ts"

/** Closed interval of values an input is guaranteed to take; ±Infinity for unbounded ends. */
export type Range = readonly [lo: number, hi: number]
export type Ranges = Readonly<Record<string, Range>>

/** Named input guarantees a task can declare (`--ranges probabilities`). None is assumed by default. */
export const RANGE_PRESETS: Readonly<Record<string, Ranges>> = {
  /** Softmax probabilities and one-hot / soft targets. */
  probabilities: { y_hat: [0, 1], y: [0, 1] },
  /** Box intersection, union and enclosing areas. */
  areas: { i: [0, Infinity], u: [0, Infinity], e: [0, Infinity] }
}

export interface SimplifyOptions {
  readonly ranges?: Ranges
  /** Apply only bitwise-exact rules (no `rounding` ones). Default false. */
  readonly exactOnly?: boolean
}

export type Exactness = "exact" | "rounding"

export interface Simplified {
  readonly graph: LossGraph
  /** One line per rewrite, in order: `[branch: ]rule: before → after`; rounding rules say so. */
  readonly steps: ReadonlyArray<string>
  /** True if only exact rules fired (the value is unchanged bit for bit). */
  readonly exact: boolean
}

// ---------------------------------------------------------------------------------------------
// Static facts about a node's value

const ELEMENTWISE_UNARY: ReadonlySet<OpName> = new Set(["neg", "abs", "inv", "log", "exp", "tanh", "square", "sqrt"])

const same = (a: Node, b: Node): boolean => a === b || printNode(a) === printNode(b)

/** Provably ≥ 0 (or NaN) for every input in `ranges`. */
export const nonNegative = (n: Node, ranges: Ranges): boolean => {
  if (n.type === "input") return n.name === "one" || (ranges[n.name]?.[0] ?? -Infinity) >= 0
  const [a, b] = n.args
  switch (n.op) {
    case "abs":
    case "square":
    case "exp":
      return true
    case "add":
      return nonNegative(a!, ranges) && nonNegative(b!, ranges)
    case "mul":
      return same(a!, b!) || (nonNegative(a!, ranges) && nonNegative(b!, ranges))
    case "inv": // 1/(x + ε) > 0 for x ≥ 0
    case "sqrt": // sign(x)·√(|x| + ε) ≥ 0 for x ≥ 0
    case "tanh":
    case "mean_nhw":
    case "mean_c":
    case "max_pool":
    case "min_pool":
      return nonNegative(a!, ranges)
    case "neg":
    case "log": // negative on (0, 1)
      return false
    default: {
      const unhandled: never = n.op
      throw new Error(`nonNegative: unknown operator '${String(unhandled)}'`)
    }
  }
}

/** Along which axes a node's value is provably constant (whatever the inputs and shapes). */
export interface Constancy {
  /** Same value in every channel of a given (n, h, w). */
  readonly c: boolean
  /** Same value at every (h, w) of a given (n, c) plane. */
  readonly hw: boolean
  /** Same value at every (n, h, w) of a given channel (implies `hw`). */
  readonly nhw: boolean
}

export const constancyOf = (n: Node): Constancy => {
  if (n.type === "input") {
    const k = n.name === "one"
    return { c: k, hw: k, nhw: k }
  }
  const [a, b] = n.args.map(constancyOf)
  switch (n.op) {
    case "add":
    case "mul":
      return { c: a!.c && b!.c, hw: a!.hw && b!.hw, nhw: a!.nhw && b!.nhw }
    case "neg":
    case "abs":
    case "inv":
    case "log":
    case "exp":
    case "tanh":
    case "square":
    case "sqrt":
    case "max_pool": // pooling maps a constant plane to itself and identical planes to identical planes
    case "min_pool":
      return a!
    case "mean_c":
      return { c: true, hw: a!.hw, nhw: a!.nhw }
    case "mean_nhw":
      return { c: a!.c, hw: true, nhw: true }
    default: {
      const unhandled: never = n.op
      throw new Error(`constancyOf: unknown operator '${String(unhandled)}'`)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Constant folding: only by bitwise-equal, strictly smaller trees of `one`

const FOLDABLE: ReadonlySet<OpName> = new Set([...ELEMENTWISE_UNARY, "add", "mul", "max_pool", "min_pool"])
/** Largest constant tree the folding table holds. */
const TABLE_MAX_SIZE = 5

const valueKey = (v: number): string => (Object.is(v, -0) ? "-0" : String(v))

/**
 * Value of a tree of `one` whose operators are elementwise or pools (a pool of a constant is that
 * constant exactly): computed with the evaluator's own `applyOp` on a 1×1×1×1 tensor, so it is
 * bitwise what every element of the full-size tensor holds.
 */
const constantValue = (n: Node): number | undefined => {
  if (n.type === "input") return n.name === "one" ? 1 : undefined
  if (!FOLDABLE.has(n.op)) return undefined
  const args: Tensor[] = []
  for (const a of n.args) {
    const v = constantValue(a)
    if (v === undefined) return undefined
    args.push(filled([1, 1, 1, 1], v))
  }
  if (n.op === "max_pool" || n.op === "min_pool") return args[0]!.data[0]
  return applyOp(n.op, args).data[0]
}

let foldingTable: Map<string, Node> | undefined

/** Smallest tree of `one` for every value reachable with ≤ TABLE_MAX_SIZE nodes (ties: smaller text). */
const constantTable = (): Map<string, Node> => {
  if (foldingTable !== undefined) return foldingTable
  const bySize: Node[][] = [[], [input("one")]]
  const unary = [...ELEMENTWISE_UNARY]
  for (let size = 2; size <= TABLE_MAX_SIZE; size++) {
    const trees: Node[] = bySize[size - 1]!.flatMap((a) => unary.map((o) => op(o, a)))
    for (let left = 1; left <= size - 2; left++) {
      for (const a of bySize[left]!) for (const b of bySize[size - 1 - left]!) trees.push(op("add", a, b), op("mul", a, b))
    }
    bySize.push(trees)
  }
  const table = new Map<string, Node>()
  for (const trees of bySize) {
    const keyed = trees.map((t) => ({ t, text: printNode(t) })).sort((x, y) => (x.text < y.text ? -1 : 1))
    for (const { t } of keyed) {
      const v = constantValue(t)!
      if (Number.isNaN(v)) continue
      const key = valueKey(v)
      if (!table.has(key)) table.set(key, t)
    }
  }
  foldingTable = table
  return table
}

// ---------------------------------------------------------------------------------------------
// Rules

interface RuleContext {
  readonly ranges: Ranges
  readonly exactOnly: boolean
}

type Rewritten = Node | { readonly node: Node; readonly exactness: Exactness }

interface Rule {
  readonly name: string
  readonly exactness: Exactness
  /** The rewritten node, or undefined if the rule does not apply. May refine its exactness. */
  readonly apply: (n: OpNode, ctx: RuleContext) => Rewritten | undefined
}

const isOp = (n: Node | undefined, name: OpName): n is OpNode => n?.type === "op" && n.op === name
const isOne = (n: Node | undefined): boolean => n?.type === "input" && n.name === "one"

interface Unsigned {
  readonly node: Node
  readonly exactness: Exactness
}

const worst = (a: Exactness, b: Exactness): Exactness => (a === "exact" ? b : a)

/**
 * m with n = neg(m), found by pulling a `neg` out through odd operators: f(−x) = −f(x) bitwise for
 * log and sqrt (−1·g(|x|)), the means (rounding is sign-symmetric), mul (either factor) and add
 * (both terms); max(−x) = −min(x) swaps the pools. tanh is odd, but a libm or SIMD tanh need not be
 * bitwise odd: ≤ 1 ulp, so `rounding`. inv and exp are not odd (inv(−x) = 1/(−x + ε)).
 */
export const withoutNeg = (n: Node, exactOnly = false): Unsigned | undefined => {
  if (n.type === "input") return undefined
  const [a, b] = n.args
  const inner = (f: (m: Node) => Node, exactness: Exactness = "exact"): Unsigned | undefined => {
    const m = withoutNeg(a!, exactOnly)
    return m === undefined ? undefined : { node: f(m.node), exactness: worst(exactness, m.exactness) }
  }
  switch (n.op) {
    case "neg":
      return { node: a!, exactness: "exact" }
    case "log":
    case "sqrt":
    case "mean_nhw":
    case "mean_c":
      return inner((m) => op(n.op, m))
    case "tanh":
      return exactOnly ? undefined : inner((m) => op("tanh", m), "rounding")
    case "max_pool":
      return inner((m) => op("min_pool", m))
    case "min_pool":
      return inner((m) => op("max_pool", m))
    case "mul": {
      const left = withoutNeg(a!, exactOnly)
      if (left !== undefined) return { node: op("mul", left.node, b!), exactness: left.exactness }
      const right = withoutNeg(b!, exactOnly)
      return right === undefined ? undefined : { node: op("mul", a!, right.node), exactness: right.exactness }
    }
    case "add": {
      const left = withoutNeg(a!, exactOnly)
      const right = left === undefined ? undefined : withoutNeg(b!, exactOnly)
      return left === undefined || right === undefined
        ? undefined
        : { node: op("add", left.node, right.node), exactness: worst(left.exactness, right.exactness) }
    }
    case "abs":
    case "inv":
    case "exp":
    case "square":
      return undefined
    default: {
      const unhandled: never = n.op
      throw new Error(`withoutNeg: unknown operator '${String(unhandled)}'`)
    }
  }
}

/** Rewrites `n.args[0]` to its unsigned form under the same operator, if it has one. */
const dropSignUnder = (n: OpNode, ctx: RuleContext): Rewritten | undefined => {
  const m = withoutNeg(n.args[0]!, ctx.exactOnly)
  return m === undefined ? undefined : { node: op(n.op, m.node), exactness: m.exactness }
}

export const RULES: ReadonlyArray<Rule> = [
  {
    name: "neg(neg(x)) → x",
    exactness: "exact",
    apply: (n) => (n.op === "neg" && isOp(n.args[0], "neg") ? n.args[0].args[0] : undefined)
  },
  {
    // e.g. neg(mul(y, log(neg(y_hat)))) → mul(y, log(y_hat)); neg(min_pool(neg(x))) → max_pool(x).
    name: "neg(f(neg(x))) → f(x) for odd f",
    exactness: "exact",
    apply: (n, ctx) => {
      if (n.op !== "neg") return undefined
      const m = withoutNeg(n.args[0]!, ctx.exactOnly)
      return m === undefined ? undefined : { node: m.node, exactness: m.exactness }
    }
  },
  {
    name: "abs(f(neg(x))) → abs(f(x)) for odd f",
    exactness: "exact",
    apply: (n, ctx) => (n.op === "abs" ? dropSignUnder(n, ctx) : undefined)
  },
  {
    name: "abs(x) → x for x ≥ 0",
    exactness: "exact",
    apply: (n, ctx) => (n.op === "abs" && nonNegative(n.args[0]!, ctx.ranges) ? n.args[0] : undefined)
  },
  {
    name: "square(f(neg(x))) → square(f(x)) for odd f",
    exactness: "exact",
    apply: (n, ctx) => (n.op === "square" ? dropSignUnder(n, ctx) : undefined)
  },
  {
    // |x|·|x| = x·x bitwise, and d/dx |x|² = 2|x|·sign(x) = 2x.
    name: "square(abs(x)) → square(x)",
    exactness: "exact",
    apply: (n) => (n.op === "square" && isOp(n.args[0], "abs") ? op("square", n.args[0].args[0]!) : undefined)
  },
  {
    name: "mul(one, x) → x",
    exactness: "exact",
    apply: (n) => (n.op !== "mul" ? undefined : isOne(n.args[0]) ? n.args[1] : isOne(n.args[1]) ? n.args[0] : undefined)
  },
  {
    // The evaluator's square is v·v: the same product.
    name: "mul(x, x) → square(x)",
    exactness: "exact",
    apply: (n) => (n.op === "mul" && same(n.args[0]!, n.args[1]!) ? op("square", n.args[0]!) : undefined)
  },
  {
    name: "mul(−x, −y) → mul(x, y)",
    exactness: "exact",
    apply: (n, ctx) => {
      if (n.op !== "mul") return undefined
      const a = withoutNeg(n.args[0]!, ctx.exactOnly)
      const b = a === undefined ? undefined : withoutNeg(n.args[1]!, ctx.exactOnly)
      return a === undefined || b === undefined ? undefined : { node: op("mul", a.node, b.node), exactness: worst(a.exactness, b.exactness) }
    }
  },
  {
    name: "add(−x, −y) → neg(add(x, y))",
    exactness: "exact",
    apply: (n, ctx) => {
      if (n.op !== "add") return undefined
      const m = withoutNeg(n, ctx.exactOnly)
      // Only worth it when two negs go and one comes back: both terms must give one up.
      return m === undefined ? undefined : { node: op("neg", m.node), exactness: m.exactness }
    }
  },
  {
    // A 3×3 window over a plane that is constant holds one value: the pool returns it.
    name: "pool(x) → x for x constant over H, W",
    exactness: "exact",
    apply: (n) => ((n.op === "max_pool" || n.op === "min_pool") && constancyOf(n.args[0]!).hw ? n.args[0] : undefined)
  },
  {
    // Mean of C copies of v: |fl − v| ≤ C·u·|v| (u = 2⁻⁵³); exact for `one` (integer sums).
    name: "mean_c(x) → x for x constant over C",
    exactness: "rounding",
    apply: (n) =>
      n.op === "mean_c" && constancyOf(n.args[0]!).c
        ? { node: n.args[0]!, exactness: isOne(n.args[0]) ? "exact" : "rounding" }
        : undefined
  },
  {
    // Mean of N·H·W copies of v: |fl − v| ≤ N·H·W·u·|v|; exact for `one`.
    name: "mean_nhw(x) → x for x constant over N, H, W",
    exactness: "rounding",
    apply: (n) =>
      n.op === "mean_nhw" && constancyOf(n.args[0]!).nhw
        ? { node: n.args[0]!, exactness: isOne(n.args[0]) ? "exact" : "rounding" }
        : undefined
  },
  {
    name: "fold a constant into the smallest tree of `one` with the same float64 value",
    exactness: "exact",
    apply: (n) => {
      const size = sizeOf(n)
      const v = constantValue(n)
      if (v === undefined || Number.isNaN(v)) return undefined
      const smallest = constantTable().get(valueKey(v))
      return smallest !== undefined && sizeOf(smallest) < size ? smallest : undefined
    }
  }
]

const simplifyNode = (root: Node, options: SimplifyOptions, log: (rule: Rule, exactness: Exactness, before: Node, after: Node) => void): Node => {
  const ctx: RuleContext = { ranges: options.ranges ?? {}, exactOnly: options.exactOnly === true }
  const rewrite = (n: Node): Node => {
    if (n.type === "input") return n
    const args = n.args.map(rewrite)
    const current: OpNode = args.every((a, i) => a === n.args[i]) ? n : op(n.op, ...args)
    for (const rule of RULES) {
      const hit = rule.apply(current, ctx)
      if (hit === undefined) continue
      const [after, exactness] = "node" in hit ? [hit.node, hit.exactness] : [hit, rule.exactness]
      if (ctx.exactOnly && exactness !== "exact") continue // e.g. mean_c(one) is exact, mean_c(mean_c(y)) is not
      log(rule, exactness, current, after)
      return rewrite(after)
    }
    return current
  }
  return rewrite(root)
}

export const simplifyLoss = (g: LossGraph, options: SimplifyOptions = {}): Simplified => {
  const steps: string[] = []
  let exact = true
  const single = g.branches.length === 1
  const branches = g.branches.map((b): Branch => {
    const root = simplifyNode(b.root, options, (rule, exactness, before, after) => {
      if (exactness !== "exact") exact = false
      const where = single ? "" : `${b.name}: `
      const mark = exactness === "exact" ? "" : " [rounding]"
      steps.push(`${where}${rule.name}: ${printNode(before)} → ${printNode(after)}${mark}`)
    })
    return root === b.root ? b : { ...b, root }
  })
  return { graph: { branches }, steps, exact }
}

// ---------------------------------------------------------------------------------------------
// Numerical verification

export interface VerifyOptions {
  /** Random input draws (each on the next of `shapes`). Default 5. */
  readonly trials?: number
  readonly seed?: number
  /** Input ranges to sample from (those the simplification assumed); default [−2, 2]. */
  readonly ranges?: Ranges
  readonly shapes?: ReadonlyArray<Shape>
}

export interface Verification {
  /** No disagreement, and at least one trial compared gradients. */
  readonly verified: boolean
  readonly trials: number
  /** Trials where both losses were finite and smooth, so their finite-difference gradients compared. */
  readonly gradientTrials: number
  readonly maxValueError: number
  readonly maxGradientError: number
  /** Disagreements, at most one per trial and input. */
  readonly failures: ReadonlyArray<string>
  /** Why `verified` is false without a disagreement. */
  readonly inconclusive?: string
}

/** N, C, H, W > 1 (pooling windows and borders, both means), a single element, unequal dims. */
export const VERIFY_SHAPES: ReadonlyArray<Shape> = [[2, 3, 3, 4], [1, 1, 1, 1], [3, 2, 4, 3], [1, 4, 2, 1], [2, 1, 5, 3]]
const DEFAULT_RANGE: Range = [-2, 2]
/** Width used for a half-open range. */
const UNBOUNDED_WIDTH = 4
/** Inputs keep this far from 0, where log/sqrt/abs kink (as the golden vectors do). */
const MIN_MAGNITUDE = 1e-3
/** Value agreement, relative to Σ|o|/(N·H·W) summed over branches (cancellation-aware scale). */
export const VALUE_RTOL = 1e-9
/** Gradient agreement, relative to the element, on top of both finite differences' own error bounds. */
export const GRADIENT_RTOL = 1e-6
const GRADIENT_ATOL = 1e-10

const sampleIn = (range: Range, rng: Rng): number => {
  let [lo, hi] = range
  if (!Number.isFinite(lo) && !Number.isFinite(hi)) [lo, hi] = DEFAULT_RANGE
  else if (!Number.isFinite(hi)) hi = lo + UNBOUNDED_WIDTH
  else if (!Number.isFinite(lo)) lo = hi - UNBOUNDED_WIDTH
  const v = lo + (hi - lo) * rng.float()
  if (Math.abs(v) >= MIN_MAGNITUDE) return v
  // Step out of the kink zone on the side the range allows.
  return v >= 0 ? (hi >= MIN_MAGNITUDE ? MIN_MAGNITUDE : -MIN_MAGNITUDE) : lo <= -MIN_MAGNITUDE ? -MIN_MAGNITUDE : MIN_MAGNITUDE
}

const inputNames = (g: LossGraph): string[] => [...new Set(g.branches.flatMap((b) => b.kind.inputs))].filter((n) => n !== "one")

/**
 * Outputs copied: a branch that is a bare input returns the input tensor itself, which the finite
 * differences perturb in place and restore before comparing, so it would see no change.
 */
const outputsOf = (g: LossGraph, inputs: Readonly<Record<string, Tensor>>): Tensor[] =>
  g.branches.map((b) => {
    const o = evaluateBranch(b, inputs)
    return { shape: o.shape, data: Float64Array.from(o.data) }
  })

const gradientsOf = (g: LossGraph, inputs: Readonly<Record<string, Tensor>>, names: ReadonlyArray<string>) =>
  centralDifferences((x) => outputsOf(g, x), inputs, names)

const describe = (v: number): string => (Number.isNaN(v) ? "NaN" : String(v))

/**
 * Evaluates both graphs on random inputs and compares the loss value and its finite-difference
 * gradients (w.r.t. every input) trial by trial.
 */
export const verifySimplification = (original: LossGraph, simplified: LossGraph, options: VerifyOptions = {}): Verification => {
  const trials = options.trials ?? 5
  const shapes = options.shapes ?? VERIFY_SHAPES
  const ranges = options.ranges ?? {}
  const rng = new Rng(options.seed ?? 0x51a9)
  const names = [...new Set([...inputNames(original), ...inputNames(simplified)])]
  const failures: string[] = []
  let gradientTrials = 0
  let maxValueError = 0
  let maxGradientError = 0

  for (let trial = 0; trial < trials; trial++) {
    const shape = shapes[trial % shapes.length]!
    const size = shape[0] * shape[1] * shape[2] * shape[3]
    const inputs: Record<string, Tensor> = {}
    for (const name of names) {
      const range = ranges[name] ?? DEFAULT_RANGE
      inputs[name] = tensor(shape, Array.from({ length: size }, () => sampleIn(range, rng)))
    }
    const before = outputsOf(original, inputs)
    const after = outputsOf(simplified, inputs)
    const va = before.reduce((s, o) => s + branchValue(o), 0)
    const vb = after.reduce((s, o) => s + branchValue(o), 0)
    const at = `trial ${trial} (shape [${shape.join(",")}])`
    if (!Number.isFinite(va) || !Number.isFinite(vb)) {
      if (!Object.is(va, vb)) failures.push(`${at}: value ${describe(va)} became ${describe(vb)}`)
      continue
    }
    const scale = before.reduce((s, o) => s + branchValue({ shape: o.shape, data: o.data.map(Math.abs) }), 0)
    const valueError = Math.abs(va - vb)
    maxValueError = Math.max(maxValueError, valueError)
    if (valueError > VALUE_RTOL * scale) failures.push(`${at}: value ${va} became ${vb}`)

    const ga = gradientsOf(original, inputs, names)
    const gb = gradientsOf(simplified, inputs, names)
    if (!ga.smooth || !gb.smooth) continue
    gradientTrials++
    const slack = ga.errorBound + gb.errorBound + GRADIENT_ATOL
    for (const name of names) {
      const a = ga.grads[name]!.data
      const b = gb.grads[name]!.data
      for (let k = 0; k < a.length; k++) {
        const err = Math.abs(a[k]! - b[k]!)
        maxGradientError = Math.max(maxGradientError, err)
        if (err > GRADIENT_RTOL * Math.max(Math.abs(a[k]!), Math.abs(b[k]!)) + slack) {
          failures.push(`${at}: ∂L/∂${name}[${k}] ${a[k]} became ${b[k]}`)
          break
        }
      }
    }
  }
  const result = { verified: failures.length === 0 && gradientTrials > 0, trials, gradientTrials, maxValueError, maxGradientError, failures }
  return gradientTrials === 0
    ? { ...result, inconclusive: "no trial had a finite loss smooth at its inputs: gradients were never compared" }
    : result
}
