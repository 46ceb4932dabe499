/**
 * `autoloss search` and `autoloss resume` end to end with real Python workers on a tiny seg budget:
 * the run directory holds the config and the database, the summary names a trained loss and its
 * held-out comparison with the baseline, and a resume of the finished run replays from the store
 * (same best, same selection, nothing trained again).
 */
import Database from "better-sqlite3"
import { mkdtempSync, existsSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { execa } from "execa"
import t from "tap"

// a guard against a hung CLI only (the tests wait on the process): generous, as on 4x oversubscribed cores a tiny
// search with its selection took minutes
const cli = (args: string[]) => execa("node", ["bin/autoloss.js", ...args], { reject: false, timeout: 900_000 })

const tiny = [
  "--task", "seg", "--budget", "1", "--population", "1", "--workers", "1", "--seed", "3", "--max-candidates", "300",
  "--option", "iterations=4", "--option", "train_images=16", "--option", "eval_images=8", "--option", "batch_size=8",
  "--holdout-seeds", "5,6", "--confirm-seeds", "7"
]

const holdoutRows = (dir: string) => {
  const db = new Database(join(dir, "search.db"), { readonly: true })
  const rows = db.prepare("SELECT candidate_id, seed, split, pid FROM holdout_runs ORDER BY seq").all()
  db.close()
  return rows
}

t.test("search runs a tiny budget and resume replays it from the store", async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), "autoloss-search-")), "run")
  const first = await cli(["search", ...tiny, "--out", dir])
  t.equal(first.exitCode, 0, first.stderr.slice(-2000))
  t.ok(existsSync(join(dir, "search.db")), "database in the run directory")
  const config = JSON.parse(readFileSync(join(dir, "run.json"), "utf8"))
  t.match(config, { task: "seg", budget: 1, initialPopulation: 1, options: { iterations: 4 } })
  const summary = JSON.parse(first.stdout)
  t.equal(summary.counters.trained, 1, "exactly the budget was trained")
  t.type(summary.best.loss, "string")
  t.ok(Number.isFinite(summary.best.score))
  t.type(summary.best.metrics.miou, "number")
  // progress went to stderr as JSON lines (not a terminal), ending with a 'done' event
  const events = first.stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
  t.equal(events.at(-1).event, "done")
  // one finalist (one loss trained): it is the answer, compared with cross-entropy on seeds 5 and 6
  const sel = summary.selection
  t.equal(sel.chosen.id, summary.best.id)
  t.same(sel.seeds, [5, 6])
  t.equal(sel.metric, "miou")
  t.equal(sel.chosen.heldOut.values.length, 2)
  t.equal(sel.baseline.heldOut.values.length, 2)
  t.ok(Math.abs(sel.chosen.vsBaseline.mean - (sel.chosen.heldOut.mean - sel.baseline.heldOut.mean)) < 1e-12)
  t.type(sel.baseline.proxy, "number")
  // the confirmation: the answer and the baseline once more from seed 7, which took no part in the choice
  t.same(sel.confirmation.seeds, [7])
  t.equal(sel.confirmation.chosen.values.length, 1)
  t.equal(sel.verdict, sel.confirmation.vsBaseline.mean > 0 ? "confirmed" : "not-confirmed")
  // the baseline (CE) was screened as a candidate for its equivalence key, stored with the plan
  const keyOf = () => {
    const db = new Database(join(dir, "search.db"), { readonly: true })
    const row = db.prepare("SELECT baseline_key, set_aside FROM selection").get() as { baseline_key: string | null; set_aside: string | null }
    db.close()
    return row
  }
  const stored = keyOf()
  t.match(stored.baseline_key, /^d:/, "a directional key")
  t.same(sel.setAside.map((x: { id: number }) => x.id), stored.set_aside === null ? [] : JSON.parse(stored.set_aside).map((x: { id: number }) => x.id))
  const cells = holdoutRows(dir)
  t.equal(cells.length, 2 * 2 + 1 + 2, "finalist and baseline on each held-out seed, the baseline's proxy run, and both on the confirmation seed")
  t.same((cells as Array<{ candidate_id: number | null; seed: number }>).slice(-2).map((c) => [c.candidate_id, c.seed]), [[null, 7], [sel.chosen.id, 7]])

  // compare --new-data on the confirmation seed sends the same jobs: it repeats the confirmation exactly
  const tinyOptions = tiny.flatMap((x, i) => (tiny[i - 1] === "--option" ? ["--option", x] : []))
  const repeat = await cli(["compare", "--task", "seg", "--loss", sel.chosen.loss, "--seeds", "7", "--new-data", "--workers", "1", "--json", ...tinyOptions])
  t.equal(repeat.exitCode, 0, repeat.stderr.slice(-2000))
  const repeated = JSON.parse(repeat.stdout)
  t.same(repeated.runs.loss[0].metrics.miou, sel.confirmation.chosen.values[0], "the chosen loss on seed 7, as the confirmation trained it")
  t.same(repeated.runs.reference[0].metrics.miou, sel.confirmation.baseline.values[0], "the baseline on seed 7")
  const pinned = await cli(["compare", "--task", "seg", "--loss", sel.chosen.loss, "--new-data", "--option", "data_seed=3"])
  t.equal(pinned.exitCode, 2)
  t.match(pinned.stderr, /--new-data sets data_seed from each seed/)

  const again = await cli(["resume", dir, "--workers", "1"])
  t.equal(again.exitCode, 0, again.stderr.slice(-2000))
  const resumed = JSON.parse(again.stdout)
  t.same(resumed.best, summary.best, "a finished run resumes to the same result")
  t.same(resumed.counters, summary.counters)
  t.same(resumed.selection, summary.selection, "the same selection")
  t.same(holdoutRows(dir), cells, "nothing trained again")
  t.same(keyOf(), stored, "the resume kept the stored key")
})

t.test("search reports usage errors with the offending flag", async (t) => {
  const noOut = await cli(["search", "--task", "seg"])
  t.equal(noOut.exitCode, 2)
  t.match(noOut.stderr, /--out is required\nusage: autoloss search --task T --out DIR/)
  const badDevice = await cli(["search", "--task", "seg", "--devices", "gpu0", "--out", "/tmp/x"])
  t.equal(badDevice.exitCode, 2)
  t.match(badDevice.stderr, /--devices wants cpu or cuda:N entries, got 'gpu0'/)
  const unknownTask = await cli(["search", "--task", "segm", "--workers", "1", "--out", join(mkdtempSync(join(tmpdir(), "autoloss-search-")), "run")])
  t.equal(unknownTask.exitCode, 2, "a task the worker does not know is a usage error, as in every verb")
  t.match(unknownTask.stderr, /autoloss search: unknown task 'segm' \(known: det, ins, mmpose, mmseg, pose, seg\)$/, "the worker's words, no stack trace")
  const reused = await cli(["search", "--task", "seg", "--seed", "101", "--out", join(mkdtempSync(join(tmpdir(), "autoloss-seed-")), "run")])
  t.equal(reused.exitCode, 2)
  t.match(reused.stderr, /holdout-seeds 101 was used by the search/)
  const confirmReused = await cli(["search", "--task", "seg", "--confirm-seeds", "102,9", "--out", join(mkdtempSync(join(tmpdir(), "autoloss-seed-")), "run")])
  t.equal(confirmReused.exitCode, 2)
  t.match(confirmReused.stderr, /confirm-seeds 102 is also a search or held-out seed/)
  const confirmBad = await cli(["search", "--task", "seg", "--confirm-seeds", "x", "--out", join(mkdtempSync(join(tmpdir(), "autoloss-seed-")), "run")])
  t.equal(confirmBad.exitCode, 2)
  t.match(confirmBad.stderr, /--confirm-seeds wants comma-separated non-negative integers, got 'x'/)
  const dir = mkdtempSync(join(tmpdir(), "autoloss-resume-"))
  const notRun = await cli(["resume", dir])
  t.equal(notRun.exitCode, 2)
  t.match(notRun.stderr, /run\.json not found/)
})
