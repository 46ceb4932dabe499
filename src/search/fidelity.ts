/**
 * Multi-fidelity evaluation: asynchronous successive halving (ASHA, Li et al. 2020) over proxy
 * iterations, as pure bookkeeping (the engine's ledger drives it; no Effect, no I/O).
 *
 * - `minFraction` is 1/M for an integer M ≥ 2. Rungs r = 0..R−1 train for `minFraction·eta^r` of
 *   the full proxy (every such fraction below 1), rung R is the full proxy (`I_r =
 *   round(fraction·I_full)` iterations). With M = eta^R that is the geometric ladder of the ASHA
 *   paper; otherwise the top rung is closer to the one below than eta, as in Ray Tune's ASHA, whose
 *   rungs are grace·eta^k below max_t plus max_t (eta=4,min=1/3: rungs 1/3 and 1, a quarter
 *   promoted).
 * - Every admitted loss that trains itself starts at rung 0. The scheduler observes each candidate
 *   once, with its rung-0 score, in admission order, so every fitness it compares has the same
 *   fidelity (like with like); promotions only decide which losses get longer training.
 * - Promotion (ASHA's rule, made deterministic): rung results are delivered in the order their
 *   jobs were created; after a rung-r result is recorded, every candidate among the top ⌊n_r/eta⌋
 *   of the n_r results at rung r (score desc, ties to the lower id) that was not promoted from
 *   rung r yet, and whose result there is valid, is promoted to rung r+1 if the budget allows.
 * - Cost in full-proxy equivalents, nominal: a rung-0 training costs fraction_0, a promotion to
 *   rung r costs fraction_r − fraction_{r−1} (the training continues from the lower rung's state;
 *   a worker that must start over pays that in time, never in budget). Kept exact as integer
 *   units of 1/M (rung r < R ends at eta^r units, the full proxy at M).
 * - The search's answer ranks by (highest rung reached desc, score at that rung desc).
 */

export type Fidelity =
  | { readonly kind: "full" }
  | { readonly kind: "asha"; readonly eta: number; readonly minFraction: number }

export const FULL_FIDELITY: Fidelity = { kind: "full" }
export const DEFAULT_ASHA = { eta: 3, minFraction: 1 / 9 } as const

/** The `--fidelity` text of `f` (what `parseFidelity` reads back). */
export const showFidelity = (f: Fidelity): string =>
  f.kind === "full" ? "full" : `asha:eta=${f.eta},min=1/${Math.round(1 / f.minFraction)}`

/**
 * `full`, `asha`, or `asha:eta=E,min=F` (F a fraction `1/9` or a decimal; defaults eta=3,
 * min=1/9); throws naming the problem.
 */
export const parseFidelity = (text: string): Fidelity => {
  if (text === "full") return FULL_FIDELITY
  const m = /^asha(?::(.*))?$/.exec(text)
  if (m === null) throw new Error(`--fidelity wants full or asha[:eta=E,min=F], got '${text}'`)
  let eta: number = DEFAULT_ASHA.eta
  let minFraction: number = DEFAULT_ASHA.minFraction
  for (const part of m[1] === undefined || m[1] === "" ? [] : m[1].split(",")) {
    const [key, value, ...rest] = part.split("=")
    if (value === undefined || rest.length > 0) throw new Error(`--fidelity asha: '${part}' is not KEY=VALUE (keys: eta, min)`)
    if (key === "eta") {
      if (!/^\d+$/.test(value)) throw new Error(`--fidelity asha: eta wants an integer ≥ 2, got '${value}'`)
      eta = Number(value)
    } else if (key === "min") {
      const frac = /^(\d+)\/(\d+)$/.exec(value)
      const parsed = frac !== null ? Number(frac[1]) / Number(frac[2]) : /^\d*\.?\d+$/.test(value) ? Number(value) : NaN
      if (!Number.isFinite(parsed)) throw new Error(`--fidelity asha: min wants a fraction such as 1/9, got '${value}'`)
      minFraction = parsed
    } else {
      throw new Error(`--fidelity asha: unknown key '${key}' (keys: eta, min)`)
    }
  }
  const f: Fidelity = { kind: "asha", eta, minFraction }
  const problem = fidelityProblem(f)
  if (problem !== undefined) throw new Error(`--${problem}`)
  return f
}

/** The rungs of a fidelity: `top` = R, costs in units of 1/M of a full proxy training (M = 1/minFraction). */
export interface Ladder {
  readonly eta: number
  /** The index of the top rung (R; 0 for full fidelity). */
  readonly top: number
  /** Units of one full proxy training (M). */
  readonly unitsPerFull: number
  /** Units trained by the end of each rung: eta^r below the top, M at the top. */
  readonly units: ReadonlyArray<number>
  /** Fraction of the full proxy trained at each rung (the last is exactly 1). */
  readonly fractions: ReadonlyArray<number>
}

/** M for a valid `min` = 1/M (rounded: 0.25 and 1/4 are both 4). */
const inverseOf = (minFraction: number): number => Math.round(1 / minFraction)

/** The problem with `f`, or undefined when it is valid. */
export const fidelityProblem = (f: Fidelity): string | undefined => {
  if (f.kind === "full") return undefined
  if (!Number.isInteger(f.eta) || f.eta < 2) return `fidelity asha: eta must be an integer ≥ 2, got ${f.eta}`
  if (!(f.minFraction > 0 && f.minFraction < 1)) return `fidelity asha: min must be in (0, 1), got ${f.minFraction}`
  const m = inverseOf(f.minFraction)
  if (m < 2 || Math.abs(1 / m - f.minFraction) > 1e-9 * f.minFraction) {
    return `fidelity asha: min must be 1/M for an integer M ≥ 2 (1/3, 1/9, 0.25, ...), got ${f.minFraction}`
  }
  return undefined
}

export const ladderOf = (f: Fidelity): Ladder => {
  const problem = fidelityProblem(f)
  if (problem !== undefined) throw new Error(problem)
  if (f.kind === "full") return { eta: 1, top: 0, unitsPerFull: 1, units: [1], fractions: [1] }
  const m = inverseOf(f.minFraction)
  const units: number[] = []
  for (let u = 1; u < m; u *= f.eta) units.push(u)
  units.push(m)
  return { eta: f.eta, top: units.length - 1, unitsPerFull: m, units, fractions: units.map((u) => u / m) }
}

/** Units a training at `rung` costs: rung 0 from scratch, a higher rung continuing the one below. */
export const rungCost = (l: Ladder, rung: number): number => l.units[rung]! - (rung === 0 ? 0 : l.units[rung - 1]!)

/** Iterations of each rung for a proxy of `full` iterations; throws when a rung would be empty or repeat the one below. */
export const rungIterations = (l: Ladder, full: number): number[] => {
  const its = l.fractions.map((f) => Math.round(f * full))
  its[its.length - 1] = full
  for (let r = 0; r < its.length; r++) {
    if (its[r]! < 1 || (r > 0 && its[r]! <= its[r - 1]!)) {
      throw new Error(`fidelity asha: a proxy of ${full} iterations is too short for ${l.top + 1} rungs (iterations per rung: ${its.join(", ")})`)
    }
  }
  return its
}

/** What a training job asks of the evaluator: rung `rung`, `iterations` of the full proxy's `of`. */
export interface RungFidelity {
  readonly rung: number
  readonly iterations: number
  readonly of: number
}

export interface RungEntry {
  readonly id: number
  readonly score: number
  readonly invalid: boolean
}

/**
 * The results recorded at each rung and who was promoted from it. `record` returns the candidates
 * now eligible for promotion from that rung (top ⌊n/eta⌋, valid, not promoted yet), best first;
 * `markPromoted` is called for those the budget allows.
 */
export class RungTable {
  private readonly rungs: RungEntry[][]
  private readonly promoted: Set<number>[]

  constructor(private readonly ladder: Ladder) {
    this.rungs = Array.from({ length: ladder.top + 1 }, () => [])
    this.promoted = Array.from({ length: ladder.top + 1 }, () => new Set())
  }

  record(rung: number, entry: RungEntry): number[] {
    const at = this.rungs[rung]
    if (at === undefined) throw new Error(`fidelity: no rung ${rung}`)
    at.push(entry)
    if (rung >= this.ladder.top) return []
    const k = Math.floor(at.length / this.ladder.eta)
    return [...at]
      .sort((a, b) => b.score - a.score || a.id - b.id)
      .slice(0, k)
      .filter((e) => !e.invalid && !this.promoted[rung]!.has(e.id))
      .map((e) => e.id)
  }

  markPromoted(rung: number, id: number): void {
    this.promoted[rung]!.add(id)
  }

  /** Results per rung, in the order they were recorded. */
  entries(): ReadonlyArray<ReadonlyArray<RungEntry>> {
    return this.rungs
  }
}

/** Fitness order of the search's answer: higher rung first, then higher score at that rung, then lower id. */
export const byFitness = (
  a: { readonly id: number; readonly rung: number; readonly score: number },
  b: { readonly id: number; readonly rung: number; readonly score: number }
): number => b.rung - a.rung || b.score - a.score || a.id - b.id
