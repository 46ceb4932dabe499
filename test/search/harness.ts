/** Shared helpers of the engine tests: temp run dirs, running under TestClock, comparable rows. */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Fiber, Layer, Option, TestClock, TestContext } from "effect"
import { Rng } from "../../src/graph/rng.ts"
import { BOX, DENSE } from "../../src/graph/types.ts"
import { AgingEvolution } from "../../src/search/aging-evolution.ts"
import { type EngineConfig, type SearchResult, runSearch } from "../../src/search/engine.ts"
import { Evaluator, type EvaluatorService } from "../../src/search/evaluator.ts"
import type { Scheduler } from "../../src/search/scheduler.ts"
import { type CandidateRow, Store, layer } from "../../src/store/Store.ts"

export const BRANCHES = [{ name: "loss", kind: DENSE }]

export const SMALL: Partial<EngineConfig> = { budget: 16, screenWindow: 6, trainConcurrency: 3, trainLag: 3 }

export const evolution = (seed: number) =>
  new AgingEvolution(BRANCHES, new Rng(seed), { initialPopulation: 5, populationSize: 12 })

/** Faster R-CNN's four branches (paper App. A.2), screened and redrawn one by one. */
export const DET_BRANCHES = [
  { name: "rpn_cls", kind: DENSE },
  { name: "rpn_reg", kind: BOX },
  { name: "rcnn_cls", kind: DENSE },
  { name: "rcnn_reg", kind: BOX }
]

export const detEvolution = (seed: number) =>
  new AgingEvolution(DET_BRANCHES, new Rng(seed), { initialPopulation: 5, populationSize: 12 })

export const tempDir = (t: { teardown(f: () => void): unknown }): string => {
  const dir = mkdtempSync(join(tmpdir(), "autoloss-engine-"))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const provide = (dir: string, evaluator: EvaluatorService) =>
  Effect.provide(Layer.merge(layer(dir), Layer.succeed(Evaluator, Evaluator.of(evaluator))))

/** Runs a search on the live clock. */
export const run = (dir: string, scheduler: Scheduler, evaluator: EvaluatorService, config: Partial<EngineConfig> = SMALL) =>
  Effect.runPromise(runSearch(scheduler, { config, run: { test: true } }).pipe(provide(dir, evaluator)))

/** Runs a search under `TestClock`, advancing it a second at a time until the search ends. */
export const runOnTestClock = (dir: string, scheduler: Scheduler, evaluator: EvaluatorService, config: Partial<EngineConfig> = SMALL) =>
  Effect.runPromise(
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(runSearch(scheduler, { config, run: { test: true } }))
      for (;;) {
        const done = yield* Fiber.poll(fiber)
        if (Option.isSome(done)) return yield* done.value
        yield* TestClock.adjust("1 second")
      }
    }).pipe(provide(dir, evaluator), Effect.provide(TestContext.TestContext))
  ) as Promise<SearchResult>

/** The store's view of a finished run: candidates, population, counters, checkpoint. */
export const readStore = (dir: string) =>
  Effect.runPromise(
    Effect.gen(function* () {
      const s = yield* Store
      return { rows: yield* s.candidates(), population: yield* s.population(), counters: yield* s.counters(), checkpoint: yield* s.checkpoint() }
    }).pipe(Effect.provide(layer(dir)))
  )

/**
 * What must be equal between two runs with the same seed: everything except screen results of
 * abandoned candidates (whether a screen finished before the run ended is a matter of timing).
 */
export const comparable = (rows: ReadonlyArray<CandidateRow>) =>
  rows.map((r) => (r.status === "abandoned" ? { ...r, rejectionPassed: null, rejectionScore: null } : r))
