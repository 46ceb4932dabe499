/** A worker that stops heartbeating (SIGSTOP) is declared dead after 3 periods; its job moves on. */
import t from "tap"
import { Effect, Fiber } from "effect"
import { WorkerPool, layer } from "../../src/workers/WorkerPool.ts"

t.test("a frozen worker's in-flight job is re-dispatched after 3 missed heartbeats", async (t) => {
  await Effect.runPromise(Effect.gen(function* () {
    const pool = yield* WorkerPool
    yield* pool.awaitWorkers(2)
    const job = yield* Effect.fork(pool.submit("sleep", { seconds: 0.2 }, { timeoutMs: 60_000 }))
    let frozen: number | undefined
    while (frozen === undefined) {
      frozen = (yield* pool.workers).find((w) => w.busy !== undefined)?.pid
      if (frozen === undefined) yield* Effect.sleep(5)
    }
    process.kill(frozen, "SIGSTOP")
    const t0 = Date.now()
    t.same(yield* Fiber.join(job), { slept: 0.2 })
    const waited = Date.now() - t0
    t.ok(waited >= 600 && waited < 5000, `re-dispatched after ${waited} ms (liveness window 3 × 200 ms)`)
    const stats = yield* pool.stats
    t.equal(stats.redispatched, 1)
    t.equal(stats.completed, 1)
    t.ok(stats.localExits >= 1, "the frozen worker was killed")
    try { process.kill(frozen, "SIGCONT") } catch { /* already gone */ }
  }).pipe(Effect.provide(layer({ local: { devices: ["cpu", "cpu"], stderr: "ignore" }, heartbeatMs: 200 }))))
})
