/**
 * A small synthetic run written through the real `Store` API (no workers), with hand-picked times,
 * workers and scores so the report's numbers can be checked by hand. See the table below.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import Database from "better-sqlite3"
import { Effect } from "effect"
import { parseLoss } from "../../src/graph/syntax.ts"
import { hashLoss } from "../../src/graph/canonical.ts"
import { toWire } from "../../src/graph/wire.ts"
import { layer, Store } from "../../src/store/Store.ts"
import { DB_FILE } from "../../src/store/schema.ts"
import { DEFAULT_RUN, type RunConfig } from "../../src/search/run-config.ts"

export const CREATED_AT = 1_700_000_000_000
/** Candidate i is proposed at CREATED_AT + i · 10 s. */
export const PROPOSAL_SPACING_MS = 10_000

type Fate =
  | { kind: "static" }
  | { kind: "rejected" }
  | { kind: "discarded" }
  | { kind: "abandoned" }
  | { kind: "trained"; score: number; invalid?: boolean; trainMs: number; trainWorker: string }
  | { kind: "reused"; from: number; reuse: "duplicate" | "equivalent" }

interface Spec {
  readonly text: string
  readonly parent: number | null
  readonly how: unknown
  readonly fate: Fate
  /** Screening worker (w1: 100 ms, w2: 300 ms); absent: no own screening job. */
  readonly screen?: "w1" | "w2"
  readonly duplicateOf?: number
}

const mutate = (...mutations: unknown[]) => [{ branch: "loss", kind: "mutate", mutations }]

/** id = index. Admission order = id order among trained/reused ones. */
export const SPECS: ReadonlyArray<Spec> = [
  { text: "neg(mul(y, log(y_hat)))", parent: null, how: "random", screen: "w1", fate: { kind: "trained", score: 0.3, trainMs: 1000, trainWorker: "w1" } },
  { text: "abs(y_hat)", parent: null, how: "random", fate: { kind: "static" } },
  { text: "add(y_hat, y)", parent: null, how: "random", screen: "w2", fate: { kind: "rejected" } },
  { text: "neg(mul(y, log(y_hat)))", parent: 0, how: [{ branch: "loss", kind: "copy" }], duplicateOf: 0, fate: { kind: "reused", from: 0, reuse: "duplicate" } },
  {
    text: "square(add(y_hat, neg(y)))", parent: 0, how: [{ branch: "loss", kind: "reinit" }], screen: "w2",
    fate: { kind: "trained", score: 0.4, trainMs: 2000, trainWorker: "w1" }
  },
  {
    text: "mul(square(add(y_hat, neg(y))), one)", parent: 4,
    how: mutate({ kind: "insertion", path: [], op: "mul", slot: 0, input: "one" }, { kind: "replacement", path: [0], from: "abs", to: "square", kept: [0], added: [] }),
    screen: "w1", fate: { kind: "reused", from: 4, reuse: "equivalent" }
  },
  { text: "exp(add(y_hat, neg(y)))", parent: 4, how: mutate({ kind: "deletion", path: [0], op: "tanh", kept: 0 }), screen: "w1", fate: { kind: "trained", score: -Infinity, invalid: true, trainMs: 500, trainWorker: "w2" } },
  { text: "neg(log(y_hat))", parent: null, how: "random", screen: "w2", fate: { kind: "discarded" } },
  { text: "tanh(y_hat)", parent: null, how: "random", fate: { kind: "abandoned" } },
  { text: "neg(mul(y, y_hat))", parent: null, how: "random", screen: "w1", fate: { kind: "trained", score: 0.1, trainMs: 700, trainWorker: "w2" } },
  { text: "neg(mul(abs(y), sqrt(y_hat)))", parent: null, how: "random", screen: "w2", fate: { kind: "trained", score: 0.5, trainMs: 3000, trainWorker: "w1" } },
  { text: "exp(add(y_hat, neg(y)))", parent: null, how: "random", screen: "w1", fate: { kind: "trained", score: 0.2, trainMs: 900, trainWorker: "w2" } },
  { text: "neg(mul(y, log(add(y_hat, one))))", parent: 5, how: mutate({ kind: "insertion", path: [0, 1], op: "add", slot: 0, input: "one" }), screen: "w2", fate: { kind: "trained", score: 0.35, trainMs: 1000, trainWorker: "w1" } }
]

export const SCREEN_MS = { w1: 100, w2: 300 } as const

/** The counters the engine would have written for this history. */
export const COUNTERS = {
  proposed: 13, staticRejected: 1, duplicateVerdicts: 1, screened: 10, rejected: 1, passed: 10, admitted: 9,
  discarded: 1, trained: 7, duplicateReuses: 1, equivalentReuses: 1, invalid: 1, observed: 9
}

export const CONFIG: RunConfig = { ...DEFAULT_RUN, task: "seg", metric: "miou", budget: 7 }

export const tempDir = (t: { teardown(f: () => void): unknown }, prefix = "autoloss-report-"): string => {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Adds candidate `id` of SPECS as a proposal only (for live-update tests). */
export const proposalRow = (id: number, text: string, proposedAt: number) => {
  const graph = parseLoss(text)
  return { id, text, wire: toWire(graph), hash: hashLoss(graph), parentId: null, how: "random", proposedAt, duplicateOf: null }
}

export const writeSyntheticRun = async (dir: string, specs: ReadonlyArray<Spec> = SPECS): Promise<void> => {
  writeFileSync(join(dir, "run.json"), JSON.stringify(CONFIG, null, 2) + "\n")
  const program = Effect.gen(function* () {
    const s = yield* Store
    yield* s.openRun({ synthetic: true })
    let admission = 0
    for (const [id, spec] of specs.entries()) {
      const row = proposalRow(id, spec.text, CREATED_AT + id * PROPOSAL_SPACING_MS)
      yield* s.putProposal({ ...row, parentId: spec.parent, how: spec.how, duplicateOf: spec.duplicateOf ?? null })
      const f = spec.fate
      if (spec.screen !== undefined) {
        const passed = f.kind !== "rejected"
        const branch = { passed, score: passed ? 0.8 : 0.1, gradNorms: [1, 2], fingerprint: [[0, 0, 0, 0]], invalid: false }
        yield* s.putScreenResult(id, {
          result: { ...branch, branches: { loss: branch }, workerId: spec.screen },
          elapsedMs: SCREEN_MS[spec.screen]
        })
      }
      const verdict = { id, staticBranch: null, staticReason: null, equivalenceKey: null, admissionIndex: null, rejection: null }
      switch (f.kind) {
        case "static":
          yield* s.commitVerdict({ ...verdict, status: "static_rejected", staticBranch: "loss", staticReason: "ignores y_hat" }, {})
          break
        case "rejected":
          yield* s.commitVerdict({ ...verdict, status: "rejected" }, {})
          break
        case "discarded":
          yield* s.commitVerdict({ ...verdict, status: "discarded" }, {})
          break
        case "abandoned":
          break
        case "trained":
        case "reused": {
          yield* s.commitVerdict({ ...verdict, status: "admitted", admissionIndex: admission++ }, {})
          if (f.kind === "trained") {
            yield* s.putTrainResult(id, {
              result: { metrics: { miou: f.score, gacc: 0.9 }, target: f.invalid ? NaN : f.score, invalid: f.invalid ?? false, workerId: f.trainWorker },
              elapsedMs: f.trainMs
            })
          }
          const score = f.kind === "trained" ? f.score : (specs[f.from]!.fate as { score: number }).score
          yield* s.commitOutcome(
            { id, score, reusedFrom: f.kind === "reused" ? f.from : null, reuseKind: f.kind === "reused" ? f.reuse : null },
            { observations: admission, scheduler: {}, engine: {} },
            [{ candidateId: id, score }],
            {}
          )
          break
        }
      }
    }
    yield* s.markAbandoned(0, COUNTERS)
  })
  await Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(layer(dir))))
  // The Store stamps the run with the real clock; pin it so times are hand-computable.
  const db = new Database(join(dir, DB_FILE))
  db.prepare("UPDATE run SET created_at = ?").run(CREATED_AT)
  db.close()
}

/**
 * A finished held-out selection on top of the synthetic run: finalists 10 (proxy 0.5) and 4 (0.4)
 * on seeds 101 and 102. Held out, 4 wins (0.33, 0.35: mean 0.34) over 10 (0.28, 0.30) and the
 * baseline (0.30, 0.32); the baseline scores 0.31 on the search's seed.
 */
export const SELECTION = { chosen: 4, finalists: [10, 4], seeds: [101, 102], baselineProxy: 0.31 } as const

export const writeSelection = async (
  dir: string,
  /** Confirmation trainings: [seed, the chosen loss's score, the baseline's]; none by default (a run without confirmation). */
  confirm: ReadonlyArray<readonly [number, number, number]> = [],
  /** Candidates the selection set aside as gradient-equivalent to the baseline; none by default. */
  setAside: ReadonlyArray<{ readonly id: number; readonly score: number }> = []
): Promise<void> => {
  const held: ReadonlyArray<[number | "baseline", number, number]> = [
    ["baseline", 101, 0.30], [10, 101, 0.28], [4, 101, 0.33],
    ["baseline", 102, 0.32], [10, 102, 0.30], [4, 102, 0.35]
  ]
  const result = (miou: number) => ({ result: { metrics: { miou, gacc: 0.9 }, target: miou, invalid: false, workerId: "w1" }, elapsedMs: 1000 })
  const program = Effect.gen(function* () {
    const s = yield* Store
    yield* s.startSelection({
      settings: { top: 2, seeds: [...SELECTION.seeds], iterations: null, ...(confirm.length > 0 ? { confirmSeeds: confirm.map(([seed]) => seed) } : {}) },
      metric: "miou",
      seeds: [...SELECTION.seeds],
      confirmSeeds: confirm.map(([seed]) => seed),
      baselineKey: setAside.length === 0 ? null : "d:fixture",
      setAside,
      finalists: [{ id: 10, score: 0.5 }, { id: 4, score: 0.4 }]
    })
    for (const [subject, seed, miou] of held) yield* s.putHoldoutRun({ subject, seed, split: "held-out" }, null, result(miou))
    yield* s.putHoldoutRun({ subject: "baseline", seed: 0, split: "proxy" }, null, result(SELECTION.baselineProxy))
    for (const [seed, chosen, baseline] of confirm) {
      yield* s.putHoldoutRun({ subject: "baseline", seed, split: "held-out" }, null, result(baseline))
      yield* s.putHoldoutRun({ subject: SELECTION.chosen, seed, split: "held-out" }, null, result(chosen))
    }
    yield* s.completeSelection(SELECTION.chosen)
  })
  await Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(layer(dir))))
}
