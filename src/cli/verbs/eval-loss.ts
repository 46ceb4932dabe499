/**
 * `autoloss eval-loss --task seg --metric miou --loss "<expr>" [--branch NAME] [--seed S] [--options JSON] [--json]`:
 * run the loss-rejection protocol (B = 5 samples, 500 SGD steps on the predictions, pass iff g ≥ 0.6)
 * on one loss. With --json prints
 * `{"passed","score","gradNorms":[B per branch],"iterations","invalid","elapsedMs","branches":{name: {...}}}`.
 * `--branch NAME` checks one branch of a multi-branch task (the others' predictions at ground
 * truth, paper App. A.2); `--loss` is then that branch's expression alone (or a multi-branch loss
 * that has it).
 *
 * The expression is parsed and validated here (exit 1 with the column on a syntax error); the job
 * itself runs in `python -m autoloss_worker.cli` (exit 2 on an unknown task, metric or option).
 * Until the worker pool routes these jobs, `train-loss` and `baseline` share this module's runner.
 */
import { parseArgs } from "node:util"
import { execa } from "execa"
import { GraphSyntaxError, parseLoss } from "../../graph/syntax.ts"
import { GraphValidationError, validateLoss } from "../../graph/validate.ts"
import { encodeLoss } from "../../graph/wire.ts"
import { firstSentence, pointAt, verbPython as python } from "../args.ts"

export const summary = "check one loss with the loss-rejection protocol on a task (seg, pose, det, ins, mmpose, mmseg)"

export type TaskJob = "eval-loss" | "train-loss" | "baseline"

const usageOf = (job: TaskJob): string =>
  job === "baseline"
    ? "usage: autoloss baseline --task <seg|pose|det|ins|mmpose|mmseg> [--metric M] [--seed S] [--options JSON] [--json]"
    : `usage: autoloss ${job} --task <seg|pose|det|ins|mmpose|mmseg> --loss "<expr>"${job === "eval-loss" ? " [--branch NAME]" : ""} [--metric M] [--seed S] [--options JSON] [--json]`


/** The loss as base64 msgpack wire form, or the exit code after reporting why it is not a loss. */
const encodeExpression = (job: TaskJob, text: string, branch: string | undefined): string | number => {
  try {
    let g = parseLoss(text)
    // A bare expression (one branch, named "loss") is the expression of the branch to check.
    if (branch !== undefined && g.branches.length === 1 && g.branches[0]!.name === "loss") {
      g = { branches: [{ ...g.branches[0]!, name: branch }] }
    }
    validateLoss(g)
    return Buffer.from(encodeLoss(g)).toString("base64")
  } catch (e) {
    if (e instanceof GraphSyntaxError) {
      process.stderr.write(`autoloss ${job}: ${e.message} (expected ${e.expected})${pointAt(text, e.column)}\n`)
      return 1
    }
    if (e instanceof GraphValidationError) {
      process.stderr.write(`autoloss ${job}: ${e.message}\n`)
      return 1
    }
    throw e
  }
}

/** Parse the verb's flags, then run the job in Python and relay its output and exit code. */
export const runTaskJob = async (job: TaskJob, argv: ReadonlyArray<string>): Promise<number> => {
  const usage = usageOf(job)
  let values
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        task: { type: "string" },
        metric: { type: "string" },
        loss: { type: "string" },
        branch: { type: "string" },
        seed: { type: "string", default: "0" },
        options: { type: "string" },
        json: { type: "boolean", default: false }
      },
      strict: true
    }).values
  } catch (e) {
    process.stderr.write(`autoloss ${job}: ${firstSentence((e as Error).message)}\n${usage}\n`)
    return 2
  }
  const fail = (message: string): number => {
    process.stderr.write(`autoloss ${job}: ${message}\n${usage}\n`)
    return 2
  }
  if (values.task === undefined) return fail("--task is required")
  if (!/^\d+$/.test(values.seed)) return fail(`--seed must be a non-negative integer, got '${values.seed}'`)
  const args = ["-u", "-m", "autoloss_worker.cli", job, "--task", values.task, "--seed", values.seed]
  if (values.metric !== undefined) args.push("--metric", values.metric)
  if (values.options !== undefined) args.push("--options", values.options)
  if (values.json) args.push("--json")
  if (values.branch !== undefined) {
    if (job !== "eval-loss") return fail(`--branch is for eval-loss: ${job} trains with every branch`)
    args.push("--branch", values.branch)
  }
  if (job === "baseline") {
    if (values.loss !== undefined) return fail("baseline takes no --loss: it trains with the task's own loss")
  } else {
    if (values.loss === undefined) return fail("--loss is required")
    const wire = encodeExpression(job, values.loss, values.branch)
    if (typeof wire === "number") return wire
    args.push("--loss-wire-b64", wire)
  }
  const child = await execa(python(), args, { reject: false, stdin: "ignore" })
  if (child.stdout) process.stdout.write(child.stdout + "\n")
  if (child.stderr) process.stderr.write(child.stderr.replace(/^error: /m, `autoloss ${job}: `) + "\n")
  if (child.exitCode === undefined) {
    process.stderr.write(`autoloss ${job}: could not run ${python()}: ${child.shortMessage}\n`)
    return 1
  }
  return child.exitCode
}

export const run = (argv: ReadonlyArray<string>): Promise<number> => runTaskJob("eval-loss", argv)
