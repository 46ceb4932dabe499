/**
 * Progress of a search: one rewritten status line on a terminal, JSON lines otherwise (so logs and
 * other programs can follow a run), and a final summary.
 */
import type { ProgressLine } from "../search/search-run.ts"

const n = (c: Readonly<Record<string, number>>, k: string): number => c[k] ?? 0

export const describe = (p: ProgressLine): string => {
  const c = p.counters
  const rate = p.elapsedS > 0 ? (n(c, "proposed") / p.elapsedS) * 60 : 0
  const trained = n(c, "trained")
  const eta = trained > 0 && trained < p.budget ? ((p.budget - trained) * p.elapsedS) / trained : null
  const best = p.best === null ? "-" : `${p.best.score.toFixed(4)} ${p.best.text}`
  return (
    `generated ${n(c, "proposed")} | static-rejected ${n(c, "staticRejected")} | screened ${n(c, "screened")} | ` +
    `passed ${n(c, "passed")} | equivalent ${n(c, "equivalentReuses") + n(c, "duplicateReuses")} | ` +
    `trained ${trained}/${p.budget} | invalid ${n(c, "invalid")} | ${rate.toFixed(1)} cand/min | ` +
    `ETA ${eta === null ? "-" : `${Math.round(eta)}s`} | best ${best}`
  )
}

export const makeSink = (stream: NodeJS.WriteStream) => {
  const tty = stream.isTTY === true
  return (p: ProgressLine): void => {
    if (tty) {
      const line = describe(p)
      stream.write(`\r\x1b[K${line.slice(0, (stream.columns ?? 160) - 1)}${p.done ? "\n" : ""}`)
    } else {
      stream.write(JSON.stringify({ event: p.done ? "done" : "progress", ...p }) + "\n")
    }
  }
}
