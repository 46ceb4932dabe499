/**
 * The worker pool: a ZeroMQ ROUTER that long-lived Python workers (local ones it spawns, remote
 * ones that connect on their own) join with `hello`; `submit` runs a job on an idle worker able to
 * serve its kind and returns the result. Delivery is at-least-once, recording exactly-once (see
 * `internal/dispatch.ts`); `capacity` bounds outstanding jobs, beyond it `submit` waits. An attempt
 * nobody waits for any more (it timed out, or the submitting fiber was interrupted) is cancelled on
 * its worker; a worker that does not stop it within `cancelGraceMs` is killed (local) or left busy.
 *
 *   const pool = yield* WorkerPool
 *   const out = yield* pool.submit("ping", {})
 *   ... Effect.provide(WorkerPool.layer({ local: { devices: ["cpu", "cpu"] } }))
 */
import { hostname } from "node:os"
import { Clock, Context, Deferred, Effect, Layer, type Scope } from "effect"
import { HEARTBEAT_INTERVAL_MS, HEARTBEAT_LIVENESS, MAX_FRAME_BYTES, PROTOCOL_VERSION } from "../protocol/constants.ts"
import { decodeMessage, encodeMessage, MessageDecodeError } from "../protocol/codec.ts"
import type { Hello, Message } from "../protocol/messages.ts"
import { type Action, DispatchState, type Payload } from "./internal/dispatch.ts"
import { checkPython, DEFAULT_PYTHON, DEVICE_PATTERN, killProcess, superviseLocalWorker } from "./internal/localWorkers.ts"
import { applyConcurrentMarking, type ConcurrentMarking } from "./internal/gcPolicy.ts"
import { makeSender, openRouter, startReader } from "./internal/router.ts"
import { JobError, PoolError } from "./PoolError.ts"
import { ensureRunKeys, type RunKeys } from "./RunKeys.ts"

export type { Payload } from "./internal/dispatch.ts"

export interface LocalWorkersConfig {
  /** One worker per entry: "cpu" or "cuda:N". */
  readonly devices: ReadonlyArray<string>
  readonly python?: string
  /** torch CPU threads per worker (default 1). */
  readonly threads?: number
  readonly restartBaseMs?: number
  readonly restartMaxMs?: number
  readonly stderr?: "inherit" | "ignore"
}

export interface PoolConfig {
  /** "ipc" (default: a socket in a private 0700 directory) or tcp://HOST:PORT (CURVE required). */
  readonly endpoint?: string
  /** tcp: the run directory holding (or receiving) `keys.json`. */
  readonly runDir?: string
  /** tcp: explicit keys instead of `runDir`. */
  readonly keys?: RunKeys
  readonly local?: LocalWorkersConfig
  readonly heartbeatMs?: number
  readonly liveness?: number
  /** Outstanding (queued + running) jobs before `submit` waits. */
  readonly capacity?: number
  /** Default per-attempt timeout. */
  readonly timeoutMs?: number
  readonly maxAttempts?: number
  readonly maxFrameBytes?: number
  /** Between SIGTERM and SIGKILL when stopping local workers. */
  readonly shutdownGraceMs?: number
  /** How long a worker may take to stop a cancelled job (its handler checks at each progress report)
   * before a local one is killed; default 10 s. */
  readonly cancelGraceMs?: number
  /** V8 concurrent marking for this process (see `internal/gcPolicy.ts`); "auto" (default) turns it
   * off when the local workers leave at most one core free, and otherwise leaves it as it is. */
  readonly concurrentMarking?: ConcurrentMarking
}

export interface SubmitOptions {
  readonly timeoutMs?: number
  readonly maxAttempts?: number
}

export interface WorkerView {
  readonly workerId: string
  readonly jobs: ReadonlyArray<string>
  readonly busy: string | undefined
  readonly pid: number | undefined
  readonly local: boolean
}

export interface PoolStats {
  readonly workers: number
  readonly queued: number
  readonly outstanding: number
  readonly completed: number
  readonly failed: number
  readonly staleReplies: number
  readonly redispatched: number
  readonly cancelsSent: number
  readonly cancelsAcknowledged: number
  readonly droppedFrames: number
  readonly refusedHellos: number
  readonly localExits: number
}

export interface WorkerPoolService {
  /** Where workers connect (tcp: with the real port). */
  readonly endpoint: string
  readonly submit: (kind: string, payload: Payload, options?: SubmitOptions) => Effect.Effect<Payload, JobError>
  /** `submit`, also telling which worker answered and on which attempt (for the run's records). */
  readonly submitTraced: (kind: string, payload: Payload, options?: SubmitOptions) => Effect.Effect<TracedResult, JobError>
  /** Waits until at least `n` workers (serving `kind`, when given) have joined. */
  readonly awaitWorkers: (n: number, kind?: string) => Effect.Effect<void>
  readonly workers: Effect.Effect<ReadonlyArray<WorkerView>>
  readonly stats: Effect.Effect<PoolStats>
}

export class WorkerPool extends Context.Tag("@autoloss/WorkerPool")<WorkerPool, WorkerPoolService>() {}

export interface TracedResult {
  readonly payload: Payload
  readonly workerId: string
  readonly attempt: number
}

interface Pending {
  readonly kind: string
  readonly deferred: Deferred.Deferred<TracedResult, JobError>
}

const resolveKeys = (config: PoolConfig): Effect.Effect<RunKeys | undefined, PoolError> => {
  if (!config.endpoint?.startsWith("tcp://")) return Effect.succeed(undefined)
  if (config.keys) return Effect.succeed(config.keys)
  const runDir = config.runDir
  if (!runDir) return Effect.fail(new PoolError({ reason: "keys", detail: "a tcp pool needs `runDir` or `keys`" }))
  return Effect.try({
    try: () => ensureRunKeys(runDir),
    catch: (cause) => new PoolError({ reason: "keys", detail: String(cause), cause })
  })
}

export const make = (config: PoolConfig = {}): Effect.Effect<WorkerPoolService, PoolError, Scope.Scope> =>
  Effect.gen(function* () {
    const heartbeatMs = config.heartbeatMs ?? HEARTBEAT_INTERVAL_MS
    const liveness = config.liveness ?? HEARTBEAT_LIVENESS
    const maxFrameBytes = config.maxFrameBytes ?? MAX_FRAME_BYTES
    const defaultTimeoutMs = config.timeoutMs ?? 600_000
    const defaultMaxAttempts = config.maxAttempts ?? 3
    const local = config.local
    const python = local?.python ?? DEFAULT_PYTHON
    if (local && local.devices.length > 0) {
      const problem = checkPython(python)
      if (problem) return yield* new PoolError({ reason: "spawn", detail: problem })
      const bad = local.devices.find((d) => !DEVICE_PATTERN.test(d))
      if (bad !== undefined) return yield* new PoolError({ reason: "config", detail: `device must be cpu or cuda:N, got ${bad}` })
    }

    applyConcurrentMarking(config.concurrentMarking ?? "auto", local?.devices.length ?? 0)
    const keys = yield* resolveKeys(config)
    const router = yield* openRouter({ endpoint: config.endpoint ?? "ipc", keys, maxFrameBytes })
    // A tick more than a heartbeat period after the previous one (they come every ≤ 50 ms) follows a stall.
    const state = new DispatchState(heartbeatMs * liveness, config.cancelGraceMs ?? 10_000, heartbeatMs)
    const pending = new Map<string, Pending>()
    /** Local processes: pid → the worker id it was started with; routing key once it said hello. */
    const localPids = new Map<number, { workerId: string; key: string | undefined }>()
    const pidOfKey = new Map<string, number>()
    const counters = { droppedFrames: 0, refusedHellos: 0, localExits: 0 }
    const nonce = `${process.pid.toString(36)}${Date.now().toString(36)}`
    let nextJob = 0
    let nextMsg = 0
    let closing = false
    const msgId = () => `p${nonce}-${++nextMsg}`
    const sem = yield* Effect.makeSemaphore(config.capacity ?? 1024)

    const sender = yield* makeSender(router.socket, (e) => Effect.logWarning(`pool: send failed: ${String(e)}`))
    const send = (key: string, msg: Message) => sender.send([Buffer.from(key, "hex"), ...encodeMessage(msg)])

    const execute = (actions: ReadonlyArray<Action>): Effect.Effect<void> =>
      Effect.forEach(actions, (a): Effect.Effect<unknown> => {
        switch (a.type) {
          case "send-job":
            return send(a.worker, { type: "job", msg_id: msgId(), job_id: a.job.id, kind: a.job.kind, attempt: a.attempt, payload: a.job.payload })
          case "cancel":
            return send(a.worker, { type: "cancel", msg_id: msgId(), job_id: a.jobId, attempt: a.attempt, reason: a.reason })
          case "complete": {
            const p = pending.get(a.jobId)
            return p ? Deferred.succeed(p.deferred, { payload: a.payload, workerId: a.workerId, attempt: a.attempt }) : Effect.void
          }
          case "fail": {
            const p = pending.get(a.jobId)
            return p ? Deferred.fail(p.deferred, new JobError({ reason: a.reason, jobId: a.jobId, kind: p.kind, attempts: a.attempts })) : Effect.void
          }
          case "drop-worker": {
            // A local worker that hung or went silent is killed; its supervisor starts a fresh one.
            const pid = pidOfKey.get(a.worker)
            if (pid !== undefined) killProcess(pid)
            const what = a.why === "silent" ? "went silent" : "did not stop a cancelled job in time"
            return Effect.logWarning(`pool: worker ${a.workerId} ${what}${pid !== undefined ? ", killed" : ""}`)
          }
        }
      }, { discard: true })

    const step = (f: (now: number) => ReadonlyArray<Action>): Effect.Effect<void> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => execute(f(now)))

    const onHello = (key: string, hello: Hello): Effect.Effect<void> => {
      if (hello.protocol !== PROTOCOL_VERSION) {
        counters.refusedHellos++
        return send(key, {
          type: "refuse", msg_id: msgId(), parent_id: hello.msg_id, protocol: PROTOCOL_VERSION, worker_protocol: hello.protocol,
          reason: `protocol mismatch: pool speaks protocol ${PROTOCOL_VERSION}, worker ${hello.worker_id} speaks protocol ${hello.protocol}`
        })
      }
      const mine = localPids.get(hello.pid)
      if (mine && mine.workerId === hello.worker_id && hello.host === hostname()) {
        mine.key = key
        pidOfKey.set(key, hello.pid)
      }
      return send(key, { type: "welcome", msg_id: msgId(), parent_id: hello.msg_id, protocol: PROTOCOL_VERSION,
                         heartbeat_ms: heartbeatMs, liveness, max_frame_bytes: maxFrameBytes }).pipe(
        Effect.zipRight(step((now) => state.addWorker(key, { workerId: hello.worker_id, jobs: hello.jobs }, now)))
      )
    }

    /** A frame that failed to decode: refuse a hello of another version, else drop and count. */
    const onUndecodable = (key: string, e: MessageDecodeError): Effect.Effect<void> => {
      counters.droppedFrames++
      const raw = e.raw
      if (raw?.["type"] === "hello" && !state.hasWorker(key)) {
        const theirs = typeof raw["protocol"] === "number" && Number.isInteger(raw["protocol"]) && raw["protocol"] >= 0 ? raw["protocol"] : null
        counters.refusedHellos++
        return send(key, {
          type: "refuse", msg_id: msgId(), protocol: PROTOCOL_VERSION, worker_protocol: theirs,
          ...(e.msgId ? { parent_id: e.msgId } : {}),
          reason: theirs !== null && theirs !== PROTOCOL_VERSION
            ? `protocol mismatch: pool speaks protocol ${PROTOCOL_VERSION}, worker speaks protocol ${theirs}`
            : `invalid hello (pool speaks protocol ${PROTOCOL_VERSION}): ${e.message}`.slice(0, 4096)
        })
      }
      return Effect.logDebug(`pool: dropped a frame: ${e.message}`)
    }

    const onMessage = (key: string, msg: Message): Effect.Effect<void> => {
      switch (msg.type) {
        case "hello":
          return onHello(key, msg)
        case "heartbeat":
          return step((now) => state.heartbeat(key, msg.job_id ?? null, now))
        case "result":
          return step((now) => state.onResult(key, msg.job_id, msg.attempt, msg.payload, now))
        case "error":
          if (msg.job_id === null || msg.attempt === null) {
            return Effect.logWarning(`pool: worker rejected a message: ${msg.exc_type}: ${msg.message}`)
          }
          return step((now) => state.onError(key, msg.job_id!, msg.attempt!, { excType: msg.exc_type, message: msg.message, traceback: msg.traceback }, now))
        case "shutdown":
          return step((now) => state.removeWorker(key, `worker left: ${msg.reason}`, now))
        case "welcome":
        case "refuse":
        case "job":
        case "cancel":
          counters.droppedFrames++ // pool → worker messages have no business arriving here
          return Effect.void
      }
    }

    yield* startReader(router.socket, (identity, body) => {
      const key = identity.toString("hex")
      let msg: Message
      try {
        msg = decodeMessage(body, maxFrameBytes)
      } catch (e) {
        if (e instanceof MessageDecodeError) return onUndecodable(key, e)
        throw e
      }
      return onMessage(key, msg)
    })

    // Timeouts every 50 ms at most; heartbeats to every worker each period.
    const tickMs = Math.max(10, Math.min(50, Math.floor(heartbeatMs / 2)))
    let lastBeat = 0
    yield* Effect.gen(function* () {
      yield* Effect.sleep(tickMs)
      const now = yield* Clock.currentTimeMillis
      yield* execute(state.tick(now))
      if (now - lastBeat >= heartbeatMs) {
        lastBeat = now
        yield* Effect.forEach(state.workerKeys(), (key) =>
          send(key, { type: "heartbeat", msg_id: msgId(), job_id: null, progress: null, dropped: counters.droppedFrames }), { discard: true })
      }
    }).pipe(Effect.forever, Effect.forkScoped)

    if (local) {
      yield* Effect.forEach(local.devices, (device, slot) =>
        superviseLocalWorker({
          slot, device, python, endpoint: router.localEndpoint, workerKeysPath: router.workerKeysPath,
          threads: local.threads ?? 1, stderr: local.stderr ?? "inherit",
          graceMs: config.shutdownGraceMs ?? 5000,
          restartBaseMs: local.restartBaseMs ?? 200, restartMaxMs: local.restartMaxMs ?? 10_000,
          onSpawn: (pid, workerId) => Effect.sync(() => { localPids.set(pid, { workerId, key: undefined }) }),
          onExit: (pid, description) => Effect.gen(function* () {
            const entry = localPids.get(pid)
            localPids.delete(pid)
            if (closing) return
            counters.localExits++
            yield* Effect.logWarning(`pool: ${description}`)
            if (entry?.key !== undefined) {
              pidOfKey.delete(entry.key)
              yield* step((now) => state.removeWorker(entry.key!, description, now))
            }
          })
        }).pipe(Effect.forkScoped), { discard: true })
    }

    // Runs first on close: fail what is outstanding, cancel what runs, tell remote workers, then the
    // scope stops local workers (SIGTERM, grace, SIGKILL) and closes the socket.
    yield* Effect.addFinalizer(() => Effect.gen(function* () {
      closing = true
      const { jobIds, actions } = state.drain(yield* Clock.currentTimeMillis)
      for (const id of jobIds) {
        const p = pending.get(id)
        if (p) yield* Deferred.fail(p.deferred, new JobError({ reason: "shutdown", jobId: id, kind: p.kind, attempts: [] }))
      }
      yield* execute(actions)
      yield* Effect.forEach(state.workerKeys(), (key) =>
        send(key, { type: "shutdown", msg_id: msgId(), reason: "pool closing" }), { discard: true })
      // Let the sender hand the cancel and shutdown messages to ZeroMQ before the socket closes (LINGER 0).
      for (let i = 0; i < 20 && (yield* sender.pending) > 0; i++) yield* Effect.sleep(5)
      yield* Effect.sleep(20)
    }))

    const submitTraced: WorkerPoolService["submitTraced"] = (kind, payload, options = {}) =>
      Effect.gen(function* () {
        if (closing) return yield* new JobError({ reason: "shutdown", jobId: "-", kind, attempts: [] })
        const id = `j${nonce}-${++nextJob}`
        const deferred = yield* Deferred.make<TracedResult, JobError>()
        pending.set(id, { kind, deferred })
        const spec = { id, kind, payload, timeoutMs: options.timeoutMs ?? defaultTimeoutMs, maxAttempts: options.maxAttempts ?? defaultMaxAttempts }
        yield* step((now) => state.submit(spec, now))
        return yield* Deferred.await(deferred).pipe(
          Effect.onInterrupt(() => step((now) => state.cancel(id, now))),
          Effect.ensuring(Effect.sync(() => pending.delete(id)))
        )
      }).pipe(sem.withPermits(1))

    const submit: WorkerPoolService["submit"] = (kind, payload, options) =>
      Effect.map(submitTraced(kind, payload, options), (r) => r.payload)

    const workers: WorkerPoolService["workers"] = Effect.sync(() =>
      state.workerView().map((w) => {
        const pid = pidOfKey.get(w.key)
        return { workerId: w.workerId, jobs: w.jobs, busy: w.busy, pid, local: pid !== undefined }
      }))

    const awaitWorkers: WorkerPoolService["awaitWorkers"] = (n, kind) =>
      Effect.sync(() => state.workerView().filter((w) => kind === undefined || w.jobs.includes(kind)).length >= n).pipe(
        Effect.flatMap((ok) => (ok ? Effect.void : Effect.sleep(20).pipe(Effect.zipRight(Effect.fail("wait" as const))))),
        Effect.retry({ while: (e) => e === "wait" }),
        Effect.orDie
      )

    const stats: WorkerPoolService["stats"] = Effect.sync(() => ({
      workers: state.workerKeys().length, queued: state.queued, outstanding: state.outstanding,
      ...state.counters, ...counters
    }))

    return WorkerPool.of({ endpoint: router.endpoint, submit, submitTraced, awaitWorkers, workers, stats })
  })

export const layer = (config: PoolConfig = {}): Layer.Layer<WorkerPool, PoolError> => Layer.scoped(WorkerPool, make(config))
