/**
 * Central finite differences in float64 of a loss Σ_b branchValue(o_b) w.r.t. every element of
 * named inputs. They are the gradient reference the torch interpreter's autograd is checked against.
 *
 * Step: h = FD_STEP · max(|x|, FD_FLOOR), i.e. 1e-6 relative to the element, but never below
 * 1e-8 so that elements near 0 (log, sqrt, inv) stay far from the kink at 0 (the generator keeps
 * such inputs ≥ 1e-3 away from it). Truncation error is O(h²·f''').
 *
 * Roundoff: the difference L(x+h) − L(x−h) is summed output element by output element, so
 * untouched elements cancel exactly and the error is about u·Σ|o_j|/(N·H·W·h) over the elements
 * that moved (u = 2^-53), not u·|L|/h.
 *
 * Smoothness: the estimate at h is accepted only if it agrees with the estimate at 2h within
 * their expected error; a kink (abs, sign·log, sign·sqrt) or a blow-up inside the stencil makes
 * them differ, and `smooth` is then false: the function has no reliable gradient at these inputs
 * and the exact (autograd) one must not be compared against FD. FD cannot see a kink much closer
 * than h (a pooling near-tie gives the same 1/2 at h and 2h), so `nearestKink` also measures, on
 * the actual intermediate values, how close every abs/log/sqrt argument is to 0 and how close
 * every pooling window is to a change of winner.
 */
import type { Branch, LossGraph, Node } from "./types.ts"
import { type Tensor, applyOp, branchInputs, evaluateBranch } from "./evaluate.ts"

export const FD_STEP = 1e-6
export const FD_FLOOR = 1e-2
/** Agreement required between the h and 2h estimates, relative to the gradient element. */
export const FD_CONSISTENCY_RTOL = 1e-6
/** Roundoff allowance in units of u·Σ|o_j|/(N·H·W·h) over the moved output elements. */
const ROUNDOFF_ULPS = 16
const UNIT_ROUNDOFF = 2 ** -53

export interface FiniteDiffResult {
  /** ∂L/∂input for every requested input, shaped like the input. */
  readonly grads: Record<string, Tensor>
  /** False when some element's estimate did not converge (non-smooth or not finite there). */
  readonly smooth: boolean
  /** Largest |estimate(h) − estimate(2h)| + roundoff allowance over all elements: an absolute error bound. */
  readonly errorBound: number
  /** Where convergence failed first, for the vector's explanation. */
  readonly firstFailure?: { readonly input: string; readonly index: number; readonly atH: number; readonly at2H: number }
}

export const stepFor = (x: number): number => FD_STEP * Math.max(Math.abs(x), FD_FLOOR)

/** Σ_b Σ_j (plus_bj − minus_bj) / (N·H·W)_b, and the size of the moved elements, normalised alike. */
const difference = (plus: ReadonlyArray<Tensor>, minus: ReadonlyArray<Tensor>): { delta: number; moved: number } => {
  let delta = 0
  let moved = 0
  plus.forEach((p, b) => {
    const m = minus[b]!
    const scale = p.shape[0] * p.shape[2] * p.shape[3]
    let d = 0
    let size = 0
    for (let j = 0; j < p.data.length; j++) {
      const u = p.data[j]!
      const v = m.data[j]!
      if (u !== v) {
        d += u - v
        size += Math.max(Math.abs(u), Math.abs(v))
      }
    }
    delta += d / scale
    moved += size / scale
  })
  return { delta, moved }
}

/**
 * Differentiates the loss whose branch outputs `outputs` computes (a pure function of the inputs)
 * w.r.t. each input in `names`. Inputs are copied, never mutated.
 */
export const centralDifferences = (
  outputs: (inputs: Readonly<Record<string, Tensor>>) => ReadonlyArray<Tensor>,
  inputs: Readonly<Record<string, Tensor>>,
  names: ReadonlyArray<string>
): FiniteDiffResult => {
  const work: Record<string, Tensor> = {}
  for (const [name, t] of Object.entries(inputs)) work[name] = { shape: t.shape, data: Float64Array.from(t.data) }
  const grads: Record<string, Tensor> = {}
  let smooth = outputs(work).every((o) => o.data.every(Number.isFinite))
  let errorBound = 0
  let firstFailure: FiniteDiffResult["firstFailure"]

  for (const name of names) {
    const t = work[name]
    if (t === undefined) throw new Error(`finite differences: input '${name}' was not provided`)
    const g = new Float64Array(t.data.length)
    for (let k = 0; k < t.data.length; k++) {
      const x = t.data[k]!
      const h = stepFor(x)
      const at = (delta: number): ReadonlyArray<Tensor> => {
        t.data[k] = x + delta
        // copy: a bare-input branch returns the input tensor itself, which is restored just below
        const o = outputs(work).map((out) => ({ shape: out.shape, data: Float64Array.from(out.data) }))
        t.data[k] = x
        return o
      }
      const near = difference(at(h), at(-h))
      const far = difference(at(2 * h), at(-2 * h))
      const d1 = near.delta / (2 * h)
      const d2 = far.delta / (4 * h)
      g[k] = d1
      const roundoff = (ROUNDOFF_ULPS * UNIT_ROUNDOFF * Math.max(near.moved, far.moved)) / h
      const gap = Math.abs(d1 - d2)
      const converged = Number.isFinite(d1) && Number.isFinite(d2) && gap <= FD_CONSISTENCY_RTOL * Math.abs(d1) + roundoff
      errorBound = Math.max(errorBound, gap + roundoff)
      if (!converged && smooth) firstFailure = { input: name, index: k, atH: d1, at2H: d2 }
      if (!converged) smooth = false
    }
    grads[name] = { shape: t.shape, data: g }
  }
  return firstFailure === undefined ? { grads, smooth, errorBound } : { grads, smooth, errorBound, firstFailure }
}

/** FD gradient of the unweighted loss value Σ_branches L_b w.r.t. the given inputs. */
export const lossGradients = (
  g: LossGraph,
  inputs: Readonly<Record<string, Tensor>>,
  names: ReadonlyArray<string>
): FiniteDiffResult => centralDifferences((x) => g.branches.map((b) => evaluateBranch(b, x)), inputs, names)

/**
 * Distance below which a kink counts as "at the inputs": an abs/log/sqrt argument with
 * 0 < |t| < KINK_MARGIN, or a pooling window whose winner leads the runner-up by less than
 * KINK_MARGIN·max(1, |winner|). Exact zeros and exact ties are left out: with continuous random
 * inputs they only arise structurally (y − y, a broadcast mean, a value pooled twice), where the
 * tied candidates are the same function of the inputs and the derivative is well defined.
 */
export const KINK_MARGIN = 1e-4

export interface Kink {
  readonly op: "abs" | "log" | "sqrt" | "max_pool" | "min_pool"
  /** Child indices from the tree's top node to the operator. */
  readonly path: ReadonlyArray<number>
  readonly distance: number
}

/** The kink closest to the given inputs anywhere in the branch's tree, if any is within KINK_MARGIN. */
export const nearestKink = (branch: Branch, inputs: Readonly<Record<string, Tensor>>): Kink | undefined => {
  const complete = branchInputs(branch, inputs)
  let nearest: Kink | undefined
  const note = (kink: Kink): void => {
    if (kink.distance < KINK_MARGIN && (nearest === undefined || kink.distance < nearest.distance)) nearest = kink
  }
  const visit = (node: Node, path: ReadonlyArray<number>): Tensor => {
    if (node.type === "input") {
      const t = complete[node.name]
      if (t === undefined) throw new Error(`nearestKink: input '${node.name}' was not provided`)
      return t
    }
    const args = node.args.map((child, i) => visit(child, [...path, i]))
    const a = args[0]!
    switch (node.op) {
      case "abs":
      case "log":
      case "sqrt":
        note({ op: node.op, path, distance: smallestNonZero(a) })
        break
      case "max_pool":
      case "min_pool":
        note({ op: node.op, path, distance: smallestPoolLead(a, node.op === "max_pool" ? 1 : -1) })
        break
      default:
        break
    }
    return applyOp(node.op, args)
  }
  visit(branch.root, [])
  return nearest
}

const smallestNonZero = (t: Tensor): number => {
  let best = Infinity
  for (const v of t.data) if (v !== 0 && Math.abs(v) < best) best = Math.abs(v)
  return best
}

/** Smallest lead of a 3×3 window's winner over its best strictly worse cell, relative to max(1, |winner|). */
const smallestPoolLead = (t: Tensor, direction: 1 | -1): number => {
  const [N, C, H, W] = t.shape
  let smallest = Infinity
  for (let p = 0; p < N * C; p++) {
    for (let h = 0; h < H; h++) {
      for (let w = 0; w < W; w++) {
        const cells: number[] = []
        for (let hh = Math.max(0, h - 1); hh <= Math.min(H - 1, h + 1); hh++) {
          for (let ww = Math.max(0, w - 1); ww <= Math.min(W - 1, w + 1); ww++) {
            cells.push(direction * t.data[(p * H + hh) * W + ww]!)
          }
        }
        const winner = Math.max(...cells)
        const runnerUp = Math.max(...cells.filter((v) => v < winner))
        const lead = (winner - runnerUp) / Math.max(1, Math.abs(winner))
        if (lead < smallest) smallest = lead
      }
    }
  }
  return smallest
}
