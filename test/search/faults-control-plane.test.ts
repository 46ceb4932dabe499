/**
 * Fault test: SIGKILL the control plane (`node bin/autoloss.js search`) at a random moment after
 * some results are stored, check its Python workers exit (no orphans), `autoloss resume` the run,
 * and compare with an uninterrupted run of the same seed and flags (run alongside to save time):
 * same candidates (ids, hashes, statuses, scores), same population, same counters, and every
 * evaluation stored exactly once over both processes (the `evaluations` ledger), some by each.
 * Reproduce a failing moment with AUTOLOSS_FAULT_SEED=<the seed in the test's comment>.
 */
import t from "tap"
import { Rng } from "../../src/graph/rng.ts"
import {
  TINY_BUDGET, TINY_SEARCH, cli, duplicates, eventually, faultSeed, isAlive, ledger, ledgerSize, runDir, sleep, snapshot, workerPids
} from "./faults-support.ts"

t.test("a control plane killed mid-search resumes to the uninterrupted run, nothing evaluated twice", async (t) => {
  const seed = faultSeed()
  const rng = new Rng(seed)
  const killAfter = 2 + rng.int(30) // stored results (screens + trainings; the run stores ~50) before the kill
  const extraDelayMs = rng.int(800)
  t.comment(`AUTOLOSS_FAULT_SEED=${seed}: kill after ${killAfter} results + ${extraDelayMs} ms`)
  const flags = [...TINY_SEARCH, "--workers", "1"]

  const reference = runDir(t, "fault-ref")
  const killed = runDir(t, "fault-kill")
  const uninterrupted = cli(["search", ...flags, "--out", reference])
  const victim = cli(["search", ...flags, "--out", killed])
  const victimPid = victim.pid!

  const reached = await eventually(() => ledgerSize(killed) >= killAfter, 60_000)
  t.ok(reached, `the run stored ${killAfter} results`)
  await sleep(extraDelayMs)
  const workers = await workerPids(victimPid)
  t.ok(workers.length >= 1, `the search had its worker running (${workers.join(", ")})`)
  const storedAtKill = ledgerSize(killed)
  process.kill(victimPid, "SIGKILL")
  const dead = await victim
  t.equal(dead.signal, "SIGKILL", "killed, not finished")

  const before = snapshot(killed)
  const resuming = cli(["resume", killed, "--workers", "1"])

  // Meanwhile: workers notice their parent is gone at their next heartbeat (1 s) and exit after
  // the job at hand.
  const gone = await eventually(() => workers.every((pid) => !isAlive(pid)), 20_000, 200)
  t.ok(gone, `no orphaned worker left (${workers.filter(isAlive).join(", ") || "none"} alive)`)

  const resumed = await resuming
  t.equal(resumed.exitCode, 0, "the resume finished", { stderr: resumed.stderr.slice(-1500), diagnostic: resumed.exitCode !== 0 })
  const whole = await uninterrupted
  t.equal(whole.exitCode, 0, "the uninterrupted run finished", { stderr: whole.stderr.slice(-1500), diagnostic: whole.exitCode !== 0 })

  const a = snapshot(reference)
  const b = snapshot(killed)
  t.same(b.candidates.map((c) => c["id"]), a.candidates.map((c) => c["id"]), "same candidate ids")
  t.same(b.candidates, a.candidates, "same candidates: hashes, statuses, verdicts, admissions, reuse, scores")
  t.same(b.population, a.population, "same population")
  t.same(b.counters, a.counters, "same counters")
  t.equal(b.observations, a.observations, "same number of outcomes observed")
  t.equal(a.counters["trained"], TINY_BUDGET, "the budget was spent (not cut by --max-candidates)")
  t.ok((before.observations ?? 0) < a.observations!, `killed mid-search: ${before.observations ?? 0} of ${a.observations} outcomes observed`)
  // Everything but where each run directory wrote its report.
  const summary = (stdout: string) => ({ ...JSON.parse(stdout), report: undefined })
  t.same(summary(resumed.stdout), summary(whole.stdout), "the summaries agree")

  const entries = ledger(killed)
  t.same(duplicates(entries), [], "no evaluation stored twice across the kill")
  const trainedIds = entries.filter((e) => e.stage === "train").map((e) => e.candidateId).sort((x, y) => x - y)
  const referenceTrained = ledger(reference).filter((e) => e.stage === "train").map((e) => e.candidateId).sort((x, y) => x - y)
  t.equal(trainedIds.length, a.counters["trained"], "one training per proxy evaluation counted")
  t.same(trainedIds, referenceTrained, "the same candidates were trained")
  const pids = new Set(entries.map((e) => e.pid))
  t.equal(pids.size, 2, "results were stored by the killed process and by the resume")
  t.ok(entries.filter((e) => e.pid === victimPid).length >= storedAtKill, "what the killed run stored was kept")
})
