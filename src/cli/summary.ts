/**
 * What `autoloss search` and `autoloss resume` print at the end, read from the run's database:
 * the proxy best (as before), the top losses, the counters and the held-out `selection`. JSON for
 * `--json` and non-terminals; a readable summary on a terminal (`formatSummary`).
 */
import { Effect } from "effect"
import { layer as storeLayer, Store } from "../store/Store.ts"
import type { Comparison, Spread } from "../report/compare.ts"
import { setAsideNote, VERDICT_ADVICE, type VerdictKind } from "../report/verdict.ts"
import { atHighestRung, decide, type Decision, rankByFitness } from "../search/selection.ts"
import { fullEquivalents, trainingsPerRung } from "./progress.ts"
import { writeReport } from "./verbs/report.ts"

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
  /**
   * The chosen loss against the baseline on the confirmation seeds, which took no part in the
   * choice (null: the run had none).
   */
  readonly confirmation: {
    readonly seeds: ReadonlyArray<number>
    readonly chosen: { readonly values: ReadonlyArray<number>; readonly mean: number; readonly sd: number }
    readonly baseline: { readonly values: ReadonlyArray<number>; readonly mean: number; readonly sd: number }
    readonly vsBaseline: { readonly diffs: ReadonlyArray<number>; readonly mean: number; readonly sd: number; readonly wins: number; readonly ties: number; readonly losses: number }
  } | null
  /**
   * `confirmed`: the chosen loss beats the baseline on the confirmation seeds beyond seed noise
   * (one-sided paired t-test, 5 %) and on its held-out seeds; `inconclusive`: ahead on the
   * confirmation mean, but within noise or against its held-out seeds; `not-confirmed`: not ahead;
   * `unconfirmed`: no confirmation seeds, only the (optimistic) held-out comparison. The rule:
   * `src/report/verdict.ts`.
   */
  readonly verdict: VerdictKind | "unconfirmed"
  /** The verdict's reason, with its numbers (null when unconfirmed). */
  readonly verdictReason: string | null
  /** The finalists in proxy order, with their held-out means. */
  readonly finalists: ReadonlyArray<SummaryLoss & { readonly heldOutMean: number; readonly diffMean: number; readonly wins: number }>
  /** Losses that ranked among the finalists but were left out as the baseline rediscovered (`rediscoversBaseline`). */
  readonly setAside: ReadonlyArray<SummaryLoss>
}

export interface Summary {
  readonly best: (SummaryLoss & { readonly metrics: Readonly<Record<string, number>> | null }) | null
  readonly top5: ReadonlyArray<SummaryLoss>
  readonly counters: Readonly<Record<string, number>>
  /** Null: no selection (`--select-top 0`, nothing scored, or not finished). */
  readonly selection: SelectionSummary | null
}

const spreadOf = (x: Spread) => ({ values: x.values, mean: x.mean, sd: x.sd })
const vsBaselineOf = (c: Comparison) => ({ diffs: c.diff.values, mean: c.diff.mean, sd: c.diff.sd, wins: c.wins, ties: c.ties, losses: c.losses })

const selectionSummary = (
  d: Decision,
  text: (id: number) => string,
  proxyMetrics: (id: number) => Readonly<Record<string, number>> | null,
  baselineProxyMetrics: Readonly<Record<string, number>> | null,
  setAside: ReadonlyArray<{ readonly id: number; readonly score: number }>
): SelectionSummary => {
  const chosen = d.finalists.find((f) => f.id === d.chosen)!
  const c = chosen.comparison
  return {
    metric: d.metric,
    seeds: d.seeds,
    chosen: {
      id: chosen.id, loss: text(chosen.id), score: chosen.proxyScore, proxyMetrics: proxyMetrics(chosen.id),
      heldOut: spreadOf(c.loss),
      vsBaseline: vsBaselineOf(c)
    },
    baseline: {
      heldOut: spreadOf(d.baseline),
      proxy: d.baselineProxy,
      proxyMetrics: baselineProxyMetrics
    },
    confirmation: d.confirmation === null ? null : {
      seeds: d.confirmation.seeds,
      chosen: spreadOf(d.confirmation.comparison.loss),
      baseline: spreadOf(d.confirmation.comparison.against),
      vsBaseline: vsBaselineOf(d.confirmation.comparison)
    },
    verdict: d.confirmation === null ? "unconfirmed" : d.confirmation.verdict.kind,
    verdictReason: d.confirmation === null ? null : d.confirmation.verdict.reason,
    finalists: d.finalists.map((f) => ({
      id: f.id, loss: text(f.id), score: f.proxyScore, heldOutMean: f.comparison.loss.mean, diffMean: f.comparison.diff.mean, wins: f.comparison.wins
    })),
    setAside: setAside.map((s) => ({ id: s.id, loss: text(s.id), score: s.score }))
  }
}

/** Reads the summary of the run in `dir`. */
export const loadSummary = (dir: string): Promise<Summary> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const store = yield* Store
        const rungs = yield* store.rungResults()
        const rows = atHighestRung(yield* store.candidates(), rungs)
        const counters = yield* store.counters()
        const top = rankByFitness(rows, TOP_SHOWN)
        const best = top[0]
        // The metrics of the training its fitness comes from: the highest rung it reached (asha).
        const metricsOf = (id: number) => {
          const promoted = rungs.filter((r) => r.candidateId === id).at(-1)
          return promoted !== undefined
            ? Effect.succeed(promoted.result.metrics)
            : Effect.map(store.trainResult(id), (t) => t?.result.metrics ?? null)
        }
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
              proxyCell?.metrics ?? null,
              plan.setAside
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

const f4 = (x: number | null): string => (x === null ? "—" : x.toFixed(4))
const signed = (x: number): string => (x >= 0 ? "+" : "") + x.toFixed(4)
const row = (cells: ReadonlyArray<string>, widths: ReadonlyArray<number>): string =>
  "  " + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")

/** The confirmation's small table and the verdict, for the terminal summary. */
const confirmationLines = (
  sel: SelectionSummary,
  spreadText: (x: { mean: number; sd: number }) => string,
  line: (cells: ReadonlyArray<string>, widths: ReadonlyArray<number>) => string
): string[] => {
  const k = sel.confirmation
  if (k === null) {
    return ["", "  Not confirmed on further seeds (--confirm-seeds none): the difference above is measured on the seeds the answer", "  was chosen on and overstates it."]
  }
  const v = k.vsBaseline
  const widths = [10, 17, ...k.seeds.map((seed) => Math.max(8, `seed ${seed}`.length))]
  return [
    "",
    `Confirmation on seeds ${k.seeds.join(", ")}, which took no part in the choice:`,
    line(["", "mean±sd", ...k.seeds.map((seed) => `seed ${seed}`)], widths),
    line(["chosen", spreadText(k.chosen), ...k.chosen.values.map(f4)], widths),
    line(["baseline", spreadText(k.baseline), ...k.baseline.values.map(f4)], widths),
    line(["difference", `${signed(v.mean)} ± ${v.sd.toFixed(4)}`, ...v.diffs.map(signed)], widths),
    sel.verdict === "confirmed"
      ? `  Verdict: confirmed, ${sel.verdictReason}.`
      : sel.verdict === "inconclusive"
      ? `  Verdict: inconclusive, ${sel.verdictReason};\n  ${VERDICT_ADVICE.inconclusive}.`
      : `  Verdict: NOT confirmed, the answer does not beat the baseline on seeds it was not chosen on (${v.wins} of ${k.seeds.length} better);` +
        `\n  ${VERDICT_ADVICE["not-confirmed"]}.`
  ]
}

/** The readable end of a search on a terminal: the answer beside the baseline, the top losses, where things are. */
export const formatSummary = (s: Summary, where: { readonly dir: string; readonly report: string | null }): string => {
  const c = s.counters
  const cost = fullEquivalents(c)
  const trainings = cost === null
    ? `${c["trained"] ?? 0} proxy trainings`
    : `${cost.toFixed(1)} full-proxy equivalents (trainings per rung ${trainingsPerRung(c).join("/")})`
  const lines = [
    `Search finished: ${trainings}, ${c["proposed"] ?? 0} losses generated, ${c["passed"] ?? 0} passed screening.`,
    ""
  ]
  const sel = s.selection
  if (sel === null) {
    if (s.best === null) lines.push("No loss reached a finite proxy score: nothing to report.")
    else {
      lines.push(`The answer (best proxy score; no held-out selection was made): candidate ${s.best.id}, ${f4(s.best.score)}`, `  ${s.best.loss}`)
    }
  } else {
    const v = sel.chosen.vsBaseline
    lines.push(
      `The answer: candidate ${sel.chosen.id}, the best held-out ${sel.metric} of the top ${sel.finalists.length} (seeds ${sel.seeds.join(", ")})`,
      `  ${sel.chosen.loss}`,
      ""
    )
    const widths = [10, 8, 17, ...sel.seeds.map((seed) => Math.max(8, `seed ${seed}`.length))]
    const spreadText = (x: { mean: number; sd: number }) => `${f4(x.mean)} ± ${x.sd.toFixed(4)}`
    lines.push(
      row(["", "proxy", "held-out mean±sd", ...sel.seeds.map((seed) => `seed ${seed}`)], widths),
      row(["chosen", f4(sel.chosen.score), spreadText(sel.chosen.heldOut), ...sel.chosen.heldOut.values.map(f4)], widths),
      row(["baseline", f4(sel.baseline.proxy), spreadText(sel.baseline.heldOut), ...sel.baseline.heldOut.values.map(f4)], widths),
      row([
        "difference",
        sel.baseline.proxy === null ? "—" : signed(sel.chosen.score - sel.baseline.proxy),
        `${signed(v.mean)} ± ${v.sd.toFixed(4)}`,
        ...v.diffs.map(signed)
      ], widths),
      `  better than the baseline on ${v.wins} of ${sel.seeds.length} held-out seeds (${v.ties} tie(s), ${v.losses} worse)` +
        (v.mean > 0 ? "" : "; no finalist beats the baseline on the held-out mean"),
      ...confirmationLines(sel, spreadText, row),
      "",
      `Top ${sel.finalists.length} by proxy score, with their held-out means:`,
      row(["rank", "cand", "proxy", "held-out", "vs base", "", "loss"], [4, 5, 7, 8, 8, 1, 0]),
      ...sel.finalists.map((f, i) =>
        row([String(i + 1), String(f.id), f4(f.score), f4(f.heldOutMean), signed(f.diffMean), f.id === sel.chosen.id ? "*" : " ", f.loss], [4, 5, 7, 8, 8, 1, 0])
      )
    )
    const note = setAsideNote(sel.setAside)
    if (note !== null) lines.push("", `${note}:`, ...sel.setAside.map((s) => `  candidate ${s.id}  ${s.loss}`))
  }
  if (sel === null && s.top5.length > 1) {
    lines.push("", `Top ${s.top5.length} by proxy score:`, ...s.top5.map((t, i) => `  ${i + 1}. candidate ${t.id}  ${f4(t.score)}  ${t.loss}`))
  }
  lines.push("")
  if (where.report !== null) lines.push(`Report:  ${where.report}`)
  lines.push(
    `Export:  npx autoloss export ${where.dir} --format torch   (${sel === null ? "the proxy best" : "the chosen loss"}; ` +
      "--format mmdet|mmpose|mmseg for an MMLab config fragment)",
    `Data:    ${where.dir}/search.db (docs/store-schema.md); the summary as JSON: npx autoloss resume ${where.dir} --json`
  )
  return lines.join("\n")
}

/**
 * Prints the run's summary on stdout: JSON with `json` or when stdout is no terminal, else the
 * readable form. Writes `DIR/report.html` first (best effort: the summary does not depend on it).
 */
export const printSummary = async (dir: string, options: { readonly json?: boolean } = {}): Promise<void> => {
  const summary = await loadSummary(dir)
  let report: string | null = null
  try {
    report = writeReport(dir)
  } catch (e) {
    process.stderr.write(`autoloss: the report could not be written: ${(e as Error).message}\n`)
  }
  if (options.json === true || process.stdout.isTTY !== true) {
    process.stdout.write(JSON.stringify({ ...summary, report }, null, 2) + "\n")
  } else {
    process.stdout.write(formatSummary(summary, { dir, report }) + "\n")
  }
}
