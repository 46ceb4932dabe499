/**
 * `autoloss baseline --task T`: proxy-train with the task's hand-designed loss and print its
 * metrics, the reference a searched loss has to beat. Output as `autoloss train-loss`.
 */
import { runTaskJob, TASK_FLAG, TASK_JOB_FLAGS } from "../task-job.ts"
import { defineVerb } from "../verb.ts"

export const { spec, summary, run } = defineVerb({
  name: "baseline",
  summary: "proxy-train with the task's hand-designed loss and print its metrics",
  flags: { ...TASK_FLAG, ...TASK_JOB_FLAGS },
  description: `
The baselines: seg cross-entropy, pose heatmap MSE, det/ins/mmpose/mmseg the config's own losses.
Output as train-loss. Exit: 0 trained, 1 the job failed, 2 usage error.`,
  examples: ["autoloss baseline --task seg --json", "autoloss baseline --task pose --option iterations=200"]
}, async ({ values }, io) => runTaskJob("baseline", values, {}, io))
