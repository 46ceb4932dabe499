import t from "tap"
import { parseLoss } from "../../src/graph/syntax.ts"
import { hashLoss } from "../../src/graph/canonical.ts"
import { toWire } from "../../src/graph/wire.ts"
import { heldOutPayload, trainPayload } from "../../src/search/pool-evaluator.ts"

const job = { task: "seg", metric: null, seed: 3, options: { iterations: 300, data_seed: 0, train_images: 64 } }
const graph = parseLoss("neg(mul(y, log(y_hat)))")
const loss = { kind: "loss" as const, candidate: { id: 7, graph, hash: hashLoss(graph), text: "ce" } }

t.test("a held-out training gets the held-out seed for initialisation and data", async (t) => {
  const p = heldOutPayload(job, { subject: loss, seed: 101, split: "held-out", iterations: null }, true)
  t.same(p, { task: "seg", metric: null, seed: 101, options: { iterations: 300, data_seed: 101, train_images: 64 }, loss: toWire(graph) })
})

t.test("the baseline has no loss; --select-iterations overrides the proxy's length", async (t) => {
  const p = heldOutPayload(job, { subject: { kind: "baseline" }, seed: 102, split: "held-out", iterations: 50 }, true)
  t.same(p, { task: "seg", metric: null, seed: 102, options: { iterations: 50, data_seed: 102, train_images: 64 } })
})

t.test("the proxy reference keeps the search's data; a task without a data seed keeps its dataset", async (t) => {
  const proxy = heldOutPayload(job, { subject: { kind: "baseline" }, seed: 3, split: "proxy", iterations: null }, true)
  t.same(proxy.options, job.options)
  t.equal(proxy.seed, 3)
  const det = heldOutPayload({ task: "det", metric: null, seed: 0 }, { subject: loss, seed: 101, split: "held-out", iterations: null }, false)
  t.same(det.options, {}, "no data_seed option is invented for a task that has none")
  t.equal(det.seed, 101)
})

t.test("an asha training carries its rung's stop_at, the top rung too (so the worker continues); full fidelity none", async (t) => {
  const full = trainPayload(job, loss.candidate)
  t.same(full, { task: "seg", metric: null, seed: 3, loss: toWire(graph), options: job.options })
  t.same(trainPayload(job, loss.candidate, { rung: 0, iterations: 33, of: 300 }), { ...full, fidelity: { stop_at: 33 } })
  t.same(trainPayload(job, loss.candidate, { rung: 2, iterations: 300, of: 300 }), { ...full, fidelity: { stop_at: 300 } }, "the top rung continues too")
})
