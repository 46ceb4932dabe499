/**
 * Everything that defines a search run, resolved from the command line and stored as
 * `DIR/run.json` so that `autoloss resume DIR` rebuilds exactly the same run. Pure: parsing and
 * validation only; `search-run.ts` executes it.
 */
import { BUILTIN_KINDS, type BranchKind } from "../graph/types.ts"
import { type EquivalenceMode } from "./equivalence.ts"
import { type Fidelity, FULL_FIDELITY, fidelityProblem } from "./fidelity.ts"
import { DEFAULT_SELECTION, selectionProblems, type SelectionSettings } from "./selection.ts"

/** The run's resolved configuration inside a run directory (beside `search.db`). */
export const RUN_FILE = "run.json"

export type SchedulerName = "aging" | "random" | "naive"

export interface RunConfig {
  readonly version: 1
  readonly task: string
  /** null: the task's default metric. */
  readonly metric: string | null
  readonly seed: number
  readonly scheduler: SchedulerName
  /** Proxy evaluations (the paper: 500). */
  readonly budget: number
  /** K, P and T (percent) of the aging evolution. */
  readonly initialPopulation: number
  readonly populationSize: number
  readonly tournamentPercent: number
  readonly equivalence: EquivalenceMode
  readonly screenWindow: number
  readonly trainConcurrency: number
  /** Candidates per screening job at most; absent: `pool-evaluator.ts`'s default; 1: one job each. */
  readonly screenBatch?: number
  /** Safety stop on proposals; null: none. */
  readonly maxCandidates: number | null
  /** Task options (`key=value`, values JSON-decoded when they parse), incl. `rejection.*`. */
  readonly options: Readonly<Record<string, unknown>>
  /** The held-out final choice (`selection.ts`); absent in runs made before it existed: the defaults. */
  readonly selection?: SelectionSettings
  /** Successive halving over proxy iterations (`fidelity.ts`); absent: full (every run before it). */
  readonly fidelity?: Fidelity
}

/** The run's fidelity (full for runs that predate the option). */
export const fidelityOf = (c: Pick<RunConfig, "fidelity">): Fidelity => c.fidelity ?? FULL_FIDELITY

/** The run's selection settings (defaults for runs that predate them). */
export const selectionOf = (c: Pick<RunConfig, "selection">): SelectionSettings => c.selection ?? DEFAULT_SELECTION

/** The seeds a search uses that the command line shows: its own, and `data_seed` when given as an option. */
export const knownSearchSeeds = (c: Pick<RunConfig, "seed" | "options">): number[] => {
  const data = c.options["data_seed"]
  return typeof data === "number" ? [c.seed, data] : [c.seed]
}

export const DEFAULT_RUN: Omit<RunConfig, "task"> = {
  version: 1,
  metric: null,
  seed: 0,
  scheduler: "aging",
  budget: 500,
  initialPopulation: 20,
  populationSize: 2500,
  tournamentPercent: 5,
  equivalence: "directional",
  screenWindow: 8,
  // Two trainings at once: the default two local workers (one torch thread each) both train instead
  // of one training while the other idles between screening jobs. The trajectory is a function of
  // this number (it is also the outcome lag), never of the worker count.
  trainConcurrency: 2,
  maxCandidates: null,
  options: {}
}

/** `a.b=3` → { a: { b: 3 } }; the value is JSON when it parses as JSON, else the raw string. */
export const parseOptionPairs = (pairs: ReadonlyArray<string>): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const pair of pairs) {
    const eq = pair.indexOf("=")
    if (eq <= 0) throw new Error(`--option wants KEY=VALUE, got '${pair}'`)
    const path = pair.slice(0, eq).split(".")
    const raw = pair.slice(eq + 1)
    let value: unknown
    try {
      value = JSON.parse(raw)
    } catch {
      value = raw
    }
    let node = out
    for (const key of path.slice(0, -1)) {
      const next = node[key]
      if (next !== undefined && (typeof next !== "object" || next === null)) {
        throw new Error(`--option '${pair}': '${key}' was already given a value`)
      }
      node = (node[key] ??= {}) as Record<string, unknown>
    }
    node[path[path.length - 1]!] = value
  }
  return out
}

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

/** `over` on top of `base`, nested maps merged key by key (`--option rejection.samples=3` keeps the other rejection keys). */
export const mergeOptions = (base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> => {
  const out: Record<string, unknown> = { ...base }
  for (const [k, v] of Object.entries(over)) out[k] = isMap(v) && isMap(out[k]) ? mergeOptions(out[k], v) : v
  return out
}

/** Checks ranges; returns the problems (empty: valid). */
export const checkRunConfig = (c: RunConfig): string[] => {
  const problems: string[] = []
  const int = (name: keyof RunConfig, min: number) => {
    const v = c[name]
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) problems.push(`${name} must be an integer ≥ ${min}, got ${String(v)}`)
  }
  int("seed", 0)
  int("budget", 1)
  int("initialPopulation", 1)
  int("populationSize", 1)
  int("screenWindow", 1)
  int("trainConcurrency", 1)
  if (c.screenBatch !== undefined) int("screenBatch", 1)
  if (c.maxCandidates !== null) int("maxCandidates", 1)
  problems.push(...selectionProblems(selectionOf(c), knownSearchSeeds(c)))
  const fidelity = fidelityProblem(fidelityOf(c))
  if (fidelity !== undefined) problems.push(fidelity)
  if (c.populationSize < c.initialPopulation) problems.push(`populationSize (${c.populationSize}) must be ≥ initialPopulation (${c.initialPopulation})`)
  if (!(c.tournamentPercent > 0 && c.tournamentPercent <= 100)) problems.push(`tournamentPercent must be in (0, 100], got ${c.tournamentPercent}`)
  if (!["aging", "random", "naive"].includes(c.scheduler)) problems.push(`scheduler must be aging, random or naive, got '${c.scheduler}'`)
  if (!["paper", "directional"].includes(c.equivalence)) problems.push(`equivalence must be paper or directional, got '${c.equivalence}'`)
  if (!/^[a-z][a-z0-9_-]*$/.test(c.task)) problems.push(`task must be a task name such as 'seg', got '${c.task}'`)
  return problems
}

/** A branch kind by the name workers report (`dense`, `box`). */
export const kindByName = (name: string): BranchKind => {
  const kind = BUILTIN_KINDS.find((k) => k.name === name)
  if (kind === undefined) throw new Error(`unknown branch kind '${name}' (known: ${BUILTIN_KINDS.map((k) => k.name).join(", ")})`)
  return kind
}
