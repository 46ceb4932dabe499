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

t.test("a timed-out attempt is re-dispatched elsewhere; its late reply is dropped and frees the worker", async (t) => {
  const s = new DispatchState(10_000)
  s.addWorker("A", hello("wa"), 0)
  s.submit(job("a"), 0)
  s.addWorker("B", hello("wb"), 50)
  t.same(s.tick(99), [], "deadline is 0 + 100")
  const out = s.tick(100)
  t.same(ofType(out, "drop-worker"), [{ type: "drop-worker", worker: "A", workerId: "wa", why: "timeout" }])
  t.same(sends(out), ["a@2→B"])
  s.submit(job("b"), 101)
  t.same(sends(s.onResult("A", "a", 1, { late: true }, 150)), ["b@1→A"], "late reply: stale, but A is idle again")
  t.same(ofType(s.onResult("B", "a", 2, { v: 2 }, 160), "complete").map((a) => a.payload), [{ v: 2 }])
  t.equal(s.counters.staleReplies, 1)
  t.equal(s.counters.redispatched, 1)
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

t.test("cancel forgets a job; drain returns what is outstanding", async (t) => {
  const s = new DispatchState(300)
  s.submit(job("a"), 0)
  s.submit(job("b"), 0)
  s.cancel("a")
  t.same(sends(s.addWorker("A", hello("wa"), 1)), ["b@1→A"])
  t.same(s.drain(), ["b"])
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
