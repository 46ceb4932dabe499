/**
 * The pool's ROUTER socket as scoped resources: a private 0700 directory (ipc socket, worker key
 * file), the bound socket (CURVE + ZAP on tcp), one sender fiber draining a queue (zeromq.js allows
 * a single pending send) and one reader fiber (a single pending receive).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Queue, type Scope } from "effect"
import { Router } from "zeromq"
import { PoolError } from "../PoolError.ts"
import { type RunKeys, workerKeyFile } from "../RunKeys.ts"
import { allowClients } from "./zap.ts"

export interface OpenRouterConfig {
  /** "ipc" (a socket in a private temp directory) or tcp://HOST:PORT (PORT may be `*`). */
  readonly endpoint: string
  readonly keys: RunKeys | undefined
  readonly maxFrameBytes: number
}

export interface OpenRouter {
  readonly socket: Router
  /** Where the socket listens (tcp: with the real port). */
  readonly endpoint: string
  /** Where a worker on this machine should connect. */
  readonly localEndpoint: string
  /** The worker key file for local workers on tcp; undefined on ipc. */
  readonly workerKeysPath: string | undefined
}

let zapDomainCounter = 0

const privateDir = Effect.acquireRelease(
  Effect.try({
    try: () => mkdtempSync(join(tmpdir(), "autoloss-pool-")), // mkdtemp creates it 0700
    catch: (cause) => new PoolError({ reason: "bind", detail: `cannot create a private directory in ${tmpdir()}`, cause })
  }),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

export const openRouter = (config: OpenRouterConfig): Effect.Effect<OpenRouter, PoolError, Scope.Scope> =>
  Effect.gen(function* () {
    const isTcp = config.endpoint.startsWith("tcp://")
    if (!isTcp && config.endpoint !== "ipc") {
      return yield* new PoolError({ reason: "config", detail: `endpoint must be "ipc" or tcp://HOST:PORT, got ${config.endpoint}` })
    }
    if (isTcp && !config.keys) {
      return yield* new PoolError({ reason: "keys", detail: "tcp endpoints need CURVE keys (give a run directory)" })
    }
    const dir = yield* privateDir
    const keys = isTcp ? config.keys : undefined
    const zapDomain = `autoloss-${process.pid}-${++zapDomainCounter}`
    if (keys) {
      yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => allowClients(zapDomain, [keys.clientPublic]),
          catch: (cause) => new PoolError({ reason: "keys", detail: "cannot start the ZAP handler", cause })
        }),
        (release) => Effect.sync(release)
      )
    }
    const socket = yield* Effect.acquireRelease(
      Effect.sync(() => new Router({
        linger: 0,
        // Frames beyond the limit make libzmq drop the connection before they are buffered.
        maxMessageSize: config.maxFrameBytes + 1024,
        ...(keys ? { curveServer: true, curveSecretKey: keys.serverSecret, curvePublicKey: keys.serverPublic, zapDomain } : {})
      })),
      (s) => Effect.sync(() => s.close())
    )
    const address = isTcp ? config.endpoint : `ipc://${join(dir, "pool.sock")}`
    yield* Effect.tryPromise({
      try: () => socket.bind(address),
      catch: (cause) => new PoolError({ reason: "bind", detail: `${address}: ${String(cause)}`, cause })
    })
    const endpoint = socket.lastEndpoint ?? address
    const localEndpoint = endpoint.replace(/^tcp:\/\/(0\.0\.0\.0|\*|\[::\])(?=:)/, "tcp://127.0.0.1")
    let workerKeysPath: string | undefined
    if (keys) {
      workerKeysPath = join(dir, "worker-keys.json")
      writeFileSync(workerKeysPath, JSON.stringify(workerKeyFile(keys)), { mode: 0o600 })
    }
    return { socket, endpoint, localEndpoint, workerKeysPath }
  })

/** A send queue drained by one fiber; `send` only waits while the queue is full (backpressure). */
export const makeSender = (socket: Router, onError: (e: unknown) => Effect.Effect<void>) =>
  Effect.gen(function* () {
    const outbox = yield* Queue.bounded<ReadonlyArray<Uint8Array>>(4096)
    yield* Queue.take(outbox).pipe(
      Effect.flatMap((frames) => Effect.tryPromise(() => socket.send(frames as Uint8Array[]))),
      Effect.catchAll(onError),
      Effect.forever,
      Effect.forkScoped
    )
    return {
      send: (frames: ReadonlyArray<Uint8Array>): Effect.Effect<void> => Queue.offer(outbox, frames).pipe(Effect.asVoid),
      pending: Queue.size(outbox)
    }
  })

/** One reader fiber handing each `[identity, ...body]` to `handle`; ends when the socket closes. */
export const startReader = (
  socket: Router,
  handle: (identity: Buffer, body: ReadonlyArray<Buffer>) => Effect.Effect<void>
): Effect.Effect<void, never, Scope.Scope> => {
  const once = Effect.tryPromise(() => socket.receive()).pipe(
    Effect.flatMap(([identity, ...body]) => (identity ? Effect.suspend(() => handle(identity, body)) : Effect.void)),
    // A bug in handling one message must not stop the pool from reading the next.
    Effect.catchAllDefect((defect) => Effect.logError(`pool: message handler failed: ${String(defect)}`)),
    Effect.catchAll((e) => (socket.closed ? Effect.fail("closed" as const) : Effect.logWarning(`pool: receive failed: ${String(e)}`)))
  )
  return once.pipe(Effect.forever, Effect.catchAll(() => Effect.void), Effect.forkScoped, Effect.asVoid)
}
