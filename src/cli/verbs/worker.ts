/**
 * `autoloss worker --connect ENDPOINT [--device cpu|cuda:N] [--keys FILE] [--id ID] [--threads N]`:
 * runs a Python worker (`python -m autoloss_worker`) in the foreground until the pool shuts it down
 * or it gets SIGINT/SIGTERM (forwarded: the worker finishes its job, replies and exits).
 * tcp endpoints need `--keys` (from `autoloss keys --run DIR`). Exit: the worker's status
 * (0 clean, 3 refused by the pool), 2 usage error.
 */
import { parseArgs } from "node:util"
import { execa } from "execa"
import { checkPython, DEFAULT_PYTHON } from "../../workers/internal/localWorkers.ts"
import { firstSentence } from "../args.ts"

export const summary = "run a Python worker that joins a pool (remote machines: tcp + CURVE keys)"

const USAGE = "usage: autoloss worker --connect ipc://PATH|tcp://HOST:PORT [--device cpu|cuda:N] [--keys FILE] [--id ID] [--threads N]"

export const run = async (argv: ReadonlyArray<string>): Promise<number> => {
  let values: { connect?: string; device?: string; keys?: string; id?: string; threads?: string; python?: string }
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        connect: { type: "string" }, device: { type: "string", default: "cpu" }, keys: { type: "string" },
        id: { type: "string" }, threads: { type: "string" }, python: { type: "string" }
      },
      strict: true
    }).values
  } catch (e) {
    process.stderr.write(`autoloss worker: ${firstSentence((e as Error).message)}\n${USAGE}\n`)
    return 2
  }
  const problems: string[] = []
  if (!values.connect || !/^(ipc|tcp):\/\//.test(values.connect)) problems.push("--connect wants ipc://PATH or tcp://HOST:PORT")
  if (values.connect?.startsWith("tcp://") && !values.keys) problems.push("tcp endpoints need --keys FILE (see `autoloss keys --run DIR`)")
  if (!/^(cpu|cuda:\d+)$/.test(values.device ?? "")) problems.push(`--device wants cpu or cuda:N, got '${values.device}'`)
  if (values.threads !== undefined && !/^[1-9]\d*$/.test(values.threads)) problems.push(`--threads wants an integer ≥ 1, got '${values.threads}'`)
  const python = values.python ?? DEFAULT_PYTHON
  const missing = checkPython(python)
  if (missing) problems.push(missing)
  if (problems.length > 0) {
    process.stderr.write(`autoloss worker: ${problems.join("; ")}\n${USAGE}\n`)
    return 2
  }
  const args = ["-u", "-m", "autoloss_worker", "--connect", values.connect!, "--device", values.device!]
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
}
