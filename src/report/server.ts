/**
 * The live report of `autoloss serve`: an HTTP server on 127.0.0.1 that serves the report page and
 * pushes an `update` server-sent event whenever the run's database changed, after which the page
 * fetches a fresh body. The database is opened read-only (WAL: the search keeps writing meanwhile);
 * `PRAGMA data_version` tells this connection cheaply whether another one committed.
 *
 * Routes (GET/HEAD only): `/` page, `/body` the page's `<main>`, `/api/summary` JSON of the model's
 * headline numbers (with a `revision` that grows on each change), `/events` the SSE stream.
 * Bounded: at most `maxClients` event streams, rebuilds at most once per poll and never more often
 * than twice the time the last rebuild took.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { renderReportBody, renderReportPage } from "./html.ts"
import { buildReportModel, type ReportModel } from "./model.ts"
import { openRunDatabase, readRun } from "./run-data.ts"

export interface ServeOptions {
  readonly dir: string
  /** 0 picks a free port. */
  readonly port: number
  readonly host?: string
  /** How often the database is checked for changes, ms. */
  readonly pollMs?: number
  readonly maxClients?: number
  /** SSE comment interval that keeps proxies and the browser from dropping an idle stream, ms. */
  readonly keepAliveMs?: number
}

export interface ReportServer {
  readonly url: string
  readonly port: number
  /** Stops polling, ends the event streams, closes the server and the database. */
  readonly close: () => Promise<void>
}

/** What `/api/summary` returns: enough for a script or a test to follow a run. */
export const summaryOf = (m: ReportModel, revision: number) => ({
  revision,
  counters: m.counters,
  funnel: m.funnel,
  evaluations: m.curve.length,
  best: m.top[0] === undefined ? null : { id: m.top[0].candidate.id, score: m.top[0].candidate.score, text: m.top[0].candidate.text },
  lastOutcomeAt: m.lastOutcomeAt
})

export const startReportServer = async (options: ServeOptions): Promise<ReportServer> => {
  const host = options.host ?? "127.0.0.1"
  const pollMs = options.pollMs ?? 1000
  const maxClients = options.maxClients ?? 16
  const keepAliveMs = options.keepAliveMs ?? 15_000
  const db = openRunDatabase(options.dir)

  let model = buildReportModel(readRun(options.dir, db))
  let revision = 1
  let dataVersion = db.pragma("data_version", { simple: true }) as number
  let lastBuildMs = 0
  let lastBuildAt = Date.now()
  const clients = new Set<ServerResponse>()

  const send = (res: ServerResponse, event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)

  const poll = () => {
    const now = Date.now()
    if (now - lastBuildAt < 2 * lastBuildMs) return
    const version = db.pragma("data_version", { simple: true }) as number
    if (version === dataVersion) return
    dataVersion = version
    const started = Date.now()
    try {
      model = buildReportModel(readRun(options.dir, db))
    } catch (e) {
      process.stderr.write(`autoloss serve: could not read the run: ${(e as Error).message}\n`)
      return
    }
    lastBuildAt = Date.now()
    lastBuildMs = lastBuildAt - started
    revision++
    for (const res of clients) send(res, "update", { revision })
  }
  const pollTimer = setInterval(poll, pollMs)
  const keepAliveTimer = setInterval(() => {
    for (const res of clients) res.write(": keep-alive\n\n")
  }, keepAliveMs)

  const reply = (res: ServerResponse, status: number, type: string, body: string, head: boolean) => {
    res.writeHead(status, { "content-type": type, "cache-control": "no-store", "content-length": Buffer.byteLength(body) })
    res.end(head ? undefined : body)
  }

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const head = req.method === "HEAD"
    if (req.method !== "GET" && !head) return reply(res, 405, "text/plain; charset=utf-8", "only GET and HEAD\n", false)
    const path = new URL(req.url ?? "/", "http://localhost").pathname
    switch (path) {
      case "/":
        return reply(res, 200, "text/html; charset=utf-8", renderReportPage(model, { live: true }), head)
      case "/body":
        return reply(res, 200, "text/html; charset=utf-8", renderReportBody(model), head)
      case "/api/summary":
        return reply(res, 200, "application/json", JSON.stringify(summaryOf(model, revision)) + "\n", head)
      case "/events": {
        if (clients.size >= maxClients) return reply(res, 503, "text/plain; charset=utf-8", `at most ${maxClients} live views\n`, false)
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" })
        send(res, "hello", { revision })
        clients.add(res)
        req.on("close", () => clients.delete(res))
        return
      }
      default:
        return reply(res, 404, "text/plain; charset=utf-8", `no such page: ${path}\n`, head)
    }
  }

  const server = createServer((req, res) => {
    try {
      handle(req, res)
    } catch (e) {
      if (!res.headersSent) reply(res, 500, "text/plain; charset=utf-8", `${(e as Error).message}\n`, false)
      else res.destroy()
    }
  })
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject)
      server.listen(options.port, host, () => resolve())
    })
  } catch (e) {
    clearInterval(pollTimer)
    clearInterval(keepAliveTimer)
    db.close()
    throw e
  }
  const port = (server.address() as AddressInfo).port

  let closing: Promise<void> | undefined
  const close = () =>
    (closing ??= new Promise<void>((resolve) => {
      clearInterval(pollTimer)
      clearInterval(keepAliveTimer)
      for (const res of clients) res.end()
      clients.clear()
      server.close(() => {
        db.close()
        resolve()
      })
      server.closeAllConnections()
    }))

  return { url: `http://${host}:${port}/`, port, close }
}
