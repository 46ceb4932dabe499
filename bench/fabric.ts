/**
 * Worker-fabric overhead: round trip per empty job (p50/p99, ipc and tcp+CURVE, one worker),
 * throughput of `ping` jobs with 1, 2 and 4 local workers, MB/s for 4 MB `echo` payloads (with the
 * pool's default V8 marking policy and with concurrent marking forced on), and how
 * soon a worker whose caller gave up on a long job serves the next one (cancel → next result).
 * Run: `npx tsx bench/fabric.ts` → `bench/results/fabric.json`. Numbers depend on the machine's
 * free cores; they are recorded with the machine description and the 1-minute load average.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Fiber } from "effect"
import { type ConcurrentMarking, markingAction } from "../src/workers/internal/gcPolicy.ts"
import { type PoolConfig, WorkerPool, layer } from "../src/workers/WorkerPool.ts"

const withPool = <A>(config: PoolConfig, body: (pool: WorkerPool["Type"]) => Effect.Effect<A, unknown>) =>
  Effect.runPromise(Effect.gen(function* () {
    const pool = yield* WorkerPool
    yield* pool.awaitWorkers(config.local?.devices.length ?? 1)
    return yield* body(pool)
  }).pipe(Effect.provide(layer(config))) as Effect.Effect<A, never>)

const quantile = (sorted: ReadonlyArray<number>, q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!

const roundTrips = (pool: WorkerPool["Type"], n: number) => Effect.gen(function* () {
  for (let i = 0; i < 100; i++) yield* pool.submit("ping", {}) // warm-up
  const us: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint()
    yield* pool.submit("ping", {})
    us.push(Number(process.hrtime.bigint() - t0) / 1000)
  }
  us.sort((a, b) => a - b)
  return { p50: quantile(us, 0.5), p99: quantile(us, 0.99) }
})

const throughput = (pool: WorkerPool["Type"], n: number) => Effect.gen(function* () {
  yield* Effect.forEach(Array.from({ length: 200 }), () => pool.submit("ping", {}), { concurrency: 64 })
  const t0 = performance.now()
  yield* Effect.forEach(Array.from({ length: n }), () => pool.submit("ping", {}), { concurrency: 64, discard: true })
  return n / ((performance.now() - t0) / 1000)
})

/** ms from interrupting a caller whose job runs on the only worker to that worker's next result. */
const cancelToNext = (pool: WorkerPool["Type"], n: number) => Effect.gen(function* () {
  const ms: number[] = []
  for (let i = 0; i < n; i++) {
    const caller = yield* Effect.fork(pool.submit("sleep", { seconds: 60 }))
    while (!(yield* pool.workers).every((w) => w.busy !== undefined)) yield* Effect.sleep(5)
    yield* Effect.sleep(100) // the job is running, not just sent
    const t0 = performance.now()
    yield* Fiber.interrupt(caller)
    yield* pool.submit("ping", {})
    ms.push(performance.now() - t0)
  }
  ms.sort((a, b) => a - b)
  return quantile(ms, 0.5)
})

const local = (n: number) => ({ devices: Array.from({ length: n }, () => "cpu"), stderr: "ignore" as const })

const load1m = loadavg()[0]!
const ipc = await withPool({ local: local(1) }, (pool) => roundTrips(pool, 2000))
const runDir = mkdtempSync(join(tmpdir(), "autoloss-bench-"))
const tcp = await withPool({ endpoint: "tcp://127.0.0.1:*", runDir, local: local(1) }, (pool) => roundTrips(pool, 2000))
rmSync(runDir, { recursive: true, force: true })
const jobsPerS: Record<string, number> = {}
for (const n of [1, 2, 4]) jobsPerS[String(n)] = await withPool({ local: local(n) }, (pool) => throughput(pool, 4000))
const MB = 4 * 1024 * 1024
/** 4 MB echo jobs one after another on one worker: payload MB per second, one way (echo sends it back too). */
const echoMbPerS = (concurrentMarking: ConcurrentMarking) => withPool({ local: local(1), concurrentMarking }, (pool) => Effect.gen(function* () {
  const data = new Uint8Array(MB).fill(7)
  for (let i = 0; i < 5; i++) yield* pool.submit("echo", { data })
  const t0 = performance.now()
  const n = 100
  for (let i = 0; i < n; i++) yield* pool.submit("echo", { data })
  return (n * 4) / ((performance.now() - t0) / 1000)
}))
// The pool's default ("auto": no V8 concurrent marking when local workers take the cores, see
// src/workers/internal/gcPolicy.ts) against concurrent marking forced on, alternated, median of 3.
const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const echoDefault: number[] = []
const echoConcurrent: number[] = []
for (let round = 0; round < 3; round++) {
  echoDefault.push(await echoMbPerS("auto"))
  echoConcurrent.push(await echoMbPerS("on"))
}
const defaultMarksConcurrently = markingAction("auto", availableParallelism(), 1) !== "off"
const cancelMs = await withPool({ local: local(1) }, (pool) => cancelToNext(pool, 5))

const round = (x: number) => Math.round(x * 10) / 10
const result = {
  p50_us_ipc: round(ipc.p50), p99_us_ipc: round(ipc.p99), p50_us_tcp: round(tcp.p50), p99_us_tcp: round(tcp.p99),
  jobs_per_s: Object.fromEntries(Object.entries(jobsPerS).map(([k, v]) => [k, Math.round(v)])),
  mb_per_s_4mb: round(median(echoDefault)),
  mb_per_s_4mb_v8_concurrent_marking: round(median(echoConcurrent)),
  v8_concurrent_marking_by_default: defaultMarksConcurrently,
  cancel_to_next_result_ms_p50: round(cancelMs),
  machine: `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, node ${process.version}`,
  load_1m_at_start: round(load1m)
}
const out = fileURLToPath(new URL("./results/fabric.json", import.meta.url))
mkdirSync(join(out, ".."), { recursive: true })
writeFileSync(out, JSON.stringify(result, null, 2) + "\n")
process.stdout.write(JSON.stringify(result, null, 2) + "\n")
