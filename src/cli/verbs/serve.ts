/**
 * `autoloss serve DIR`: serves the run's report on 127.0.0.1 and updates it live (server-sent
 * events) as the search writes results. Opens the database read-only, so it is safe next to a
 * running search. Stops on SIGINT/SIGTERM.
 */
import { RunDataError } from "../../report/run-data.ts"
import { startReportServer } from "../../report/server.ts"
import { UsageError } from "../args.ts"
import { defineVerb } from "../verb.ts"

export const DEFAULT_PORT = 8750

export const { spec, summary, run } = defineVerb({
  name: "serve",
  summary: "serve the live report of a (running) search on 127.0.0.1",
  positionals: "DIR",
  positionalNoun: "run directory",
  positionalCount: 1,
  flags: {
    port: { type: "string", default: String(DEFAULT_PORT), value: "P", help: "port on 127.0.0.1 (0: any free port)" },
    "poll-ms": { type: "string", default: "1000", value: "MS", help: "how often to look for new results (≥ 50)" }
  },
  description: "Stops on SIGINT/SIGTERM (Ctrl-C).\nExit: 0 stopped, 1 unreadable run or port in use, 2 usage error.",
  examples: ["autoloss serve runs/seg-1", "autoloss serve runs/seg-1 --port 0 --poll-ms 250"]
}, async ({ values, positionals }, io) => {
  const dir = positionals[0]!
  const port = /^\d+$/.test(values.port) ? Number(values.port) : NaN
  if (!(port >= 0 && port <= 65535)) throw new UsageError(`--port wants 0..65535, got '${values.port}'`)
  const pollMs = /^\d+$/.test(values["poll-ms"]) ? Number(values["poll-ms"]) : NaN
  if (!(pollMs >= 50)) throw new UsageError(`--poll-ms wants an integer ≥ 50, got '${values["poll-ms"]}'`)
  let server
  try {
    server = await startReportServer({ dir, port, pollMs })
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (!(e instanceof RunDataError) && code !== "EADDRINUSE" && code !== "EACCES") throw e
    io.stderr(`autoloss serve: ${(e as Error).message}\n`)
    return 1
  }
  io.stdout(`serving ${dir} at ${server.url} (Ctrl-C stops)\n`)
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"))
    process.once("SIGTERM", () => resolve("SIGTERM"))
  })
  await server.close()
  io.stdout(`stopped (${signal})\n`)
  return 0
})
