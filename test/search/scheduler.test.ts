import t from "tap"
import { Rng } from "../../src/graph/rng.ts"
import { printLoss } from "../../src/graph/syntax.ts"
import { BOX, DENSE } from "../../src/graph/types.ts"
import { AgingEvolution, NaiveEvolution, tournamentSize } from "../../src/search/aging-evolution.ts"
import { AgingPopulation } from "../../src/search/population.ts"
import { RandomSearch } from "../../src/search/random-search.ts"
import { WAIT, type Proposal, type Scheduler, type ScreenVerdict, type Wait } from "../../src/search/scheduler.ts"

const BRANCHES = [{ name: "loss", kind: DENSE }]

t.test("tournament size: 5% rounded down in integers, at least 1", async (t) => {
  t.equal(tournamentSize(20, 5), 1)
  t.equal(tournamentSize(2500, 5), 125)
  t.equal(tournamentSize(60, 5), 3, "0.05·60 is 3.0000000000000004 in floats; integers give 3")
  t.equal(tournamentSize(39, 5), 1)
  t.equal(tournamentSize(40, 5), 2)
  t.equal(tournamentSize(1, 5), 1)
})

t.test("aging population keeps the most recent P, oldest first", async (t) => {
  const p = new AgingPopulation<number>(3)
  t.equal(p.push(1), undefined)
  p.push(2)
  p.push(3)
  t.equal(p.push(4), 1, "the oldest is evicted")
  t.equal(p.push(5), 2)
  t.same(p.members(), [3, 4, 5])
  t.equal(p.size, 3)
  t.throws(() => new AgingPopulation(0), /capacity/)
})

/**
 * Drives a scheduler sequentially (one candidate in flight, as in the paper) against a scripted
 * "world": a verdict and a score that are pure functions of the printed loss.
 */
const hashNum = (s: string): number => {
  let h = 2166136261
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0
  return h / 2 ** 32
}
const world = (text: string): { verdict: ScreenVerdict; score: number } => {
  const u = hashNum(text)
  return { verdict: u < 0.4 ? { kind: "passed", score: 0.7, branches: {} } : { kind: "rejected", score: 0.1, invalid: false, branches: {} }, score: hashNum(text + "!") }
}
const drive = (s: Scheduler, steps: number, log: string[] = []): string[] => {
  for (let id = log.length; id < steps; id++) {
    const p = s.propose({ id })
    if (p === WAIT) throw new Error("sequential driving never waits: every admitted candidate is observed at once")
    const text = printLoss(p.graph)
    const w = world(text)
    const verdict = s.flags.needsRejection ? w.verdict : ({ kind: "unscreened" } as const)
    const admitted = s.admit({ id, graph: p.graph, verdict })
    log.push(`${id} ${p.provenance.parentId ?? "-"} ${admitted ? "A" : "."} ${text}`)
    if (admitted) s.observe({ id, graph: p.graph, score: w.score, invalid: false, reused: "no" })
  }
  return log
}

t.test("aging evolution: K random passers first, then offspring of tournament winners", async (t) => {
  const s = new AgingEvolution(BRANCHES, new Rng(1), { initialPopulation: 4, populationSize: 6, tournamentPercent: 100 })
  const log = drive(s, 200)
  const admittedRandom = log.filter((l) => / - A /.test(l)).length
  t.equal(admittedRandom, 4, "exactly K random losses admitted")
  const firstChild = log.findIndex((l) => !/^\d+ - /.test(l))
  t.ok(log.slice(0, firstChild).every((l) => / - /.test(l)), "nothing but random proposals before the population is full")
  t.equal(s.population().length, 6, "capped at P")
  // With T = 100% the parent is always the best member: check it on the next proposal.
  const members = s.population()
  const bestScore = Math.max(...members.map((m) => m.score))
  const next = s.propose({ id: 200 })
  t.not(next, WAIT)
  // Copies of a loss share its score, so compare scores (ties go to the first drawn).
  if (next !== WAIT) t.equal(members.find((m) => m.candidateId === next.provenance.parentId)?.score, bestScore)
})

const proposed = (p: Proposal | Wait): Proposal => {
  if (p === WAIT) throw new Error("expected a proposal, got WAIT")
  return p
}

t.test("aging evolution: one admission per tournament, later passers of a filled slot are discarded", async (t) => {
  const s = new AgingEvolution(BRANCHES, new Rng(3), { initialPopulation: 2 })
  const pass = { kind: "passed", score: 0.9, branches: {} } as const
  const reject = { kind: "rejected", score: 0, invalid: false, branches: {} } as const
  // Initialisation: the third passer is not admitted (K = 2), and evolution waits for both outcomes.
  const init = [0, 1, 2].map((id) => proposed(s.propose({ id })).graph)
  t.same(init.map((graph, id) => s.admit({ id, graph, verdict: pass })), [true, true, false])
  t.equal(s.propose({ id: 3 }), WAIT)
  s.observe({ id: 0, graph: init[0]!, score: 0.2, invalid: false, reused: "no" })
  t.equal(s.propose({ id: 3 }), WAIT, "still one initial outcome missing")
  s.observe({ id: 1, graph: init[1]!, score: 0.5, invalid: false, reused: "no" })
  // Three speculative offspring of one slot; the second and third pass, only the second is admitted.
  const kids = [3, 4, 5].map((id) => proposed(s.propose({ id })))
  t.equal(new Set(kids.map((k) => k.provenance.parentId)).size, 1, "one tournament for the whole slot")
  t.same(kids.map((k, i) => s.admit({ id: 3 + i, graph: k.graph, verdict: i === 0 ? reject : pass })), [false, true, false])
  t.throws(() => s.admit({ id: 99, graph: init[0]!, verdict: pass }), /was not proposed/)
})

t.test("determinism: same seed and outcomes, same proposals; snapshot/restore continues identically", async (t) => {
  const make = (seed: number) => new AgingEvolution(BRANCHES, new Rng(seed), { initialPopulation: 5, populationSize: 30 })
  const a = drive(make(9), 150)
  const b = drive(make(9), 150)
  t.same(a, b)
  t.not(drive(make(10), 150).join("\n"), a.join("\n"), "another seed, another search")

  const first = make(9)
  const log = drive(first, 70)
  const restored = make(12345)
  restored.restore(JSON.parse(JSON.stringify(first.snapshot())))
  t.same(drive(restored, 150, [...log]), a, "restored mid-run from JSON, it proposes what the uninterrupted one did")
  t.throws(() => new RandomSearch(BRANCHES, new Rng(1)).restore(first.snapshot()), /not a snapshot of random-search/)
})

t.test("invalid losses stay in the population with the worst score, and survive a snapshot", async (t) => {
  const s = new AgingEvolution(BRANCHES, new Rng(4), { initialPopulation: 1 })
  const p = s.propose({ id: 0 })
  if (p === WAIT) return t.fail("no wait expected")
  t.equal(s.admit({ id: 0, graph: p.graph, verdict: { kind: "passed", score: 1, branches: {} } }), true)
  s.observe({ id: 0, graph: p.graph, score: -Infinity, invalid: true, reused: "no" })
  const copy = new AgingEvolution(BRANCHES, new Rng(0), { initialPopulation: 1 })
  copy.restore(JSON.parse(JSON.stringify(s.snapshot())))
  t.same(copy.population(), [{ candidateId: 0, score: -Infinity }])
})

t.test("multi-branch proposals keep the task's branches", async (t) => {
  const branches = [{ name: "cls", kind: DENSE }, { name: "reg", kind: BOX }]
  const s = new AgingEvolution(branches, new Rng(5), { initialPopulation: 1 })
  const p = s.propose({ id: 0 })
  if (p === WAIT) return t.fail("no wait expected")
  t.same(p.graph.branches.map((b) => [b.name, b.kind.name]), [["cls", "dense"], ["reg", "box"]])
})

t.test("naive evolution trains every offspring; random search proposes fresh losses", async (t) => {
  const naive = new NaiveEvolution(BRANCHES, new Rng(2), { initialPopulation: 3 })
  t.same(naive.flags, { needsRejection: false, useEquivalence: false, reuseDuplicates: false })
  const log = drive(naive, 40)
  t.equal(log.filter((l) => / A /.test(l)).length, 40, "sequentially, every unscreened proposal is admitted")
  const rs = new RandomSearch(BRANCHES, new Rng(2))
  const rlog = drive(rs, 40)
  t.ok(rlog.every((l) => / - /.test(l)), "no parents")
  t.equal(rs.population().length, 1, "tracks the best")
})

t.test("multi-branch: a rejected proposal's passing branches are kept, only the failing ones redrawn (App. A.2)", async (t) => {
  const branches = [{ name: "cls", kind: DENSE }, { name: "reg", kind: BOX }]
  const s = new AgingEvolution(branches, new Rng(11), { initialPopulation: 2 })
  const text = (p: Proposal | Wait, name: string) => {
    if (p === WAIT) throw new Error("no wait expected")
    return printLoss({ branches: p.graph.branches.filter((b) => b.name === name) })
  }
  const verdict = (cls: "passed" | "rejected", reg: "passed" | "rejected"): ScreenVerdict => {
    const v = (k: "passed" | "rejected") => (k === "passed" ? { kind: k, score: 0.9 } : { kind: k, score: 0.1, invalid: false })
    const both = { cls: v(cls), reg: v(reg) } as const
    return cls === "passed" && reg === "passed"
      ? { kind: "passed", score: 0.9, branches: both }
      : { kind: "rejected", score: 0.1, invalid: false, branches: both }
  }
  // Initialisation: cls passed in proposal 0, so proposal 2 (made after that verdict) reuses it;
  // proposal 1, made before the verdict, drew both branches afresh.
  const p0 = proposed(s.propose({ id: 0 }))
  const p1 = proposed(s.propose({ id: 1 }))
  t.equal(s.admit({ id: 0, graph: p0.graph, verdict: verdict("passed", "rejected") }), false)
  const p2 = proposed(s.propose({ id: 2 }))
  t.equal(text(p2, "cls"), text(p0, "cls"), "the passing cls branch is kept")
  t.not(text(p2, "reg"), text(p0, "reg"), "the failing reg branch is redrawn")
  t.not(text(p1, "cls"), text(p0, "cls"))
  t.equal(s.admit({ id: 1, graph: p1.graph, verdict: verdict("passed", "passed") }), true)
  t.equal(s.admit({ id: 2, graph: p2.graph, verdict: verdict("passed", "passed") }), true)
  s.observe({ id: 1, graph: p1.graph, score: 0.3, invalid: false, reused: "no" })
  s.observe({ id: 2, graph: p2.graph, score: 0.6, invalid: false, reused: "no" })
  // Evolution: the slot's first offspring fails on cls only; the next offspring keeps its reg
  // branch (and how it was made) and draws a new cls from the parent's.
  const k3 = proposed(s.propose({ id: 3 }))
  t.equal(s.admit({ id: 3, graph: k3.graph, verdict: verdict("rejected", "passed") }), false)
  const k4 = proposed(s.propose({ id: 4 }))
  t.equal(k4.provenance.parentId, k3.provenance.parentId, "same slot, same parent")
  t.equal(text(k4, "reg"), text(k3, "reg"))
  const how = (p: Proposal) => p.provenance.how as ReadonlyArray<{ branch: string }>
  t.same(how(k4)[1], how(k3)[1], "the kept branch keeps its provenance")
  // A snapshot carries the kept branches: a restored scheduler proposes the same next offspring.
  t.equal(s.admit({ id: 4, graph: k4.graph, verdict: verdict("rejected", "rejected") }), false)
  const copy = new AgingEvolution(branches, new Rng(0), { initialPopulation: 2 })
  copy.restore(JSON.parse(JSON.stringify(s.snapshot())))
  t.same(printLoss(proposed(copy.propose({ id: 5 })).graph), printLoss(proposed(s.propose({ id: 5 })).graph))
  t.equal(text(proposed(s.propose({ id: 6 })), "reg"), text(k3, "reg"), "still kept while the slot is open")
})
