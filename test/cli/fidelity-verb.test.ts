// `autoloss fidelity` end to end on the native pose task with tiny trainings: usage errors, and an
// interrupted measurement resumed without retraining any finished (loss, seed, iterations) cell.
import t from "tap"
import { execa } from "execa"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import Database from "better-sqlite3"

const bin = fileURLToPath(new URL("../../bin/autoloss.js", import.meta.url))
const autoloss = (...args: string[]) => execa("node", [bin, "fidelity", ...args], { reject: false })
const TINY = JSON.stringify({ train_images: 16, eval_images: 8, threads: 1, batch_size: 8 })

t.test("--help and usage errors", async (t) => {
  const help = await autoloss("--help")
  t.equal(help.exitCode, 0)
  t.match(help.stdout, /Kendall τ-b/)
  t.match((await autoloss()).stderr, /--task is required/)
  const seeds = await autoloss("--task", "pose", "--seeds", "1,1")
  t.equal(seeds.exitCode, 2)
  t.match(seeds.stderr, /--seeds repeats a seed/)
  t.match((await autoloss("--task", "pose", "--options", '{"iterations": 5}')).stderr, /use --iterations/)
  t.match((await autoloss("--task", "pose", "--long-factor", "1")).stderr, /at least 2/)
  t.match((await autoloss("--task", "nope")).stderr, /--panel: no panel file .*nope\.json/)
})

t.test("an interrupted measurement resumes and trains only the missing cells", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "fidelity-verb-"))
  const panel = join(dir, "panel.json")
  writeFileSync(panel, JSON.stringify({
    task: "pose", losses: [
      { name: "mse", origin: "baseline", loss: "square(add(y_hat, neg(y)))" },
      { name: "l1", origin: "variation", loss: "abs(add(y_hat, neg(y)))" },
      { name: "quartic", origin: "variation", loss: "square(square(add(y_hat, neg(y))))" }
    ]
  }))
  const out = join(dir, "run")
  const args = ["--task", "pose", "--panel", panel, "--seeds", "1", "--iterations", "20", "--long-factor", "2", "--options", TINY, "--workers", "1", "--out", out]
  // First run: interrupt it as soon as its first training is stored (an event, not a delay).
  // forceKillAfterDelay: false: no SIGKILL 5 s after the SIGINT (under load the clean stop takes longer)
  const first = execa("node", [bin, "fidelity", ...args], { reject: false, forceKillAfterDelay: false })
  await new Promise<void>((resolve) => {
    let seen = ""
    first.stderr!.on("data", (chunk: Buffer) => {
      seen += chunk.toString()
      if (/\[1\/6\]/.test(seen)) resolve()
    })
  })
  first.kill("SIGINT")
  const r1 = await first
  t.equal(r1.exitCode, 130, "interrupted")
  const db = new Database(join(out, "fidelity.db"), { readonly: true })
  const before = db.prepare("SELECT loss_hash, seed, iterations, pid, recorded_at FROM cells").all() as Array<{ pid: number; recorded_at: number }>
  db.close()
  t.ok(before.length >= 1 && before.length < 6, `${before.length} of 6 stored before the interruption`)

  const r2 = await execa("node", [bin, "fidelity", ...args, "--json"], { reject: false })
  t.equal(r2.exitCode, 0, r2.stderr)
  t.match(r2.stderr, new RegExp(`${before.length} of 6 trainings already stored .*, ${6 - before.length} to train`))
  const after = new Database(join(out, "fidelity.db"), { readonly: true }).prepare("SELECT loss_hash, seed, iterations, pid, recorded_at FROM cells").all() as Array<{ pid: number }>
  t.equal(after.length, 6)
  t.same(after.filter((r) => r.pid === before[0]!.pid), before, "the first run's cells are untouched")
  t.equal(after.filter((r) => r.pid !== before[0]!.pid).length, 6 - before.length, "the rest trained once, by the resumed run")
  const json = JSON.parse(r2.stdout)
  t.equal(json.trained_now, 6 - before.length)
  t.match(json, { proxy_iterations: 20, long_iterations: 40, k: 1, n: 3 })
  t.same(json.panel.map((l: { name: string }) => l.name), ["mse", "l1", "quartic"])
  t.same(JSON.parse(readFileSync(join(out, "fidelity.json"), "utf8")).kendall_tau, json.kendall_tau)
  t.match(readFileSync(join(out, "fidelity.html"), "utf8"), /<title>quartic \(variation\)/)

  const r3 = await autoloss(...args, "--options", JSON.stringify({ train_images: 32 }))
  t.equal(r3.exitCode, 1)
  t.match(r3.stderr, /another recipe/)
})
