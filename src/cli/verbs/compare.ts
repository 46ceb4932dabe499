/**
 * `autoloss compare --task T --loss "<expr>"`: proxy-train the loss and a reference (the task's
 * hand-designed baseline unless `--against` names another loss) from each seed on local workers,
 * and compare them seed by seed (`src/report/compare.ts`).
 */
import { Effect } from "effect"
import type { LossGraph } from "../../graph/types.ts"
import { toWire } from "../../graph/wire.ts"
import { compareRuns, formatComparison, type SeedRun } from "../../report/compare.ts"
import { pairedT } from "../../report/verdict.ts"
import { decodeTrain, seededOptions } from "../../search/pool-evaluator.ts"
import type { WorkerPoolService } from "../../workers/WorkerPool.ts"
import { OPTION_FLAGS, parseJobOptions, parseSeedsFlag, parseWorkerDevices, WORKER_FLAGS } from "../job-flags.ts"
import { runWithPool } from "../pool-job.ts"
import { LOSS_FLAG, parseExpression, TASK_FLAG, TASK_JOB_FLAGS } from "../task-job.ts"
import { UsageError } from "../args.ts"
import { defineVerb, type VerbOutput } from "../verb.ts"

interface Parsed {
  readonly task: string
  readonly metric: string | null
  readonly loss: { readonly text: string; readonly graph: LossGraph }
  readonly against: { readonly text: string; readonly graph: LossGraph } | undefined
  readonly seeds: ReadonlyArray<number>
  readonly options: Readonly<Record<string, unknown>>
  /** Each seed also generates the task's data (`data_seed`), as the search's held-out and confirmation runs do. */
  readonly newData: boolean
  readonly json: boolean
}

const program = (p: Parsed, io: VerbOutput) => (pool: WorkerPoolService) => Effect.gen(function* () {
  const base = { task: p.task, metric: p.metric, options: p.options }
  const info = yield* pool.submit("task-info", base)
  const metric = String(info["metric"])
  const dataSeeded = p.newData && info["dataSeed"] !== null && info["dataSeed"] !== undefined
  if (p.newData && !dataSeeded) io.stderr(`autoloss compare: --new-data: task ${p.task}'s data has no data_seed option here; each seed changes initialisation and batch order only\n`)
  const train = (side: "loss" | "reference", seed: number) => {
    const graph = side === "loss" ? p.loss.graph : p.against?.graph
    // The options the search's held-out runs send (`seededOptions`), so a compare with --new-data
    // on a run's confirmation seeds repeats its confirmation exactly.
    const job = { ...base, seed, options: seededOptions(p.options, seed, { iterations: null, newData: dataSeeded }) }
    const sent = graph === undefined ? pool.submit("baseline", job) : pool.submit("train-loss", { ...job, loss: toWire(graph) })
    return sent.pipe(
      Effect.map((out): SeedRun => {
        const r = decodeTrain(out)
        return { seed, metrics: r.metrics, invalid: r.invalid }
      }),
      Effect.tap((r) => Effect.sync(() => {
        io.stderr(`autoloss compare: seed ${seed} ${side}: ${metric} ${r.metrics[metric]?.toFixed(4)}${r.invalid ? " (stopped: non-finite loss)" : ""}\n`)
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
    io.stdout(JSON.stringify({
      task: p.task, ...rest,
      // the paired one-sided t-test of the gain (null: one seed); beyond noise when t ≥ critical
      pairedTest: pairedT(comparison),
      loss: { text: p.loss.text, ...loss }, against: { text: p.against?.text ?? "baseline", ...against },
      runs: { loss: lossRuns, reference: referenceRuns }
    }, null, 2) + "\n")
  } else {
    io.stdout(formatComparison(comparison, p.loss.text, againstText) + "\n")
  }
})

export const { spec, summary, run } = defineVerb({
  name: "compare",
  summary: "proxy-train a loss and the task's baseline (or another loss) on several seeds and compare them",
  flags: {
    ...TASK_FLAG,
    ...LOSS_FLAG,
    against: { type: "string", value: '"<expr>"', help: "the reference loss", defaultText: "the task's hand-designed baseline" },
    seeds: { type: "string", default: "1,2,3", value: "S,S,...", help: "seeds to train both losses from (distinct non-negative integers)" },
    metric: TASK_JOB_FLAGS.metric,
    "new-data": { type: "boolean", default: false, help: "each seed also generates the task's data (data_seed = the seed), as the search's held-out and confirmation runs do" },
    ...WORKER_FLAGS,
    ...OPTION_FLAGS,
    json: { type: "boolean", default: false, help: "print {metric, seeds, wins, ties, losses, loss, against, pairedTest: {t, critical}, runs: {loss, reference}}" }
  },
  description: `
A search picks its best loss by one proxy run, so check it on seeds the search did not use. Every
training is queued at once; the pool runs them on its workers as they free up.
Exit: 0 done, 1 a training job failed, 2 usage error (a bad expression names its column; an unknown
task, metric or option).`,
  examples: [
    'autoloss compare --task seg --loss "neg(mul(y_hat, y))" --seeds 1,2,3,4,5 --workers 2',
    'autoloss compare --task seg --loss "neg(mul(y_hat, y))" --seeds 301,302,303 --new-data',
    'autoloss compare --task seg --loss "neg(mul(y_hat, y))" --against "neg(mul(y, log(y_hat)))" --option iterations=200 --json'
  ]
}, async ({ values }, io) => {
  const seeds = parseSeedsFlag("--seeds", values.seeds)
  const options = parseJobOptions(values)
  if (values["new-data"] && options["data_seed"] !== undefined) throw new UsageError("--new-data sets data_seed from each seed; drop --option data_seed or --new-data")
  const parsed: Parsed = {
    task: values.task,
    metric: values.metric ?? null,
    loss: { text: values.loss, graph: parseExpression("--loss", values.loss) },
    against: values.against === undefined ? undefined : { text: values.against, graph: parseExpression("--against", values.against) },
    seeds, options, newData: values["new-data"], json: values.json
  }
  return runWithPool("compare", parseWorkerDevices(values, 2), program(parsed, io), io)
})
