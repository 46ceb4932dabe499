/**
 * sbatch script generation (`src/workers/slurm.ts`) and the `launch` verb without a cluster:
 * directives, device mapping and quoting checked by running the script's srun line under bash with
 * a fake `srun` and `python`; flag errors name the flag; submission through a fake `sbatch`.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import t from "tap"
import fc from "fast-check"
import { execa } from "execa"
import { run as launch } from "../../src/cli/verbs/launch.ts"
import { parseSlurmFlags, sbatchScript, shellQuote, type SlurmFlags, SlurmFlagError } from "../../src/workers/slurm.ts"

const tmp = mkdtempSync(join(tmpdir(), "autoloss-slurm-unit-"))
t.teardown(() => rmSync(tmp, { recursive: true, force: true }))

const PATHS = { runDir: "/runs/r1", repoRoot: "/src/autoloss", python: "/src/autoloss/.venv/bin/python" }
const BASE: SlurmFlags = { connect: "tcp://head.cluster:5555", nodes: "2", "gpus-per-node": "4" }

const directives = (script: string): string[] =>
  script.split("\n").filter((l) => l.startsWith("#SBATCH ")).map((l) => l.slice("#SBATCH ".length))

const problemsOf = (flags: SlurmFlags): Array<[string, string]> => {
  try {
    parseSlurmFlags(flags)
  } catch (e) {
    if (e instanceof SlurmFlagError) return e.problems.map((p) => [p.flag, p.message])
    throw e
  }
  return []
}

/** Runs the script's srun line with fakes on PATH: `srun` starts one task per local slot
 * (SLURM_LOCALID, SLURM_PROCID set) and the "python" prints its argv, NUL-separated, one line per task. */
const runSrunLine = async (script: string, pythonPath: string): Promise<string[][]> => {
  const bin = mkdtempSync(join(tmp, "bin-"))
  writeFileSync(join(bin, "srun"), [
    "#!/bin/bash",
    "nodes=1; per=1",
    "while [[ $1 == --* ]]; do case $1 in --nodes=*) nodes=${1#*=};; --ntasks-per-node=*) per=${1#*=};; esac; shift; done",
    "for ((n = 0; n < nodes; n++)); do for ((k = 0; k < per; k++)); do",
    "  SLURM_LOCALID=$k SLURM_PROCID=$((n * per + k)) SLURM_JOB_ID=77 \"$@\"",
    "done; done", ""
  ].join("\n"), { mode: 0o755 })
  writeFileSync(pythonPath, "#!/bin/bash\nprintf '%s\\0' \"$0\" \"$@\"; echo\n", { mode: 0o755 })
  const srunLine = script.split("\n").find((l) => l.startsWith("srun "))!
  const out = await execa("bash", ["-c", srunLine], { env: { PATH: `${bin}:${process.env["PATH"]}` } })
  return out.stdout.split("\n").map((line) => line.split("\0").slice(0, -1))
}

t.test("GPU job: one task per GPU on every node, each worker on cuda:<local id>", async (t) => {
  const job = parseSlurmFlags({ ...BASE, partition: "gpu", time: "12:00:00", "cpus-per-task": "8" })
  const script = sbatchScript(job, PATHS)
  t.ok(script.startsWith("#!/bin/bash\n"))
  t.same(directives(script), [
    "--job-name=autoloss-workers", "--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--cpus-per-task=8",
    "--partition=gpu", "--time=12:00:00", "--chdir=/src/autoloss", "--output=/runs/r1/slurm/slurm-%j.out"
  ])
  t.match(script, /^srun --nodes=2 --ntasks-per-node=4 --cpus-per-task=8 --gpu-bind=none /m, "every task sees all node GPUs")
  const python = join(tmp, "python-gpu")
  const tasks = await runSrunLine(sbatchScript(job, { ...PATHS, python }), python)
  t.equal(tasks.length, 8)
  const devices = tasks.map((argv) => argv[argv.indexOf("--device") + 1])
  t.same(devices, ["cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0", "cuda:1", "cuda:2", "cuda:3"])
  t.same(tasks.map((argv) => argv[argv.indexOf("--id") + 1]), Array.from({ length: 8 }, (_, i) => `slurm-77-${i}`))
  t.same(tasks[5], [python, "-u", "-m", "autoloss_worker", "--connect", "tcp://head.cluster:5555",
    "--curve-keys-file", "/runs/r1/slurm/worker-keys.json", "--device", "cuda:1", "--id", "slurm-77-5", "--threads", "8"])
})

t.test("CPU job: --ntasks-per-node workers on cpu, no GPU directives, one thread by default", async (t) => {
  const job = parseSlurmFlags({ ...BASE, nodes: "1", "gpus-per-node": "0", "ntasks-per-node": "3" })
  t.same([job.tasksPerNode, job.cpusPerTask, job.partition, job.time], [3, undefined, undefined, undefined])
  const python = join(tmp, "python-cpu")
  const script = sbatchScript(job, { ...PATHS, python })
  t.same(directives(script), ["--job-name=autoloss-workers", "--nodes=1", "--ntasks-per-node=3",
    "--chdir=/src/autoloss", "--output=/runs/r1/slurm/slurm-%j.out"])
  t.notMatch(script, /gpu/)
  const tasks = await runSrunLine(script, python)
  t.same(tasks.map((argv) => argv.slice(-6)), [0, 1, 2].map((k) => ["--device", "cpu", "--id", `slurm-77-${k}`, "--threads", "1"]))
  t.equal(parseSlurmFlags({ ...BASE, "gpus-per-node": "0" }).tasksPerNode, 1, "one CPU worker per node by default")
})

t.test("values reach the worker intact whatever characters they hold", async (t) => {
  const python = join(tmp, "py thon 'quoted' $HOME `x` \"q\"")
  const connect = "tcp://[::1]:5555"
  const job = parseSlurmFlags({ ...BASE, connect, nodes: "1", "gpus-per-node": "0" })
  const script = sbatchScript(job, { ...PATHS, python })
  const [task] = await runSrunLine(script, python)
  t.same(task!.slice(0, 6), [python, "-u", "-m", "autoloss_worker", "--connect", connect])
})

t.test("shellQuote: bash reads back exactly the quoted word", async (t) => {
  const words = fc.sample(fc.string({ unit: fc.constantFrom(..."ab Z0_-./:'\"\\$`!*?[]{}()<>|&;#~%=@,\t\n"), maxLength: 12 }), { numRuns: 200, seed: 7 })
  words.push("", "'", "''", "a'b", "--flag=x y", "é ü")
  const out = await execa("bash", ["-c", `printf '%s\\0' ${words.map(shellQuote).join(" ")}`])
  t.same(out.stdout.split("\0").slice(0, -1), words)
  t.equal(shellQuote("/plain/path-1.2_x:y"), "/plain/path-1.2_x:y", "safe words stay unquoted")
})

t.test("flag errors name the flag and say what was wrong", async (t) => {
  t.same(problemsOf({}).map(([f]) => f), ["--connect", "--nodes", "--gpus-per-node"], "missing required flags")
  const cases: Array<[SlurmFlags, string, RegExp]> = [
    [{ ...BASE, connect: "ipc:///tmp/x" }, "--connect", /tcp:\/\/HOST:PORT/],
    [{ ...BASE, connect: "tcp://0.0.0.0:5555" }, "--connect", /bind address/],
    [{ ...BASE, connect: "tcp://*:5555" }, "--connect", /tcp:\/\/HOST:PORT|bind address/],
    [{ ...BASE, connect: "tcp://head:70000" }, "--connect", /port 70000/],
    [{ ...BASE, nodes: "0" }, "--nodes", /integer ≥ 1, got '0'/],
    [{ ...BASE, nodes: "1.5" }, "--nodes", /got '1\.5'/],
    [{ ...BASE, "gpus-per-node": "-1" }, "--gpus-per-node", /integer ≥ 0/],
    [{ ...BASE, "ntasks-per-node": "2" }, "--ntasks-per-node", /one worker per GPU.*\(4\), got 2/],
    [{ ...BASE, "cpus-per-task": "0" }, "--cpus-per-task", /integer ≥ 1/],
    [{ ...BASE, partition: "gpu; rm -rf /" }, "--partition", /partition names/],
    [{ ...BASE, time: "1h" }, "--time", /HH:MM:SS/],
    [{ ...BASE, "job-name": "a b" }, "--job-name", /got 'a b'/]
  ]
  for (const [flags, flag, message] of cases) {
    const problems = problemsOf(flags)
    t.equal(problems.length, 1, `${flag}: ${JSON.stringify(problems)}`)
    t.equal(problems[0]?.[0], flag)
    t.match(problems[0]?.[1], message)
  }
  t.same(problemsOf({ ...BASE, "ntasks-per-node": "4", partition: "a,b.c", time: "2-03:04:05" }), [], "equal tasks, partition list, D-HH:MM:SS")
  t.same(problemsOf({ ...BASE, time: "90" }), [], "minutes")
})

t.test("paths: absolute, and free of what #SBATCH lines cannot carry", async (t) => {
  const job = parseSlurmFlags(BASE)
  const flagsOf = (paths: typeof PATHS): string[] => {
    try {
      sbatchScript(job, paths)
      return []
    } catch (e) {
      return (e as SlurmFlagError).problems.map((p) => p.flag)
    }
  }
  t.same(flagsOf({ ...PATHS, runDir: "runs/r1" }), ["--run"])
  t.same(flagsOf({ ...PATHS, runDir: "/runs/my run" }), ["--run"])
  t.same(flagsOf({ ...PATHS, runDir: "/runs/100%" }), ["--run"])
  t.same(flagsOf({ ...PATHS, repoRoot: "/src/#autoloss" }), ["repository"])
  t.same(flagsOf({ ...PATHS, python: "python3" }), ["--python"])
  t.same(flagsOf({ ...PATHS, python: "/opt/my python/bin/python" }), [], "python is a shell word, not a directive")
})

t.test("launch verb: --dry-run prints the script and writes nothing", async (t) => {
  const runDir = join(tmp, "dry")
  const out = { stdout: "", stderr: "" }
  const code = await launch(["slurm", "--run", runDir, "--connect", "tcp://head:5555", "--nodes", "1", "--gpus-per-node", "2", "--dry-run"],
    { stdout: (s) => { out.stdout += s }, stderr: (s) => { out.stderr += s } })
  t.equal(code, 0, out.stderr)
  t.match(out.stdout, /^#SBATCH --gpus-per-node=2$/m)
  t.match(out.stdout, new RegExp(`--output=${runDir}/slurm/slurm-%j\\.out`))
  t.notOk(existsSync(runDir), "no run directory, keys or script")
})

t.test("launch verb: usage errors exit 2 and name the flag", async (t) => {
  const call = async (argv: string[]) => {
    let stderr = ""
    const code = await launch(argv, { stdout: () => {}, stderr: (s) => { stderr += s } })
    return { code, stderr }
  }
  t.match(await call(["pbs", "--run", tmp]), { code: 2, stderr: /unknown scheduler 'pbs'/ })
  t.match(await call(["slurm", "--connect", "tcp://h:1", "--nodes", "1", "--gpus-per-node", "0"]), { code: 2, stderr: /--run: is required/ })
  t.match(await call(["slurm", "--run", tmp, "--connect", "tcp://h:1", "--nodes", "x", "--gpus-per-node", "0"]), { code: 2, stderr: /--nodes: wants an integer/ })
  t.match(await call(["slurm", "--run", tmp, "--bogus"]), { code: 2, stderr: /Unknown option '--bogus'/ })
})

t.test("launch verb: writes script and 0600 key file, submits with sbatch --parsable, prints the job id", async (t) => {
  const bin = mkdtempSync(join(tmp, "sbatch-"))
  const argsFile = join(bin, "args")
  writeFileSync(join(bin, "sbatch"), `#!/bin/bash\nprintf '%s\\n' "$@" > ${shellQuote(argsFile)}\necho '4242;cluster-a'\n`, { mode: 0o755 })
  const runDir = join(tmp, "real")
  const savedPath = process.env["PATH"]
  process.env["PATH"] = `${bin}:${savedPath}`
  t.teardown(() => { process.env["PATH"] = savedPath })
  const out = { stdout: "", stderr: "" }
  const io = { stdout: (s: string) => { out.stdout += s }, stderr: (s: string) => { out.stderr += s } }
  const argv = ["slurm", "--run", runDir, "--connect", "tcp://head:5555", "--nodes", "1", "--gpus-per-node", "0", "--ntasks-per-node", "2"]
  t.equal(await launch(argv, io), 0, out.stderr)
  t.equal(out.stdout, "4242\n")
  t.match(out.stderr, /scancel 4242/)
  const script = join(runDir, "slurm", "launch.sbatch")
  t.same(readFileSync(argsFile, "utf8").split("\n"), ["--parsable", script, ""])
  const keyFile = JSON.parse(readFileSync(join(runDir, "slurm", "worker-keys.json"), "utf8")) as Record<string, string>
  const runKeys = JSON.parse(readFileSync(join(runDir, "keys.json"), "utf8")) as Record<string, string>
  t.same(keyFile, { server_public: runKeys["serverPublic"], client_public: runKeys["clientPublic"], client_secret: runKeys["clientSecret"] })
  t.equal(statSync(join(runDir, "slurm", "worker-keys.json")).mode & 0o777, 0o600)
  t.match(readFileSync(script, "utf8"), /^#SBATCH --ntasks-per-node=2$/m)

  // A second launch keeps the run's keys and tightens a key file someone loosened.
  chmodSync(join(runDir, "slurm", "worker-keys.json"), 0o644)
  t.equal(await launch(argv, io), 0)
  t.equal(statSync(join(runDir, "slurm", "worker-keys.json")).mode & 0o777, 0o600)
  t.same(JSON.parse(readFileSync(join(runDir, "keys.json"), "utf8")), runKeys)

  writeFileSync(join(bin, "sbatch"), "#!/bin/bash\necho 'sbatch: error: invalid partition specified: gpu' >&2\nexit 1\n", { mode: 0o755 })
  out.stderr = ""
  t.equal(await launch(argv, io), 1)
  t.match(out.stderr, /sbatch .*launch\.sbatch failed: sbatch: error: invalid partition/)
})
