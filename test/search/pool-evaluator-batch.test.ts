/**
 * The pool evaluator's screening on a real Python worker: candidates screened concurrently through
 * the micro-batcher (`eval-losses` jobs) get exactly the verdicts one `eval-loss` job each gives
 * (`screenBatch: 1`), bit for bit, each candidate its own; a job the worker fails fails exactly
 * its candidates with a screening `EvaluatorError`.
 */
import t from "tap"
import { Effect, Either, Layer } from "effect"
import { hashLoss } from "../../src/graph/canonical.ts"
import { parseLoss } from "../../src/graph/syntax.ts"
import { type Candidate, Evaluator } from "../../src/search/evaluator.ts"
import { layer as evaluatorLayer, type TaskJobConfig } from "../../src/search/pool-evaluator.ts"
import { layer as poolLayer } from "../../src/workers/WorkerPool.ts"

const LOSSES = [
  "neg(mul(y, log(y_hat)))",
  "abs(add(y_hat, neg(y)))",
  "mul(y, log(y_hat))",
  "square(add(mean_nhw(add(y, sqrt(y_hat))), y))",
  "neg(mul(y, log(max_pool(y_hat))))",
  "exp(sqrt(neg(log(mul(y, y_hat)))))"
]
const candidates: Candidate[] = LOSSES.map((text, id) => {
  const graph = parseLoss(text)
  return { id, graph, hash: hashLoss(graph), text }
})

const job: TaskJobConfig = { task: "seg", metric: null, seed: 0, options: { train_images: 48, eval_images: 8, threads: 1 } }
const pool = poolLayer({ local: { devices: ["cpu"], stderr: "ignore" }, timeoutMs: 600_000 })

/** Every candidate screened at once, through an evaluator with `screenBatch`. */
const screenAll = (screenBatch: number, config: TaskJobConfig = job) =>
  Effect.runPromise(Effect.gen(function* () {
    const evaluator = yield* Evaluator
    return yield* Effect.forEach(candidates, (c) => Effect.either(evaluator.screen(c, ["loss"])), { concurrency: "unbounded" })
  }).pipe(Effect.provide(Layer.provide(evaluatorLayer({ ...config, screenBatch }), pool))))

const verdictOf = (e: Either.Either<{ readonly workerId?: string; readonly attempt?: number }, unknown>) =>
  Either.isRight(e) ? JSON.stringify({ ...e.right, workerId: undefined, attempt: undefined }) : `error ${String(e.left)}`

t.test("batched screening gives every candidate the verdict a job of its own gives, bit for bit", async (t) => {
  const one = (await screenAll(1)).map(verdictOf)
  const batched = (await screenAll(16)).map(verdictOf)
  t.same(one.filter((v) => v.startsWith("error")), [], "every candidate screened")
  t.equal(new Set(one).size, LOSSES.length, "the losses' verdicts differ: a mix-up would show")
  t.same(batched, one)
})

t.test("a batch job the worker fails fails each of its candidates with a screening error", async (t) => {
  const out = await screenAll(16, { ...job, task: "no-such-task" })
  t.same(out.map(Either.isLeft), LOSSES.map(() => true), "every candidate failed")
  out.forEach((e, id) => {
    if (Either.isLeft(e)) t.match(String(e.left), new RegExp(`screening candidate ${id} failed: [^]*no-such-task`))
  })
})
