/**
 * `autoloss launch slurm` against a real single-node Slurm (scripts/slurm-local.sh, started here
 * when not running yet): two CPU workers started through sbatch + srun join a tcp pool with the
 * run's CURVE keys, serve ping and eval-graph jobs, and leave when the job is cancelled.
 * Skipped, with the script's reason, where that Slurm cannot be started (not root, no apt-get).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import t from "tap"
import { execa } from "execa"
import { Cause, Duration, Effect, Exit, Scope } from "effect"
import { branchValue, evaluateNode, tensor } from "../../src/graph/evaluate.ts"
import { parseLoss } from "../../src/graph/syntax.ts"
import { toWire } from "../../src/graph/wire.ts"
import { float64Tensor } from "../../src/protocol/tensors.ts"
import { make } from "../../src/workers/WorkerPool.ts"
import { run as launch } from "../../src/cli/verbs/launch.ts"
import { slurmFiles } from "../../src/workers/slurm.ts"

// One name per test process: suites run side by side on one machine (and its one local Slurm)
// must not cancel each other's jobs, as a shared name did.
const JOB_PREFIX = "autoloss-slurm-test-"
const JOB_NAME = `${JOB_PREFIX}${process.pid}`

/** Jobs of earlier runs of this test whose process is gone (an interrupted run): [job id, name]. */
const orphanJobs = async (): Promise<string[]> => {
  const listed = await execa("squeue", ["-h", "-o", "%i %j"], { reject: false, timeout: 10_000 })
  return listed.stdout.split("\n").flatMap((line) => {
    const [id, name] = line.trim().split(/\s+/)
    if (id === undefined || name === undefined || !name.startsWith(JOB_PREFIX)) return []
    const pid = Number(name.slice(JOB_PREFIX.length))
    return Number.isInteger(pid) && pid > 0 && !alive(pid) ? [id] : []
  })
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}
const startScript = fileURLToPath(new URL("../../scripts/slurm-local.sh", import.meta.url))
const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Polls `check` every 100 ms until it holds or `ms` pass; returns whether it held. */
const waitFor = async (ms: number, check: () => Promise<boolean> | boolean): Promise<boolean> => {
  const until = Date.now() + ms
  while (Date.now() < until) {
    if (await check()) return true
    await sleep(100)
  }
  return check()
}

const squeueState = async (jobId: string): Promise<string> =>
  (await execa("squeue", ["-h", "-j", jobId, "-o", "%T"], { reject: false, timeout: 10_000 })).stdout.trim()
/** Gone from the queue, or in the seconds Slurm spends reaping a cancelled job's processes. */
const ended = async (jobId: string): Promise<boolean> => ["", "COMPLETING", "COMPLETED", "CANCELLED"].includes(await squeueState(jobId))

// Installs (first time, ~20 s) and starts Slurm, or finds it running (~0.2 s).
const started = await execa("bash", [startScript, "start"], { reject: false, timeout: 150_000, all: true })

if (started.exitCode !== 0) {
  t.plan(0, `no local Slurm: ${(started.all ?? started.shortMessage).trim().split("\n").slice(-3).join(" | ")}`)
} else {
  // Leftovers of an interrupted earlier run would hold the node's CPUs; a live run's are its own.
  const orphans = await orphanJobs()
  if (orphans.length > 0) await execa("scancel", orphans, { reject: false, timeout: 10_000 })

  const runDir = mkdtempSync(join(tmpdir(), "autoloss-slurm-"))
  const scope = Effect.runSync(Scope.make())
  let jobId: string | undefined
  t.teardown(async () => {
    // Cancel first, even when an assertion failed half-way, so no worker outlives the test.
    if (jobId !== undefined) {
      await execa("scancel", [jobId], { reject: false, timeout: 10_000 })
      await waitFor(20_000, () => ended(jobId!))
    }
    await run(Scope.close(scope, Exit.void))
    rmSync(runDir, { recursive: true, force: true })
  })

  const logTail = (): string => {
    const log = jobId === undefined ? undefined : slurmFiles(runDir).output.replace("%j", jobId)
    return log !== undefined && existsSync(log) ? readFileSync(log, "utf8").slice(-3000) : "(no Slurm log)"
  }
  /** Runs pool jobs; a failure carries the pool's reasons and the workers' Slurm log. */
  const jobs = async <A, E>(effect: Effect.Effect<A, E>): Promise<A> => {
    const exit = await Effect.runPromiseExit(effect)
    if (Exit.isSuccess(exit)) return exit.value
    throw new Error(`${Cause.pretty(exit.cause)}\nSlurm log of job ${jobId}:\n${logTail()}`)
  }

  // liveness 10 (10 s of silence, told to the workers in welcome): on a loaded 2-core CI machine a
  // worker's first `import torch` has stalled it past the default 3 s, and the pool then dropped it.
  const pool = await run(make({ endpoint: "tcp://127.0.0.1:*", runDir, timeoutMs: 30_000, liveness: 10 }).pipe(Scope.extend(scope)))

  t.test("launch slurm writes a private key file and submits the script", async (t) => {
    // The verb in this process (a tsx subprocess costs seconds on a busy machine); same argv as the CLI.
    const printed = { stdout: "", stderr: "" }
    const code = await launch([
      "slurm", "--run", runDir, "--connect", pool.endpoint,
      "--nodes", "1", "--gpus-per-node", "0", "--ntasks-per-node", "2", "--time", "00:05:00", "--job-name", JOB_NAME
    ], { stdout: (s) => { printed.stdout += s }, stderr: (s) => { printed.stderr += s } })
    t.equal(code, 0, printed.stderr)
    t.match(printed.stdout, /^\d+\n$/, "prints the job id alone")
    jobId = printed.stdout.trim()
    const files = slurmFiles(runDir)
    t.equal(statSync(files.keys).mode & 0o777, 0o600)
    t.match(readFileSync(files.script, "utf8"), /^#SBATCH --ntasks-per-node=2$/m)
  })

  t.test("two workers started by Slurm join over CURVE and serve jobs", async (t) => {
    if (jobId === undefined) return t.fail("no job was submitted")
    const joined = await run(pool.awaitWorkers(2).pipe(Effect.timeout(Duration.seconds(90)), Effect.option))
    if (joined._tag === "None") {
      return t.fail(`workers did not join within 90 s; job state '${await squeueState(jobId)}'; log:\n${logTail()}`)
    }
    t.equal(await squeueState(jobId), "RUNNING")
    const workers = await run(pool.workers)
    t.same(workers.map((w) => w.workerId).sort(), [`slurm-${jobId}-0`, `slurm-${jobId}-1`], "one worker per Slurm task")
    t.ok(workers.every((w) => !w.local), "none of them is the pool's own process")

    const pongs = await jobs(Effect.all(Array.from({ length: 20 }, () => pool.submit("ping", {})), { concurrency: 4 }))
    t.same(pongs, Array.from({ length: 20 }, () => ({ pong: true })))

    // Two sleeps at once end together only if both workers serve.
    const t0 = Date.now()
    t.same(await jobs(Effect.all([pool.submit("sleep", { seconds: 1 }), pool.submit("sleep", { seconds: 1 })], { concurrency: 2 })),
      [{ slept: 1 }, { slept: 1 }])
    t.ok(Date.now() - t0 < 1900, `both sleeps ran in parallel (${Date.now() - t0} ms)`)

    const loss = parseLoss("mul(square(add(y_hat, neg(y))), tanh(y))")
    const shape = [2, 1, 2, 3] as const
    const cases = [0, 1].map((k) => ({
      yHat: Array.from({ length: 12 }, (_, i) => Math.sin(i + k)),
      y: Array.from({ length: 12 }, (_, i) => Math.cos(0.7 * i - k))
    }))
    const outs = await jobs(Effect.all(cases.map(({ yHat, y }) => pool.submit("eval-graph", {
      loss: toWire(loss), inputs: { y_hat: float64Tensor(shape, yHat), y: float64Tensor(shape, y) }
    })), { concurrency: 2 }))
    outs.forEach((out, k) => {
      const { yHat, y } = cases[k]!
      const expected = branchValue(evaluateNode(loss.branches[0]!.root, { y_hat: tensor([...shape], yHat), y: tensor([...shape], y) }))
      const got = (out["total"] as number)
      t.ok(Math.abs(got - expected) < 1e-12 * Math.max(1, Math.abs(expected)), `case ${k}: ${got} vs TS ${expected}`)
    })
  })

  t.test("scancel stops the workers; they leave the pool and the job ends", async (t) => {
    if (jobId === undefined) return t.fail("no job was submitted")
    const cancelled = await execa("scancel", [jobId], { reject: false, timeout: 10_000 })
    t.equal(cancelled.exitCode, 0, cancelled.stderr)
    t.ok(await waitFor(30_000, async () => (await run(pool.workers)).length === 0), "both workers said goodbye")
    t.ok(await waitFor(30_000, () => ended(jobId!)), "the job ended")
    t.equal((await run(pool.stats)).workers, 0)
  })
}
