/**
 * A seeded PRNG that gives the same stream on every machine: PCG32 (O'Neill, "PCG: A family of
 * simple fast space-efficient statistically good algorithms for random number generation", 2014;
 * `pcg32_random_r` / `pcg32_srandom_r` / `pcg32_boundedrand_r` of pcg-c-basic).
 *
 * The 64-bit state is held as two uint32 halves so that every step is exact integer arithmetic in
 * doubles and `Math.imul` (no BigInt, no Math.random). `new Rng(42)` reproduces the published
 * `pcg32-demo` output (initstate 42, initseq 54): 0xa15c02b7, 0x7b47f409, 0xba1d3330, ...
 */

/** The stream selector every `new Rng(seed)` uses (the demo's `initseq`). */
const DEFAULT_SEQUENCE = 54

// 6364136223846793005 = 0x5851f42d_4c957f2d, the PCG 64-bit LCG multiplier.
const MUL_HI = 0x5851f42d
const MUL_LO = 0x4c957f2d

const TWO_POW_32 = 0x1_0000_0000

const STATE_PATTERN = /^pcg32:([0-9a-f]{16}):([0-9a-f]{16})$/

/** Low and high 32 bits of the full 64-bit product of two uint32 (16-bit limbs keep it exact). */
const mulWide = (a: number, b: number): [hi: number, lo: number] => {
  const a0 = a & 0xffff
  const a1 = a >>> 16
  const b0 = b & 0xffff
  const b1 = b >>> 16
  const p00 = a0 * b0
  const p01 = a0 * b1
  const p10 = a1 * b0
  const p11 = a1 * b1
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff)
  const lo = (((mid & 0xffff) << 16) | (p00 & 0xffff)) >>> 0
  const hi = (p11 + (p01 >>> 16) + (p10 >>> 16) + Math.floor(mid / 0x10000)) >>> 0
  return [hi, lo]
}

const hex8 = (x: number): string => x.toString(16).padStart(8, "0")

export class Rng {
  private stateHi = 0
  private stateLo = 0
  private incHi = 0
  private incLo = 1

  /** `seed`: an integer in [0, 2^53). Same seed, same stream, on every platform. */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`Rng seed must be an integer in [0, 2^53), got ${seed}`)
    }
    // inc = (initseq << 1) | 1; state = 0; step; state += initstate; step.
    this.incHi = Math.floor(DEFAULT_SEQUENCE / 0x8000_0000) >>> 0
    this.incLo = ((DEFAULT_SEQUENCE << 1) | 1) >>> 0
    this.step()
    this.add(Math.floor(seed / TWO_POW_32), seed % TWO_POW_32)
    this.step()
  }

  /** Next uniform uint32 (pcg32 XSH-RR output of the pre-step state). */
  uint32(): number {
    const hi = this.stateHi
    const lo = this.stateLo
    this.step()
    // xorshifted = ((old >> 18) ^ old) >> 27, truncated to 32 bits; rot = old >> 59.
    const xHi = hi ^ (hi >>> 18)
    const xLo = lo ^ ((lo >>> 18) | (hi << 14))
    const xorshifted = ((xLo >>> 27) | (xHi << 5)) >>> 0
    const rot = hi >>> 27
    return ((xorshifted >>> rot) | (xorshifted << (-rot & 31))) >>> 0
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  float(): number {
    return this.uint32() / TWO_POW_32
  }

  /** Uniform integer in [0, n) without modulo bias (pcg32_boundedrand_r); 1 ≤ n ≤ 2^32. */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_POW_32) {
      throw new RangeError(`Rng.int bound must be an integer in [1, 2^32], got ${n}`)
    }
    // Reject the lowest (2^32 mod n) values so every residue is equally likely.
    const threshold = (TWO_POW_32 - n) % n
    for (;;) {
      const r = this.uint32()
      if (r >= threshold) return r % n
    }
  }

  /** A uniformly chosen element; throws on an empty array. */
  pick<T>(arr: ReadonlyArray<T>): T {
    if (arr.length === 0) throw new RangeError("Rng.pick from an empty array")
    return arr[this.int(arr.length)] as T
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.float() < p
  }

  /** The full generator state (state and stream) as text; `Rng.fromState` resumes it exactly. */
  getState(): string {
    return `pcg32:${hex8(this.stateHi)}${hex8(this.stateLo)}:${hex8(this.incHi)}${hex8(this.incLo)}`
  }

  static fromState(s: string): Rng {
    const m = STATE_PATTERN.exec(s)
    if (m === null) throw new RangeError(`not an Rng state (want pcg32:<16 hex>:<16 hex>): '${s}'`)
    const [state, inc] = [m[1] as string, m[2] as string]
    const incLo = parseInt(inc.slice(8), 16)
    if ((incLo & 1) === 0) throw new RangeError(`Rng state has an even increment: '${s}'`)
    const rng = new Rng(0)
    rng.stateHi = parseInt(state.slice(0, 8), 16)
    rng.stateLo = parseInt(state.slice(8), 16)
    rng.incHi = parseInt(inc.slice(0, 8), 16)
    rng.incLo = incLo
    return rng
  }

  /** state = state · MUL + inc (mod 2^64). */
  private step(): void {
    const [hi, lo] = mulWide(this.stateLo, MUL_LO)
    this.stateHi = (hi + Math.imul(this.stateLo, MUL_HI) + Math.imul(this.stateHi, MUL_LO)) >>> 0
    this.stateLo = lo
    this.add(this.incHi, this.incLo)
  }

  private add(hi: number, lo: number): void {
    const sumLo = this.stateLo + lo
    this.stateLo = sumLo >>> 0
    this.stateHi = (this.stateHi + hi + (sumLo >= TWO_POW_32 ? 1 : 0)) >>> 0
  }
}
