/**
 * Fault test: SIGKILL Python workers in the middle of a search (each kill lands on a running job:
 * the screen window keeps both workers busy). The pool restarts them and re-dispatches the lost
 * jobs; the search must finish its budget with every evaluation stored exactly once, and end
 * where an undisturbed run of the same seed ends. Reproduce with AUTOLOSS_FAULT_SEED=<seed>.
 */
import t from "tap"
import { Rng } from "../../src/graph/rng.ts"
import {
  TINY_BUDGET, TINY_SEARCH, cli, duplicates, eventually, faultSeed, isAlive, ledger, ledgerSize, ownScreens, runDir, sleep, snapshot,
  workerPids
} from "./faults-support.ts"

t.test("a search whose workers are killed completes, every evaluation recorded once", async (t) => {
  const seed = faultSeed()
  const rng = new Rng(seed)
  const kills = [3 + rng.int(12), 20 + rng.int(15)] // ledger sizes at which a worker is killed
  t.comment(`AUTOLOSS_FAULT_SEED=${seed}: kill a worker after ${kills.join(" and ")} stored results`)

  const reference = runDir(t, "fault-workers-ref")
  const dir = runDir(t, "fault-workers")
  const undisturbed = cli(["search", ...TINY_SEARCH, "--workers", "1", "--out", reference])
  const search = cli(["search", ...TINY_SEARCH, "--workers", "2", "--out", dir])
  const killed: number[] = []
  let restarted = false
  for (const at of kills) {
    if (!(await eventually(() => ledgerSize(dir) >= at, 60_000))) break
    await sleep(rng.int(300))
    const pids = (await workerPids(search.pid!)).filter((p) => !killed.includes(p))
    if (pids.length === 0) break
    const victim = rng.pick(pids)
    process.kill(victim, "SIGKILL")
    killed.push(victim)
    if (killed.length === 1) {
      // The pool's supervisor replaces the worker (after its restart back-off).
      restarted = await eventually(async () => (await workerPids(search.pid!)).some((p) => !pids.includes(p)), 15_000, 200)
    }
  }
  t.equal(killed.length, 2, `killed workers ${killed.join(", ")} mid-search`)
  t.ok(await eventually(() => killed.every((pid) => !isAlive(pid)), 5_000), "the killed workers are gone")
  t.ok(restarted, "the pool started a new worker after the first kill")

  const done = await search
  t.equal(done.exitCode, 0, "the search finished", { stderr: done.stderr.slice(-1500), diagnostic: done.exitCode !== 0 })
  const summary = JSON.parse(done.stdout) // only the summary: pool warnings about the lost workers go to stderr
  t.equal(summary.counters.trained, TINY_BUDGET, "the whole budget was trained")

  const entries = ledger(dir)
  t.same(duplicates(entries), [], "no evaluation stored twice")
  const run = snapshot(dir)
  // A candidate's own screening job is stored in screen_branches (the rejection_* columns also hold
  // verdicts it took from an earlier identical branch, without a job).
  const screenedIds = ownScreens(dir)
  t.same(entries.filter((e) => e.stage === "screen").map((e) => e.candidateId).sort((a, b) => a - b), screenedIds,
    "one ledger row per stored screening")
  const trained = entries.filter((e) => e.stage === "train")
  t.equal(trained.length, run.counters["trained"], "one ledger row per proxy evaluation")
  const evaluated = run.candidates.filter((c) => c["status"] === "evaluated")
  t.equal(evaluated.length, run.counters["observed"], "every admitted candidate has its outcome")
  t.ok(evaluated.every((c) => c["score"] !== null), "and a score")

  const whole = await undisturbed
  t.equal(whole.exitCode, 0, "the undisturbed run finished", { stderr: whole.stderr.slice(-1500), diagnostic: whole.exitCode !== 0 })
  const a = snapshot(reference)
  const decided = (rows: typeof run.candidates) => rows.filter((c) => c["status"] !== "abandoned")
  t.same(decided(run.candidates), decided(a.candidates), "same candidates and outcomes as without the kills")
  t.same(run.population, a.population, "same population")
  t.same(run.counters, a.counters, "same counters")
})
