/**
 * One pool of two local Python workers (ipc) shared by every assertion: round trips (4 MB too),
 * timed-out and abandoned jobs cancelled on their workers, a job that ignores its cancel, SIGKILLed
 * workers during a stream of 1,000 jobs, a refused protocol version, clean shutdown.
 */
import { existsSync } from "node:fs"
import t from "tap"
import { Cause, Effect, Exit, Fiber, Scope } from "effect"
import { Dealer } from "zeromq"
import { pack, unpack } from "msgpackr"
import { branchValue, evaluateNode, tensor } from "../../src/graph/evaluate.ts"
import { parseLoss } from "../../src/graph/syntax.ts"
import { toWire } from "../../src/graph/wire.ts"
import { PROTOCOL_VERSION } from "../../src/protocol/constants.ts"
import { float64Tensor } from "../../src/protocol/tensors.ts"
import { JobError } from "../../src/workers/PoolError.ts"
import { make, type WorkerPoolService } from "../../src/workers/WorkerPool.ts"

const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)
const failure = async <A>(effect: Effect.Effect<A, JobError>): Promise<JobError> => {
  const exit = await Effect.runPromiseExit(effect)
  if (Exit.isSuccess(exit)) throw new Error("expected the job to fail")
  const err = Cause.failureOption(exit.cause)
  if (err._tag === "None") throw new Error(`expected a JobError, got ${Cause.pretty(exit.cause)}`)
  return err.value
}
const alive = (pid: number): boolean => {
  try { process.kill(pid, 0); return true } catch { return false }
}

const scope = Effect.runSync(Scope.make())
const pool: WorkerPoolService = await run(make({
  local: { devices: ["cpu", "cpu"], stderr: "ignore", restartBaseMs: 50, restartMaxMs: 500 },
  timeoutMs: 5000, maxAttempts: 3, shutdownGraceMs: 2000, cancelGraceMs: 1000
}).pipe(Scope.extend(scope)))
t.teardown(() => run(Scope.close(scope, Exit.void)))
await run(pool.awaitWorkers(2))

t.test("ping and echo round trips", async (t) => {
  t.same(await run(pool.submit("ping", {})), { pong: true })
  const payload = { text: "é", list: [1, 2.5, null], bytes: new Uint8Array([0, 255]), nested: { a: { b: true } } }
  const echoed = await run(pool.submit("echo", payload))
  t.same({ ...echoed, bytes: [...(echoed["bytes"] as Uint8Array)] }, { ...payload, bytes: [0, 255] })
})

t.test("a 4 MB payload goes to the worker and back intact", async (t) => {
  const data = new Uint8Array(4 * 1024 * 1024)
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24
  const echoed = await run(pool.submit("echo", { data, small: new Uint8Array([1, 2]), n: 7 }))
  t.equal(Buffer.compare(echoed["data"] as Uint8Array, data), 0)
  t.same([...(echoed["small"] as Uint8Array)], [1, 2])
  t.equal(echoed["n"], 7)
})

/** Waits until every worker runs a job (or, with `false`, none does). */
const allBusy = (busy: boolean) => Effect.gen(function* () {
  while (!(yield* pool.workers).every((w) => (w.busy !== undefined) === busy)) yield* Effect.sleep(10)
})

t.test("a caller that stops waiting: its job is cancelled on the worker, which serves the next job at once", async (t) => {
  const before = await run(pool.stats)
  const first = Effect.runFork(pool.submitTraced("sleep", { seconds: 30 }))
  const second = Effect.runFork(pool.submitTraced("sleep", { seconds: 30 }))
  await run(allBusy(true))
  const t0 = performance.now()
  await Effect.runPromise(Fiber.interrupt(first))
  const next = await run(pool.submitTraced("ping", {}))
  const servedMs = performance.now() - t0
  t.same(next.payload, { pong: true })
  t.ok(servedMs < 1000, `the freed worker answered the next job ${servedMs.toFixed(0)} ms after the interruption`)
  await Effect.runPromise(Fiber.interrupt(second))
  await run(allBusy(false))
  const after = await run(pool.stats)
  t.equal(after.cancelsSent - before.cancelsSent, 2)
  t.equal(after.cancelsAcknowledged - before.cancelsAcknowledged, 2, "both workers stopped their job and said so")
  t.equal(after.localExits, before.localExits, "no worker was killed")
  t.equal(after.outstanding, 0)
})

t.test("eval-graph on a worker agrees with the TypeScript evaluator", async (t) => {
  const loss = parseLoss("mul(square(add(y_hat, neg(y))), tanh(y))")
  const shape = [2, 3, 2, 2] as const
  const yHat = Array.from({ length: 24 }, (_, i) => Math.sin(i))
  const y = Array.from({ length: 24 }, (_, i) => Math.cos(i * 0.7))
  // generous timeout: the first eval-graph job imports torch, seconds on a loaded 2-core CI machine
  const out = await run(pool.submit("eval-graph", {
    loss: toWire(loss), inputs: { y_hat: float64Tensor(shape, yHat), y: float64Tensor(shape, y) }
  }, { timeoutMs: 60_000 }))
  const expected = branchValue(evaluateNode(loss.branches[0]!.root, { y_hat: tensor([...shape], yHat), y: tensor([...shape], y) }))
  const branch = (out["branches"] as Record<string, { value: number; grad_norms: Record<string, number[]> }>)["loss"]!
  t.ok(Math.abs(branch.value - expected) < 1e-12 * Math.max(1, Math.abs(expected)), `${branch.value} vs ${expected}`)
  // ∂L/∂ŷ = 2 (ŷ − y) tanh(y) / (N·H·W), per-sample L2 norms
  const norms = [0, 1].map((n) => Math.sqrt(Array.from({ length: 12 }, (_, k) => {
    const i = n * 12 + k
    return (2 * (yHat[i]! - y[i]!) * Math.tanh(y[i]!) / 8) ** 2
  }).reduce((a, b) => a + b, 0)))
  branch.grad_norms["y_hat"]!.forEach((g, n) => t.ok(Math.abs(g - norms[n]!) < 1e-12, `sample ${n}: ${g} vs ${norms[n]}`))
})

t.test("a job that raises fails at once with the remote type, message and traceback", async (t) => {
  const err = await failure(pool.submit("sleep", { seconds: "soon" }))
  t.equal(err.reason, "job-raised")
  t.equal(err.attempts.length, 1)
  t.equal(err.attempts[0]!.excType, "ValueError")
  t.match(err.attempts[0]!.traceback, /handlers\.py/)
  t.match(err.message, /raised on the worker/)
})

t.test("a job that times out is cancelled before its retry, and fails after maxAttempts with each reason", async (t) => {
  const before = await run(pool.stats)
  const err = await failure(pool.submit("sleep", { seconds: 30 }, { timeoutMs: 300, maxAttempts: 2 }))
  t.equal(err.reason, "exhausted")
  t.same(err.attempts.map((a) => [a.attempt, a.reason]), [[1, "timeout"], [2, "timeout"]])
  t.not(err.attempts[0]!.worker, err.attempts[1]!.worker, "the retry ran on the other worker")
  await run(allBusy(false))
  const after = await run(pool.stats)
  t.equal(after.cancelsAcknowledged - before.cancelsAcknowledged, 2, "each timed-out attempt was stopped on its worker")
  t.equal(after.localExits, before.localExits, "so no worker had to be killed")
  t.same(await run(pool.submit("ping", {})), { pong: true })
})

t.test("a worker that does not stop a cancelled job within the grace period is killed and replaced", async (t) => {
  const before = await run(pool.stats)
  const err = await failure(pool.submit("sleep", { seconds: 30, progress: false }, { timeoutMs: 300, maxAttempts: 1 }))
  t.same(err.attempts.map((a) => a.reason), ["timeout"])
  while ((await run(pool.stats)).localExits === before.localExits) await new Promise((r) => setTimeout(r, 20))
  const after = await run(pool.stats)
  t.equal(after.cancelsAcknowledged, before.cancelsAcknowledged)
  await run(pool.awaitWorkers(2))
  t.same(await run(pool.submit("ping", {})), { pong: true }, "the killed worker was replaced")
})

t.test("1,000 jobs while workers are SIGKILLed: every job gets exactly one result", async (t) => {
  const before = await run(pool.stats)
  let kills = 0
  const completedAtKill: number[] = []
  // A killed worker stays listed (and `kill -0` still reaches it as a zombie) until the pool has
  // seen it exit: never pick it twice, or two kills would count one exit.
  const killed = new Set<number>()
  const killer = Effect.gen(function* () {
    while (kills < 4) {
      yield* Effect.sleep(60)
      const victims = (yield* pool.workers).flatMap((w) => (w.pid !== undefined && !killed.has(w.pid) && alive(w.pid) ? [w.pid] : []))
      const victim = victims[kills % Math.max(1, victims.length)]
      if (victim === undefined) continue // both restarting
      process.kill(victim, "SIGKILL")
      killed.add(victim)
      kills++
      completedAtKill.push((yield* pool.stats).completed - before.completed)
    }
  })
  const jobs = Effect.forEach(Array.from({ length: 1000 }, (_, i) => i),
    (i) => pool.submit("echo", { i }, { timeoutMs: 5000, maxAttempts: 10 }).pipe(Effect.map((r) => r["i"] as number)),
    { concurrency: 64 })
  const [results] = await run(Effect.all([jobs, killer], { concurrency: 2 }))
  t.equal(kills, 4)
  t.ok(completedAtKill.every((n) => n < 1000), `kills landed mid-stream (results so far: ${completedAtKill.join(", ")})`)
  t.same(results, Array.from({ length: 1000 }, (_, i) => i), "each job's own payload, in order")
  const after = await run(pool.stats)
  t.equal(after.completed - before.completed, 1000, "exactly 1,000 results recorded")
  t.equal(after.outstanding, 0)
  t.ok(after.localExits - before.localExits >= 4)
  t.ok(after.redispatched > before.redispatched, "some in-flight jobs were re-dispatched")
})

/** Resolves once `n` workers are registered: a worker killed by an earlier test restarts with backoff. */
const untilWorkers = async (n: number): Promise<void> => {
  while ((await run(pool.workers)).length < n) await new Promise((r) => setTimeout(r, 10))
}

t.test("a hello with another protocol version is refused naming both versions", async (t) => {
  await untilWorkers(2)
  const dealer = new Dealer({ linger: 0 })
  dealer.connect(pool.endpoint)
  try {
    for (const hello of [
      { type: "hello", msg_id: "v9", protocol: 999, worker_id: "old", pid: 1, host: "h", device: "cpu", torch: null, jobs: ["ping"], tasks: [] },
      { type: "hello", msg_id: "v1", protocol: 1, worker_id: "old-framing", pid: 1, host: "h", device: "cpu", torch: null, jobs: ["ping"], tasks: [] },
      { type: "hello", msg_id: "v3", protocol: PROTOCOL_VERSION + 1, worker_id: "future", capabilities: { new: true } }
    ]) {
      await dealer.send(pack(hello))
      const [body] = await dealer.receive()
      const reply = unpack(body!) as Record<string, unknown>
      t.equal(reply["type"], "refuse")
      t.equal(reply["parent_id"], hello.msg_id)
      t.equal(reply["worker_protocol"], hello.protocol)
      t.match(reply["reason"], new RegExp(`pool speaks protocol ${PROTOCOL_VERSION}, worker.* speaks protocol ${hello.protocol}`))
    }
    // 2,000 garbage or mutated frames from a stranger: dropped and counted, the pool keeps serving.
    const before = await run(pool.stats)
    let seed = 12345
    const rand = (n: number) => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n
    const valid = pack({ type: "result", msg_id: "r", job_id: "nope", attempt: 1, payload: {} })
    for (let i = 0; i < 2000; i++) {
      const body = i % 2 === 0 ? Uint8Array.from(valid) : Uint8Array.from({ length: rand(40) }, () => rand(256))
      if (i % 2 === 0) for (let k = 0; k < 3; k++) body[rand(body.length)] = rand(256)
      await dealer.send(i % 97 === 0 ? [body, body] : [body])
    }
    t.same(await run(pool.submit("ping", {})), { pong: true })
    const after = await run(pool.stats)
    t.ok(after.droppedFrames - before.droppedFrames > 500, `dropped ${after.droppedFrames - before.droppedFrames}`)
    t.equal((await run(pool.workers)).length, 2, "refused peers never join")
  } finally {
    dealer.close()
  }
})

t.test("closing the scope cancels running jobs, stops every local worker and removes the socket directory", async (t) => {
  await untilWorkers(2)
  const pids = (await run(pool.workers)).flatMap((w) => (w.pid !== undefined ? [w.pid] : []))
  t.equal(pids.length, 2)
  const socketPath = pool.endpoint.replace(/^ipc:\/\//, "")
  t.ok(existsSync(socketPath))
  const running = Effect.runPromiseExit(pool.submit("sleep", { seconds: 30 }))
  while (!(await run(pool.workers)).some((w) => w.busy !== undefined)) await new Promise((r) => setTimeout(r, 10))
  const before = await run(pool.stats)
  await run(Scope.close(scope, Exit.void))
  // A remote worker would otherwise finish the job before obeying `shutdown`.
  t.equal((await run(pool.stats)).cancelsSent - before.cancelsSent, 1, "the running job was cancelled")
  const exit = await running
  t.ok(Exit.isFailure(exit) && Cause.failureOption(exit.cause).pipe((o) => o._tag === "Some" && o.value.reason === "shutdown"))
  t.same(pids.filter(alive), [], "no worker process left")
  t.notOk(existsSync(socketPath))
  const err = await failure(pool.submit("ping", {}))
  t.equal(err.reason, "shutdown")
})
