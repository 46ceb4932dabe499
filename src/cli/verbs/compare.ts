/**
 * `autoloss compare --task T --loss "<expr>" [--against "<expr>"] [--seeds 1,2,3] [--metric M]
 *   [--options JSON] [--workers N] [--json]`: proxy-train the loss and a reference (the task's
 * hand-designed baseline unless `--against` names another loss) from each seed on local workers,
 * and compare them seed by seed (`src/report/compare.ts`). A search picks its best loss by one
 * proxy run, so check it on seeds the search did not use. Exit: 0 done, 1 a training job failed,
 * 2 usage error (a bad expression names its column).
 */
import { Effect } from "effect"
import { GraphSyntaxError, parseLoss } from "../../graph/syntax.ts"
import type { LossGraph } from "../../graph/types.ts"
import { GraphValidationError, validateLoss } from "../../graph/validate.ts"
import { toWire } from "../../graph/wire.ts"
import { compareRuns, formatComparison, type SeedRun } from "../../report/compare.ts"
import { decodeTrain } from "../../search/pool-evaluator.ts"
import { runMain } from "../../workers/runMain.ts"
import { layer, WorkerPool } from "../../workers/WorkerPool.ts"
import { parseFlags, pointAt, UsageError, withUsage } from "../args.ts"

export const summary = "proxy-train a loss and the task's baseline (or another loss) on several seeds and compare them"

const USAGE = 'usage: autoloss compare --task T --loss "<expr>" [--against "<expr>"] [--seeds 1,2,3] [--metric M]\n' +
  "         [--options JSON] [--workers N] [--json]"

const parseExpression = (flag: string, text: string): LossGraph => {
  try {
    const g = parseLoss(text)
    validateLoss(g)
    return g
  } catch (e) {
    if (e instanceof GraphSyntaxError) {
      throw new UsageError(`${flag}: ${e.message}${pointAt(text, e.column)}`)
    }
    if (e instanceof GraphValidationError) throw new UsageError(`${flag}: ${e.message}`)
    throw e
  }
}

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
  if (!/^\d+(,\d+)*$/.test(values.seeds)) throw new UsageError(`--seeds wants comma-separated non-negative integers, got '${values.seeds}'`)
  const seeds = values.seeds.split(",").map(Number)
  if (new Set(seeds).size !== seeds.length) throw new UsageError(`--seeds repeats a seed: '${values.seeds}'`)
  if (!/^[1-9]\d*$/.test(values.workers)) throw new UsageError(`--workers wants a positive integer, got '${values.workers}'`)
  let options: Record<string, unknown> = {}
  if (values.options !== undefined) {
    try {
      options = JSON.parse(values.options) as Record<string, unknown>
    } catch (e) {
      throw new UsageError(`--options is not JSON: ${(e as Error).message}`)
    }
    if (typeof options !== "object" || options === null || Array.isArray(options)) throw new UsageError("--options must be a JSON object")
  }
  return {
    task: values.task,
    metric: values.metric ?? null,
    loss: { text: values.loss, graph: parseExpression("--loss", values.loss) },
    against: values.against === undefined ? undefined : { text: values.against, graph: parseExpression("--against", values.against) },
    seeds, options, workers: Number(values.workers), json: values.json
  }
}

const program = (p: Parsed) => Effect.gen(function* () {
  const pool = yield* WorkerPool
  const base = { task: p.task, metric: p.metric, options: p.options }
  const info = yield* pool.submit("task-info", base)
  const metric = String(info["metric"])
  const train = (side: "loss" | "reference", seed: number) => {
    const graph = side === "loss" ? p.loss.graph : p.against?.graph
    const job = graph === undefined ? pool.submit("baseline", { ...base, seed }) : pool.submit("train-loss", { ...base, seed, loss: toWire(graph) })
    return job.pipe(
      Effect.map((out): SeedRun => {
        const r = decodeTrain(out)
        return { seed, metrics: r.metrics, invalid: r.invalid }
      }),
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
}).pipe(Effect.provide(layer({ local: { devices: Array.from({ length: p.workers }, () => "cpu") } })))

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
