/**
 * A found loss as the report shows it: LaTeX of the loss as searched, and of its automatic
 * simplification when that changed something and passed numerical verification (value and
 * gradients on random inputs in the task's input ranges). Pure; results are cached by text since
 * the live view re-renders the same top losses again and again.
 */
import { fromWire } from "../graph/wire.ts"
import { toLatex } from "../graph/latex.ts"
import { printLoss } from "../graph/syntax.ts"
import { RANGE_PRESETS, type Ranges, simplifyLoss, verifySimplification } from "../graph/simplify.ts"

/**
 * Input ranges the built-in tasks guarantee, which some simplifications need (abs of a
 * non-negative, …). seg: softmax probabilities and one-hot targets; pose: predicted heatmaps are
 * unbounded but target heatmaps are Gaussians in [0, 1]. Unknown tasks assume nothing.
 */
export const TASK_RANGES: Readonly<Record<string, Ranges>> = {
  seg: RANGE_PRESETS["probabilities"] ?? {},
  pose: { y: [0, 1] }
}

export interface LossFormulas {
  readonly tex: string
  /** Null when simplification changed nothing, or could not be verified. */
  readonly simplified: { readonly text: string; readonly tex: string; readonly steps: ReadonlyArray<string> } | null
  /** Why a changed simplification is not shown (verification failed or was inconclusive). */
  readonly unverified: string | null
}

const cache = new Map<string, LossFormulas>()
const CACHE_LIMIT = 1000

export const lossFormulas = (wire: unknown, task: string | undefined): LossFormulas => {
  const ranges = (task === undefined ? undefined : TASK_RANGES[task]) ?? {}
  const key = `${task ?? ""}\u0000${JSON.stringify(wire)}`
  const hit = cache.get(key)
  if (hit !== undefined) return hit
  const graph = fromWire(wire)
  const { graph: simpler, steps } = simplifyLoss(graph, { ranges })
  const changed = printLoss(simpler) !== printLoss(graph)
  let simplified: LossFormulas["simplified"] = null
  let unverified: string | null = null
  if (changed) {
    const check = verifySimplification(graph, simpler, { ranges })
    if (check.verified) simplified = { text: printLoss(simpler), tex: toLatex(simpler), steps }
    else unverified = check.failures[0] ?? check.inconclusive ?? "not verified"
  }
  const result = { tex: toLatex(graph), simplified, unverified }
  if (cache.size >= CACHE_LIMIT) cache.clear()
  cache.set(key, result)
  return result
}
