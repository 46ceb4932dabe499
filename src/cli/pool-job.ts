/**
 * How a verb runs Python work: always through the worker pool (local workers on the given
 * devices; one worker for a single job), with one exit-code convention:
 * 0 done; 2 the request is refused before or by the job (unknown task, metric or option, a loss
 * that does not fit the task: the worker raises `ValueError` or a subclass below); 1 the job failed
 * (raised anything else, its worker died every attempt, the pool could not start).
 */
import { Effect } from "effect"
import { JobError } from "../workers/PoolError.ts"
import { runMain } from "./runMain.ts"
import { layer, WorkerPool, type WorkerPoolService } from "../workers/WorkerPool.ts"
import { verbPython } from "./args.ts"
import type { VerbOutput } from "./verb.ts"

/** Exception types (by name, as the worker reports them) that mean "this request cannot work". */
const REFUSALS = new Set(["ValueError", "GraphError", "ExportUsageError"])

/** A CLI job runs as long as it needs; heartbeats still catch a worker that died or hung. */
const CLI_JOB_TIMEOUT_MS = 7 * 24 * 3600 * 1000

/** A job the worker refused (exit 2) rather than one that failed (exit 1). */
export const isRefusal = (e: unknown): boolean =>
  e instanceof JobError && e.reason === "job-raised" && REFUSALS.has(e.attempts.at(-1)?.excType ?? "")

/** What to tell the user: a job that raised in its own words (the exception's message, without the
 * pool's framing of job ids and attempts; then its type unless it is a refusal), anything else in full. */
const failureText = (e: unknown): string => {
  const last = e instanceof JobError && e.reason === "job-raised" ? e.attempts.at(-1) : undefined
  if (!(e instanceof JobError) || last === undefined) return (e as Error).message
  return isRefusal(e) ? last.message : `${last.message} (${last.excType ?? "error"} in the ${e.kind} job)`
}

/**
 * Runs `program` SIGINT/SIGTERM-safe (`runMain`) and maps its failure to the exit code above,
 * printing why as `autoloss VERB: ...` (no stack trace for a failure the program reports).
 */
export const runReported = async <A, E>(verb: string, program: Effect.Effect<A, E>, io: VerbOutput): Promise<number> => {
  let code: number | undefined
  const exit = await runMain(program.pipe(
    Effect.catchAll((e) => Effect.sync(() => {
      code = isRefusal(e) ? 2 : 1
      io.stderr(`autoloss ${verb}: ${failureText(e)}\n`)
    }))
  ))
  return exit !== 0 ? exit : code ?? 0
}

/** `runReported` with a pool of local workers on `devices` (one worker for a single job). */
export const runWithPool = <A, E>(
  verb: string,
  devices: ReadonlyArray<string>,
  program: (pool: WorkerPoolService) => Effect.Effect<A, E>,
  io: VerbOutput
): Promise<number> =>
  runReported(verb, Effect.flatMap(WorkerPool, program).pipe(
    Effect.provide(layer({ local: { devices, python: verbPython() }, timeoutMs: CLI_JOB_TIMEOUT_MS }))
  ), io)
