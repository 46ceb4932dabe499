/** `autoloss serve` without a browser: the SSE stream, the client bound, and the CLI's SIGINT stop. */
import t from "tap"
import { spawn } from "node:child_process"
import { Effect } from "effect"
import { startReportServer } from "../../src/report/server.ts"
import { layer, Store } from "../../src/store/Store.ts"
import { CREATED_AT, proposalRow, tempDir, writeSyntheticRun } from "./fixture.ts"

/** Reads server-sent events from a fetch body until `want` of them arrived. */
const readEvents = async (body: ReadableStream<Uint8Array>, want: number, onEach: (n: number) => Promise<void> = async () => {}) => {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  const events: Array<{ event: string; data: unknown }> = []
  let buffer = ""
  while (events.length < want) {
    const { value, done } = await reader.read()
    if (done) break
    buffer += decoder.decode(value, { stream: true })
    let end
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const event = /^event: (.*)$/m.exec(block)?.[1]
      const data = /^data: (.*)$/m.exec(block)?.[1]
      if (event === undefined || data === undefined) continue
      events.push({ event, data: JSON.parse(data) })
      await onEach(events.length)
    }
  }
  await reader.cancel()
  return events
}

t.test("the event stream says hello, then update when the search commits a row; clients are bounded", async (t) => {
  const dir = tempDir(t)
  await writeSyntheticRun(dir)
  const server = await startReportServer({ dir, port: 0, pollMs: 50, maxClients: 1 })
  t.teardown(server.close)
  const stream = await fetch(`${server.url}events`)
  t.equal(stream.headers.get("content-type"), "text/event-stream")
  const second = await fetch(`${server.url}events`)
  t.equal(second.status, 503, "a second live view is refused at maxClients = 1")
  t.match(await second.text(), "at most 1 live views")
  const events = await readEvents(stream.body!, 2, async (n) => {
    if (n !== 1) return
    const row = proposalRow(13, "neg(y_hat)", CREATED_AT + 130_000)
    await Effect.runPromise(Effect.scoped(Effect.flatMap(Store, (s) => s.putProposal(row))).pipe(Effect.provide(layer(dir))))
  })
  t.same(events, [{ event: "hello", data: { revision: 1 } }, { event: "update", data: { revision: 2 } }])
  const body = await (await fetch(`${server.url}body`)).text()
  t.match(body, 'data-stage="generated" data-count="14"')
  t.notMatch(body, "<html", "the body endpoint is the fragment the page swaps in")
})

t.test("autoloss serve prints its URL, serves, and stops cleanly on SIGINT", async (t) => {
  const dir = tempDir(t)
  await writeSyntheticRun(dir)
  const child = spawn(process.execPath, ["bin/autoloss.js", "serve", dir, "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] })
  t.teardown(() => {
    if (child.exitCode === null) child.kill("SIGKILL")
  })
  let stdout = ""
  let stderr = ""
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString()
      const m = /at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(stdout)
      if (m) resolve(m[1]!)
    })
    child.on("exit", (code) => reject(new Error(`serve exited ${code}: ${stderr}`)))
  })
  const page = await fetch(url)
  t.equal(page.status, 200)
  const html = await page.text()
  t.match(html, '<div id="live">')
  t.match(html, 'new EventSource("/events")')
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  child.kill("SIGINT")
  t.equal(await exit, 0, stderr)
  t.match(stdout, "stopped (SIGINT)")
})

t.test("serve refuses a directory without a run", async (t) => {
  const dir = tempDir(t)
  await t.rejects(startReportServer({ dir, port: 0 }), /search\.db not found: not a search run directory/)
})
