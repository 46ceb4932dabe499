/**
 * Proxy-fidelity bench: runs `autoloss fidelity` on a task's shipped panel and writes
 * `bench/results/fidelity-<name>.json`: the verb's summary (kendall_tau, spearman, top_k_retrieval,
 * regret, panel with per-loss scores and seeds, proxy_iterations, long_iterations) plus wall_s and
 * the machine's load (1-minute load average sampled every 30 s while it ran).
 *
 * Run: `make bench-fidelity TASK=native-pose` or
 * `npx tsx bench/fidelity.ts --task pose --name native-pose [--out-dir DIR] [-- verb flags...]`.
 * The run directory (default `runs/bench-fidelity-<name>`) keeps every finished training: rerunning
 * after an interruption trains only what is missing.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { cpus, loadavg } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { execa } from "execa"

const { values, positionals } = parseArgs({
  options: { task: { type: "string" }, name: { type: "string" }, "out-dir": { type: "string" } },
  allowPositionals: true
})
if (values.task === undefined) throw new Error("--task is required")
const name = values.name ?? values.task
const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const runDir = values["out-dir"] ?? join(root, "runs", `bench-fidelity-${name}`)

const samples: number[] = [loadavg()[0]!]
const sampler = setInterval(() => samples.push(loadavg()[0]!), 30_000)
const started = Date.now()
const r = await execa("node", [join(root, "bin/autoloss.js"), "fidelity", "--task", values.task, "--out", runDir, "--json", ...positionals], {
  reject: false, stderr: "inherit"
})
clearInterval(sampler)
samples.push(loadavg()[0]!)
if (r.exitCode !== 0) {
  process.stderr.write(`bench/fidelity: autoloss fidelity exited ${r.exitCode}; finished trainings are kept in ${runDir}\n`)
  process.exit(r.exitCode ?? 1)
}
const summary = JSON.parse(r.stdout) as Record<string, unknown>
const stored = JSON.parse(readFileSync(join(runDir, "fidelity.json"), "utf8")) as Record<string, unknown>
const out = {
  bench: "fidelity", name, ...summary,
  // this invocation's wall time; trainings stored by an earlier, interrupted invocation are not in it
  wall_s: (Date.now() - started) / 1000,
  trained_in_this_invocation: stored["trained_now"],
  machine: {
    cpus: cpus().length, model: cpus()[0]?.model ?? "cpu", node: process.version,
    load1_min: Math.min(...samples), load1_mean: samples.reduce((a, b) => a + b, 0) / samples.length, load1_max: Math.max(...samples),
    note: "shared machine: other processes ran beside the bench; load above the bench's own workers slows every training alike"
  },
  command: `autoloss fidelity --task ${values.task} --out ${runDir} --json ${positionals.join(" ")}`.trim(),
  written_at: new Date().toISOString()
}
const file = join(root, "bench", "results", `fidelity-${name}.json`)
mkdirSync(dirname(file), { recursive: true })
writeFileSync(file, JSON.stringify(out, null, 2) + "\n")
process.stdout.write(`bench/fidelity: τ ${String(summary["kendall_tau"])}, top-k ${String(summary["top_k_retrieval"])}, regret ${String(summary["regret"])} -> ${file}\n`)
