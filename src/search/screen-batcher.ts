/**
 * A micro-batcher: callers ask for one result at a time, concurrently; their requests wait in a
 * queue and leave together, up to `maxBatch` per job, whenever fewer than `maxInFlight` batches are
 * out. So a request is sent at once when a worker is free, and the requests that arrive while
 * every worker is busy accumulate into the next batch (the search's screening: `pool-evaluator.ts`
 * sends each batch as one `eval-losses` job, which the batched rejection engine runs far faster
 * than one job per loss).
 *
 * Each request completes with its own entry of its batch's results; a batch that fails as a whole
 * fails exactly its requests. A request whose caller stops waiting before its batch left is taken
 * out of the queue. Results never depend on batch composition (the worker guarantees it), so the
 * grouping needs no determinism; the order of requests within a batch is their arrival order.
 */
import { Cause, Deferred, Effect, Either, Exit, type Scope } from "effect"

export interface BatcherConfig<Req, Res, E> {
  /** Requests per batch at most (≥ 1). */
  readonly maxBatch: number
  /** Batches out at most, read each time a batch could leave (e.g. the pool's workers); below 1 counts as 1. */
  readonly maxInFlight: Effect.Effect<number>
  /** Runs one batch: one entry per request, in order. A failure of the whole batch is a Left for every request. */
  readonly submit: (batch: ReadonlyArray<Req>) => Effect.Effect<ReadonlyArray<Either.Either<Res, E>>>
  /** The error of a request its batch did not answer (a defect in `submit`, or too few entries). */
  readonly lost: (req: Req, why: string) => E
}

export interface Batcher<Req, Res, E> {
  readonly run: (req: Req) => Effect.Effect<Res, E>
}

interface Pending<Req, Res, E> {
  readonly req: Req
  readonly done: Deferred.Deferred<Res, E>
}

/** A batcher whose batches run in `Scope` (closing it interrupts the batches still out). */
export const makeBatcher = <Req, Res, E>(config: BatcherConfig<Req, Res, E>): Effect.Effect<Batcher<Req, Res, E>, never, Scope.Scope> =>
  Effect.gen(function* () {
    if (!(Number.isInteger(config.maxBatch) && config.maxBatch >= 1)) {
      return yield* Effect.dieMessage(`maxBatch must be an integer ≥ 1, got ${config.maxBatch}`)
    }
    const scope = yield* Effect.scope
    const queue: Array<Pending<Req, Res, E>> = []
    let inFlight = 0

    const settle = (batch: ReadonlyArray<Pending<Req, Res, E>>, exit: Exit.Exit<ReadonlyArray<Either.Either<Res, E>>>) =>
      Effect.forEach(batch, (p, i) => {
        if (Exit.isFailure(exit)) return Deferred.fail(p.done, config.lost(p.req, `its batch job died: ${Cause.pretty(exit.cause).split("\n")[0]}`))
        const entry = exit.value[i]
        if (entry === undefined) {
          return Deferred.fail(p.done, config.lost(p.req, `its batch of ${batch.length} returned ${exit.value.length} results`))
        }
        return Either.isRight(entry) ? Deferred.succeed(p.done, entry.right) : Deferred.fail(p.done, entry.left)
      }, { discard: true })

    // Sends batches while there is room; each finished batch calls it again.
    const pump: Effect.Effect<void> = Effect.gen(function* () {
      const limit = Math.max(1, yield* config.maxInFlight)
      while (inFlight < limit && queue.length > 0) {
        const batch = queue.splice(0, config.maxBatch)
        inFlight += 1
        yield* Effect.exit(config.submit(batch.map((p) => p.req))).pipe(
          Effect.flatMap((exit) => settle(batch, exit)),
          Effect.ensuring(Effect.sync(() => { inFlight -= 1 })),
          Effect.zipRight(Effect.suspend(() => pump)),
          Effect.forkIn(scope)
        )
      }
    })

    const run = (req: Req): Effect.Effect<Res, E> =>
      Effect.gen(function* () {
        const pending: Pending<Req, Res, E> = { req, done: yield* Deferred.make<Res, E>() }
        queue.push(pending)
        yield* pump
        return yield* Deferred.await(pending.done).pipe(
          Effect.onInterrupt(() => Effect.sync(() => {
            const at = queue.indexOf(pending)
            if (at >= 0) queue.splice(at, 1) // not sent yet: nobody wants it any more
          }))
        )
      })

    return { run }
  })
