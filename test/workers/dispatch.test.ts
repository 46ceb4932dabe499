import t from "tap"
import { type Action, DispatchState, type JobSpec } from "../../src/workers/internal/dispatch.ts"

const job = (id: string, over: Partial<JobSpec> = {}): JobSpec =>
  ({ id, kind: "ping", payload: { id }, timeoutMs: 100, maxAttempts: 3, ...over })
const sends = (actions: ReadonlyArray<Action>) =>
  actions.flatMap((a) => (a.type === "send-job" ? [`${a.job.id}@${a.attempt}→${a.worker}`] : []))
const ofType = <T extends Action["type"]>(actions: ReadonlyArray<Action>, type: T) =>
  actions.filter((a): a is Extract<Action, { type: T }> => a.type === type)
const hello = (workerId: string, jobs = ["ping"]) => ({ workerId, jobs })

t.test("jobs wait for a worker serving their kind, then run FIFO", async (t) => {
  const s = new DispatchState(300)
  t.same(s.submit(job("a"), 0), [])
  t.same(s.submit(job("b", { kind: "train" }), 0), [])
  t.same(sends(s.addWorker("A", hello("wa"), 10)), ["a@1→A"])
  t.same(sends(s.addWorker("B", hello("wb", ["train"]), 10)), ["b@1→B"])
  t.equal(s.queued, 0)
  t.same(s.submit(job("c"), 20), [], "A is busy")
  t.same(sends(s.onResult("A", "a", 1, { ok: 1 }, 30)), ["c@1→A"], "A free again takes c")
})

t.test("a result is recorded once; duplicates and foreign replies are stale", async (t) => {
  const s = new DispatchState(300)
  s.addWorker("A", hello("wa"), 0)
  s.addWorker("B", hello("wb"), 0)
  s.submit(job("a"), 0)
  t.same(s.onResult("B", "a", 1, {}, 1), [], "B never ran a")
  t.same(ofType(s.onResult("A", "a", 1, { v: 1 }, 2), "complete"), [{ type: "complete", jobId: "a", payload: { v: 1 }, workerId: "wa", attempt: 1 }])
  t.same(s.onResult("A", "a", 1, { v: 2 }, 3), [])
  t.equal(s.counters.completed, 1)
  t.equal(s.counters.staleReplies, 2)
})

const kinds = (actions: ReadonlyArray<Action>) => actions.map((a) => a.type)

t.test("a timed-out attempt is cancelled, then re-dispatched elsewhere; its late reply is dropped and frees the worker", async (t) => {
  const s = new DispatchState(10_000, 500)
  s.addWorker("A", hello("wa"), 0)
  s.submit(job("a"), 0)
  s.addWorker("B", hello("wb"), 50)
  t.same(s.tick(99), [], "deadline is 0 + 100")
  const out = s.tick(100)
  t.same(kinds(out), ["cancel", "send-job"], "the cancel goes out before the retry")
  t.same(ofType(out, "cancel"), [{ type: "cancel", worker: "A", jobId: "a", attempt: 1, reason: "no reply within 100 ms" }])
  t.same(sends(out), ["a@2→B"])
  s.submit(job("b"), 101)
  t.same(s.tick(102), [], "A is still busy with the cancelled attempt: b waits")
  t.same(sends(s.onResult("A", "a", 1, { late: true }, 150)), ["b@1→A"], "late reply: stale, but A is idle again")
  t.same(ofType(s.onResult("B", "a", 2, { v: 2 }, 160), "complete").map((a) => a.payload), [{ v: 2 }])
  s.onResult("A", "b", 1, {}, 170)
  t.same(s.tick(1000), [], "A answered: no kill when the grace period ends")
  t.equal(s.counters.staleReplies, 1)
  t.equal(s.counters.redispatched, 1)
  t.equal(s.counters.cancelsSent, 1)
})

t.test("a worker answering a cancel with Cancelled is idle again; one that ignores it is dropped once, after the grace period", async (t) => {
  const cancelled = { excType: "Cancelled", message: "job a attempt 1 cancelled", traceback: "" }
  const s = new DispatchState(10_000, 500)
  s.addWorker("A", hello("wa"), 0)
  s.submit(job("a", { maxAttempts: 5 }), 0)
  t.same(kinds(s.tick(100)), ["cancel"], "no other worker: the retry waits for A")
  t.same(sends(s.onError("A", "a", 1, cancelled, 130)), ["a@2→A"], "acknowledged: A takes the retry at once")
  t.same([s.counters.cancelsAcknowledged, s.counters.staleReplies, s.counters.failed], [1, 0, 0], "neither stale nor a failure")
  t.same(kinds(s.tick(230)), ["cancel"], "attempt 2 times out (deadline 130 + 100)")
  t.same(s.tick(729), [], "grace period (500 ms) not over")
  t.same(ofType(s.tick(730), "drop-worker"), [{ type: "drop-worker", worker: "A", workerId: "wa", why: "cancel-ignored" }])
  t.same(s.tick(2000), [], "dropped once; A stays busy until it answers or its process exit removes it")
  t.same(sends(s.removeWorker("A", "killed", 2001)), [])
  s.addWorker("B", hello("wb"), 2002)
  t.equal(s.workerView().find((w) => w.key === "B")?.busy, "a", "the job runs on the fresh worker")
})

t.test("a caller giving up cancels a running job on its worker; a queued or unknown job needs no message", async (t) => {
  const s = new DispatchState(10_000, 500)
  s.addWorker("A", hello("wa"), 0)
  s.submit(job("a", { timeoutMs: 60_000 }), 0)
  s.submit(job("b"), 0)
  t.same(s.cancel("b", 1), [], "b was only queued")
  t.same(s.cancel("nope", 1), [], "unknown job")
  t.same(s.cancel("a", 2), [{ type: "cancel", worker: "A", jobId: "a", attempt: 1, reason: "the caller stopped waiting" }])
  t.same(s.cancel("a", 3), [], "a second cancel of the same job does nothing")
  t.equal(s.outstanding, 0)
  s.submit(job("c"), 4)
  t.same(sends(s.onError("A", "a", 1, { excType: "Cancelled", message: "", traceback: "" }, 5)), ["c@1→A"])
  t.same(ofType(s.onResult("A", "a", 1, { late: true }, 6), "complete"), [], "a reply after the acknowledgement is stale")
})

t.test("after maxAttempts lost attempts the job fails with every reason", async (t) => {
  const s = new DispatchState(1000)
  s.addWorker("A", hello("wa"), 0)
  s.submit(job("a", { maxAttempts: 2 }), 0)
  t.same(sends(s.removeWorker("A", "process exited", 5)), [])
  s.addWorker("B", hello("wb"), 10)
  const fails = ofType(s.tick(110), "fail")
  t.equal(fails.length, 1)
  t.equal(fails[0]!.reason, "exhausted")
  t.same(fails[0]!.attempts.map((a) => [a.attempt, a.worker, a.reason]), [[1, "wa", "worker-died"], [2, "wb", "timeout"]])
  t.equal(s.outstanding, 0)
})

t.test("a handler exception is final; a refusing worker's error is retried", async (t) => {
  const s = new DispatchState(1000)
  s.addWorker("A", hello("wa"), 0)
  s.addWorker("B", hello("wb"), 0)
  s.submit(job("a"), 0) // → A
  s.submit(job("x"), 0) // → B
  const refused = s.onError("A", "a", 1, { excType: "MessageError", message: "bad frame", traceback: "" }, 1)
  t.same(sends(refused), ["a@2→A"], "only A is idle: retried there")
  const raised = s.onError("A", "a", 2, { excType: "ZeroDivisionError", message: "boom", traceback: "tb" }, 2)
  const fail = ofType(raised, "fail")[0]!
  t.equal(fail.reason, "job-raised")
  t.same(fail.attempts.map((a) => [a.attempt, a.reason, a.excType]), [[1, "worker-refused", "MessageError"], [2, "job-raised", "ZeroDivisionError"]])
  t.equal(fail.attempts[1]!.traceback, "tb")
})

t.test("a retry prefers a worker that has not failed the job", async (t) => {
  const s = new DispatchState(1000)
  s.addWorker("A", hello("wa"), 0)
  s.submit(job("a"), 0)
  s.addWorker("B", hello("wb"), 0)
  t.same(sends(s.onError("A", "a", 1, { excType: "WorkerStopping", message: "", traceback: "" }, 1)), ["a@2→B"])
})

t.test("a silent worker is dropped after the liveness window and its job re-queued", async (t) => {
  const s = new DispatchState(300)
  s.addWorker("A", hello("wa"), 0)
  s.addWorker("B", hello("wb"), 0)
  s.submit(job("a", { timeoutMs: 10_000 }), 0)
  s.submit(job("b", { timeoutMs: 10_000 }), 0)
  s.seen("B", 250)
  t.same(s.tick(300), [], "exactly the window: still alive")
  const out = s.tick(301)
  t.same(ofType(out, "drop-worker"), [{ type: "drop-worker", worker: "A", workerId: "wa", why: "silent" }])
  t.same(s.workerKeys(), ["B"])
  t.same(sends(s.onResult("B", "b", 1, {}, 302)), ["a@2→B"])
})

t.test("cancel forgets a job; drain returns what is outstanding and cancels what runs", async (t) => {
  const s = new DispatchState(300)
  s.submit(job("a"), 0)
  s.submit(job("b"), 0)
  s.submit(job("c"), 0)
  s.cancel("a", 0)
  t.same(sends(s.addWorker("A", hello("wa"), 1)), ["b@1→A"])
  t.same(s.drain(2), { jobIds: ["b", "c"], actions: [{ type: "cancel", worker: "A", jobId: "b", attempt: 1, reason: "the pool is closing" }] })
  t.equal(s.outstanding, 0)
  t.throws(() => { s.submit(job("c"), 2); s.submit(job("c"), 2) }, /already outstanding/)
})

t.test("a worker busy with a job the pool forgot is held until an idle heartbeat; its refusals use no attempt", async (t) => {
  const s = new DispatchState(10_000)
  const busy = { excType: "WorkerBusy", message: "busy with job 'old'", traceback: "" }
  s.addWorker("A", hello("wa"), 0)
  s.submit(job("a", { maxAttempts: 1 }), 0) // a@1 → A
  // A refuses: it is still running a job from before its reconnect
  t.same(sends(s.onError("A", "a", 1, busy, 1)), [], "no other worker yet, and A is held")
  t.same(ofType(s.onError("A", "a", 1, busy, 1), "fail"), [], "a duplicate refusal is stale, not a failure")
  t.same(s.heartbeat("A", "old", 2), [], "still running the unknown job: still held")
  t.same(sends(s.heartbeat("A", null, 3)), ["a@2→A"], "idle heartbeat frees A; the refused attempt did not use up maxAttempts = 1")
  t.same(ofType(s.onResult("A", "a", 2, { ok: true }, 4), "complete").length, 1)
  t.same(s.heartbeat("A", null, 5), [], "an idle heartbeat of an idle worker changes nothing")
})

t.test("a tick after a stall of the pool itself judges no one; the next one, with the backlog read, does", async (t) => {
  const s = new DispatchState(300, 300, 100)
  s.addWorker("A", hello("wa"), 0)
  s.addWorker("B", hello("wb"), 0)
  t.same(s.tick(50), [])
  // The pool's process stalled from 50 to 1000: heartbeats sent meanwhile are still unread.
  t.same(ofType(s.tick(1000), "drop-worker"), [], "no worker declared dead on the stalled tick")
  s.heartbeat("A", null, 1010) // the backlog is read: A's heartbeats were there, B's were not
  t.same(ofType(s.tick(1040), "drop-worker").map((a) => a.workerId), ["wb"], "B really was silent")
})

t.test("job deadlines wait for the tick after a stall too", async (t) => {
  const s = new DispatchState(10_000, 10_000, 100)
  s.addWorker("A", hello("wa"), 0)
  s.submit(job("a"), 0) // timeout 100 ms
  t.same(sends(s.tick(50)), [])
  t.same(ofType(s.tick(500), "cancel"), [], "stalled tick: the reply may be in the unread backlog")
  t.same(ofType(s.tick(540), "cancel").map((a) => a.jobId), ["a"], "still no reply once the backlog is read")
})
