/**
 * The screening micro-batcher with a fake submit function: grouping (a request leaves at once when
 * a batch slot is free, later ones accumulate up to maxBatch), order within a batch, each request
 * answered with its own entry, errors routed to exactly the requests they concern, no request lost.
 * The fake's batches finish when the test releases them (events, no clocks).
 */
import t from "tap"
import fc from "fast-check"
import { Deferred, Effect, Either, Fiber, Queue } from "effect"
import { type BatcherConfig, makeBatcher } from "../../src/search/screen-batcher.ts"

type Out = Either.Either<string, string>

/** A submit function whose batches wait until the test releases them with their outcomes. */
const controlled = Effect.gen(function* () {
  const started = yield* Queue.unbounded<{ readonly batch: ReadonlyArray<number>; readonly release: Deferred.Deferred<ReadonlyArray<Out>> }>()
  const submit = (batch: ReadonlyArray<number>) =>
    Effect.gen(function* () {
      const release = yield* Deferred.make<ReadonlyArray<Out>>()
      yield* Queue.offer(started, { batch, release })
      return yield* Deferred.await(release)
    })
  return { started, submit }
})

const config = (
  submit: BatcherConfig<number, string, string>["submit"],
  maxBatch: number,
  maxInFlight: number
): BatcherConfig<number, string, string> => ({
  maxBatch,
  maxInFlight: Effect.succeed(maxInFlight),
  submit,
  lost: (req, why) => `lost ${req}: ${why}`
})

const answer = (batch: ReadonlyArray<number>): ReadonlyArray<Out> => batch.map((r) => Either.right(`verdict ${r}`))

t.test("requests accumulate while the batch slots are busy, up to maxBatch, in arrival order", async (t) => {
  const seen = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const { started, submit } = yield* controlled
    const batcher = yield* makeBatcher(config(submit, 3, 1))
    const fibers = [yield* Effect.fork(batcher.run(0))]
    const first = yield* Queue.take(started)
    for (let r = 1; r <= 7; r++) fibers.push(yield* Effect.fork(batcher.run(r)))
    yield* Effect.yieldNow()
    const waitingWhileBusy = yield* Queue.size(started)
    const batches = [first.batch]
    let current = first
    while (true) {
      yield* Deferred.succeed(current.release, answer(current.batch))
      if (batches.flat().length === 8) break
      current = yield* Queue.take(started)
      batches.push(current.batch)
    }
    const results = yield* Effect.forEach(fibers, Fiber.join)
    return { batches, results, waitingWhileBusy }
  })))
  t.same(seen.batches, [[0], [1, 2, 3], [4, 5, 6], [7]], "the first alone (a slot was free), then the queue in threes")
  t.equal(seen.waitingWhileBusy, 0, "nothing leaves while the only slot is busy")
  t.same(seen.results, [0, 1, 2, 3, 4, 5, 6, 7].map((r) => `verdict ${r}`), "every request gets its own entry")
})

t.test("maxInFlight batches go out at once; each later request joins the next free slot's batch", async (t) => {
  const seen = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const { started, submit } = yield* controlled
    const batcher = yield* makeBatcher(config(submit, 16, 2))
    const fibers = [yield* Effect.fork(batcher.run(0)), yield* Effect.fork(batcher.run(1))]
    const a = yield* Queue.take(started)
    const b = yield* Queue.take(started)
    for (let r = 2; r <= 5; r++) fibers.push(yield* Effect.fork(batcher.run(r)))
    yield* Deferred.succeed(b.release, answer(b.batch))
    const c = yield* Queue.take(started)
    yield* Deferred.succeed(a.release, answer(a.batch))
    yield* Deferred.succeed(c.release, answer(c.batch))
    const results = yield* Effect.forEach(fibers, Fiber.join)
    return { batches: [a.batch, b.batch, c.batch], results }
  })))
  t.same(seen.batches, [[0], [1], [2, 3, 4, 5]])
  t.same(seen.results, [0, 1, 2, 3, 4, 5].map((r) => `verdict ${r}`))
})

t.test("errors reach exactly the requests they concern", async (t) => {
  const outcomes = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const { started, submit } = yield* controlled
    const batcher = yield* makeBatcher(config(submit, 4, 1))
    const run = (r: number) => Effect.fork(Effect.either(batcher.run(r)))
    const fibers = [yield* run(0)]
    const first = yield* Queue.take(started)
    for (let r = 1; r <= 6; r++) fibers.push(yield* run(r))
    // batch [0]: its job failed as a whole
    yield* Deferred.succeed(first.release, [Either.left("worker lost for good")])
    // batch [1..4]: a per-entry error for 2
    const second = yield* Queue.take(started)
    yield* Deferred.succeed(second.release, second.batch.map((r) => (r === 2 ? Either.left("bad loss 2") : Either.right(`verdict ${r}`))))
    // batch [5, 6]: too few entries
    const third = yield* Queue.take(started)
    yield* Deferred.succeed(third.release, [Either.right("verdict 5")])
    return yield* Effect.forEach(fibers, Fiber.join)
  })))
  const shown = outcomes.map((o) => Either.match(o, { onLeft: (e) => `failed: ${e}`, onRight: (v) => v }))
  t.same(shown, [
    "failed: worker lost for good",
    "verdict 1",
    "failed: bad loss 2",
    "verdict 3",
    "verdict 4",
    "verdict 5",
    "failed: lost 6: its batch of 2 returned 1 results"
  ], "a request its batch did not answer fails, it is not left waiting")
})

t.test("a submit that dies fails its batch's requests; the batcher keeps serving", async (t) => {
  let calls = 0
  const submit = (batch: ReadonlyArray<number>) =>
    Effect.suspend(() => (++calls === 1 ? Effect.dieMessage("boom") : Effect.succeed(answer(batch))))
  const [failed, later] = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const batcher = yield* makeBatcher(config(submit, 4, 1))
    const failed = yield* Effect.either(batcher.run(1))
    return [failed, yield* batcher.run(2)] as const
  })))
  t.ok(Either.isLeft(failed) && failed.left.startsWith("lost 1: its batch job died"), String(Either.isLeft(failed) && failed.left))
  t.equal(later, "verdict 2")
})

t.test("a request whose caller stops waiting before its batch leaves is never sent", async (t) => {
  const batches = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const { started, submit } = yield* controlled
    const batcher = yield* makeBatcher(config(submit, 4, 1))
    const f0 = yield* Effect.fork(batcher.run(0))
    const first = yield* Queue.take(started)
    const f1 = yield* Effect.fork(batcher.run(1))
    const f2 = yield* Effect.fork(batcher.run(2))
    yield* Effect.yieldNow()
    yield* Fiber.interrupt(f1)
    yield* Deferred.succeed(first.release, answer(first.batch))
    const second = yield* Queue.take(started)
    yield* Deferred.succeed(second.release, answer(second.batch))
    yield* Fiber.join(f0)
    yield* Fiber.join(f2)
    return [first.batch, second.batch]
  })))
  t.same(batches, [[0], [2]])
})

t.test("no request is lost or answered with another's entry, whatever the sizes (property)", async (t) => {
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 4 }),
    async (n, maxBatch, inFlight) => {
      const sizes: number[] = []
      let out = 0
      let maxOut = 0
      const submit = (batch: ReadonlyArray<number>) =>
        Effect.gen(function* () {
          sizes.push(batch.length)
          out += 1
          maxOut = Math.max(maxOut, out)
          yield* Effect.yieldNow()
          out -= 1
          return batch.map((r): Out => (r % 7 === 3 ? Either.left(`bad ${r}`) : Either.right(`verdict ${r}`)))
        })
      const results = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
        const batcher = yield* makeBatcher(config(submit, maxBatch, inFlight))
        return yield* Effect.forEach(Array.from({ length: n }, (_, r) => r), (r) => Effect.either(batcher.run(r)), { concurrency: "unbounded" })
      })))
      const want = Array.from({ length: n }, (_, r) => (r % 7 === 3 ? Either.left(`bad ${r}`) : Either.right(`verdict ${r}`)))
      return JSON.stringify(results) === JSON.stringify(want) &&
        sizes.every((s) => s >= 1 && s <= maxBatch) && sizes.reduce((a, b) => a + b, 0) === n && maxOut <= inFlight
    }
  ), { numRuns: 200, seed: 1 })
  t.pass()
})
