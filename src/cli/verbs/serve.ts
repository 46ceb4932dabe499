/**
 * `autoloss serve DIR [--port P] [--poll-ms MS]`: serves the run's report on 127.0.0.1 and updates
 * it live (server-sent events) as the search writes results. Opens the database read-only, so it is
 * safe next to a running search. Stops on SIGINT/SIGTERM. Exit 0 stopped, 1 unreadable run or
 * port in use, 2 usage.
 */
import { parseArgs } from "node:util"
import { RunDataError } from "../../report/run-data.ts"
import { startReportServer } from "../../report/server.ts"

export const summary = "serve the live report of a (running) search on 127.0.0.1"

const USAGE = "usage: autoloss serve DIR [--port P] [--poll-ms MS]"

export const DEFAULT_PORT = 8750

export const run = async (argv: ReadonlyArray<string>): Promise<number> => {
  let dir: string
  let port: number
  let pollMs: number
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: true,
      options: { port: { type: "string" }, "poll-ms": { type: "string" } }
    })
    if (positionals.length !== 1) throw new Error(`want exactly one run directory, got ${positionals.length}`)
    dir = positionals[0]!
    port = values.port === undefined ? DEFAULT_PORT : Number(values.port)
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port wants 0..65535, got '${values.port}'`)
    pollMs = values["poll-ms"] === undefined ? 1000 : Number(values["poll-ms"])
    if (!Number.isInteger(pollMs) || pollMs < 50) throw new Error(`--poll-ms wants an integer ≥ 50, got '${values["poll-ms"]}'`)
  } catch (e) {
    process.stderr.write(`autoloss serve: ${(e as Error).message}\n${USAGE}\n`)
    return 2
  }
  let server
  try {
    server = await startReportServer({ dir, port, pollMs })
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (!(e instanceof RunDataError) && code !== "EADDRINUSE" && code !== "EACCES") throw e
    process.stderr.write(`autoloss serve: ${(e as Error).message}\n`)
    return 1
  }
  process.stdout.write(`serving ${dir} at ${server.url} (Ctrl-C stops)\n`)
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"))
    process.once("SIGTERM", () => resolve("SIGTERM"))
  })
  await server.close()
  process.stdout.write(`stopped (${signal})\n`)
  return 0
}
