/**
 * `autoloss train-loss --task T --loss "<expr>"`: proxy-train a fresh network with the loss and
 * evaluate every metric of the task, as one job on a one-worker pool.
 */
import { LOSS_FLAG, parseExpression, runTaskJob, TASK_FLAG, TASK_JOB_FLAGS } from "../task-job.ts"
import { defineVerb } from "../verb.ts"

export const { spec, summary, run } = defineVerb({
  name: "train-loss",
  summary: "proxy-train a network with one loss on a task and print its metrics",
  flags: { ...TASK_FLAG, ...LOSS_FLAG, ...TASK_JOB_FLAGS },
  description: `
--json prints {"metrics": {...}, "target", "invalid", "iterations", "elapsedMs"}; training stops at the
first non-finite loss (invalid, metrics 0). Budgets and data sizes are task options:
--option iterations=100 --option train_images=256 (README: task options).
Exit: 0 trained, 1 the job failed, 2 usage error (incl. a bad expression or an unknown task, metric or option).`,
  examples: [
    'autoloss train-loss --task seg --metric miou --loss "neg(mul(y, log(y_hat)))" --json',
    'autoloss train-loss --task seg --loss "neg(mul(y, log(y_hat)))" --option iterations=100 --device cuda:0'
  ]
}, async ({ values }, io) => runTaskJob("train-loss", values, { loss: parseExpression("--loss", values.loss) }, io))
