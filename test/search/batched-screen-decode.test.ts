/** The `eval-losses` payload and result as the pool evaluator builds and reads them. */
import t from "tap"
import { Either } from "effect"
import { parseLoss } from "../../src/graph/syntax.ts"
import { hashLoss } from "../../src/graph/canonical.ts"
import { toWire } from "../../src/graph/wire.ts"
import { batchPayload, decodeScreens } from "../../src/search/pool-evaluator.ts"

const candidate = (id: number, text: string) => {
  const graph = parseLoss(text)
  return { id, graph, hash: hashLoss(graph), text }
}
const a = { candidate: candidate(4, "neg(mul(y, log(y_hat)))"), branches: ["loss"] }
const b = { candidate: candidate(9, "abs(add(y_hat, neg(y)))"), branches: ["loss"] }
const verdict = (score: number) => ({
  passed: score >= 0.6, score, invalid: false, gradNorms: [1, null], fingerprint: [[0.5, null]],
  branches: { loss: { passed: score >= 0.6, score, invalid: false, gradNorms: [1, null], fingerprint: [[0.5, null]] } }
})
const traced = (payload: Record<string, unknown>) => ({ payload, workerId: "w1", attempt: 2 })

t.test("the batch payload carries the context once and each loss with its branches", async (t) => {
  const job = { task: "seg", metric: "miou", seed: 3, options: { iterations: 5 } }
  t.same(batchPayload(job, [a, b]), {
    task: "seg", metric: "miou", seed: 3, options: { iterations: 5 },
    losses: [{ loss: toWire(a.candidate.graph), branches: ["loss"] }, { loss: toWire(b.candidate.graph), branches: ["loss"] }]
  })
})

t.test("each entry decodes to its request's verdict, or to an error naming its candidate", async (t) => {
  const out = decodeScreens(traced({ results: [verdict(0.9), { error: "task 'seg' takes branches loss (dense)" }] }), [a, b])
  t.ok(Either.isRight(out[0]!))
  if (Either.isRight(out[0]!)) {
    t.equal(out[0]!.right.score, 0.9)
    t.same(out[0]!.right.gradNorms, [1, Number.NaN], "null (non-finite) becomes NaN")
    t.equal(out[0]!.right.workerId, "w1")
    t.equal(out[0]!.right.attempt, 2)
  }
  t.ok(Either.isLeft(out[1]!) && out[1]!.left.candidateId === 9 && out[1]!.left.message === "screening candidate 9 failed: task 'seg' takes branches loss (dense)")
})

t.test("a result that does not answer every request fails them all; a bad entry fails only itself", async (t) => {
  const short = decodeScreens(traced({ results: [verdict(0.9)] }), [a, b])
  t.same(short.map((o) => Either.isLeft(o) && o.left.candidateId), [4, 9])
  t.match(Either.isLeft(short[0]!) ? short[0]!.left.detail : "", /must hold 2 entries, got 1 results/)
  const bad = decodeScreens(traced({ results: [{ ...verdict(0.9), score: "high" }, verdict(0.1)] }), [a, b])
  t.ok(Either.isLeft(bad[0]!) && /'score' must be a number/.test(bad[0]!.left.detail))
  t.ok(Either.isRight(bad[1]!))
})
