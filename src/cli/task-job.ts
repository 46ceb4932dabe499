/**
 * `eval-loss`, `train-loss` and `baseline`: one job of that kind on a one-worker pool
 * (`pool-job.ts`), its result printed as JSON (`--json`) or as readable lines. The flags they
 * share are declared here once.
 */
import { Effect } from "effect"
import { GraphSyntaxError, parseLoss } from "../graph/syntax.ts"
import type { LossGraph } from "../graph/types.ts"
import { GraphValidationError, validateLoss } from "../graph/validate.ts"
import { toWire } from "../graph/wire.ts"
import { nonNegativeInt, pointAt, UsageError } from "./args.ts"
import { OPTION_FLAGS, parseDevice, parseJobOptions } from "./job-flags.ts"
import { runWithPool } from "./pool-job.ts"
import type { FlagSpec, VerbOutput } from "./verb.ts"

/** The task names, as `make search TASK=`, run.json and the worker's registry spell them. */
export const TASKS_HELP = "the task: seg, pose (native), det, ins (MMDetection), mmpose, mmseg"

export const TASK_FLAG = {
  task: { type: "string", required: true, value: "T", help: TASKS_HELP }
} as const satisfies Record<string, FlagSpec>

/** The flags after `--task` (and `--loss`) that every single-job verb takes. */
export const TASK_JOB_FLAGS = {
  metric: { type: "string", value: "M", help: "the target metric", defaultText: "the task's (seg: miou)" },
  seed: { type: "string", default: "0", value: "S", help: "seed of the data, initialisation and order" },
  device: { type: "string", default: "cpu", value: "cpu|cuda:N", help: "the device the worker runs the job on" },
  ...OPTION_FLAGS,
  json: { type: "boolean", default: false, help: "print the result as one JSON object" }
} as const satisfies Record<string, FlagSpec>

export const LOSS_FLAG = {
  loss: { type: "string", required: true, value: '"<expr>"', help: "the loss in text syntax (multi-branch: \"name: expr; name: expr\")" }
} as const satisfies Record<string, FlagSpec>

/** The expression as a validated graph, or a `UsageError` naming the flag (and the column of a syntax error). */
export const parseExpression = (flag: string, text: string, rename?: (g: LossGraph) => LossGraph): LossGraph => {
  try {
    const parsed = parseLoss(text)
    const g = rename === undefined ? parsed : rename(parsed)
    validateLoss(g)
    return g
  } catch (e) {
    if (e instanceof GraphSyntaxError) throw new UsageError(`${flag}: ${e.message} (expected ${e.expected})${pointAt(text, e.column)}`)
    if (e instanceof GraphValidationError) throw new UsageError(`${flag}: ${e.message}`)
    throw e
  }
}

type Kind = "eval-loss" | "train-loss" | "baseline"

interface TaskJobValues {
  readonly task: string
  readonly metric?: string | undefined
  readonly seed: string
  readonly device: string
  readonly option?: ReadonlyArray<string> | undefined
  readonly options?: string | undefined
  readonly json: boolean
}

const fixed = (x: unknown, digits: number): string => (typeof x === "number" ? x.toFixed(digits) : String(x))

/** The result as the readable lines a person reads at a terminal. */
export const formatResult = (kind: Kind, r: Record<string, unknown>): string => {
  const lines: string[] = []
  if (kind === "eval-loss") {
    const verdict = r["passed"] === true ? "passed" : r["invalid"] === true ? "invalid" : "rejected"
    lines.push(`${verdict}: score ${fixed(r["score"], 4)} after ${r["iterations"]} iterations`)
    const norms = (r["gradNorms"] as ReadonlyArray<number | null> | undefined) ?? []
    lines.push("gradient norms: " + norms.map((n) => (n === null ? "null" : n.toPrecision(4))).join(", "))
  } else {
    lines.push(`target ${fixed(r["target"], 4)} after ${r["iterations"]} iterations${r["invalid"] === true ? " (invalid: stopped on a non-finite loss)" : ""}`)
    for (const [name, value] of Object.entries((r["metrics"] as Record<string, number> | undefined) ?? {})) {
      lines.push(`  ${name.padEnd(6)} ${fixed(value, 4)}`)
    }
  }
  lines.push(`elapsed ${fixed(Number(r["elapsedMs"]) / 1000, 1)} s`)
  return lines.join("\n") + "\n"
}

/** Checks the flags, then runs the job on a one-worker pool and prints its result. */
export const runTaskJob = (
  kind: Kind,
  values: TaskJobValues,
  extra: { readonly loss?: LossGraph; readonly branches?: ReadonlyArray<string> },
  io: VerbOutput
): Promise<number> => {
  const device = parseDevice("--device", values.device)
  const seed = nonNegativeInt("--seed", values.seed)
  const payload = {
    task: values.task,
    metric: values.metric ?? null,
    seed,
    options: parseJobOptions(values),
    ...(extra.loss === undefined ? {} : { loss: toWire(extra.loss) }),
    ...(extra.branches === undefined ? {} : { branches: [...extra.branches] })
  }
  return runWithPool(kind, [device], (pool) =>
    pool.submit(kind, payload).pipe(Effect.map((result) => {
      io.stdout(values.json ? JSON.stringify(result) + "\n" : formatResult(kind, result))
    })), io)
}
