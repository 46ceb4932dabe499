/**
 * `autoloss worker --connect ENDPOINT`: runs a Python worker (`python -m autoloss_worker`) in the
 * foreground until the pool shuts it down or it gets SIGINT/SIGTERM (forwarded: the worker
 * finishes its job, replies and exits).
 */
import { execa } from "execa"
import { checkPython, DEFAULT_PYTHON } from "../../workers/internal/localWorkers.ts"
import { UsageError } from "../args.ts"
import { parseDevice } from "../job-flags.ts"
import { defineVerb } from "../verb.ts"

export const { spec, summary, run } = defineVerb({
  name: "worker",
  summary: "run a Python worker that joins a pool (remote machines: tcp + CURVE keys)",
  flags: {
    connect: { type: "string", required: true, value: "ipc://PATH|tcp://HOST:PORT", help: "the pool's endpoint (printed by `autoloss search --connect`)" },
    device: { type: "string", default: "cpu", value: "cpu|cuda:N", help: "the device the worker's jobs run on" },
    keys: { type: "string", value: "FILE", help: "the worker key file (`autoloss keys --run DIR`); required for tcp endpoints" },
    id: { type: "string", value: "ID", help: "the worker's name in the pool's logs", defaultText: "host-pid" },
    threads: { type: "string", value: "N", help: "torch threads (≥ 1)", defaultText: "torch's default" },
    python: { type: "string", value: "PATH", help: "the Python interpreter with autoloss_worker installed", defaultText: ".venv/bin/python" }
  },
  description: "Exit: the worker's status (0 clean, 3 refused by the pool), 2 usage error.",
  examples: [
    "autoloss worker --connect tcp://head:5555 --device cuda:0 --keys worker-keys.json",
    "autoloss worker --connect ipc:///tmp/autoloss-pool.sock --threads 2"
  ]
}, async ({ values }) => {
  const problems: string[] = []
  const note = (check: () => void) => {
    try {
      check()
    } catch (e) {
      if (!(e instanceof UsageError)) throw e
      problems.push(e.message)
    }
  }
  if (!/^(ipc|tcp):\/\//.test(values.connect)) problems.push("--connect wants ipc://PATH or tcp://HOST:PORT")
  if (values.connect.startsWith("tcp://") && !values.keys) problems.push("tcp endpoints need --keys FILE (see `autoloss keys --run DIR`)")
  note(() => parseDevice("--device", values.device))
  if (values.threads !== undefined && !/^[1-9]\d*$/.test(values.threads)) problems.push(`--threads wants an integer ≥ 1, got '${values.threads}'`)
  const python = values.python ?? DEFAULT_PYTHON
  const missing = checkPython(python)
  if (missing) problems.push(missing)
  if (problems.length > 0) throw new UsageError(problems.join("; "))
  const args = ["-u", "-m", "autoloss_worker", "--connect", values.connect, "--device", values.device]
  if (values.keys) args.push("--curve-keys-file", values.keys)
  if (values.id) args.push("--id", values.id)
  if (values.threads) args.push("--threads", values.threads)
  const child = execa(python, args, { stdio: "inherit", reject: false })
  const forward = (signal: NodeJS.Signals) => () => { child.kill(signal) }
  const onInt = forward("SIGINT")
  const onTerm = forward("SIGTERM")
  process.on("SIGINT", onInt)
  process.on("SIGTERM", onTerm)
  try {
    const result = await child
    return result.exitCode ?? (result.signal ? 128 + 15 : 1)
  } finally {
    process.off("SIGINT", onInt)
    process.off("SIGTERM", onTerm)
  }
})
