/**
 * `autoloss compare --task T --loss "<expr>" [--against "<expr>"] [--seeds 1,2,3] [--metric M]
 *   [--options JSON] [--workers N] [--json]`: proxy-train the loss and a reference (the task's
 * hand-designed baseline unless `--against` names another loss) from each seed on local workers,
 * and compare them seed by seed (`src/report/compare.ts`). A search picks its best loss by one
 * proxy run, so check it on seeds the search did not use. Exit: 0 done, 1 a training job failed,
 * 2 usage error (a bad expression names its column).
 */
import { Effect } from "effect"
import type { LossGraph } from "../../graph/types.ts"
import { compareRuns, formatComparison, type SeedRun } from "../../report/compare.ts"
import { runMain } from "../../workers/runMain.ts"
import { WorkerPool } from "../../workers/WorkerPool.ts"
import { parseFlags, UsageError, withUsage } from "../args.ts"
import { localPool, parseExpression, parsePositiveInt, parseSeeds, parseTaskOptions, trainOnPool } from "../pool-training.ts"

export const summary = "proxy-train a loss and the task's baseline (or another loss) on several seeds and compare them"

const USAGE = 'usage: autoloss compare --task T --loss "<expr>" [--against "<expr>"] [--seeds 1,2,3] [--metric M]\n' +
  "         [--options JSON] [--workers N] [--json]"

interface Parsed {
  readonly task: string
  readonly metric: string | null
  readonly loss: { readonly text: string; readonly graph: LossGraph }
  readonly against: { readonly text: string; readonly graph: LossGraph } | undefined
  readonly seeds: ReadonlyArray<number>
  readonly options: Readonly<Record<string, unknown>>
  readonly workers: number
  readonly json: boolean
}

const parse = (argv: ReadonlyArray<string>): Parsed => {
  const { values } = parseFlags({
    args: [...argv],
    strict: true,
    options: {
      task: { type: "string" }, loss: { type: "string" }, against: { type: "string" }, seeds: { type: "string", default: "1,2,3" },
      metric: { type: "string" }, options: { type: "string" }, workers: { type: "string", default: "2" },
      json: { type: "boolean", default: false }
    }
  })
  if (values.task === undefined) throw new UsageError("--task is required")
  if (values.loss === undefined) throw new UsageError("--loss is required")
  return {
    task: values.task,
    metric: values.metric ?? null,
    loss: { text: values.loss, graph: parseExpression("--loss", values.loss) },
    against: values.against === undefined ? undefined : { text: values.against, graph: parseExpression("--against", values.against) },
    seeds: parseSeeds(values.seeds), options: parseTaskOptions(values.options), workers: parsePositiveInt("--workers", values.workers), json: values.json
  }
}

const program = (p: Parsed) => Effect.gen(function* () {
  const pool = yield* WorkerPool
  const base = { task: p.task, metric: p.metric, options: p.options }
  const info = yield* pool.submit("task-info", base)
  const metric = String(info["metric"])
  const train = (side: "loss" | "reference", seed: number) => {
    const graph = side === "loss" ? p.loss.graph : p.against?.graph
    return trainOnPool({ ...base, seed, ...(graph === undefined ? {} : { loss: graph }) }).pipe(
      Effect.map(({ elapsedMs: _, ...run }): SeedRun => run),
      Effect.tap((r) => Effect.sync(() => {
        process.stderr.write(`autoloss compare: seed ${seed} ${side}: ${metric} ${r.metrics[metric]?.toFixed(4)}${r.invalid ? " (stopped: non-finite loss)" : ""}\n`)
      }))
    )
  }
  // Every training queued at once: the pool runs them on its workers as they free up.
  const [lossRuns, referenceRuns] = yield* Effect.all([
    Effect.forEach(p.seeds, (s) => train("loss", s), { concurrency: "unbounded" }),
    Effect.forEach(p.seeds, (s) => train("reference", s), { concurrency: "unbounded" })
  ], { concurrency: 2 })
  const comparison = compareRuns(metric, lossRuns, referenceRuns)
  const againstText = p.against?.text ?? `the ${p.task} baseline`
  if (p.json) {
    const { loss, against, ...rest } = comparison
    process.stdout.write(JSON.stringify({
      task: p.task, ...rest,
      loss: { text: p.loss.text, ...loss }, against: { text: p.against?.text ?? "baseline", ...against },
      runs: { loss: lossRuns, reference: referenceRuns }
    }, null, 2) + "\n")
  } else {
    process.stdout.write(formatComparison(comparison, p.loss.text, againstText) + "\n")
  }
}).pipe(Effect.provide(localPool(p.workers)))

export const run = (argv: ReadonlyArray<string>): Promise<number> => withUsage("compare", USAGE, async () => {
  const parsed = parse(argv)
  let failed = false
  const code = await runMain(program(parsed).pipe(
    Effect.catchAll((e) => Effect.sync(() => {
      failed = true
      process.stderr.write(`autoloss compare: ${(e as Error).message}\n`)
    }))
  ))
  return failed ? 1 : code
})
