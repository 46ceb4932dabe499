/**
 * Progress of a search: one rewritten status line on a terminal, JSON lines otherwise (so logs and
 * other programs can follow a run), and a final summary.
 */
import type { ProgressLine } from "../search/search-run.ts"
import { estimateEta, formatDuration } from "./eta.ts"

const n = (c: Readonly<Record<string, number>>, k: string): number => c[k] ?? 0

/**
 * Work done and planned, in proxy-training units: the search's own finished trainings (reused
 * scores cost none) against its budget, then the selection's trainings.
 */
export const workUnits = (p: Pick<ProgressLine, "counters" | "budget" | "selection">): { done: number; total: number } => {
  const c = p.counters
  const cost = fullEquivalents(c)
  // With asha the budget is spent when a training starts: an estimate that runs a little ahead.
  const trained = Math.min(p.budget, cost ?? n(c, "observed") - n(c, "equivalentReuses") - n(c, "duplicateReuses"))
  return { done: trained + (p.selection?.done ?? 0), total: p.budget + (p.selection?.total ?? 0) }
}

/** Budget spent in full-proxy equivalents by an asha search; null for a full-fidelity one. */
export const fullEquivalents = (c: Readonly<Record<string, number>>): number | null =>
  c["unitsPerFull"] === undefined ? null : n(c, "spentUnits") / n(c, "unitsPerFull")

/** Trainings started per rung (counters `trainedRung0`, `trainedRung1`, ...), rung 0 first. */
export const trainingsPerRung = (c: Readonly<Record<string, number>>): number[] =>
  Object.keys(c)
    .filter((k) => /^trainedRung\d+$/.test(k))
    .sort((a, b) => Number(a.slice(11)) - Number(b.slice(11)))
    .map((k) => n(c, k))

/** `trained N/budget`, or with asha the trainings per rung and the cost in full-proxy equivalents. */
const trainedText = (c: Readonly<Record<string, number>>, budget: number): string => {
  const cost = fullEquivalents(c)
  if (cost === null) return `trained ${n(c, "trained")}/${budget}`
  return `rungs ${trainingsPerRung(c).join("/")} (promoted ${n(c, "promoted")}) | cost ${cost.toFixed(1)}/${budget}`
}

export const describe = (p: ProgressLine, eta: number | null = null): string => {
  const c = p.counters
  const rate = p.elapsedS > 0 ? (n(c, "proposed") / p.elapsedS) * 60 : 0
  const best = p.best === null ? "-" : `${p.best.score.toFixed(4)} ${p.best.text}`
  const heldOut = p.selection === null || p.selection.done === 0 ? "" : ` | held-out ${p.selection.done}/${p.selection.total}`
  return (
    `generated ${n(c, "proposed")} | static-rejected ${n(c, "staticRejected")} | screened ${n(c, "screened")} | ` +
    `passed ${n(c, "passed")} | equivalent ${n(c, "equivalentReuses") + n(c, "duplicateReuses")} | ` +
    `${trainedText(c, p.budget)}${heldOut} | invalid ${n(c, "invalid")} | ${rate.toFixed(1)} cand/min | ` +
    `ETA ${eta === null ? "-" : formatDuration(eta)} | best ${best}`
  )
}

export const makeSink = (stream: NodeJS.WriteStream) => {
  const tty = stream.isTTY === true
  let doneAtStart: number | undefined
  return (p: ProgressLine): void => {
    if (tty) {
      const units = workUnits(p)
      doneAtStart ??= units.done
      const line = describe(p, estimateEta({ elapsedS: p.elapsedS, doneAtStart, ...units }))
      stream.write(`\r\x1b[K${line.slice(0, (stream.columns ?? 160) - 1)}${p.done ? "\n" : ""}`)
    } else {
      stream.write(JSON.stringify({ event: p.done ? "done" : "progress", ...p }) + "\n")
    }
  }
}
