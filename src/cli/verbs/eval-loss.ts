/**
 * `autoloss eval-loss --task T --loss "<expr>"`: the loss-rejection protocol (B = 5 samples, 500
 * SGD steps on the predictions, pass iff g ≥ 0.6) on one loss, as one job on a one-worker pool.
 */
import type { LossGraph } from "../../graph/types.ts"
import { LOSS_FLAG, parseExpression, runTaskJob, TASK_FLAG, TASK_JOB_FLAGS } from "../task-job.ts"
import { defineVerb } from "../verb.ts"

export const { spec, summary, run } = defineVerb({
  name: "eval-loss",
  summary: "check one loss with the loss-rejection protocol on a task (seg, pose, det, ins, mmpose, mmseg)",
  flags: {
    ...TASK_FLAG,
    ...LOSS_FLAG,
    branch: {
      type: "string", multiple: true, value: "NAME",
      help: "check only this branch of a multi-branch task, the others' predictions at ground truth (paper App. A.2); --loss may then be that branch's expression alone",
      defaultText: "the whole loss"
    },
    ...TASK_JOB_FLAGS
  },
  description: `
--json prints {"passed", "score", "gradNorms": [B per branch], "fingerprint", "iterations", "invalid",
"elapsedMs", "branches": {name: {...}}}. The protocol's constants are options too
(--option rejection.samples=5, rejection.iterations=500, rejection.threshold=0.6: the paper's).
Exit: 0 the check ran (passed or not: see the output), 1 the job failed, 2 usage error (incl. an
expression that does not parse, naming its column, and an unknown task, metric or option).`,
  examples: [
    'autoloss eval-loss --task seg --loss "neg(mul(y, log(y_hat)))" --json',
    'autoloss eval-loss --task det --branch rcnn_cls --loss "neg(mul(y, log(y_hat)))"',
    'autoloss eval-loss --task seg --loss "neg(y_hat)" --option train_images=48 --option threads=1'
  ]
}, async ({ values }, io) => {
  const branches = values.branch
  // A bare expression (one branch, named "loss") is the expression of the one branch to check.
  const rename = (g: LossGraph): LossGraph =>
    branches?.length === 1 && g.branches.length === 1 && g.branches[0]!.name === "loss"
      ? { branches: [{ ...g.branches[0]!, name: branches[0]! }] }
      : g
  const loss = parseExpression("--loss", values.loss, rename)
  return runTaskJob("eval-loss", values, { loss, ...(branches === undefined ? {} : { branches }) }, io)
})
