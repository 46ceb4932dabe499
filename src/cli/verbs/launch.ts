/**
 * `autoloss launch slurm --run DIR --connect tcp://HOST:PORT --nodes N --gpus-per-node G
 *   [--ntasks-per-node T] [--cpus-per-task C] [--partition P] [--time HH:MM:SS] [--job-name NAME]
 *   [--python PATH] [--dry-run]`:
 * writes `DIR/slurm/launch.sbatch` and the worker key file `DIR/slurm/worker-keys.json` (0600, from
 * the run's `keys.json`, created when missing), submits the script with `sbatch` and prints the job
 * id. The workers join the pool that `autoloss search --connect tcp://…` (same run directory) listens
 * on. `--dry-run` prints the script and writes nothing. Exit 0 ok, 1 keys/sbatch failure, 2 usage.
 */
import { chmodSync, mkdirSync, renameSync, writeFileSync } from "node:fs"
import { dirname, resolve } from "node:path"
import { parseArgs } from "node:util"
import { execa } from "execa"
import { DEFAULT_PYTHON } from "../../workers/internal/localWorkers.ts"
import { ensureRunKeys, workerKeyFile } from "../../workers/RunKeys.ts"
import { parseSlurmFlags, sbatchScript, slurmFiles, SlurmFlagError } from "../../workers/slurm.ts"
import { firstSentence } from "../args.ts"

export const summary = "start workers on a cluster (slurm: sbatch one worker per GPU, connecting back with CURVE)"

const USAGE = [
  "usage: autoloss launch slurm --run DIR --connect tcp://HOST:PORT --nodes N --gpus-per-node G",
  "         [--ntasks-per-node T] [--cpus-per-task C] [--partition P] [--time HH:MM:SS] [--job-name NAME]",
  "         [--python PATH] [--dry-run]",
  "  G = 0 starts T (default 1) CPU workers per node; G > 0 starts one worker per GPU."
].join("\n")

const REPO_ROOT = resolve(dirname(DEFAULT_PYTHON), "../..")

/** Where the verb writes; tests pass their own to read the job id without a subprocess. */
export interface VerbOutput {
  readonly stdout: (text: string) => void
  readonly stderr: (text: string) => void
}

const processOutput: VerbOutput = {
  stdout: (text) => { process.stdout.write(text) },
  stderr: (text) => { process.stderr.write(text) }
}

export const run = async (argv: ReadonlyArray<string>, out: VerbOutput = processOutput): Promise<number> => {
  const fail = (code: number, message: string): number => {
    out.stderr(`autoloss launch: ${message}\n${code === 2 ? USAGE + "\n" : ""}`)
    return code
  }
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse(argv)
  } catch (e) {
    return fail(2, firstSentence((e as Error).message))
  }
  const { values, positionals } = parsed
  if (positionals.length !== 1 || positionals[0] !== "slurm") {
    return fail(2, positionals.length === 0 ? "which scheduler? (slurm)" : `unknown scheduler '${positionals.join(" ")}' (known: slurm)`)
  }
  if (values.run === undefined) return fail(2, "--run: is required (the run directory holding keys.json)")

  const runDir = resolve(values.run)
  let script: string
  try {
    const job = parseSlurmFlags(values)
    script = sbatchScript(job, { runDir, repoRoot: REPO_ROOT, python: resolve(values.python ?? DEFAULT_PYTHON) })
  } catch (e) {
    if (e instanceof SlurmFlagError) return fail(2, e.problems.map((p) => `${p.flag}: ${p.message}`).join("\n  "))
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
    return fail(1, (e as Error).message)
  }

  const submitted = await execa("sbatch", ["--parsable", files.script], { reject: false, timeout: 60_000 })
  if (submitted.exitCode !== 0) {
    const why = submitted.stderr.trim() || submitted.shortMessage
    return fail(1, `sbatch ${files.script} failed: ${why}`)
  }
  // --parsable prints "JOBID" or "JOBID;CLUSTER"
  const jobId = submitted.stdout.trim().split(";")[0] ?? ""
  if (!/^\d+$/.test(jobId)) return fail(1, `sbatch printed no job id: '${submitted.stdout.trim()}'`)
  out.stdout(`${jobId}\n`)
  out.stderr(`submitted ${files.script} as job ${jobId}; log ${files.output.replace("%j", jobId)}; stop with: scancel ${jobId}\n`)
  return 0
}

const parse = (argv: ReadonlyArray<string>) =>
  parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      run: { type: "string" }, connect: { type: "string" }, nodes: { type: "string" },
      "gpus-per-node": { type: "string" }, "ntasks-per-node": { type: "string" }, "cpus-per-task": { type: "string" },
      partition: { type: "string" }, time: { type: "string" }, "job-name": { type: "string" },
      python: { type: "string" }, "dry-run": { type: "boolean", default: false }
    }
  })
