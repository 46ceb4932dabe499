/**
 * `autoloss launch slurm --run DIR --connect tcp://HOST:PORT --nodes N --gpus-per-node G`: writes
 * `DIR/slurm/launch.sbatch` and the worker key file `DIR/slurm/worker-keys.json` (0600, from the
 * run's `keys.json`, created when missing), submits the script with `sbatch` and prints the job id.
 * The workers join the pool that `autoloss search --connect tcp://…` (same run directory) listens on.
 */
import { chmodSync, mkdirSync, renameSync, writeFileSync } from "node:fs"
import { dirname, resolve } from "node:path"
import { execa } from "execa"
import { DEFAULT_PYTHON } from "../../workers/internal/localWorkers.ts"
import { ensureRunKeys, workerKeyFile } from "../../workers/RunKeys.ts"
import { parseSlurmFlags, sbatchScript, slurmFiles, SlurmFlagError } from "../../workers/slurm.ts"
import { UsageError } from "../args.ts"
import { defineVerb } from "../verb.ts"

export type { VerbOutput } from "../verb.ts"

const REPO_ROOT = resolve(dirname(DEFAULT_PYTHON), "../..")

export const { spec, summary, run } = defineVerb({
  name: "launch",
  summary: "start workers on a cluster (slurm: sbatch one worker per GPU, connecting back with CURVE)",
  positionals: "slurm",
  positionalCount: "any",
  flags: {
    run: { type: "string", value: "DIR", help: "(required) the run directory holding keys.json (created when missing)" },
    connect: { type: "string", value: "tcp://HOST:PORT", help: "(required) the pool's endpoint as the nodes reach it" },
    nodes: { type: "string", value: "N", help: "(required) nodes to allocate" },
    "gpus-per-node": { type: "string", value: "G", help: "(required) GPUs per node: one worker per GPU; 0 starts CPU workers" },
    "ntasks-per-node": { type: "string", value: "T", help: "CPU workers per node when G = 0 (with G > 0 it must equal G)", defaultText: "1, or G" },
    "cpus-per-task": { type: "string", value: "C", help: "CPU cores per worker", defaultText: "Slurm's" },
    partition: { type: "string", value: "P", help: "Slurm partition(s), comma separated", defaultText: "Slurm's" },
    time: { type: "string", value: "HH:MM:SS", help: "wall-time limit", defaultText: "the partition's" },
    "job-name": { type: "string", value: "NAME", help: "Slurm job name", defaultText: "autoloss-workers" },
    python: { type: "string", value: "PATH", help: "the Python interpreter on the nodes", defaultText: ".venv/bin/python of this checkout" },
    "dry-run": { type: "boolean", default: false, help: "print the sbatch script and write nothing" }
  },
  description: "Exit: 0 submitted (the job id on stdout), 1 keys or sbatch failure, 2 usage error.",
  examples: [
    "autoloss launch slurm --run runs/det-1 --connect tcp://head:5555 --nodes 2 --gpus-per-node 4 --time 12:00:00",
    "autoloss launch slurm --run runs/det-1 --connect tcp://head:5555 --nodes 1 --gpus-per-node 0 --ntasks-per-node 8 --dry-run"
  ]
}, async ({ values, positionals }, out) => {
  if (positionals.length !== 1 || positionals[0] !== "slurm") {
    throw new UsageError(positionals.length === 0 ? "which scheduler? (slurm)" : `unknown scheduler '${positionals.join(" ")}' (known: slurm)`)
  }
  if (values.run === undefined) throw new UsageError("--run: is required (the run directory holding keys.json)")
  const fail = (message: string): number => {
    out.stderr(`autoloss launch: ${message}\n`)
    return 1
  }
  const runDir = resolve(values.run)
  let script: string
  try {
    const job = parseSlurmFlags(values)
    script = sbatchScript(job, { runDir, repoRoot: REPO_ROOT, python: resolve(values.python ?? DEFAULT_PYTHON) })
  } catch (e) {
    if (e instanceof SlurmFlagError) throw new UsageError(e.problems.map((p) => `${p.flag}: ${p.message}`).join("\n  "))
    throw e
  }
  if (values["dry-run"]) {
    out.stdout(script)
    return 0
  }

  const files = slurmFiles(runDir)
  try {
    const keys = workerKeyFile(ensureRunKeys(runDir))
    mkdirSync(files.dir, { recursive: true, mode: 0o700 })
    // A fresh 0600 file renamed over the old one: the secret is never in a file with a wider mode.
    const fresh = `${files.keys}.${process.pid}.tmp`
    writeFileSync(fresh, JSON.stringify(keys, null, 2) + "\n", { mode: 0o600, flag: "wx" })
    chmodSync(fresh, 0o600) // whatever the umask did
    renameSync(fresh, files.keys)
    writeFileSync(files.script, script, { mode: 0o700 })
  } catch (e) {
    return fail((e as Error).message)
  }

  const submitted = await execa("sbatch", ["--parsable", files.script], { reject: false, timeout: 60_000 })
  if (submitted.exitCode !== 0) {
    const why = submitted.stderr.trim() || submitted.shortMessage
    return fail(`sbatch ${files.script} failed: ${why}`)
  }
  // --parsable prints "JOBID" or "JOBID;CLUSTER"
  const jobId = submitted.stdout.trim().split(";")[0] ?? ""
  if (!/^\d+$/.test(jobId)) return fail(`sbatch printed no job id: '${submitted.stdout.trim()}'`)
  out.stdout(`${jobId}\n`)
  out.stderr(`submitted ${files.script} as job ${jobId}; log ${files.output.replace("%j", jobId)}; stop with: scancel ${jobId}\n`)
  return 0
})
