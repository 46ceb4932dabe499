/**
 * The dispatcher's bookkeeping as a pure state machine: events in (a worker said hello, a result
 * arrived, time passed), actions out (send this job there, resolve that job). No I/O, no Effect;
 * the caller passes `now` in ms, so tests drive time by hand.
 *
 * Guarantees:
 * - at-least-once delivery: an attempt lost to a dead, hung or busy worker is re-dispatched with
 *   attempt + 1, up to `maxAttempts`; then the job fails with every attempt's reason;
 * - exactly-once recording: a job is resolved by the first reply of its *current* attempt; replies
 *   of earlier attempts, of finished jobs or from the wrong worker are dropped and counted;
 * - a handler exception (the job itself failed) is final: rerunning it elsewhere would fail alike;
 * - an attempt the pool stops waiting for (its timeout fired, or the caller gave up) is cancelled on
 *   its worker before anything is re-dispatched; the worker stays busy until it answers (an `error`
 *   of type Cancelled, or its late result) and is killed if it has not answered `cancelGraceMs` later.
 * Job states: queued → running → (done | queued again); `done` jobs are forgotten at once.
 */

export type Payload = Record<string, unknown>

export interface JobSpec {
  readonly id: string
  readonly kind: string
  readonly payload: Payload
  /** Per attempt, from dispatch to reply. */
  readonly timeoutMs: number
  readonly maxAttempts: number
}

export type AttemptReason = "timeout" | "worker-died" | "worker-refused" | "job-raised"

export interface AttemptFailure {
  readonly attempt: number
  readonly worker: string
  readonly reason: AttemptReason
  readonly message: string
  readonly excType?: string
  readonly traceback?: string
}

export interface WorkerHello {
  readonly workerId: string
  readonly jobs: ReadonlyArray<string>
}

/** Worker-side errors that say nothing about the job itself: the attempt is retried elsewhere. */
export const RETRYABLE_EXC_TYPES: ReadonlySet<string> = new Set([
  "WorkerBusy", "WorkerStopping", "UnknownJobKind", "MessageError", "Cancelled"
])

/** `busyWith` of a worker that refused a job as busy with one the pool does not know. */
const UNKNOWN_JOB = { jobId: "<unknown>", attempt: -1 } as const

export type Action =
  | { readonly type: "send-job"; readonly worker: string; readonly job: JobSpec; readonly attempt: number }
  /** Tell the worker to stop this attempt: nobody waits for it any more. */
  | { readonly type: "cancel"; readonly worker: string; readonly jobId: string; readonly attempt: number; readonly reason: string }
  | { readonly type: "complete"; readonly jobId: string; readonly payload: Payload; readonly workerId: string; readonly attempt: number }
  | { readonly type: "fail"; readonly jobId: string; readonly reason: "exhausted" | "job-raised"; readonly attempts: ReadonlyArray<AttemptFailure> }
  /** The worker went silent, or did not stop a cancelled attempt within the grace period; a local one
   * should be killed (its supervisor restarts it). */
  | { readonly type: "drop-worker"; readonly worker: string; readonly workerId: string; readonly why: "cancel-ignored" | "silent" }

interface WorkerState {
  readonly key: string
  readonly workerId: string
  readonly jobs: ReadonlySet<string>
  lastSeen: number
  /** The attempt this worker is running, or one it was given up on but has not answered yet. */
  busyWith: { readonly jobId: string; readonly attempt: number } | undefined
  /** Set when `busyWith` was cancelled: by then the worker should have answered. */
  cancelDeadline: number | undefined
}

interface JobState {
  readonly spec: JobSpec
  attempt: number
  /** Attempts a worker refused as busy: they say nothing about the job and do not use up `maxAttempts`. */
  busyRefusals: number
  readonly failures: AttemptFailure[]
  running: { readonly worker: string; readonly deadline: number } | undefined
}

export interface DispatchCounters {
  completed: number
  failed: number
  /** Replies for an old attempt, a finished job or from a worker not running it (not counting
   * the Cancelled answers to `cancel`). */
  staleReplies: number
  redispatched: number
  /** `cancel` messages sent (timed-out attempts, callers that gave up on a running job). */
  cancelsSent: number
  /** Workers that answered a `cancel` with Cancelled (stopped early rather than finishing the job). */
  cancelsAcknowledged: number
}

export class DispatchState {
  private readonly workers = new Map<string, WorkerState>()
  private readonly jobs = new Map<string, JobState>()
  /** Job ids waiting for a worker, oldest first; retries go to the front. */
  private queue: string[] = []
  readonly counters: DispatchCounters = {
    completed: 0, failed: 0, staleReplies: 0, redispatched: 0, cancelsSent: 0, cancelsAcknowledged: 0
  }

  private lastTick: number | undefined

  /** `stallMs`: a tick that comes this long after the previous one follows a stall of the pool's
   * own process (event loop blocked, GC, machine suspended); it judges no one (see `tick`). */
  constructor(
    private readonly livenessMs: number,
    private readonly cancelGraceMs: number = livenessMs,
    private readonly stallMs: number = Number.POSITIVE_INFINITY
  ) {}

  get queued(): number { return this.queue.length }
  get outstanding(): number { return this.jobs.size }
  workerKeys(): ReadonlyArray<string> { return [...this.workers.keys()] }
  workerView(): ReadonlyArray<{ key: string; workerId: string; jobs: ReadonlyArray<string>; busy: string | undefined }> {
    return [...this.workers.values()].map((w) => ({ key: w.key, workerId: w.workerId, jobs: [...w.jobs], busy: w.busyWith?.jobId }))
  }
  hasWorker(key: string): boolean { return this.workers.has(key) }

  addWorker(key: string, hello: WorkerHello, now: number): Action[] {
    const actions = this.workers.has(key) ? this.removeWorker(key, "worker said hello again", now) : []
    this.workers.set(key, { key, workerId: hello.workerId, jobs: new Set(hello.jobs), lastSeen: now, busyWith: undefined, cancelDeadline: undefined })
    return [...actions, ...this.dispatch(now)]
  }

  /** Any message from a known worker proves it alive. */
  seen(key: string, now: number): void {
    const w = this.workers.get(key)
    if (w) w.lastSeen = now
  }

  /** A heartbeat names the job the worker runs (null: idle); frees a worker held for an unknown job. */
  heartbeat(key: string, runningJobId: string | null, now: number): Action[] {
    const w = this.workers.get(key)
    if (!w) return []
    w.lastSeen = now
    if (runningJobId === null && w.busyWith === UNKNOWN_JOB) {
      w.busyWith = undefined
      return this.dispatch(now)
    }
    return []
  }

  /** The worker left (said shutdown, its process exited, or it went silent): re-queue its attempt. */
  removeWorker(key: string, why: string, now: number): Action[] {
    const w = this.workers.get(key)
    if (!w) return []
    this.workers.delete(key)
    const actions: Action[] = []
    const job = w.busyWith && this.currentAttempt(w.busyWith.jobId, w.busyWith.attempt, key)
    if (job) actions.push(...this.attemptFailed(job, { worker: w.workerId, reason: "worker-died", message: why }))
    return [...actions, ...this.dispatch(now)]
  }

  submit(spec: JobSpec, now: number): Action[] {
    if (this.jobs.has(spec.id)) throw new Error(`job id ${spec.id} is already outstanding`)
    this.jobs.set(spec.id, { spec, attempt: 0, busyRefusals: 0, failures: [], running: undefined })
    this.queue.push(spec.id)
    return this.dispatch(now)
  }

  /** The caller gave up (e.g. interrupted): forget the job, and cancel it on its worker if it runs. */
  cancel(jobId: string, now: number): Action[] {
    const job = this.jobs.get(jobId)
    if (!job) return []
    this.jobs.delete(jobId)
    this.queue = this.queue.filter((id) => id !== jobId)
    const w = job.running && this.workers.get(job.running.worker)
    return w ? this.cancelAttempt(w, jobId, job.attempt, "the caller stopped waiting", now) : []
  }

  onResult(key: string, jobId: string, attempt: number, payload: Payload, now: number): Action[] {
    const job = this.settle(key, jobId, attempt, now, true)
    if (!job) return this.dispatch(now)
    this.jobs.delete(jobId)
    this.counters.completed++
    const workerId = this.workers.get(key)?.workerId ?? key
    return [{ type: "complete", jobId, payload, workerId, attempt }, ...this.dispatch(now)]
  }

  onError(key: string, jobId: string, attempt: number,
          err: { excType: string; message: string; traceback: string }, now: number): Action[] {
    const job = this.settle(key, jobId, attempt, now, err.excType !== "Cancelled")
    if (!job) return this.dispatch(now)
    const worker = this.workers.get(key)?.workerId ?? key
    const retryable = RETRYABLE_EXC_TYPES.has(err.excType)
    const failure = { worker, reason: retryable ? "worker-refused" : "job-raised", message: err.message,
                      excType: err.excType, traceback: err.traceback } as const
    if (err.excType === "WorkerBusy") {
      // The worker runs a job the pool no longer tracks (it reconnected while a long job, such as a
      // first torch import, stalled its heartbeats): keep it out of dispatch until a heartbeat says
      // it is idle, and retry the job elsewhere without using up an attempt.
      const w = this.workers.get(key)
      if (w) w.busyWith = UNKNOWN_JOB
      job.busyRefusals++
    }
    if (retryable) return [...this.attemptFailed(job, failure), ...this.dispatch(now)]
    job.failures.push({ attempt: job.attempt, ...failure })
    this.jobs.delete(jobId)
    this.counters.failed++
    return [{ type: "fail", jobId, reason: "job-raised", attempts: job.failures }, ...this.dispatch(now)]
  }

  /** Timeouts and liveness; call at least every heartbeat period. After a stall of the pool itself
   * the heartbeats and results that arrived meanwhile are still unread (timers run before I/O when
   * the event loop resumes), so that tick only dispatches: the next one judges with them read. */
  tick(now: number): Action[] {
    const stalled = this.lastTick !== undefined && now - this.lastTick > this.stallMs
    this.lastTick = now
    if (stalled) return this.dispatch(now)
    const actions: Action[] = []
    for (const w of [...this.workers.values()]) {
      if (now - w.lastSeen > this.livenessMs) {
        actions.push({ type: "drop-worker", worker: w.key, workerId: w.workerId, why: "silent" })
        actions.push(...this.removeWorker(w.key, `no message for ${now - w.lastSeen} ms (missed heartbeats)`, now))
      }
    }
    for (const w of this.workers.values()) {
      if (w.cancelDeadline !== undefined && now >= w.cancelDeadline) {
        w.cancelDeadline = undefined // once: a remote worker cannot be killed, it stays busy until it answers
        actions.push({ type: "drop-worker", worker: w.key, workerId: w.workerId, why: "cancel-ignored" })
      }
    }
    for (const job of [...this.jobs.values()]) {
      if (job.running && now >= job.running.deadline) {
        const w = this.workers.get(job.running.worker)
        const message = `no reply within ${job.spec.timeoutMs} ms`
        // Cancelled first, so the worker can stop before the job runs elsewhere; it stays busy until it answers.
        if (w) actions.push(...this.cancelAttempt(w, job.spec.id, job.attempt, message, now))
        actions.push(...this.attemptFailed(job, { worker: w?.workerId ?? job.running.worker, reason: "timeout", message }))
      }
    }
    return [...actions, ...this.dispatch(now)]
  }

  /** Forgets every outstanding job (pool shutting down): their ids, to fail them, and a cancel for
   * each running attempt, so workers stop them instead of finishing work nobody will read. */
  drain(now: number): { readonly jobIds: string[]; readonly actions: Action[] } {
    const jobIds = [...this.jobs.keys()]
    const actions: Action[] = []
    for (const job of this.jobs.values()) {
      const w = job.running && this.workers.get(job.running.worker)
      if (w) actions.push(...this.cancelAttempt(w, job.spec.id, job.attempt, "the pool is closing", now))
    }
    this.jobs.clear()
    this.queue = []
    return { jobIds, actions }
  }

  // -- internals ------------------------------------------------------------------------------

  /** Frees the worker if it was busy with this attempt; returns the job if this is its current attempt. */
  private settle(key: string, jobId: string, attempt: number, now: number, countStale: boolean): JobState | undefined {
    const w = this.workers.get(key)
    if (w) {
      w.lastSeen = now
      if (w.busyWith?.jobId === jobId && w.busyWith.attempt === attempt) {
        if (w.cancelDeadline !== undefined && !countStale) this.counters.cancelsAcknowledged++
        w.busyWith = undefined
        w.cancelDeadline = undefined
      }
    }
    const job = this.currentAttempt(jobId, attempt, key)
    if (!job && countStale) this.counters.staleReplies++
    return job
  }

  /** Tells `w` to stop the attempt it runs and starts the grace period for its answer. */
  private cancelAttempt(w: WorkerState, jobId: string, attempt: number, reason: string, now: number): Action[] {
    if (w.busyWith?.jobId !== jobId || w.busyWith.attempt !== attempt) return []
    w.cancelDeadline = now + this.cancelGraceMs
    this.counters.cancelsSent++
    return [{ type: "cancel", worker: w.key, jobId, attempt, reason }]
  }

  private currentAttempt(jobId: string, attempt: number, key: string): JobState | undefined {
    const job = this.jobs.get(jobId)
    return job && job.attempt === attempt && job.running?.worker === key ? job : undefined
  }

  private attemptFailed(job: JobState, failure: Omit<AttemptFailure, "attempt">): Action[] {
    job.failures.push({ attempt: job.attempt, ...failure })
    job.running = undefined
    if (job.attempt - job.busyRefusals >= job.spec.maxAttempts) {
      this.jobs.delete(job.spec.id)
      this.counters.failed++
      return [{ type: "fail", jobId: job.spec.id, reason: "exhausted", attempts: job.failures }]
    }
    this.counters.redispatched++
    this.queue.unshift(job.spec.id)
    return []
  }

  private dispatch(now: number): Action[] {
    let idle = 0
    for (const w of this.workers.values()) if (!w.busyWith) idle++
    if (idle === 0 || this.queue.length === 0) return []
    const actions: Action[] = []
    const waiting: string[] = []
    for (const [i, id] of this.queue.entries()) {
      if (idle === 0) {
        waiting.push(...this.queue.slice(i))
        break
      }
      const job = this.jobs.get(id)
      if (!job) continue
      const worker = this.pickWorker(job)
      if (!worker) {
        waiting.push(id)
        continue
      }
      job.attempt++
      job.running = { worker: worker.key, deadline: now + job.spec.timeoutMs }
      worker.busyWith = { jobId: id, attempt: job.attempt }
      idle--
      actions.push({ type: "send-job", worker: worker.key, job: job.spec, attempt: job.attempt })
    }
    this.queue = waiting
    return actions
  }

  /** An idle worker serving the kind; prefers one that has not failed this job before. */
  private pickWorker(job: JobState): WorkerState | undefined {
    const failedOn = new Set(job.failures.map((f) => f.worker))
    let fallback: WorkerState | undefined
    for (const w of this.workers.values()) {
      if (w.busyWith || !w.jobs.has(job.spec.kind)) continue
      if (!failedOn.has(w.workerId)) return w
      fallback ??= w
    }
    return fallback
  }
}
