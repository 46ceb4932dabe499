/**
 * Local worker processes: one supervisor fiber per slot spawns `python -m autoloss_worker` in its
 * own process group and restarts it when it exits, with exponential backoff capped by a spaced
 * schedule (reset after a healthy stretch). Release: SIGTERM to the group (the worker finishes its
 * job and replies), SIGKILL after the grace period, then await the exit so no zombie remains.
 */
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Duration, Effect, Schedule, type Scope } from "effect"
import { execa } from "execa"

/** A device a local worker can run on: "cpu" or "cuda:N" (the pool and the CLI check with this one pattern). */
export const DEVICE_PATTERN = /^(cpu|cuda:\d+)$/

export const DEFAULT_PYTHON = fileURLToPath(new URL("../../../.venv/bin/python", import.meta.url))
const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url))

export interface LocalWorkerOptions {
  readonly slot: number
  readonly device: string
  readonly endpoint: string
  readonly python: string
  readonly threads: number
  readonly workerKeysPath: string | undefined
  readonly stderr: "inherit" | "ignore"
  readonly graceMs: number
  readonly restartBaseMs: number
  readonly restartMaxMs: number
  /** Called with the pid and worker id of each new process, and when it exits. */
  readonly onSpawn: (pid: number, workerId: string) => Effect.Effect<void>
  readonly onExit: (pid: number, description: string) => Effect.Effect<void>
}

const spawnWorker = (python: string, args: ReadonlyArray<string>, stderr: "inherit" | "ignore") =>
  execa(python, args, {
    reject: false, detached: true, cleanup: false, cwd: REPO_ROOT,
    stdin: "ignore", stdout: "ignore", stderr, env: { PYTHONUNBUFFERED: "1" }
  })
type Child = ReturnType<typeof spawnWorker>

const signalGroup = (child: Child, signal: NodeJS.Signals): void => {
  if (child.pid === undefined) return
  try {
    process.kill(-child.pid, signal) // the whole group: the worker and anything it started
  } catch {
    child.kill(signal)
  }
}

const hasExited = (child: Child): boolean => child.exitCode !== null || child.signalCode !== null

/** SIGTERM, then SIGKILL after `graceMs`; always waits for the exit (reaped, no zombie). */
export const stopProcess = (child: Child, graceMs: number): Effect.Effect<void> =>
  Effect.gen(function* () {
    if (hasExited(child)) return
    signalGroup(child, "SIGTERM")
    const exited = yield* Effect.promise(() => child).pipe(Effect.timeout(Duration.millis(graceMs)), Effect.option)
    if (exited._tag === "None") {
      signalGroup(child, "SIGKILL")
      yield* Effect.promise(() => child)
    }
  })

/** SIGKILL now (a hung or silent worker); the supervisor notices the exit and restarts it. */
export const killProcess = (pid: number): void => {
  try {
    process.kill(-pid, "SIGKILL")
  } catch {
    try { process.kill(pid, "SIGKILL") } catch { /* already gone */ }
  }
}

export const checkPython = (python: string): string | undefined =>
  existsSync(python) ? undefined : `Python interpreter ${python} not found (run \`make setup\`)`

const spawnOnce = (o: LocalWorkerOptions, generation: number): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function* () {
    const workerId = `local-${o.slot}-${generation}`
    const args = ["-u", "-m", "autoloss_worker", "--connect", o.endpoint, "--device", o.device, "--id", workerId,
                  "--threads", String(o.threads), "--parent-pid", String(process.pid)]
    if (o.workerKeysPath) args.push("--curve-keys-file", o.workerKeysPath)
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => spawnWorker(o.python, args, o.stderr)),
      (c) => stopProcess(c, o.graceMs)
    )
    if (child.pid !== undefined) yield* o.onSpawn(child.pid, workerId)
    const result = yield* Effect.promise(() => child)
    const how = result.signal !== undefined ? `killed by ${result.signal}`
      : result.exitCode !== undefined ? `exited with status ${result.exitCode}`
      : `failed to start: ${result.shortMessage}`
    yield* o.onExit(child.pid ?? -1, `worker ${workerId} ${how}`)
  })

/** Runs the slot's worker forever (until interrupted), restarting it with capped backoff. */
export const superviseLocalWorker = (o: LocalWorkerOptions): Effect.Effect<void, never, Scope.Scope> => {
  let generation = 0
  const backoff = Schedule.exponential(Duration.millis(o.restartBaseMs)).pipe(
    Schedule.union(Schedule.spaced(Duration.millis(o.restartMaxMs))),
    Schedule.resetAfter(Duration.millis(Math.max(30_000, o.restartMaxMs * 3)))
  )
  return Effect.scoped(Effect.suspend(() => spawnOnce(o, ++generation))).pipe(
    Effect.repeat(backoff),
    Effect.asVoid
  )
}
