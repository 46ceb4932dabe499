/**
 * The status line's ETA, from the budget spent: work is counted in proxy-training units (the
 * search's budget of trainings, then the held-out selection's trainings, each about one proxy
 * training long), and the rate is what this process achieved since its first report. Work that
 * was already done when the process started (a resume replays it in seconds) never counts as
 * speed. Pure.
 */

export interface EtaInput {
  /** Seconds since this process started. */
  readonly elapsedS: number
  /** Units done now, and when this process first reported. */
  readonly done: number
  readonly doneAtStart: number
  readonly total: number
}

/** Seconds left, or null while nothing was done by this process (or nothing is left). */
export const estimateEta = (p: EtaInput): number | null => {
  const progressed = p.done - p.doneAtStart
  if (progressed <= 0 || p.elapsedS <= 0 || p.done >= p.total) return null
  return ((p.total - p.done) * p.elapsedS) / progressed
}

/** `95s`, `12m05s`, `2h03m`. */
export const formatDuration = (s: number): string => {
  const r = Math.round(s)
  if (r < 60) return `${r}s`
  if (r < 3600) return `${Math.floor(r / 60)}m${String(r % 60).padStart(2, "0")}s`
  return `${Math.floor(r / 3600)}h${String(Math.floor((r % 3600) / 60)).padStart(2, "0")}m`
}
