/**
 * The engine's decisions pinned against the implementation before the ledger refactor: a search
 * with the deterministic fake evaluator (one-branch and four-branch, reuse of duplicates and
 * equivalents on) must make exactly the decisions recorded in `fixtures/golden-trace.json`, which
 * was written by the engine at commit 99d4712 (before its bookkeeping moved into a pure module).
 * A change that alters what the search does (which candidates, verdicts, admissions, reuses,
 * scores, counters, checkpoints) fails here; one that only restructures the code does not.
 *
 * `GOLDEN_WRITE=1 npx tap test/search/golden-trace.test.ts` rewrites the fixture (only for a change
 * meant to alter the search's behaviour; say so in the commit).
 */
import { readFileSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import t from "tap"
import { makeFakeEvaluator } from "./fake-evaluator.ts"
import { detEvolution, evolution, readStore, runOnTestClock, SMALL, tempDir } from "./harness.ts"

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), "fixtures", "golden-trace.json")

const trace = async (t: { teardown(f: () => void): unknown }, kind: "one-branch" | "four-branch") => {
  const dir = tempDir(t)
  const fake = makeFakeEvaluator({ passRate: kind === "one-branch" ? 0.5 : 0.4, invalidRate: 0.1, equivalenceClasses: 40, screenMillis: 30, trainMillis: 200, timingSeed: 3 })
  const result = kind === "one-branch"
    ? await runOnTestClock(dir, evolution(11), fake, { ...SMALL, budget: 24 })
    : await runOnTestClock(dir, detEvolution(5), fake, { ...SMALL, budget: 10, maxCandidates: 1500 })
  const s = await readStore(dir)
  return {
    counters: result.counters,
    best: result.best,
    storedCounters: s.counters,
    checkpoint: s.checkpoint,
    population: s.population,
    candidates: s.rows.map((r) => [r.id, r.hash, r.status, r.duplicateOf, r.admissionIndex, r.reusedFrom, r.reuseKind, r.score, r.equivalenceKey, r.staticBranch]),
    // which candidate asked for which screening and training (as a set: the start order is timing)
    jobs: fake.calls.map((c) => [c.kind, c.id, ...(c.branches ?? [])].join(" ")).sort()
  }
}

t.test("the engine makes the decisions of the pre-refactor engine", async (t) => {
  const now = { oneBranch: await trace(t, "one-branch"), fourBranch: await trace(t, "four-branch") }
  const json = JSON.parse(JSON.stringify(now)) as unknown
  if (process.env["GOLDEN_WRITE"] === "1") {
    writeFileSync(FIXTURE, JSON.stringify(json) + "\n")
    t.pass(`wrote ${FIXTURE}`)
    return
  }
  const golden = JSON.parse(readFileSync(FIXTURE, "utf8")) as typeof now
  t.ok(golden.oneBranch.candidates.length > 50 && golden.fourBranch.candidates.length > 50, "the fixture holds real searches")
  t.same(json, golden)
})
