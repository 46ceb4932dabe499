import t from "tap"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { run as exportVerb } from "../../src/cli/verbs/export.ts"
import { SELECTION, SPECS, tempDir, writeSelection, writeSyntheticRun } from "./fixture.ts"

const capture = async (f: () => Promise<number>) => {
  const out: string[] = []
  const err: string[] = []
  const [o, e] = [process.stdout.write, process.stderr.write]
  process.stdout.write = ((s: string) => (out.push(s), true)) as typeof process.stdout.write
  process.stderr.write = ((s: string) => (err.push(s), true)) as typeof process.stderr.write
  try {
    return { code: await f(), stdout: out.join(""), stderr: err.join("") }
  } finally {
    process.stdout.write = o
    process.stderr.write = e
  }
}

/** RFC 4180 as written by hand here, independent of the exporter: quoted cells may hold , " and newlines. */
const parseCsv = (text: string): string[][] => {
  const rows: string[][] = []
  let row: string[] = []
  let cell = ""
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') (cell += '"', i++)
      else if (ch === '"') quoted = false
      else cell += ch
    } else if (ch === '"') quoted = true
    else if (ch === ",") (row.push(cell), (cell = ""))
    else if (ch === "\n") (row.push(cell), rows.push(row), (row = []), (cell = ""))
    else cell += ch
  }
  return rows
}

t.test("jsonl: one record per candidate with branches, provenance, rejection, proxy and held-out results", async (t) => {
  const dir = tempDir(t)
  await writeSyntheticRun(dir)
  await writeSelection(dir)
  const r = await capture(() => exportVerb([dir, "--format", "jsonl"]))
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, `exported ${SPECS.length} candidates as jsonl to ${join(dir, "candidates.jsonl")}`)
  const records = readFileSync(join(dir, "candidates.jsonl"), "utf8").trimEnd().split("\n").map((l) => JSON.parse(l))
  t.same(records.map((x) => x.id), SPECS.map((_, i) => i))
  const [c0, c1, , , c4, , c6, , , , c10] = records
  t.same(c0.branches, { loss: "neg(mul(y, log(y_hat)))" })
  t.match(c0, { status: "evaluated", how: "random initialisation", rejection: { passed: true, score: 0.8, gradNorms: [1, 2], worker: "w1", ms: 100 } })
  t.match(c0.proxy, { metrics: { gacc: 0.9, miou: 0.3 }, target: 0.3, invalid: false, worker: "w1", ms: 1000 })
  t.equal(c0.heldOut, null, "not a finalist")
  t.match(c1, { status: "static_rejected", staticBranch: "loss", staticReason: "ignores y_hat", rejection: { passed: null, gradNorms: null } })
  t.match(c4, { parentId: 0, how: "loss: re-initialised" })
  t.equal(c6.score, "-Infinity", "an invalid loss's score, as the database stores it")
  t.equal(c6.proxy.invalid, true)
  t.same({ ...c10.heldOut, mean: undefined }, { rank: 1, chosen: false, mean: undefined, seeds: { 101: { gacc: 0.9, miou: 0.28 }, 102: { gacc: 0.9, miou: 0.3 } } })
  t.ok(Math.abs(c10.heldOut.mean - 0.29) < 1e-12)
  t.same(c4.heldOut.chosen, true)
  t.equal(c4.id, SELECTION.chosen)
  t.ok(Math.abs(c4.heldOut.mean - 0.34) < 1e-12)
})

t.test("csv: the same records flattened, documented columns, quoted formulas", async (t) => {
  const dir = tempDir(t)
  await writeSyntheticRun(dir)
  await writeSelection(dir)
  const out = join(dir, "all.csv")
  const r = await capture(() => exportVerb([dir, "--format", "csv", "--out", out]))
  t.equal(r.code, 0, r.stderr)
  const [header, ...rows] = parseCsv(readFileSync(out, "utf8"))
  t.equal(rows.length, SPECS.length)
  t.same(header!.slice(0, 10), ["id", "status", "loss", "branches.loss", "hash", "parentId", "how", "duplicateOf", "staticBranch", "staticReason"])
  for (const col of ["rejection.gradNorms", "proxy.metrics.miou", "proxy.metrics.gacc", "score", "heldOut.rank", "heldOut.chosen", "heldOut.mean", "heldOut.seeds.101.miou", "heldOut.seeds.102.miou"]) {
    t.ok(header!.includes(col), `column ${col}`)
  }
  t.notOk(header!.includes("heldOut"), "a group null for some candidates is its children's columns")
  const cell = (id: number, col: string) => rows[id]![header!.indexOf(col)]
  t.equal(cell(0, "loss"), "neg(mul(y, log(y_hat)))", "a formula with commas survives quoting")
  t.equal(cell(0, "rejection.gradNorms"), "[1,2]")
  t.equal(cell(4, "heldOut.chosen"), "true")
  t.equal(cell(4, "heldOut.seeds.101.miou"), "0.33")
  t.equal(cell(10, "heldOut.rank"), "1")
  t.equal(cell(0, "heldOut.rank"), "", "empty for a non-finalist")
  t.equal(cell(6, "score"), "-Infinity")
  t.equal(cell(1, "proxy.metrics.miou"), "", "no training, no metrics")
})

t.test("csv/jsonl take no loss options", async (t) => {
  const dir = tempDir(t)
  await writeSyntheticRun(dir)
  const r = await capture(() => exportVerb([dir, "--format", "csv", "--candidate", "3"]))
  t.equal(r.code, 2)
  t.match(r.stderr, /--candidate does not apply to --format csv/)
})
