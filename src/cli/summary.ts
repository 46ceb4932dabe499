/**
 * What `autoloss search` and `autoloss resume` print at the end, read from the run's database:
 * the proxy best (as before), the top losses, the counters and the held-out `selection`. JSON for
 * `--json` and non-terminals; a readable summary on a terminal (`formatSummary`).
 */
import { Effect } from "effect"
import { layer as storeLayer, Store } from "../store/Store.ts"
import { decide, type Decision, rankByFitness } from "../search/selection.ts"

export const TOP_SHOWN = 5

export interface SummaryLoss {
  readonly id: number
  readonly loss: string
  readonly score: number
}

export interface SelectionSummary {
  readonly metric: string
  readonly seeds: ReadonlyArray<number>
  readonly chosen: SummaryLoss & {
    readonly proxyMetrics: Readonly<Record<string, number>> | null
    readonly heldOut: { readonly values: ReadonlyArray<number>; readonly mean: number; readonly sd: number }
    readonly vsBaseline: { readonly diffs: ReadonlyArray<number>; readonly mean: number; readonly sd: number; readonly wins: number; readonly ties: number; readonly losses: number }
  }
  readonly baseline: {
    readonly heldOut: { readonly values: ReadonlyArray<number>; readonly mean: number; readonly sd: number }
    /** On the search's own seed and data. */
    readonly proxy: number | null
    readonly proxyMetrics: Readonly<Record<string, number>> | null
  }
  /** The finalists in proxy order, with their held-out means. */
  readonly finalists: ReadonlyArray<SummaryLoss & { readonly heldOutMean: number; readonly diffMean: number; readonly wins: number }>
}

export interface Summary {
  readonly best: (SummaryLoss & { readonly metrics: Readonly<Record<string, number>> | null }) | null
  readonly top5: ReadonlyArray<SummaryLoss>
  readonly counters: Readonly<Record<string, number>>
  /** Null: no selection (`--select-top 0`, nothing scored, or not finished). */
  readonly selection: SelectionSummary | null
}

const selectionSummary = (
  d: Decision,
  text: (id: number) => string,
  proxyMetrics: (id: number) => Readonly<Record<string, number>> | null,
  baselineProxyMetrics: Readonly<Record<string, number>> | null
): SelectionSummary => {
  const chosen = d.finalists.find((f) => f.id === d.chosen)!
  const c = chosen.comparison
  return {
    metric: d.metric,
    seeds: d.seeds,
    chosen: {
      id: chosen.id, loss: text(chosen.id), score: chosen.proxyScore, proxyMetrics: proxyMetrics(chosen.id),
      heldOut: { values: c.loss.values, mean: c.loss.mean, sd: c.loss.sd },
      vsBaseline: { diffs: c.diff.values, mean: c.diff.mean, sd: c.diff.sd, wins: c.wins, ties: c.ties, losses: c.losses }
    },
    baseline: {
      heldOut: { values: d.baseline.values, mean: d.baseline.mean, sd: d.baseline.sd },
      proxy: d.baselineProxy,
      proxyMetrics: baselineProxyMetrics
    },
    finalists: d.finalists.map((f) => ({
      id: f.id, loss: text(f.id), score: f.proxyScore, heldOutMean: f.comparison.loss.mean, diffMean: f.comparison.diff.mean, wins: f.comparison.wins
    }))
  }
}

/** Reads the summary of the run in `dir`. */
export const loadSummary = (dir: string): Promise<Summary> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const store = yield* Store
        const rows = yield* store.candidates()
        const counters = yield* store.counters()
        const top = rankByFitness(rows, TOP_SHOWN)
        const best = top[0]
        const metricsOf = (id: number) =>
          Effect.map(store.trainResult(id), (t) => t?.result.metrics ?? null)
        const bestMetrics = best === undefined ? null : yield* metricsOf(best.id)
        const plan = yield* store.selection()
        let selection: SelectionSummary | null = null
        if (plan !== undefined && plan.completedAt !== null) {
          const cells = yield* store.holdoutRuns()
          const decision = decide(plan, cells)
          if (decision !== null) {
            const byId = new Map(rows.map((r) => [r.id, r]))
            const chosenMetrics = yield* metricsOf(decision.chosen)
            const proxyCell = cells.find((c) => c.subject === "baseline" && c.split === "proxy")
            selection = selectionSummary(
              decision,
              (id) => byId.get(id)?.text ?? "",
              (id) => (id === decision.chosen ? chosenMetrics : null),
              proxyCell?.metrics ?? null
            )
          }
        }
        return {
          best: best === undefined ? null : { id: best.id, loss: best.text, score: best.score as number, metrics: bestMetrics },
          top5: top.map((r) => ({ id: r.id, loss: r.text, score: r.score as number })),
          counters,
          selection
        } satisfies Summary
      })
    ).pipe(Effect.provide(storeLayer(dir)))
  )

/** Prints the run's summary on stdout. */
export const printSummary = async (dir: string): Promise<void> => {
  const summary = await loadSummary(dir)
  process.stdout.write(JSON.stringify(summary, null, 2) + "\n")
}
