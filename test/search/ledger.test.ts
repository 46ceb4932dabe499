// The engine's bookkeeping on its own, without fibers, store or evaluator: hand-worked sequences.
import t from "tap"
import { parseLoss } from "../../src/graph/syntax.ts"
import type { BranchScreen } from "../../src/search/evaluator.ts"
import { EngineLedger, ownedBranches, type Screened } from "../../src/search/ledger.ts"
import { FULL_PIPELINE, type SearchFlags } from "../../src/search/scheduler.ts"
import { DEPENDENCE_ROLES } from "../../src/search/static-check.ts"

const ledger = (flags: SearchFlags = FULL_PIPELINE, budget = 100) =>
  new EngineLedger(flags, { budget, equivalence: "directional", roles: DEPENDENCE_ROLES })

const CE = "neg(mul(y, log(y_hat)))"
const L1 = "abs(add(y_hat, neg(y)))"
const L2 = "square(add(y_hat, neg(y)))"
const NO_TARGET = "neg(log(y_hat))"
const g = parseLoss

const screen = (passed: boolean, score: number, norm = 1): BranchScreen => ({
  passed,
  score,
  invalid: false,
  gradNorms: [norm],
  fingerprint: [[norm, 0, 0, 0]]
})
const passed = (key: string | null): Screened => ({ verdict: { kind: "passed", score: 0.9, branches: {} }, key, summary: null })
const rejected: Screened = { verdict: { kind: "rejected", score: 0.1, invalid: false, branches: {} }, key: null, summary: null }

t.test("branch ownership: the first proposal with a branch screens it, later ones wait for it", async (t) => {
  const l = ledger()
  const p0 = l.propose(g(`a: ${CE}; b: ${L1}`), "h0")
  const p1 = l.propose(g(`a: ${CE}; b: ${L2}`), "h1")
  const p2 = l.propose(g(`a: ${NO_TARGET}; b: ${L1}`), "h2")
  // Same expression under another branch name is another branch.
  const p3 = l.propose(g(`b: ${CE}; a: ${L2}`), "h3")
  t.same(p0.plan, [{ name: "a", owner: 0 }, { name: "b", owner: 0 }])
  t.same(p1.plan, [{ name: "a", owner: 0 }, { name: "b", owner: 1 }])
  t.same(p2.plan[0], { name: "a", staticReason: "does not depend on the target (needs 'y'; uses only y_hat)" })
  t.same(p2.plan[1], { name: "b", owner: 0 })
  t.same(p3.plan, [{ name: "b", owner: 3 }, { name: "a", owner: 3 }])
  t.same([p0, p1, p2, p3].map(ownedBranches), [["a", "b"], ["b"], [], ["b", "a"]])
  t.same([p0, p1, p2, p3].map((p) => p.id), [0, 1, 2, 3])

  const own = ledger({ ...FULL_PIPELINE, reuseDuplicates: false })
  own.propose(g(`a: ${CE}; b: ${L1}`), "h0")
  t.same(own.propose(g(`a: ${CE}; b: ${L2}`), "h1").plan, [{ name: "a", owner: 1 }, { name: "b", owner: 1 }], "without duplicate reuse every proposal screens its own branches")
  t.same(ledger({ ...FULL_PIPELINE, needsRejection: false }).propose(g(CE), "h").plan, [], "no plan without rejection")
})

t.test("structural duplicates point at the first proposal with their hash", async (t) => {
  const l = ledger()
  t.same([l.propose(g(CE), "x"), l.propose(g(L1), "y"), l.propose(g(CE), "x"), l.propose(g(CE), "x")].map((p) => p.duplicateOf), [null, null, 0, 0])
  t.equal(l.nextId, 4)
  t.equal(l.counters.proposed, 4)
  t.equal(l.screensPending(), 4)
})

t.test("a verdict from branch results: the worst branch, the first static branch, the key only when passed", async (t) => {
  const l = ledger()
  const both = l.propose(g(`a: ${CE}; b: ${L1}`), "h0")
  const ok = l.screened(both, { a: screen(true, 0.9, 2), b: screen(true, 0.7, 3) })
  t.same(ok.verdict, { kind: "passed", score: 0.7, branches: { a: { kind: "passed", score: 0.9 }, b: { kind: "passed", score: 0.7 } } })
  t.same(ok.summary?.gradNorms, [2, 3], "branch-major summary")
  t.type(ok.key, "string")
  const bad = l.screened(both, { a: screen(true, 0.9), b: screen(false, 0.2) })
  t.same(bad.verdict, { kind: "rejected", score: 0.2, invalid: false, branches: { a: { kind: "passed", score: 0.9 }, b: { kind: "rejected", score: 0.2, invalid: false } } })
  t.equal(bad.key, null)
  const stat = l.propose(g(`a: ${NO_TARGET}; b: ${L1}`), "h1")
  const s = l.screened(stat, { b: screen(true, 0.8) })
  t.equal(s.verdict.kind, "static_rejected")
  t.match(s.verdict, { branch: "a", reason: /^branch 'a' does not depend on the target/ })
  t.same(s.summary?.score, 0.8, "the other branches are still screened and summarised")
  t.throws(() => l.screened(both, { a: screen(true, 0.9) }), /no result for branch 'b' of candidate 0/)
  const noEq = ledger({ ...FULL_PIPELINE, useEquivalence: false })
  t.equal(noEq.screened(noEq.propose(g(CE), "h"), { loss: screen(true, 0.9) }).key, null, "no key without equivalence")
  const none = ledger({ ...FULL_PIPELINE, needsRejection: false })
  t.same(none.screened(none.propose(g(CE), "h"), {}).verdict, { kind: "unscreened" })
})

t.test("reuse at admission: duplicate before equivalent, the first admitted loss is the source", async (t) => {
  const l = ledger()
  const hashes = ["h1", "h2", "h2", "h3", "h4", "h4", "h2", "h5", "h3"]
  for (const h of hashes) l.propose(g(CE), h)
  const deliver = (s: Screened, admitted: boolean) => {
    const d = l.deliverVerdict(s, admitted)
    if (!d.ok) throw new Error(d.detail)
    return d
  }
  t.same(deliver(passed("kA"), true).reuse, null, "0 (h1, kA) trains")
  t.same(deliver(passed("kA"), true).reuse, { from: 0, kind: "equivalent" }, "1 (h2, kA) is equivalent to 0")
  t.same(deliver(passed("kB"), true).reuse, { from: 1, kind: "duplicate" }, "2 (h2, kB) duplicates 1: duplicate wins over an equivalent key, and a reused loss is a source")
  t.same(deliver(passed("kB"), true).reuse, { from: 2, kind: "equivalent" }, "3 (h3, kB): the first admitted with kB is 2")
  t.same(deliver(passed("kC"), false).reuse, null, "4 (h4) discarded")
  t.same(deliver(passed("kC"), true).reuse, null, "5 (h4, kC) trains: the discarded 4 is no source")
  t.same(deliver(rejected, false).reuse, null, "6 rejected")
  const last = deliver(passed(null), true)
  t.same(last.reuse, null, "7 (h5, no key) trains")
  t.same(last.update, { id: 7, status: "admitted", staticBranch: null, staticReason: null, equivalenceKey: null, admissionIndex: 5, rejection: null })
  t.same(deliver(passed("kC"), true).reuse, { from: 3, kind: "duplicate" }, "8 (h3, kC): both a duplicate (3) and an equivalent (5) exist; duplicate wins")
  const c = l.counters
  t.same(
    { admitted: c.admitted, trained: c.trained, duplicateReuses: c.duplicateReuses, equivalentReuses: c.equivalentReuses, discarded: c.discarded, rejected: c.rejected, passed: c.passed },
    { admitted: 7, trained: 3, duplicateReuses: 2, equivalentReuses: 2, discarded: 1, rejected: 1, passed: 8 }
  )
  // Duplicate verdicts: 2, 5, 6 and 8 (proposed after 1, 4, 1 and 3 with the same hash).
  t.equal(c.duplicateVerdicts, 4)
  t.equal(c.screened, 5)

  const noDup = ledger({ ...FULL_PIPELINE, reuseDuplicates: false })
  noDup.propose(g(CE), "h")
  noDup.propose(g(CE), "h")
  noDup.deliverVerdict(passed(null), true)
  t.match(noDup.deliverVerdict(passed(null), true), { ok: true, reuse: null }, "without duplicate reuse an identical loss trains again")
  t.equal(noDup.counters.duplicateVerdicts, 0)
})

t.test("a hand-worked sequence: counters, statuses, cursors, budget, outcomes, engine state", async (t) => {
  const l = ledger(FULL_PIPELINE, 2)
  const p = [
    l.propose(g(`a: ${CE}; b: ${L1}`), "h0"),
    l.propose(g(`a: ${NO_TARGET}; b: ${L1}`), "h1"),
    l.propose(g(`a: ${CE}; b: ${L2}`), "h2"),
    l.propose(g(`a: ${CE}; b: ${L1}`), "h0"),
    l.propose(g(`a: ${CE}; b: ${L2}`), "h2")
  ]
  t.equal(l.screensPending(), 5)
  const s0 = l.screened(p[0]!, { a: screen(true, 0.9, 1), b: screen(true, 0.8, 2) })
  const d0 = l.deliverVerdict(s0, true)
  t.match(d0, { ok: true, id: 0, admitted: true, reuse: null, update: { status: "admitted", admissionIndex: 0, equivalenceKey: s0.key } })
  const s1 = l.screened(p[1]!, { b: screen(true, 0.8, 2) })
  t.match(l.deliverVerdict(s1, false), { ok: true, update: { status: "static_rejected", staticBranch: "a", admissionIndex: null } })
  const s2 = l.screened(p[2]!, { a: screen(true, 0.9, 1), b: screen(true, 0.6, 5) })
  t.match(l.deliverVerdict(s2, false), { ok: true, update: { status: "discarded" } })
  t.equal(l.outcomesPending(), 1)
  t.same(l.nextOutcome(), { id: 0, rung: 0 })
  t.same(l.deliverOutcome({ score: 0.5, invalid: false, reused: false }, "zero"), { job: { id: 0, rung: 0 }, promotions: [] })
  t.equal(l.outcomesPending(), 0)
  t.throws(() => l.nextOutcome(), /no outcome is pending/)
  // 3 duplicates 0 (identical hash): admitted, reuses 0's score, spends no budget.
  t.match(l.deliverVerdict(l.screened(p[3]!, { a: screen(true, 0.9, 1), b: screen(true, 0.8, 2) }), true), { reuse: { from: 0, kind: "duplicate" }, update: { admissionIndex: 1 } })
  t.notOk(l.budgetSpent())
  t.match(l.deliverVerdict(s2, true), { reuse: null, update: { admissionIndex: 2 } }, "4 duplicates the discarded 2: trains")
  t.ok(l.budgetSpent(), "two trainings started: budget 2 spent")
  t.equal(l.screensPending(), 0)
  t.equal(l.nextVerdictId(), 5)
  t.equal(l.outcomesPending(), 2)
  l.deliverOutcome({ score: 0.5, invalid: false, reused: true }, "three")
  l.deliverOutcome({ score: -Infinity, invalid: true, reused: false }, "four")
  t.same(l.best, { id: 0, score: 0.5, text: "zero" }, "ties keep the earlier best")
  const want = {
    nextId: 5,
    screenCursor: 5,
    trainCursor: 3,
    counters: {
      proposed: 5,
      staticRejected: 1,
      duplicateVerdicts: 2,
      screened: 2,
      // owners: 0 screens a, b; 1: b reused from 0; 2: b own, a reused; 3: both reused; 4: both reused
      branchesScreened: 3,
      branchesReused: 6,
      rejected: 0,
      passed: 4,
      admitted: 3,
      discarded: 1,
      trained: 2,
      duplicateReuses: 1,
      equivalentReuses: 0,
      invalid: 1,
      observed: 3
    },
    best: { id: 0, score: 0.5, text: "zero" }
  }
  t.equal(JSON.stringify(l.engineState()), JSON.stringify(want), "engine state, keys in the stored order")
})

t.test("a scheduler that admits a rejected candidate is reported, not obeyed", async (t) => {
  const l = ledger()
  l.propose(g(CE), "h")
  t.same(l.deliverVerdict(rejected, true), { ok: false, id: 0, detail: "admit(0) admitted a rejected candidate" })
  t.equal(l.counters.admitted, 0)
})
