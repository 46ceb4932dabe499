/**
 * What the report shows, extracted from a run's rows: pure functions, no I/O (the HTML renderer,
 * the live server and the TensorBoard writer all start from here).
 *
 * Timing caveat: the database records when each candidate was *proposed* and how long its
 * screening and training jobs ran, not when they finished. A job's finish time is estimated as
 * proposal time + screening time (+ training time): a lower bound that ignores queueing.
 */
import { type Decision, decide, heldOutDone, heldOutValue, rankByFitness, atHighestRung, selectionTotal } from "../search/selection.ts"
import { ladderOf, rungIterations } from "../search/fidelity.ts"
import type { CandidateRecord, RunData } from "./run-data.ts"

// ---------------------------------------------------------------------------------------------
// Funnel

export interface Funnel {
  /** Proposals made by the scheduler. */
  readonly generated: number
  /** Refused by the static check (no job). */
  readonly staticRejected: number
  /** Got a rejection-protocol verdict (own screening job, or the verdict of an identical earlier loss). */
  readonly screened: number
  /** …of which passed (g ≥ η). */
  readonly passed: number
  /** Admitted losses that took an earlier gradient-equivalent loss's score instead of training. */
  readonly equivalent: number
  /** Admitted losses identical (same canonical hash) to an earlier admitted one. */
  readonly duplicate: number
  /** Proxy trainings that returned a result (what the budget counts, once finished). */
  readonly trained: number
  /** …of which stopped on NaN/Inf. */
  readonly invalid: number
  /** Proposed but never screened before the run ended. */
  readonly abandoned: number
  /** Proposed and still waiting for a verdict (a live run). */
  readonly pending: number
}

const VERDICT_STATUSES = new Set(["rejected", "discarded", "admitted", "trained", "evaluated"])
const PASSED_STATUSES = new Set(["discarded", "admitted", "trained", "evaluated"])

/** Whether the candidate's verdict came from the rejection protocol (its own or its duplicate's). */
const protocolScreened = (c: CandidateRecord, byId: ReadonlyMap<number, CandidateRecord>): boolean => {
  if (!VERDICT_STATUSES.has(c.status)) return false
  if (c.rejectionPassed !== null) return true
  const original = c.duplicateOf === null ? undefined : byId.get(c.duplicateOf)
  return original !== undefined && original.rejectionPassed !== null
}

export const funnelOf = (candidates: ReadonlyArray<CandidateRecord>): Funnel => {
  const byId = new Map(candidates.map((c) => [c.id, c]))
  let staticRejected = 0, screened = 0, passed = 0, equivalent = 0, duplicate = 0, trained = 0, invalid = 0
  let abandoned = 0, pending = 0
  for (const c of candidates) {
    if (c.status === "static_rejected") staticRejected++
    if (c.status === "abandoned") abandoned++
    if (c.status === "proposed" || c.status === "screened") pending++
    if (protocolScreened(c, byId)) {
      screened++
      if (PASSED_STATUSES.has(c.status)) passed++
    }
    if (c.reuseKind === "equivalent") equivalent++
    if (c.reuseKind === "duplicate") duplicate++
    if (c.proxyMetrics !== null) {
      trained++
      if (c.invalid === true || c.targetScore === null || !Number.isFinite(c.targetScore)) invalid++
    }
  }
  return { generated: candidates.length, staticRejected, screened, passed, equivalent, duplicate, trained, invalid, abandoned, pending }
}

// ---------------------------------------------------------------------------------------------
// Search curve (the paper's Figure 4: best and best-5 mean score vs proxy evaluations)

export const TOP_MEAN_OF = 5

export interface CurvePoint {
  /** Proxy evaluations observed so far (reused scores spend none). */
  readonly evaluations: number
  /** Estimated finish time of this evaluation, seconds since the run was created. */
  readonly elapsedS: number
  readonly candidateId: number
  readonly score: number
  /** Best finite score so far; null while every score is invalid. */
  readonly best: number | null
  /** Mean of the best `TOP_MEAN_OF` finite scores so far; null until there are that many. */
  readonly topMean: number | null
}

/** Estimated finish of a candidate's last job (ms since the epoch); see the module comment. */
export const finishedAt = (c: CandidateRecord): number => c.proposedAt + (c.screenMs ?? 0) + (c.trainMs ?? 0)

/**
 * One point per observed proxy training (status `evaluated`, own score), in admission order. Reused
 * scores are left out: they copy an earlier loss's score and would count one loss several times.
 */
export const searchCurve = (run: Pick<RunData, "candidates" | "createdAt">): CurvePoint[] => {
  const evaluated = run.candidates
    .filter((c) => c.status === "evaluated" && c.reuseKind === null && c.admissionIndex !== null && c.score !== null)
    .sort((a, b) => (a.admissionIndex as number) - (b.admissionIndex as number))
  const top: number[] = [] // descending, at most TOP_MEAN_OF finite scores
  const points: CurvePoint[] = []
  for (const c of evaluated) {
    const score = c.score as number
    if (Number.isFinite(score)) {
      top.push(score)
      top.sort((a, b) => b - a)
      if (top.length > TOP_MEAN_OF) top.pop()
    }
    points.push({
      evaluations: points.length + 1,
      elapsedS: (finishedAt(c) - run.createdAt) / 1000,
      candidateId: c.id,
      score,
      best: top.length > 0 ? top[0]! : null,
      topMean: top.length === TOP_MEAN_OF ? top.reduce((s, v) => s + v, 0) / TOP_MEAN_OF : null
    })
  }
  return points
}

// ---------------------------------------------------------------------------------------------
// Throughput per worker

export interface WorkerTotals {
  readonly worker: string
  readonly screens: number
  readonly trainings: number
  readonly screenMsMean: number | null
  readonly trainMsMean: number | null
}

export interface Throughput {
  /** Width of one time bin, seconds. */
  readonly binS: number
  /** Start of each bin, seconds since the run was created. */
  readonly binStarts: ReadonlyArray<number>
  /** Screening jobs finished per minute in each bin, per worker. */
  readonly screensPerMin: ReadonlyArray<{ readonly worker: string; readonly values: ReadonlyArray<number> }>
  /** Candidates proposed per minute in each bin. */
  readonly proposedPerMin: ReadonlyArray<number>
  readonly workers: ReadonlyArray<WorkerTotals>
}

/** The worker id the evaluator reported; results from an evaluator without ids are grouped as this. */
export const UNKNOWN_WORKER = "(unrecorded)"

const NICE_BINS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400]

/** The smallest "nice" bin width that cuts `spanS` into at most `maxBins` bins. */
export const binWidth = (spanS: number, maxBins = 40): number =>
  NICE_BINS_S.find((w) => spanS / w <= maxBins) ?? Math.ceil(spanS / maxBins / 86400) * 86400

const mean = (xs: ReadonlyArray<number>): number | null => (xs.length === 0 ? null : xs.reduce((s, v) => s + v, 0) / xs.length)

export const throughputOf = (run: Pick<RunData, "candidates" | "createdAt">): Throughput => {
  const screens = run.candidates.filter((c) => c.screenMs !== null)
  const trainings = run.candidates.filter((c) => c.trainMs !== null)
  const ends = [
    ...run.candidates.map((c) => c.proposedAt),
    ...screens.map((c) => c.proposedAt + (c.screenMs as number))
  ].map((t) => (t - run.createdAt) / 1000)
  const spanS = Math.max(1e-3, ...ends)
  const binS = binWidth(spanS)
  const bins = Math.max(1, Math.ceil(spanS / binS))
  const binOf = (tMs: number): number => Math.min(bins - 1, Math.max(0, Math.floor((tMs - run.createdAt) / 1000 / binS)))
  const perMin = 60 / binS

  const names = [...new Set([...screens.map((c) => c.screenWorker ?? UNKNOWN_WORKER), ...trainings.map((c) => c.trainWorker ?? UNKNOWN_WORKER)])].sort()
  const screensPerMin = names.map((worker) => {
    const values = new Array<number>(bins).fill(0)
    for (const c of screens) {
      if ((c.screenWorker ?? UNKNOWN_WORKER) === worker) values[binOf(c.proposedAt + (c.screenMs as number))]! += perMin
    }
    return { worker, values }
  })
  const proposedPerMin = new Array<number>(bins).fill(0)
  for (const c of run.candidates) proposedPerMin[binOf(c.proposedAt)]! += perMin
  const workers = names.map((worker) => {
    const s = screens.filter((c) => (c.screenWorker ?? UNKNOWN_WORKER) === worker).map((c) => c.screenMs as number)
    const tr = trainings.filter((c) => (c.trainWorker ?? UNKNOWN_WORKER) === worker).map((c) => c.trainMs as number)
    return { worker, screens: s.length, trainings: tr.length, screenMsMean: mean(s), trainMsMean: mean(tr) }
  })
  return { binS, binStarts: Array.from({ length: bins }, (_, i) => i * binS), screensPerMin, proposedPerMin, workers }
}

// ---------------------------------------------------------------------------------------------
// Top losses and their lineage

export interface LineageStep {
  readonly id: number
  readonly text: string
  /** How this step was made from the next one in the chain (its parent). */
  readonly how: string
  readonly score: number | null
}

export interface TopLoss {
  readonly rank: number
  readonly candidate: CandidateRecord
  /** The candidate itself first, then its parent, grandparent, … up to a random loss. */
  readonly lineage: ReadonlyArray<LineageStep>
  /** Ancestors not listed because the chain was longer than the limit. */
  readonly lineageOmitted: number
}

export const TOP_LOSSES = 10
export const MAX_LINEAGE = 25

const describePath = (path: unknown): string => (Array.isArray(path) ? `[${path.join(",")}]` : "[]")

/** One line per branch change: `loss: mutate (insert log at [0]; replace tanh→exp at [0,1])`. */
export const describeHow = (how: unknown): string => {
  if (how === "random" || how === null || how === undefined) return "random initialisation"
  if (typeof how === "string") return how
  if (!Array.isArray(how)) return JSON.stringify(how)
  return how
    .map((change: Record<string, unknown>) => {
      const branch = String(change["branch"])
      const kind = String(change["kind"])
      if (kind === "copy") return `${branch}: copied`
      if (kind === "reinit") return `${branch}: re-initialised`
      const mutations = Array.isArray(change["mutations"]) ? (change["mutations"] as Array<Record<string, unknown>>) : []
      const parts = mutations.map((m) => {
        const at = describePath(m["path"])
        switch (m["kind"]) {
          case "insertion":
            return `insert ${String(m["op"])} at ${at}${m["input"] === undefined ? "" : ` (with ${String(m["input"])})`}`
          case "deletion":
            return `delete ${String(m["op"])} at ${at}`
          case "replacement":
            return `replace ${String(m["from"])}→${String(m["to"])} at ${at}`
          default:
            return JSON.stringify(m)
        }
      })
      return `${branch}: ${parts.join("; ")}`
    })
    .join(" | ")
}

export const lineageOf = (
  id: number,
  byId: ReadonlyMap<number, CandidateRecord>,
  limit = MAX_LINEAGE
): { steps: LineageStep[]; omitted: number } => {
  const steps: LineageStep[] = []
  let omitted = 0
  const seen = new Set<number>()
  let current = byId.get(id)
  while (current !== undefined && !seen.has(current.id)) {
    seen.add(current.id)
    if (steps.length < limit) {
      steps.push({ id: current.id, text: current.text, how: describeHow(current.how), score: current.score })
    } else omitted++
    current = current.parentId === null ? undefined : byId.get(current.parentId)
  }
  return { steps, omitted }
}

/**
 * The best distinct losses by fitness (`rankByFitness`; with asha fidelity each judged at the
 * highest rung it reached, `candidate.rung`), with their lineage.
 */
export const topLosses = (run: Pick<RunData, "candidates" | "rungs">, n = TOP_LOSSES): TopLoss[] => {
  const byId = new Map(run.candidates.map((c) => [c.id, c]))
  return rankByFitness(atHighestRung(run.candidates, run.rungs), n).map((candidate, i) => {
    const { steps, omitted } = lineageOf(candidate.id, byId)
    return { rank: i + 1, candidate, lineage: steps, lineageOmitted: omitted }
  })
}

// ---------------------------------------------------------------------------------------------
// The answer: the held-out choice when the selection is complete, else the proxy best

export interface Answer {
  readonly candidate: CandidateRecord
  /** The held-out selection that chose it; null: the proxy best (no selection, or not finished). */
  readonly decision: Decision | null
  /** Losses the selection set aside as the baseline rediscovered, with their proxy scores. */
  readonly setAside: ReadonlyArray<{ readonly candidate: CandidateRecord; readonly score: number }>
}

/** The loss a run answers with (what the report opens with and `export` writes). */
export const answerOf = (run: Pick<RunData, "candidates" | "selection" | "rungs">): Answer | null => {
  const decision = run.selection === null ? null : decide(run.selection.plan, run.selection.runs)
  const chosen = decision === null ? undefined : run.candidates.find((c) => c.id === decision.chosen)
  const setAside = (run.selection?.plan.setAside ?? []).flatMap((s) => {
    const candidate = run.candidates.find((c) => c.id === s.id)
    return candidate === undefined ? [] : [{ candidate, score: s.score }]
  })
  if (chosen !== undefined) return { candidate: chosen, decision, setAside }
  const best = rankByFitness(atHighestRung(run.candidates, run.rungs), 1)[0]
  return best === undefined ? null : { candidate: best, decision: null, setAside }
}

// ---------------------------------------------------------------------------------------------
// The rung ladder (asha fidelity)

export interface RungStep {
  readonly rung: number
  /** Fraction of the full proxy trained at this rung. */
  readonly fraction: number
  /** Proxy iterations at this rung, where a stored training says; null: none stored yet. */
  readonly iterations: number | null
  /** Trainings with a result at this rung. */
  readonly trained: number
  /** Of them, trainings that continued from the rung below's cached state (the rest started over). */
  readonly continued: number
  readonly invalid: number
  /** Best and median of the finite scores at this rung (null: none). */
  readonly best: number | null
  readonly median: number | null
  /** The losses at this rung by score, best first (at most `RUNG_SHOWN`). */
  readonly leaders: ReadonlyArray<{ readonly id: number; readonly text: string; readonly score: number }>
  /** The most common finite score and how many results have it exactly (null: none). */
  readonly tie: { readonly score: number; readonly count: number } | null
}

/**
 * A rung whose results mostly share one score does not rank its losses: promotions from it follow
 * proposal order (ties go to the lower id). Reported so that nobody reads such a search's answer as
 * chosen by the proxy (seg's 33-iteration rung leaves most losses at the all-background mIoU).
 */
export const uninformativeRungs = (ladder: ReadonlyArray<RungStep>): RungStep[] =>
  ladder.filter((r) => r.rung < ladder.length - 1 && r.tie !== null && r.tie.count >= 3 && r.tie.count * 2 > r.trained)

const mostCommon = (scores: ReadonlyArray<number>): { score: number; count: number } | null => {
  const counts = new Map<number, number>()
  for (const x of scores) counts.set(x, (counts.get(x) ?? 0) + 1)
  let best: { score: number; count: number } | null = null
  for (const [score, count] of counts) if (best === null || count > best.count) best = { score, count }
  return best
}

export const RUNG_SHOWN = 5

/**
 * How many losses reached each rung and how they scored; null for a full-fidelity run. Rung 0 is
 * every admitted loss that trained itself (its `score`); higher rungs are the promoted trainings.
 */
export const rungLadderOf = (run: Pick<RunData, "candidates" | "rungs" | "config">): RungStep[] | null => {
  const fidelity = run.config?.fidelity
  if (fidelity === undefined || fidelity.kind !== "asha") return null
  const ladder = ladderOf(fidelity)
  const text = new Map(run.candidates.map((c) => [c.id, c.text]))
  const atRung = (r: number): Array<{ id: number; score: number; iterations: number | null; continued: boolean }> =>
    r === 0
      ? run.candidates
        .filter((c) => c.status === "evaluated" && c.reuseKind === null && c.score !== null)
        .map((c) => ({ id: c.id, score: c.score as number, iterations: null, continued: false }))
      : run.rungs
        .filter((x) => x.rung === r)
        .map((x) => ({
          id: x.candidateId, score: x.result.invalid ? -Infinity : x.result.target, iterations: x.iterations,
          continued: x.result.resumedFrom !== undefined
        }))
  // Rung 0's length is not stored with its results; it follows from the full proxy's, once a loss got there.
  const full = run.rungs.find((x) => x.rung === ladder.top)?.iterations
  const planned = full === undefined ? null : rungIterations(ladder, full)
  return ladder.fractions.map((fraction, rung) => {
    const entries = atRung(rung)
    const finite = entries.filter((e) => Number.isFinite(e.score)).sort((a, b) => b.score - a.score || a.id - b.id)
    const mid = finite.length === 0 ? null : finite.length % 2 === 1
      ? finite[(finite.length - 1) / 2]!.score
      : (finite[finite.length / 2 - 1]!.score + finite[finite.length / 2]!.score) / 2
    return {
      rung,
      fraction,
      iterations: entries.find((e) => e.iterations !== null)?.iterations ?? planned?.[rung] ?? null,
      trained: entries.length,
      continued: entries.filter((e) => e.continued).length,
      invalid: entries.length - finite.length,
      best: finite[0]?.score ?? null,
      median: mid,
      leaders: finite.slice(0, RUNG_SHOWN).map((e) => ({ id: e.id, text: text.get(e.id) ?? "", score: e.score })),
      tie: mostCommon(finite.map((e) => e.score))
    }
  })
}

export interface SelectionProgress {
  readonly seeds: ReadonlyArray<number>
  readonly finalists: number
  /** Held-out and confirmation trainings stored, of the planned ones (the baseline's proxy run not counted). */
  readonly done: number
  readonly total: number
}

const selectionProgress = (run: Pick<RunData, "selection">): SelectionProgress | null => {
  if (run.selection === null) return null
  const { plan, runs } = run.selection
  return { seeds: plan.seeds, finalists: plan.finalists.length, done: heldOutDone(plan, runs), total: selectionTotal(plan.finalists.length, plan.seeds, plan.confirmSeeds) - 1 }
}

/** The baseline's score on the search's own seed and data (the reference for the search curves). */
export const baselineProxyOf = (run: Pick<RunData, "selection">): number | null => {
  const proxy = run.selection?.runs.find((r) => r.subject === "baseline" && r.split === "proxy")
  return proxy === undefined || run.selection === null ? null : heldOutValue(proxy, run.selection.plan.metric)
}

// ---------------------------------------------------------------------------------------------
// The whole report

export interface ReportModel {
  readonly dir: string
  readonly title: string
  readonly config: RunData["config"]
  readonly createdAt: number
  readonly lastOutcomeAt: number | null
  readonly counters: RunData["counters"]
  readonly funnel: Funnel
  readonly curve: ReadonlyArray<CurvePoint>
  readonly throughput: Throughput
  readonly top: ReadonlyArray<TopLoss>
  /** Successive halving's rungs (`--fidelity asha`); null: full fidelity. */
  readonly ladder: ReadonlyArray<RungStep> | null
  readonly answer: Answer | null
  /** The held-out selection's progress; null: none. */
  readonly selection: SelectionProgress | null
  readonly baselineProxy: number | null
  /** What the database cannot tell, said once in the report. */
  readonly caveats: ReadonlyArray<string>
}

export const TIMING_CAVEAT =
  "The database stores when each candidate was proposed and how long its jobs ran, not when they finished: " +
  "times on the plots are proposal time + job durations, a lower bound that ignores queueing."

export const buildReportModel = (run: RunData): ReportModel => {
  const throughput = throughputOf(run)
  const caveats = [TIMING_CAVEAT]
  if (throughput.workers.some((w) => w.worker === UNKNOWN_WORKER)) {
    caveats.push(`Some jobs carry no worker id (the evaluator did not report one); they are grouped as ${UNKNOWN_WORKER}.`)
  }
  const task = run.config?.task
  const ladder = rungLadderOf(run)
  for (const r of uninformativeRungs(ladder ?? [])) {
    caveats.push(
      `Rung ${r.rung}: ${r.tie!.count} of its ${r.trained} results score exactly ${r.tie!.score.toFixed(4)}, so it does not rank them: ` +
        "promotions from it followed proposal order (ties go to the earlier loss). A lowest rung that learns nothing makes successive halving " +
        "no better than chance here; use a longer lowest rung (--fidelity asha:min=1/3) or --fidelity full."
    )
  }
  return {
    dir: run.dir,
    title: task === undefined ? `AutoLoss-Zero search — ${run.dir}` : `AutoLoss-Zero search — ${task}`,
    config: run.config,
    createdAt: run.createdAt,
    lastOutcomeAt: run.lastOutcomeAt,
    counters: run.counters,
    funnel: funnelOf(run.candidates),
    curve: searchCurve(run),
    throughput,
    top: topLosses(run),
    ladder,
    answer: answerOf(run),
    selection: selectionProgress(run),
    baselineProxy: baselineProxyOf(run),
    caveats
  }
}
