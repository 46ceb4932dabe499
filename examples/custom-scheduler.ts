/**
 * Writing your own scheduler: a hill climber that always mutates the best loss found so far.
 * It runs through the same engine as the built-in searches (static check, rejection screening,
 * equivalence reuse, durable store, resume); here with the fake evaluator, so it needs no workers:
 *
 *   npx tsx examples/custom-scheduler.ts [run-dir]
 *
 * A scheduler only decides *what* to try (`propose`), *whether* a screened candidate deserves a
 * proxy evaluation (`admit`) and learns from outcomes (`observe`). All randomness comes from the
 * injected Rng and the whole state goes into `snapshot()`, which is what makes runs reproducible
 * and resumable.
 */
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { Effect } from "effect"
import { offspring } from "../src/graph/mutate.ts"
import { randomLoss } from "../src/graph/random.ts"
import { Rng } from "../src/graph/rng.ts"
import { DENSE, type LossGraph } from "../src/graph/types.ts"
import { fromWire, toWire } from "../src/graph/wire.ts"
import { type EngineConfig, type SearchResult, runSearch } from "../src/search/engine.ts"
import { makeFakeEvaluator } from "../test/search/fake-evaluator.ts" // the tests' stand-in for workers
import {
  type BranchSpec,
  FULL_PIPELINE,
  type Outcome,
  type PopulationEntry,
  type Proposal,
  type ProposeContext,
  type Scheduler,
  type ScreenedEvent,
  passes,
  scoreFromJson,
  scoreToJson
} from "../src/search/scheduler.ts"
import { layer } from "../src/store/Store.ts"

interface Best {
  readonly id: number
  readonly graph: LossGraph
  readonly score: number
}

export class HillClimber implements Scheduler {
  readonly name = "hill-climber"
  readonly flags = FULL_PIPELINE
  private best: Best | undefined

  constructor(
    private readonly branches: BranchSpec,
    private rng: Rng
  ) {}

  propose(_ctx: ProposeContext): Proposal {
    if (this.best === undefined) {
      return { graph: randomLoss(this.branches, this.rng), provenance: { parentId: null, how: "random" } }
    }
    const { graph, how } = offspring(this.best.graph, this.rng)
    return { graph, provenance: { parentId: this.best.id, how } }
  }

  admit(event: ScreenedEvent): boolean {
    return passes(event.verdict)
  }

  observe(outcome: Outcome): void {
    if (this.best === undefined || outcome.score > this.best.score) {
      this.best = { id: outcome.id, graph: outcome.graph, score: outcome.score }
    }
  }

  population(): ReadonlyArray<PopulationEntry> {
    return this.best === undefined ? [] : [{ candidateId: this.best.id, score: this.best.score }]
  }

  snapshot(): unknown {
    const b = this.best
    return {
      scheduler: this.name,
      rng: this.rng.getState(),
      best: b === undefined ? null : { id: b.id, graph: toWire(b.graph), score: scoreToJson(b.score) }
    }
  }

  restore(state: unknown): void {
    const s = state as { rng: string; best: { id: number; graph: unknown; score: number | null } | null }
    this.rng = Rng.fromState(s.rng)
    this.best = s.best === null ? undefined : { id: s.best.id, graph: fromWire(s.best.graph), score: scoreFromJson(s.best.score, "best.score") }
  }
}

/** Runs the hill climber on a one-branch dense task with the fake evaluator, storing into `dir`. */
export const runExample = (dir: string, seed = 1, config: Partial<EngineConfig> = { budget: 20 }): Promise<SearchResult> =>
  Effect.runPromise(
    runSearch(new HillClimber([{ name: "loss", kind: DENSE }], new Rng(seed)), { config, run: { example: "hill-climber", seed } }).pipe(
      Effect.provide(layer(dir)),
      Effect.provide(makeFakeEvaluator().layer)
    )
  )

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const dir = process.argv[2] ?? mkdtempSync(join(tmpdir(), "autoloss-hill-"))
  const result = await runExample(dir)
  process.stdout.write(`${JSON.stringify(result, null, 2)}\nrun stored in ${dir}\n`)
}
