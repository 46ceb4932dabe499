import t from "tap"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { run as reportVerb } from "../../src/cli/verbs/report.ts"
import { lossFormulas } from "../../src/report/formulas.ts"
import { renderReportPage } from "../../src/report/html.ts"
import { katexStyle } from "../../src/report/math.ts"
import { buildReportModel } from "../../src/report/model.ts"
import { loadRun } from "../../src/report/run-data.ts"
import { formatTick, lineChart, niceTicks } from "../../src/report/svg.ts"
import { parseLoss } from "../../src/graph/syntax.ts"
import { toWire } from "../../src/graph/wire.ts"
import { tempDir, writeSyntheticRun } from "./fixture.ts"

t.test("nice ticks and short labels", async (t) => {
  t.same(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1])
  t.same(niceTicks(0.13, 0.52), [0.2, 0.3, 0.4, 0.5], "raw step 0.078 rounds up to 0.1")
  t.same(niceTicks(1, 7), [2, 4, 6], "raw step 1.2 rounds up to 2")
  t.same(niceTicks(3, 3), [3])
  t.equal(formatTick(1200), "1200")
  t.equal(formatTick(12_000), "12k")
  t.equal(formatTick(2_500_000), "2.5M")
  t.equal(formatTick(0.123456), "0.123")
})

t.test("line chart: one marker per finite point, a null breaks the line, legend below the plot", async (t) => {
  const svg = lineChart(
    [
      { name: "a", color: "red", points: [[0, 1], [1, 2], [2, null], [3, 4], [4, 5]] },
      { name: "b<c", color: "blue", points: [[0, -Infinity], [4, 0]], markersOnly: true }
    ],
    { title: "T & U", xLabel: "x", yLabel: "y", width: 400, height: 200 }
  )
  t.equal(svg.match(/<circle class="point"/g)?.length, 5, "4 finite in a, 1 finite in b")
  t.equal(svg.match(/<polyline/g)?.length, 2, "a splits into two runs at the null; b has no line")
  t.match(svg, 'data-x="3" data-y="4"')
  t.match(svg, "T &amp; U")
  t.match(svg, "b&lt;c")
  t.match(svg, 'height="216"', "one legend row added under the 200 px plot")
  t.match(lineChart([], { title: "empty", xLabel: "x", yLabel: "y" }), "no data yet")
})

t.test("formulas: LaTeX of the loss, and its simplification only when verified", async (t) => {
  const f = lossFormulas(toWire(parseLoss("neg(mul(abs(y), sqrt(y_hat)))")), "seg")
  t.equal(f.tex, "-\\left|y\\right| \\cdot \\sqrt{\\hat{y}}")
  t.match(f.simplified, { text: "neg(mul(y, sqrt(y_hat)))", tex: "-y \\cdot \\sqrt{\\hat{y}}" })
  t.equal(f.unverified, null)
  const unknownTask = lossFormulas(toWire(parseLoss("neg(mul(abs(y), sqrt(y_hat)))")), "det")
  t.equal(unknownTask.simplified, null, "no range assumption for a task we do not know: |y| stays")
  t.equal(lossFormulas(toWire(parseLoss("square(add(y_hat, neg(y)))")), "seg").simplified, null, "nothing to simplify")
})

t.test("the page is self-contained: KaTeX CSS with inlined fonts, rendered math, no script", async (t) => {
  const css = katexStyle()
  t.notMatch(css, /url\(fonts\//)
  t.equal(css.match(/data:font\/woff2;base64,/g)?.length, 20, "all 20 KaTeX faces")
  const dir = tempDir(t)
  await writeSyntheticRun(dir)
  const html = renderReportPage(buildReportModel(loadRun(dir)))
  t.equal(html.match(/<article class="loss"/g)?.length, 6)
  t.equal(html.match(/class="katex-display"/g)?.length, 8, "the answer + 6 losses + 1 verified simplification")
  t.notMatch(html, "katex-error")
  t.notMatch(html, "<script")
  t.notMatch(html, /(src|href)="https?:/)
  t.match(renderReportPage(buildReportModel(loadRun(dir)), { live: true }), 'new EventSource("/events")')
})

t.test("report verb: writes report.html and the event file; usage and missing runs are errors", async (t) => {
  const dir = tempDir(t)
  await writeSyntheticRun(dir)
  // Verbs print; tap reads its own stdout, so capture around the calls and assert afterwards.
  const write = process.stdout.write
  const errWrite = process.stderr.write
  const err: string[] = []
  process.stdout.write = (() => true) as typeof process.stdout.write
  process.stderr.write = ((s: string) => (err.push(s), true)) as typeof process.stderr.write
  const codes: number[] = []
  const files: boolean[] = []
  try {
    codes.push(await reportVerb([dir, "--no-tensorboard", "--out", join(dir, "r.html")]))
    files.push(existsSync(join(dir, "r.html")), existsSync(join(dir, "tb")))
    codes.push(await reportVerb([dir]))
    files.push(existsSync(join(dir, "report.html")), existsSync(join(dir, "tb")))
    codes.push(await reportVerb([]), await reportVerb([join(dir, "nowhere")]))
  } finally {
    process.stdout.write = write
    process.stderr.write = errWrite
  }
  t.same(codes, [0, 0, 2, 1], "ok, ok, usage, not a run")
  t.same(files, [true, false, true, true], "--out honoured; --no-tensorboard writes no tb/; the default writes both")
  t.match(err.join(""), "want exactly one run directory, got 0")
  t.match(err.join(""), "not a search run directory")
})

t.test("the report opens with the answer: the held-out choice as a formula, its seeds beside the baseline's", async (t) => {
  const { SELECTION, writeSelection } = await import("./fixture.ts")
  const dir = tempDir(t)
  await writeSyntheticRun(dir)
  const before = renderReportPage(buildReportModel(loadRun(dir)))
  const answer = (html: string) => html.slice(html.indexOf('<section id="answer">'), html.indexOf('<section id="curve">'))
  t.match(answer(before), /data-candidate="10"/, "without a selection: the proxy best")
  t.match(answer(before), /No held-out selection was made/)
  t.match(answer(before), /class="katex-display"/)
  t.notMatch(before, /baseline \(proxy\)/, "no reference line when the baseline's proxy score is unknown")

  await writeSelection(dir)
  const html = renderReportPage(buildReportModel(loadRun(dir)))
  t.ok(html.indexOf('<section id="answer">') < html.indexOf('<section id="curve">'), "the answer comes first")
  const a = answer(html)
  t.match(a, `data-candidate="${SELECTION.chosen}"`)
  t.match(a, /the best held-out miou of the top 2 losses by proxy score, each trained again with the handcrafted baseline from seeds 101, 102/)
  t.match(a, /class="katex-display"/)
  t.match(a, /<code>square\(add\(y_hat, neg\(y\)\)\)<\/code>/)
  // chosen 0.33, 0.35 (mean 0.34, sd 0.0141); baseline 0.30, 0.32; differences +0.03 twice, sd 0
  t.match(a, /<th>chosen<\/th><td class="num">0\.4000<\/td><td class="num">0\.3300<\/td><td class="num">0\.3500<\/td><td class="num">0\.3400<\/td><td class="num">0\.0141<\/td>/)
  t.match(a, /<th>baseline<\/th><td class="num">0\.3100<\/td><td class="num">0\.3000<\/td><td class="num">0\.3200<\/td><td class="num">0\.3100<\/td>/)
  t.match(a, /<th>difference<\/th><td class="num">\+0\.0900<\/td><td class="num">\+0\.0300<\/td><td class="num">\+0\.0300<\/td><td class="num">\+0\.0300<\/td><td class="num">0\.0000<\/td>/)
  t.match(a, /better than the baseline on 2 of 2 held-out seeds/)
  // finalist 10: held out 0.29 against the baseline's 0.31
  t.match(a, /<tr data-candidate="10"><td class="num">1<\/td><td class="num">10<\/td><td class="num">0\.5000<\/td><td class="num">0\.2900<\/td><td class="num">-0\.0200<\/td><td class="num">0\/2<\/td><\/tr>/)
  t.match(a, /data-verdict="unconfirmed"/, "a run without confirmation seeds says its difference is optimistic")
  // The curves draw the baseline's proxy score across the run: two points at y = 0.31 on each chart.
  const curve = html.slice(html.indexOf('<section id="curve">'), html.indexOf('<section id="funnel">'))
  t.equal(curve.match(/data-series="baseline \(proxy\)"/g)?.length, 2)
  t.equal(curve.match(/data-y="0\.31"/g)?.length, 4)
})

t.test("the report's confirmation: the chosen loss beside the baseline on the confirmation seeds, and the verdict", async (t) => {
  const { writeSelection } = await import("./fixture.ts")
  const page = async (confirm: ReadonlyArray<readonly [number, number, number]>) => {
    const dir = tempDir(t)
    await writeSyntheticRun(dir)
    await writeSelection(dir, confirm)
    const html = renderReportPage(buildReportModel(loadRun(dir)))
    return html.slice(html.indexOf('<section id="answer">'), html.indexOf('<section id="curve">'))
  }
  // chosen 0.36, 0.30 against the baseline's 0.31, 0.32: +0.05, −0.02, mean +0.015
  const unsure = await page([[201, 0.36, 0.31], [202, 0.30, 0.32]])
  t.match(unsure, /Confirmation \(seeds 201, 202, not used to choose\)/)
  t.match(unsure, /<table class="confirmation"><tr><th><\/th><th>seed 201<\/th><th>seed 202<\/th><th>mean<\/th><th>sd<\/th><\/tr><tr><th>chosen<\/th><td class="num">0\.3600<\/td><td class="num">0\.3000<\/td><td class="num">0\.3300<\/td>/)
  t.match(unsure, /<th>difference<\/th><td class="num">\+0\.0500<\/td><td class="num">-0\.0200<\/td><td class="num">\+0\.0150<\/td>/)
  // ahead on the mean, but t = 0.015 / (0.0495 / √2) = 0.43 < 6.314: within seed noise
  t.match(unsure, /data-verdict="inconclusive">Inconclusive: \+0\.0150 ± 0\.0495 on the confirmation seeds \(better on 1 of 2\) is within seed noise: paired t = 0\.43, below 6\.314/)
  t.notMatch(unsure, /data-verdict="confirmed"/)
  // +0.05, +0.04: t = 0.045 / (0.00707 / √2) = 9.0 ≥ 6.314, and the held-out choice was ahead too (+0.03)
  const sure = await page([[201, 0.36, 0.31], [202, 0.36, 0.32]])
  t.match(sure, /data-verdict="confirmed">Confirmed: the answer beats the baseline by \+0\.0450 on seeds it was not chosen on \(better on 2 of 2; paired t = 9\.00 ≥ 6\.314, one-sided 5 %\) and on its held-out seeds \(\+0\.0300\)/)
  // the held-out choice (+0.03 on both its seeds) is not confirmed: 0.29, 0.30 against 0.31, 0.32
  const no = await page([[201, 0.29, 0.31], [202, 0.30, 0.32]])
  t.match(no, /data-verdict="not-confirmed">Not confirmed: on seeds it was not chosen on, the answer does not beat the baseline \(-0\.0200 on the mean, better on 0 of 2\)/)
  t.notMatch(no, /data-verdict="confirmed"/)
})

t.test("the report names the losses set aside as the baseline rediscovered, with their formulas", async (t) => {
  const { writeSelection } = await import("./fixture.ts")
  const dir = tempDir(t)
  await writeSyntheticRun(dir)
  await writeSelection(dir, [], [{ id: 0, score: 0.3 }])
  const html = renderReportPage(buildReportModel(loadRun(dir)))
  const a = html.slice(html.indexOf('<section id="answer">'), html.indexOf('<section id="curve">'))
  t.match(a, /<p class="note set-aside" data-set-aside="0">Candidate 0 \(proxy 0\.3000\) ranked among the finalists but was set aside: gradient-equivalent to the baseline/)
  t.match(a, /<li>candidate 0: <code>neg\(mul\(y, log\(y_hat\)\)\)<\/code><\/li>/)
  const none = tempDir(t)
  await writeSyntheticRun(none)
  await writeSelection(none)
  t.notMatch(renderReportPage(buildReportModel(loadRun(none))), /set-aside/, "none set aside: no paragraph")
})
