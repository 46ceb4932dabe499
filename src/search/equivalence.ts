/**
 * Gradient-equivalence keys (paper §3.3): two losses whose gradients w.r.t. the predictions agree
 * on the B rejection samples are treated as the same loss, and the later one reuses the earlier's
 * proxy score instead of being trained.
 *
 * - `paper`: the B norms ‖∂L/∂ŷ_b‖₂, each rounded to two significant digits, joined. Blind to
 *   direction: cross-entropy and its negation (which ascends instead of descends) get one key.
 * - `directional` (default): the norms plus, per sample, the gradient projected on a few fixed
 *   random unit directions (the worker sends them as `fingerprint`, B × 4), each rounded to sign
 *   and two significant digits. A flipped or rotated gradient changes the key.
 *
 * Multi-branch losses: the worker concatenates branches (branch-major), the key is agnostic to the
 * length. Keys carry their mode as a prefix, so keys of different modes never collide.
 */

export type EquivalenceMode = "paper" | "directional"

export const DEFAULT_EQUIVALENCE_MODE: EquivalenceMode = "directional"

/**
 * A projection smaller than this fraction of its sample's gradient norm is float noise around an
 * orthogonal direction (|⟨g, d⟩| ≤ ‖g‖ for a unit d), and is keyed as 0 so noise cannot split keys.
 */
export const PROJECTION_ZERO_RTOL = 1e-9

export interface GradientSignature {
  /** ‖∂L/∂ŷ_b‖₂ per rejection sample. */
  readonly gradNorms: ReadonlyArray<number>
  /** ⟨∂L/∂ŷ_b, d_k⟩ for fixed random unit directions d_k, one row per sample. */
  readonly fingerprint: ReadonlyArray<ReadonlyArray<number>>
}

export class EquivalenceError extends Error {
  override readonly name = "EquivalenceError"
}

/**
 * `x` rounded to two significant digits, as text: "1.2e+3", "-4.0e-7", "0", "nan", "inf", "-inf".
 * `toExponential` is specified exactly by ECMA-262 (ties go to the larger n), so keys are stable
 * across machines.
 */
export const twoSignificant = (x: number): string => {
  if (Number.isNaN(x)) return "nan"
  if (x === Infinity) return "inf"
  if (x === -Infinity) return "-inf"
  if (x === 0) return "0" // also −0
  return x.toExponential(1)
}

export const paperKey = (s: GradientSignature): string => `p:${s.gradNorms.map(twoSignificant).join(",")}`

export const directionalKey = (s: GradientSignature): string => {
  if (s.fingerprint.length !== s.gradNorms.length) {
    throw new EquivalenceError(
      `fingerprint has ${s.fingerprint.length} rows but there are ${s.gradNorms.length} gradient norms (want one row per sample)`
    )
  }
  const samples = s.gradNorms.map((norm, b) => {
    const row = s.fingerprint[b] ?? []
    const projections = row.map((p) =>
      Number.isFinite(norm) && Math.abs(p) <= PROJECTION_ZERO_RTOL * Math.abs(norm) ? "0" : twoSignificant(p)
    )
    return `${twoSignificant(norm)}/${projections.join(",")}`
  })
  return `d:${samples.join(";")}`
}

export const equivalenceKey = (s: GradientSignature, mode: EquivalenceMode = DEFAULT_EQUIVALENCE_MODE): string => {
  switch (mode) {
    case "paper":
      return paperKey(s)
    case "directional":
      return directionalKey(s)
  }
}
