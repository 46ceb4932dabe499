/**
 * The report in a real headless chromium (Debian's, via playwright-core): it renders offline, the
 * plots hold data, the formulas are KaTeX; and the live server's page follows a row added later.
 * Skips when /usr/bin/chromium is missing (scripts/install-chromium.sh installs it).
 */
import t from "tap"
import { mkdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import type { Page } from "playwright-core"
import { run as reportVerb } from "../../src/cli/verbs/report.ts"
import { startReportServer } from "../../src/report/server.ts"
import { layer, Store } from "../../src/store/Store.ts"
import { hasChromium, launchChromium } from "./browser.ts"
import { CREATED_AT, proposalRow, tempDir, writeSyntheticRun } from "./fixture.ts"

const SCREENSHOTS = "test-results"

if (!hasChromium()) {
  t.plan(0, "chromium not installed (run scripts/install-chromium.sh)")
} else {
  const { context, close } = await launchChromium()
  t.teardown(close)

  /** A page that may load only file: URLs and the given origin; every other request is recorded and refused. */
  const offlinePage = async (allowed: string | null): Promise<{ page: Page; refused: string[]; errors: string[] }> => {
    const page = await context.newPage()
    const refused: string[] = []
    const errors: string[] = []
    page.on("pageerror", (e) => errors.push(e.message))
    await page.route("**/*", (route) => {
      const url = route.request().url()
      if (url.startsWith("file:") || (allowed !== null && url.startsWith(allowed))) return route.continue()
      refused.push(url)
      return route.abort()
    })
    return { page, refused, errors }
  }

  t.test("report.html renders offline: plots with data, KaTeX formulas, funnel", async (t) => {
    const dir = tempDir(t)
    await writeSyntheticRun(dir)
    const stdout = process.stdout.write
    process.stdout.write = (() => true) as typeof process.stdout.write
    const code = await reportVerb([dir]).finally(() => (process.stdout.write = stdout))
    t.equal(code, 0)
    const html = readFileSync(join(dir, "report.html"), "utf8")
    t.notMatch(html, /(src|href)="https?:/, "no remote resources referenced")
    t.notMatch(html, /<script/, "the static report needs no script")

    const { page, refused, errors } = await offlinePage(null)
    await page.goto(`file://${join(dir, "report.html")}`)
    await page.evaluate("document.fonts.ready.then(() => true)")
    t.same(refused, [], "the page asked for nothing over the network")
    t.same(errors, [])
    // Both curve charts: 7 best + 2 best-5 + 6 finite evaluations (the invalid −∞ has no point).
    t.equal(await page.locator("#curve svg").count(), 2)
    t.equal(await page.locator("#curve svg").first().locator("circle.point").count(), 15)
    const bestYs = await page.locator('#curve svg >> nth=0 >> g[data-series="best"] circle.point').evaluateAll((cs) => cs.map((c) => Number(c.getAttribute("data-y"))))
    t.same(bestYs, [0.3, 0.4, 0.4, 0.4, 0.5, 0.5, 0.5])
    t.ok((await page.locator("#throughput circle.point").count()) > 0, "throughput plot has data")
    // Formulas: every top loss rendered by KaTeX, none failed, and the KaTeX font actually loaded.
    t.equal(await page.locator("article.loss").count(), 6)
    t.ok((await page.locator("article.loss .formula.original .katex").count()) === 6)
    t.equal(await page.locator("#answer .formula.original .katex").count(), 1, "the answer opens the page as rendered math")
    t.equal(await page.locator(".katex-error").count(), 0)
    t.equal(await page.evaluate(`document.fonts.check('16px "KaTeX_Main"')`), true, "KaTeX_Main available from the inlined data URI")
    t.equal(await page.locator('.funnel-row[data-stage="generated"]').getAttribute("data-count"), "13")
    t.equal(await page.locator('.funnel-row[data-stage="invalid"]').getAttribute("data-count"), "1")
    // Candidate 10, neg(mul(abs(y), sqrt(y_hat))), has a verified simplification (y ≥ 0 for seg).
    t.equal(await page.locator('article.loss[data-candidate="10"] .formula.simplified .katex').count(), 1)
    mkdirSync(SCREENSHOTS, { recursive: true })
    await page.screenshot({ path: join(SCREENSHOTS, "report.png"), fullPage: true })
    await page.close()
  })

  t.test("serve: the live page and the summary endpoint follow a row added after start", async (t) => {
    const dir = tempDir(t)
    await writeSyntheticRun(dir)
    const server = await startReportServer({ dir, port: 0, pollMs: 100 })
    t.teardown(server.close)
    t.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/)
    const summary = async () => (await (await fetch(`${server.url}api/summary`)).json()) as { revision: number; funnel: { generated: number; pending: number } }
    const before = await summary()
    t.match(before, { revision: 1, funnel: { generated: 13, pending: 0 } })
    t.equal((await fetch(`${server.url}nope`)).status, 404)
    t.equal((await fetch(server.url, { method: "POST" })).status, 405)

    const { page, refused, errors } = await offlinePage(server.url)
    await page.goto(server.url)
    t.equal(await page.locator('.funnel-row[data-stage="generated"]').getAttribute("data-count"), "13")
    await page.waitForFunction('document.getElementById("live") !== null')

    // The "search" adds a proposal through the real Store (a read-write connection of its own).
    const added = proposalRow(13, "neg(y_hat)", CREATED_AT + 130_000)
    await Effect.runPromise(Effect.scoped(Effect.flatMap(Store, (s) => s.putProposal(added))).pipe(Effect.provide(layer(dir))))

    await page.waitForSelector('.funnel-row[data-stage="generated"][data-count="14"]', { timeout: 10_000 })
    t.equal(await page.locator('.funnel-row[data-stage="pending"]').getAttribute("data-count"), "1")
    t.match(await page.locator("#live").textContent(), /updated/)
    const after = await summary()
    t.ok(after.revision > before.revision)
    t.match(after.funnel, { generated: 14, pending: 1 })
    t.same(refused, [])
    t.same(errors, [])
    await page.screenshot({ path: join(SCREENSHOTS, "report-live.png") })
    await page.close()
  })
}
