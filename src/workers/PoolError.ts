/** Failures of the worker pool, one tagged error per domain, each with a `reason` literal. */
import { Data } from "effect"
import type { AttemptFailure } from "./internal/dispatch.ts"

/** A submitted job did not produce a result. */
export class JobError extends Data.TaggedError("JobError")<{
  /** `job-raised`: the handler threw (final); `exhausted`: every attempt was lost (timeouts,
   * dead or refusing workers); `shutdown`: the pool closed first. */
  readonly reason: "job-raised" | "exhausted" | "shutdown"
  readonly jobId: string
  readonly kind: string
  /** One entry per attempt, in order. */
  readonly attempts: ReadonlyArray<AttemptFailure>
}> {
  override get message(): string {
    const lines = this.attempts.map((a) =>
      `  attempt ${a.attempt} on ${a.worker}: ${a.reason}${a.excType ? ` ${a.excType}` : ""}: ${a.message}`)
    switch (this.reason) {
      case "job-raised":
        return [`job ${this.jobId} (${this.kind}) raised on the worker`, ...lines].join("\n")
      case "exhausted":
        return [`job ${this.jobId} (${this.kind}) failed after ${this.attempts.length} attempts`, ...lines].join("\n")
      case "shutdown":
        return `job ${this.jobId} (${this.kind}) abandoned: the pool is shutting down`
    }
  }
}

/** The pool could not be set up or lost a resource it needs. */
export class PoolError extends Data.TaggedError("PoolError")<{
  readonly reason: "bind" | "keys" | "spawn" | "socket" | "config"
  readonly detail: string
  readonly cause?: unknown
}> {
  override get message(): string {
    switch (this.reason) {
      case "bind": return `cannot bind the pool socket: ${this.detail}`
      case "keys": return `CURVE keys: ${this.detail}`
      case "spawn": return `cannot start a local worker: ${this.detail}`
      case "socket": return `pool socket failed: ${this.detail}`
      case "config": return `invalid pool configuration: ${this.detail}`
    }
  }
}
