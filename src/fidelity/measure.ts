/**
 * A fidelity measurement's bookkeeping, pure: which (loss, seed, iterations) cells a panel needs,
 * which of them are still to train, and the summary once all are stored.
 */
import { type Spread, spread } from "../report/compare.ts"
import { type Fidelity, fidelity } from "../report/fidelity.ts"
import type { Panel, PanelLoss } from "./panel.ts"
import { type Cell, cellKey, type CellResult } from "./store.ts"

export interface PlannedCell extends Cell {
  readonly loss: PanelLoss
  readonly budget: "proxy" | "long"
}

/** Every cell of the measurement, long trainings first (the longest jobs start first on the pool). */
export const planCells = (panel: Panel, seeds: ReadonlyArray<number>, proxyIterations: number, longIterations: number): PlannedCell[] =>
  (["long", "proxy"] as const).flatMap((budget) =>
    panel.losses.flatMap((loss) => seeds.map((seed): PlannedCell => ({
      loss, budget, seed, lossHash: loss.hash, iterations: budget === "proxy" ? proxyIterations : longIterations
    }))))

export const missingCells = (cells: ReadonlyArray<PlannedCell>, stored: ReadonlyMap<string, CellResult>): PlannedCell[] =>
  cells.filter((c) => !stored.has(cellKey(c)))

export interface LossSummary {
  readonly name: string
  readonly origin: string
  readonly loss: string
  readonly hash: string
  readonly seeds: ReadonlyArray<number>
  readonly proxy: Spread
  readonly long: Spread
  /** Seeds whose training stopped at a non-finite loss (scored 0 by the task). */
  readonly proxyInvalid: ReadonlyArray<number>
  readonly longInvalid: ReadonlyArray<number>
  /** Mean worker seconds per training. */
  readonly proxySeconds: number
  readonly longSeconds: number
}

export interface Summary extends Fidelity {
  readonly metric: string
  readonly proxyIterations: number
  readonly longIterations: number
  readonly losses: ReadonlyArray<LossSummary>
}

const scoreOf = (r: CellResult, metric: string): number => {
  const v = r.metrics[metric]
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new Error(`training of '${r.lossText}' (seed ${r.seed}, ${r.iterations} iterations) has no finite '${metric}' (it has ${Object.keys(r.metrics).join(", ") || "none"})`)
  }
  return v
}

/** Per-loss proxy and long scores (mean, sd over seeds) and the fidelity statistics of the means. */
export const summarise = (
  panel: Panel, seeds: ReadonlyArray<number>, metric: string, proxyIterations: number, longIterations: number,
  stored: ReadonlyMap<string, CellResult>
): Summary => {
  const runs = (loss: PanelLoss, iterations: number): CellResult[] => seeds.map((seed) => {
    const r = stored.get(cellKey({ lossHash: loss.hash, seed, iterations }))
    if (r === undefined) throw new Error(`no stored training of '${loss.name}' for seed ${seed} at ${iterations} iterations`)
    return r
  })
  const meanSeconds = (rs: ReadonlyArray<CellResult>): number => rs.reduce((s, r) => s + r.elapsedMs, 0) / rs.length / 1000
  const losses = panel.losses.map((loss): LossSummary => {
    const proxy = runs(loss, proxyIterations), long = runs(loss, longIterations)
    return {
      name: loss.name, origin: loss.origin, loss: loss.text, hash: loss.hash, seeds,
      proxy: spread(proxy.map((r) => scoreOf(r, metric))), long: spread(long.map((r) => scoreOf(r, metric))),
      proxyInvalid: proxy.filter((r) => r.invalid).map((r) => r.seed), longInvalid: long.filter((r) => r.invalid).map((r) => r.seed),
      proxySeconds: meanSeconds(proxy), longSeconds: meanSeconds(long)
    }
  })
  const stats = fidelity(losses.map((l) => l.proxy.mean), losses.map((l) => l.long.mean))
  return { ...stats, metric, proxyIterations, longIterations, losses }
}

const f4 = (x: number): string => (Number.isNaN(x) ? "NaN" : x.toFixed(4))

/** A plain-text table, one row per loss, then the statistics. */
export const formatSummary = (s: Summary): string => {
  const width = Math.max(4, ...s.losses.map((l) => l.name.length))
  const rows = s.losses.map((l, i) =>
    `${l.name.padEnd(width)}  ${l.origin.padEnd(9)}  ${f4(l.proxy.mean)} ± ${f4(l.proxy.sd)}  ${f4(l.long.mean)} ± ${f4(l.long.sd)}` +
    `${i === s.proxyPick ? "  ← proxy's pick" : ""}${i === s.longBest ? "  ← best long" : ""}`)
  return [
    `${s.metric}: proxy ${s.proxyIterations} iterations vs long ${s.longIterations}, ${s.losses.length} losses, seeds ${s.losses[0]?.seeds.join(",")}`,
    `${"loss".padEnd(width)}  ${"origin".padEnd(9)}  ${"proxy mean ± sd".padEnd(15)}  long mean ± sd`,
    ...rows,
    `Kendall τ ${f4(s.kendallTau)}   Spearman ρ ${f4(s.spearman)}   top-${s.k} retrieval ${f4(s.topKRetrieval)}   regret ${f4(s.regret)}`
  ].join("\n")
}

/** The handcrafted baseline's proxy and long means and their ratio (the issue's ≥ 60% target), if in the panel. */
export const baselineRatio = (s: Summary) => {
  const b = s.losses.find((l) => l.origin === "baseline")
  return b === undefined ? null : { name: b.name, proxy: b.proxy.mean, long: b.long.mean, proxy_over_long: b.proxy.mean / b.long.mean }
}

/** The summary as the bench and `--json` write it (snake_case statistics, per-loss scores and seeds). */
export const summaryJson = (task: string, s: Summary) => ({
  task, metric: s.metric, proxy_iterations: s.proxyIterations, long_iterations: s.longIterations,
  n: s.n, kendall_tau: s.kendallTau, spearman: s.spearman, k: s.k, top_k_retrieval: s.topKRetrieval, regret: s.regret,
  proxy_pick: s.losses[s.proxyPick]!.name, long_best: s.losses[s.longBest]!.name, baseline: baselineRatio(s),
  panel: s.losses.map((l) => ({
    name: l.name, origin: l.origin, loss: l.loss, seeds: l.seeds,
    proxy: l.proxy, long: l.long, proxy_invalid_seeds: l.proxyInvalid, long_invalid_seeds: l.longInvalid,
    proxy_seconds: l.proxySeconds, long_seconds: l.longSeconds
  }))
})
