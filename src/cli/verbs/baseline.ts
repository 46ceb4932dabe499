/**
 * `autoloss baseline --task seg [--metric M] [--seed S] [--options JSON] [--json]`: proxy-train with
 * the task's hand-designed loss (seg: cross-entropy, pose: heatmap MSE) and print its metrics, the
 * reference a searched loss has to beat. Output as `autoloss train-loss`.
 */
import { runTaskJob } from "./eval-loss.ts"

export const summary = "proxy-train with the task's hand-designed loss and print its metrics"

export const run = (argv: ReadonlyArray<string>): Promise<number> => runTaskJob("baseline", argv)
