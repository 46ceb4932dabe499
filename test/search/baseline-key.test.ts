/**
 * The baseline's gradient-equivalence key on a real Python worker (seg): the worker's task-info
 * baseline, screened as a candidate is, keys like a loss with the same gradients and unlike one with
 * others; no key (and no job) where the run keys nothing or the baseline covers other branches.
 */
import t from "tap"
import { Effect, Layer } from "effect"
import { hashLoss } from "../../src/graph/canonical.ts"
import { parseLoss } from "../../src/graph/syntax.ts"
import { baselineKey } from "../../src/search/baseline-key.ts"
import { equivalenceKey } from "../../src/search/equivalence.ts"
import { type Candidate, Evaluator, EvaluatorError } from "../../src/search/evaluator.ts"
import { layer as evaluatorLayer, type TaskJobConfig } from "../../src/search/pool-evaluator.ts"
import { FULL_PIPELINE } from "../../src/search/scheduler.ts"
import { taskInfo } from "../../src/search/search-run.ts"
import { layer as poolLayer } from "../../src/workers/WorkerPool.ts"

const job: TaskJobConfig = { task: "seg", metric: null, seed: 0, options: { train_images: 48, eval_images: 8, threads: 1 } }
const pool = poolLayer({ local: { devices: ["cpu"], stderr: "ignore" }, timeoutMs: 600_000 })
const services = Layer.provideMerge(evaluatorLayer(job), pool)

const keyOf = (text: string) =>
  Effect.gen(function* () {
    const graph = parseLoss(text)
    const candidate: Candidate = { id: 0, graph, hash: hashLoss(graph), text }
    return equivalenceKey(yield* (yield* Evaluator).screen(candidate, ["loss"]))
  })

t.test("the worker's baseline keys like a loss with its gradients, unlike one without", async (t) => {
  const out = await Effect.runPromise(
    Effect.gen(function* () {
      const info = yield* taskInfo({ task: "seg", metric: null, options: job.options ?? {} })
      const baseline = yield* baselineKey(info.baseline, ["loss"], FULL_PIPELINE, "directional")
      return {
        info,
        baseline,
        // −log(y·ŷ) = −log ŷ_c at the true class, a constant elsewhere: CE's gradient w.r.t. ŷ
        rewritten: yield* keyOf("neg(log(mul(y, y_hat)))"),
        squared: yield* keyOf("square(add(y_hat, neg(y)))")
      }
    }).pipe(Effect.provide(services))
  )
  t.equal(out.info.baseline?.branches.map((b) => b.name).join(), "loss")
  t.type(out.baseline, "string")
  t.equal(out.baseline, out.rewritten, "CE rewritten as −log(y·ŷ) is the baseline")
  t.not(out.baseline, out.squared, "squared error is not")
})

/** An evaluator that fails the test if asked anything: the null paths must not screen. */
const refusing = Layer.succeed(Evaluator, Evaluator.of({
  screen: (c) => Effect.fail(new EvaluatorError({ reason: "screen", candidateId: c.id, detail: "not expected" })),
  train: (c) => Effect.fail(new EvaluatorError({ reason: "train", candidateId: c.id, detail: "not expected" }))
}))

t.test("no key without a baseline over the searched branches, without keys in the run, or when its screening fails", async (t) => {
  const ce = parseLoss("neg(mul(y, log(y_hat)))")
  const key = (...args: Parameters<typeof baselineKey>) => Effect.runPromise(baselineKey(...args).pipe(Effect.provide(refusing)))
  t.equal(await key(null, ["loss"], FULL_PIPELINE, "directional"), null)
  t.equal(await key(ce, ["rcnn_reg"], FULL_PIPELINE, "directional"), null, "other branches")
  t.equal(await key(ce, ["loss"], { ...FULL_PIPELINE, useEquivalence: false }, "directional"), null, "the run keys no losses")
  t.equal(await key(ce, ["loss"], { ...FULL_PIPELINE, needsRejection: false }, "directional"), null, "the run screens nothing")
  t.equal(await key(ce, ["loss"], FULL_PIPELINE, "directional"), null, "a failed screening: nothing is set aside")
})
