/**
 * tcp pools use CURVE with a ZAP allow-list: a Python worker holding the run's worker keys joins
 * and serves; peers without the keys (or with another client key) never reach the pool.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import t from "tap"
import { execa } from "execa"
import { Effect, Exit, Scope } from "effect"
import { curveKeyPair, Dealer } from "zeromq"
import { pack, unpack } from "msgpackr"
import { PROTOCOL_VERSION } from "../../src/protocol/constants.ts"
import { KEYS_FILE, readRunKeys } from "../../src/workers/RunKeys.ts"
import { make } from "../../src/workers/WorkerPool.ts"
import { z85Encode } from "../../src/workers/internal/zap.ts"

const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)
const runDir = mkdtempSync(join(tmpdir(), "autoloss-curve-"))
const scope = Effect.runSync(Scope.make())
const pool = await run(make({
  endpoint: "tcp://127.0.0.1:*", runDir, local: { devices: ["cpu"], stderr: "ignore" }
}).pipe(Scope.extend(scope)))
t.teardown(async () => {
  await run(Scope.close(scope, Exit.void))
  rmSync(runDir, { recursive: true, force: true })
})
await run(pool.awaitWorkers(1))

const hello = (id: string) => pack({
  type: "hello", msg_id: id, protocol: PROTOCOL_VERSION, worker_id: id, pid: 1, host: "elsewhere", device: "cpu", torch: null, jobs: ["ping"], tasks: []
})

/** Sends a hello (and a forged result) and waits up to `ms` for any reply. */
const probe = async (options: ConstructorParameters<typeof Dealer>[0], ms: number): Promise<Record<string, unknown> | undefined> => {
  const dealer = new Dealer({ linger: 0, sendTimeout: 0, receiveTimeout: ms, ...options })
  dealer.connect(pool.endpoint)
  try {
    try {
      await dealer.send(hello("probe"))
      await dealer.send(pack({ type: "result", msg_id: "forged", job_id: "j1", attempt: 1, payload: { stolen: true } }))
    } catch {
      // EAGAIN: no completed handshake, nothing queued — as good as silence
    }
    const [body] = await dealer.receive()
    const reply = unpack(body!) as Record<string, unknown>
    // Admitted: leave at once, so the pool never dispatches to this fake worker.
    if (reply["type"] === "welcome") await dealer.send(pack({ type: "shutdown", msg_id: "bye", reason: "probe done" }))
    return reply
  } catch {
    return undefined
  } finally {
    dealer.close()
  }
}

t.test("keys.json is private and the local worker serves over CURVE", async (t) => {
  t.equal(statSync(join(runDir, KEYS_FILE)).mode & 0o777, 0o600)
  t.match(pool.endpoint, /^tcp:\/\/127\.0\.0\.1:\d+$/)
  t.same(await run(pool.submit("ping", {})), { pong: true })
})

t.test("peers without the run's client key get nothing and change nothing", async (t) => {
  const before = await run(pool.stats)
  const keys = readRunKeys(runDir)
  const stranger = curveKeyPair()
  t.equal(await probe({}, 400), undefined, "no CURVE at all")
  t.equal(await probe({ curveServerKey: keys.serverPublic, curvePublicKey: stranger.publicKey, curveSecretKey: stranger.secretKey }, 400),
    undefined, "right server key, unknown client key: ZAP says no")
  const after = await run(pool.stats)
  t.equal(after.workers, 1)
  t.same([after.droppedFrames, after.staleReplies, after.refusedHellos], [before.droppedFrames, before.staleReplies, before.refusedHellos],
    "not one frame from them reached the pool")
  // Control: the same probe with the run's client keys is answered.
  const welcome = await probe({ curveServerKey: keys.serverPublic, curvePublicKey: keys.clientPublic, curveSecretKey: keys.clientSecret }, 5000)
  t.equal(welcome?.["type"], "welcome")
})

t.test("`autoloss keys` + `autoloss worker`: a remote worker joins over tcp, serves, and leaves on SIGTERM", async (t) => {
  const keyFile = join(runDir, "remote-worker.json")
  const cli = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url))
  const keys = await execa(process.execPath, ["--import", "tsx", cli, "keys", "--run", runDir, "--out", keyFile], { reject: false })
  t.equal(keys.exitCode, 0, keys.stderr)
  t.equal(statSync(keyFile).mode & 0o777, 0o600)
  const worker = execa(process.execPath, ["--import", "tsx", cli, "worker", "--connect", pool.endpoint, "--keys", keyFile, "--id", "remote-1"],
    { reject: false, stdout: "ignore", stderr: "pipe" })
  while (!(await run(pool.workers)).some((w) => w.workerId === "remote-1")) await new Promise((r) => setTimeout(r, 20))
  const remote = (await run(pool.workers)).find((w) => w.workerId === "remote-1")
  t.same([remote?.local, remote?.pid], [false, undefined], "not one of the pool's own processes")
  const both = await run(Effect.all([pool.submit("sleep", { seconds: 0.3 }), pool.submit("sleep", { seconds: 0.3 })], { concurrency: 2 }))
  t.same(both, [{ slept: 0.3 }, { slept: 0.3 }])
  worker.kill("SIGTERM")
  const exited = await worker
  t.equal(exited.exitCode, 0, exited.stderr)
  const t0 = Date.now()
  while ((await run(pool.workers)).length > 1 && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 20))
  t.equal((await run(pool.workers)).length, 1, "its shutdown message removed it before any liveness timeout")
})

t.test("z85Encode matches the ZeroMQ RFC 32 test vector", async (t) => {
  t.equal(z85Encode(new Uint8Array([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b])), "HelloWorld")
})
