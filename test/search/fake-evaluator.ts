/**
 * A deterministic stand-in for the worker pool (a test double; `examples/` uses it to run without workers): every result is
 * a pure function of a structural hash (a screened branch's, a trained candidate's), so identical
 * losses get identical results wherever and whenever they are evaluated; each branch passes with
 * probability `passRate` on its own, like the real per-branch protocol. Delays (in the Effect clock, so `TestClock` drives
 * them) depend on the hash *and* `timingSeed`: two runs with different timing seeds see results
 * complete in different orders but with equal values, which is what determinism tests need.
 *
 * Gradient signatures are drawn per *equivalence class* (the hash modulo `equivalenceClasses`), so
 * structurally different losses of one class are gradient-equivalent and exercise score reuse.
 */
import { Duration, Effect, Layer } from "effect"
import { hashBranch } from "../../src/graph/canonical.ts"
import { Rng } from "../../src/graph/rng.ts"
import {
  type BranchScreen,
  type Candidate,
  Evaluator,
  type EvaluatorService,
  type HeldOutJob,
  HeldOutTrainer,
  type HeldOutTrainerService,
  type ScreenResult,
  summariseBranches,
  type TrainResult
} from "../../src/search/evaluator.ts"
import type { RungFidelity } from "../../src/search/fidelity.ts"

export interface FakeEvaluatorOptions {
  /** Probability that a branch passes the rejection protocol. */
  readonly passRate?: number
  /** Probability that a proxy training ends with NaN/Inf. */
  readonly invalidRate?: number
  readonly equivalenceClasses?: number
  /** Rejection samples B. */
  readonly samples?: number
  /** Mean job durations (ms); each job takes a hash- and timingSeed-dependent 0.5–1.5 of it. */
  readonly screenMillis?: number
  readonly trainMillis?: number
  readonly timingSeed?: number
  /**
   * The target of a held-out training (`HeldOutTrainer`); default: a uniform value from the loss's
   * hash (the baseline's: a fixed hash) and the seed, unrelated to its proxy score.
   */
  readonly heldOut?: (job: HeldOutJob) => number
  /**
   * Like seg and pose, the fake caches each loss's training state: a promoted training reports
   * `resumedFrom` = the step its earlier training of that loss reached in this process (default
   * true; false: every rung starts over, as MMLab tasks do).
   */
  readonly continues?: boolean
}

export interface FakeCall {
  readonly kind: "screen" | "train" | "holdout"
  /** The candidate; -1 for the baseline (holdout calls). */
  readonly id: number
  readonly hash: string
  /** The branches a screening call was asked for. */
  readonly branches?: ReadonlyArray<string>
  /** Rung and iterations of a training with a fidelity (asha). */
  readonly rung?: number
  readonly iterations?: number
  /** Seed and split of a holdout call. */
  readonly seed?: number
  readonly split?: HeldOutJob["split"]
}

export interface FakeEvaluator extends EvaluatorService {
  readonly heldOut: HeldOutTrainerService
  /** Every call started, in order. */
  readonly calls: FakeCall[]
  /** Every call finished, in order. */
  readonly done: FakeCall[]
  /** Provides the `Evaluator` and the `HeldOutTrainer`. */
  readonly layer: Layer.Layer<Evaluator | HeldOutTrainer>
}

/** The hash the fake gives the task's baseline. */
const BASELINE_HASH = "ba5e11e0"

/** A uniform [0, 1) value derived from a hash and a salt. */
const uniform = (hash: string, salt: number): number => {
  const rng = new Rng((parseInt(hash.slice(0, 8), 16) ^ salt) >>> 0)
  return rng.float()
}

export const makeFakeEvaluator = (options: FakeEvaluatorOptions = {}): FakeEvaluator => {
  const o = {
    passRate: 0.3,
    invalidRate: 0.05,
    equivalenceClasses: 1_000_000,
    samples: 5,
    screenMillis: 0,
    trainMillis: 0,
    timingSeed: 0,
    continues: true,
    ...options
  }
  const trainedTo = new Map<string, number>()
  const calls: FakeCall[] = []
  const done: FakeCall[] = []
  /**
   * A job's duration. With a mean of 0 the job takes no clock time but yields to the scheduler 0–7
   * times, which still reorders completions (and costs nothing under `TestClock`, whose every
   * processed sleep is slow).
   */
  const delay = (hash: string, mean: number, salt: number) => {
    const u = uniform(hash, (salt ^ Math.imul(o.timingSeed + 1, 7919)) >>> 0)
    return mean > 0
      ? Effect.sleep(Duration.millis(Math.round(mean * (0.5 + u))))
      : Effect.forEach(Array.from({ length: Math.floor(8 * u) }), () => Effect.yieldNow(), { discard: true })
  }

  const signature = (hash: string): Pick<ScreenResult, "gradNorms" | "fingerprint"> => {
    const cls = parseInt(hash.slice(0, 12), 16) % o.equivalenceClasses
    const rng = new Rng(cls)
    const gradNorms = Array.from({ length: o.samples }, () => 0.01 + 10 * rng.float())
    const fingerprint = gradNorms.map((n) => Array.from({ length: 4 }, () => n * (2 * rng.float() - 1)))
    return { gradNorms, fingerprint }
  }

  const screenBranch = (hash: string): BranchScreen => {
    const passed = uniform(hash, 2) < o.passRate
    const score = passed ? 0.6 + 0.4 * uniform(hash, 3) : 0.6 * uniform(hash, 3)
    return { passed, score, invalid: false, ...signature(hash) }
  }

  const screen = (c: Candidate, names: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      calls.push({ kind: "screen", id: c.id, hash: c.hash, branches: names })
      yield* delay(c.hash, o.screenMillis, 1)
      done.push({ kind: "screen", id: c.id, hash: c.hash, branches: names })
      const branches: Record<string, BranchScreen> = {}
      for (const name of names) {
        const b = c.graph.branches.find((x) => x.name === name)
        if (b === undefined) return yield* Effect.die(new Error(`fake screen: candidate ${c.id} has no branch '${name}'`))
        branches[name] = screenBranch(hashBranch(b))
      }
      const summary = summariseBranches(names.map((n) => branches[n]!))
      return { ...summary, branches, workerId: "fake", attempt: 1 } satisfies ScreenResult
    })

  /**
   * The full proxy's score is a uniform value of the hash; a shorter training (`fidelity`) reaches
   * `full · fraction^speed`, with a per-loss learning speed in [0.2, 1], so rankings at low rungs
   * differ from those at the top (which equals the full proxy's).
   */
  const train = (c: Candidate, fidelity?: RungFidelity) =>
    Effect.gen(function* () {
      const call: FakeCall = fidelity === undefined
        ? { kind: "train", id: c.id, hash: c.hash }
        : { kind: "train", id: c.id, hash: c.hash, rung: fidelity.rung, iterations: fidelity.iterations }
      calls.push(call)
      yield* delay(c.hash, o.trainMillis, fidelity === undefined ? 4 : 4 + 11 * fidelity.rung)
      done.push(call)
      const invalid = uniform(c.hash, 5) < o.invalidRate
      const full = uniform(c.hash, 6)
      const target = invalid ? NaN : fidelity === undefined ? full : full * (fidelity.iterations / fidelity.of) ** (0.2 + 0.8 * uniform(c.hash, 9))
      const cached = o.continues && fidelity !== undefined ? trainedTo.get(c.hash) : undefined
      if (fidelity !== undefined) trainedTo.set(c.hash, fidelity.iterations)
      return {
        metrics: { miou: target }, target, invalid, workerId: "fake", attempt: 1,
        ...(cached !== undefined && cached < fidelity!.iterations ? { resumedFrom: cached } : {})
      } satisfies TrainResult
    })

  const heldOutTarget = o.heldOut ?? ((job: HeldOutJob) =>
    uniform(job.subject.kind === "baseline" ? BASELINE_HASH : job.subject.candidate.hash, (7 + Math.imul(job.seed + 1, 104729)) >>> 0))

  const heldOut: HeldOutTrainerService = {
    train: (job) =>
      Effect.gen(function* () {
        const c = job.subject.kind === "baseline" ? { id: -1, hash: BASELINE_HASH } : job.subject.candidate
        const call: FakeCall = { kind: "holdout", id: c.id, hash: c.hash, seed: job.seed, split: job.split }
        calls.push(call)
        yield* delay(c.hash, o.trainMillis, 8 + job.seed)
        done.push(call)
        const target = heldOutTarget(job)
        return { metrics: { miou: target }, target, invalid: false, workerId: "fake", attempt: 1 } satisfies TrainResult
      })
  }

  const service: EvaluatorService = { screen, train }
  return {
    ...service,
    heldOut,
    calls,
    done,
    layer: Layer.merge(Layer.succeed(Evaluator, Evaluator.of(service)), Layer.succeed(HeldOutTrainer, HeldOutTrainer.of(heldOut)))
  }
}
