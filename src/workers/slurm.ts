/**
 * The sbatch script behind `autoloss launch slurm`: one Slurm task per worker, each running the
 * project's Python worker (`python -u -m autoloss_worker`) that connects back to a tcp pool with
 * the run's CURVE worker keys. Pure: flags in, script text out; the verb writes and submits it.
 *
 *   const job = parseSlurmFlags({ connect: "tcp://head:5555", nodes: "2", "gpus-per-node": "4" })
 *   const text = sbatchScript(job, { runDir: "/abs/run", repoRoot: "/abs/repo", python: "/abs/repo/.venv/bin/python" })
 *
 * GPU jobs start one worker per GPU: every task sees all of its node's GPUs (`--gpu-bind=none`),
 * so local task k takes `cuda:k`. CPU jobs (`--gpus-per-node 0`) start `--ntasks-per-node` workers.
 */
import { posix } from "node:path"

export const SLURM_DIR = "slurm"
export const SCRIPT_FILE = "launch.sbatch"
/** The worker key file (`autoloss keys` format), mode 0600, next to the script. */
export const WORKER_KEYS_FILE = "worker-keys.json"

/** The verb's flags as typed on the command line (strings; absent ones undefined). */
export interface SlurmFlags {
  readonly connect?: string | undefined
  readonly nodes?: string | undefined
  readonly "gpus-per-node"?: string | undefined
  readonly "ntasks-per-node"?: string | undefined
  readonly "cpus-per-task"?: string | undefined
  readonly partition?: string | undefined
  readonly time?: string | undefined
  readonly "job-name"?: string | undefined
}

export interface SlurmJob {
  readonly connect: string
  readonly nodes: number
  readonly gpusPerNode: number
  /** Workers per node: = gpusPerNode on GPUs; any number ≥ 1 on CPU. */
  readonly tasksPerNode: number
  /** Also each worker's torch threads; undefined leaves Slurm's default (1 CPU). */
  readonly cpusPerTask: number | undefined
  readonly partition: string | undefined
  readonly time: string | undefined
  readonly jobName: string
}

/** Absolute paths as seen from the compute nodes (a filesystem they share with this machine). */
export interface SlurmPaths {
  readonly runDir: string
  readonly repoRoot: string
  readonly python: string
}

export interface FlagProblem {
  /** The flag at fault, e.g. "--nodes"; "repository" for the project's own path. */
  readonly flag: string
  readonly message: string
}

export class SlurmFlagError extends Error {
  constructor(readonly problems: ReadonlyArray<FlagProblem>) {
    super(problems.map((p) => `${p.flag}: ${p.message}`).join("; "))
    this.name = "SlurmFlagError"
  }
}

export const slurmFiles = (runDir: string) => {
  const dir = posix.join(runDir, SLURM_DIR)
  return { dir, script: posix.join(dir, SCRIPT_FILE), keys: posix.join(dir, WORKER_KEYS_FILE), output: posix.join(dir, "slurm-%j.out") }
}

const COUNT = /^[0-9]+$/
// Slurm's --time forms: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
const TIME = /^(?:\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d{1,2}(?::\d{1,2}(?::\d{1,2})?)?)$/
const PARTITION = /^[A-Za-z0-9_.-]+(?:,[A-Za-z0-9_.-]+)*$/
const JOB_NAME = /^[A-Za-z0-9_.+-]{1,128}$/
const TCP = /^tcp:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$/

export const parseSlurmFlags = (flags: SlurmFlags): SlurmJob => {
  const problems: FlagProblem[] = []
  const bad = (flag: string, message: string): undefined => {
    problems.push({ flag, message })
    return undefined
  }
  /** An absent flag gives undefined; a present one must be an integer ≥ min. */
  const count = (flag: keyof SlurmFlags, min: number): number | undefined => {
    const text = flags[flag]
    if (text === undefined) return undefined
    const n = COUNT.test(text) ? Number(text) : NaN
    if (!Number.isSafeInteger(n) || n < min) return bad(`--${flag}`, `wants an integer ≥ ${min}, got '${text}'`)
    return n
  }

  const connect = flags.connect
  const tcp = connect === undefined ? null : TCP.exec(connect)
  if (connect === undefined) bad("--connect", "is required: the pool's tcp://HOST:PORT as the nodes reach it")
  else if (tcp === null) bad("--connect", `wants tcp://HOST:PORT (workers on other machines need tcp + CURVE), got '${connect}'`)
  else if (["0.0.0.0", "*", "[::]"].includes(tcp[1]!)) bad("--connect", `'${tcp[1]}' is a bind address; give a host name or address the nodes can reach`)
  else if (Number(tcp[2]) < 1 || Number(tcp[2]) > 65535) bad("--connect", `port ${tcp[2]} is not in 1..65535`)

  const nodes = flags.nodes === undefined ? bad("--nodes", "is required") : count("nodes", 1)
  const gpusPerNode = flags["gpus-per-node"] === undefined ? bad("--gpus-per-node", "is required (0: CPU workers)") : count("gpus-per-node", 0)
  const tasks = count("ntasks-per-node", 1)
  let tasksPerNode: number | undefined
  if (gpusPerNode !== undefined) {
    if (gpusPerNode > 0 && tasks !== undefined && tasks !== gpusPerNode) {
      bad("--ntasks-per-node", `GPU jobs start one worker per GPU: leave it out or make it equal to --gpus-per-node (${gpusPerNode}), got ${tasks}`)
    }
    tasksPerNode = gpusPerNode > 0 ? gpusPerNode : tasks ?? 1
  }
  const cpusPerTask = count("cpus-per-task", 1)

  const partition = flags.partition
  if (partition !== undefined && !PARTITION.test(partition)) bad("--partition", `wants partition names [A-Za-z0-9_.-] separated by commas, got '${partition}'`)
  const time = flags.time
  if (time !== undefined && !TIME.test(time)) bad("--time", `wants HH:MM:SS (or another Slurm time: MM, D-HH:MM:SS, ...), got '${time}'`)
  const jobName = flags["job-name"] ?? "autoloss-workers"
  if (!JOB_NAME.test(jobName)) bad("--job-name", `wants 1-128 characters from [A-Za-z0-9_.+-], got '${jobName}'`)

  if (problems.length > 0) throw new SlurmFlagError(problems)
  return { connect: connect!, nodes: nodes!, gpusPerNode: gpusPerNode!, tasksPerNode: tasksPerNode!, cpusPerTask, partition, time, jobName }
}

const SHELL_SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/

/** One shell word: as is when it holds only safe characters, else single-quoted. */
export const shellQuote = (word: string): string =>
  word !== "" && SHELL_SAFE.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`

// `#SBATCH` lines are not shell: sbatch splits them at white space and treats `%` as a filename
// pattern (`%j`) and `#` as a comment, so paths that go into directives must avoid those.
const DIRECTIVE_SAFE = /^\/[^\s"'#%\\]*$/

const checkPath = (problems: FlagProblem[], flag: string, path: string, inDirective: boolean): void => {
  if (!path.startsWith("/")) problems.push({ flag, message: `wants an absolute path (compute nodes resolve it), got '${path}'` })
  else if (inDirective && !DIRECTIVE_SAFE.test(path)) {
    problems.push({ flag, message: `'${path}' holds white space, a quote, '#', '%' or '\\', which #SBATCH directives cannot carry` })
  } else if (/[\n\r\0]/.test(path)) problems.push({ flag, message: "holds a line break or NUL" })
}

/** Each task runs this fixed program (no text from flags in it); its values come as $0 $1 $2. */
const workerCommand = (gpu: boolean, threads: number): string =>
  `exec "$0" -u -m autoloss_worker --connect "$1" --curve-keys-file "$2" ` +
  `--device ${gpu ? `"cuda:$SLURM_LOCALID"` : "cpu"} --id "slurm-$SLURM_JOB_ID-$SLURM_PROCID" --threads ${threads}`

export const sbatchScript = (job: SlurmJob, paths: SlurmPaths): string => {
  const problems: FlagProblem[] = []
  checkPath(problems, "--run", paths.runDir, true)
  checkPath(problems, "repository", paths.repoRoot, true)
  checkPath(problems, "--python", paths.python, false)
  if (problems.length > 0) throw new SlurmFlagError(problems)

  const files = slurmFiles(paths.runDir)
  const gpu = job.gpusPerNode > 0
  const workers = job.nodes * job.tasksPerNode
  const directives = [
    `--job-name=${job.jobName}`,
    `--nodes=${job.nodes}`,
    `--ntasks-per-node=${job.tasksPerNode}`,
    ...(gpu ? [`--gpus-per-node=${job.gpusPerNode}`] : []),
    ...(job.cpusPerTask !== undefined ? [`--cpus-per-task=${job.cpusPerTask}`] : []),
    ...(job.partition !== undefined ? [`--partition=${job.partition}`] : []),
    ...(job.time !== undefined ? [`--time=${job.time}`] : []),
    `--chdir=${paths.repoRoot}`,
    `--output=${files.output}`
  ]
  // Slurm 22.05's srun ignores the batch job's SLURM_CPUS_PER_TASK, so the step repeats the shape.
  const srun = [
    "srun", `--nodes=${job.nodes}`, `--ntasks-per-node=${job.tasksPerNode}`,
    ...(job.cpusPerTask !== undefined ? [`--cpus-per-task=${job.cpusPerTask}`] : []),
    ...(gpu ? ["--gpu-bind=none"] : []),
    "--kill-on-bad-exit=0",
    "bash", "-c", shellQuote(workerCommand(gpu, job.cpusPerTask ?? 1)),
    shellQuote(paths.python), shellQuote(job.connect), shellQuote(files.keys)
  ]
  return [
    "#!/bin/bash",
    `# Written by \`autoloss launch slurm\` for the run ${paths.runDir}; resubmit with \`sbatch ${files.script}\`.`,
    `# ${workers} worker(s): ${job.nodes} node(s) x ${job.tasksPerNode} ${gpu ? "(one per GPU, local task k on cuda:k)" : "on CPU"},`,
    `# each connecting to ${job.connect} with the CURVE keys in ${files.keys}.`,
    "# The repository, its .venv and the run directory must be on a filesystem the nodes share.",
    ...directives.map((d) => `#SBATCH ${d}`),
    "set -euo pipefail",
    "export PYTHONUNBUFFERED=1",
    "# A worker ends its task when the pool shuts down or on scancel's SIGTERM (it finishes its job first);",
    "# one worker failing leaves the others serving.",
    srun.join(" "),
    ""
  ].join("\n")
}
