/**
 * The fidelity page: proxy score against long score per panel loss (an SVG scatter; hovering a
 * point shows its loss's name and formula), the statistics, and the per-loss table. Self-contained
 * HTML, no script.
 */
import type { Summary } from "../fidelity/measure.ts"
import { PAGE_CSS } from "./html.ts"
import { escapeXml as esc, formatTick, niceTicks } from "./svg.ts"

const ORIGIN_COLORS: Readonly<Record<string, string>> = {
  baseline: "#d62728", paper: "#2ca02c", variation: "#ff7f0e", random: "#1f77b4", other: "#7f7f7f"
}

const f4 = (x: number): string => (Number.isNaN(x) ? "—" : x.toFixed(4))

const span = (values: ReadonlyArray<number>): [number, number] => {
  const lo = Math.min(...values), hi = Math.max(...values)
  const pad = hi > lo ? (hi - lo) * 0.08 : Math.max(Math.abs(lo) * 0.1, 0.01)
  return [lo - pad, hi + pad]
}

/** One `<circle class="point">` per loss at (proxy mean, long mean), its formula in `<title>`. */
export const fidelityScatter = (s: Summary, width = 560, height = 420): string => {
  const left = 60, right = 16, top = 30, bottom = 46
  const [x0, x1] = span(s.losses.map((l) => l.proxy.mean)), [y0, y1] = span(s.losses.map((l) => l.long.mean))
  const X = (v: number) => left + ((v - x0) / (x1 - x0)) * (width - left - right)
  const Y = (v: number) => height - bottom - ((v - y0) / (y1 - y0)) * (height - top - bottom)
  const xt = niceTicks(x0, x1), yt = niceTicks(y0, y1)
  const grid = [
    ...xt.map((v) => `<line class="grid" x1="${X(v).toFixed(1)}" x2="${X(v).toFixed(1)}" y1="${top}" y2="${height - bottom}"/><text x="${X(v).toFixed(1)}" y="${height - bottom + 14}" text-anchor="middle">${formatTick(v)}</text>`),
    ...yt.map((v) => `<line class="grid" x1="${left}" x2="${width - right}" y1="${Y(v).toFixed(1)}" y2="${Y(v).toFixed(1)}"/><text x="${left - 6}" y="${(Y(v) + 4).toFixed(1)}" text-anchor="end">${formatTick(v)}</text>`)
  ]
  const points = s.losses.map((l) =>
    `<circle class="point" data-x="${l.proxy.mean}" data-y="${l.long.mean}" cx="${X(l.proxy.mean).toFixed(1)}" cy="${Y(l.long.mean).toFixed(1)}" r="5" ` +
    `fill="${ORIGIN_COLORS[l.origin] ?? "#7f7f7f"}" fill-opacity="0.8"><title>${esc(`${l.name} (${l.origin})\n${l.loss}\nproxy ${f4(l.proxy.mean)}, long ${f4(l.long.mean)}`)}</title></circle>`)
  const legend = Object.entries(ORIGIN_COLORS).filter(([o]) => s.losses.some((l) => l.origin === o)).map(([o, c], i) =>
    `<circle cx="${left + 8 + i * 90}" cy="14" r="5" fill="${c}"/><text x="${left + 16 + i * 90}" y="18">${o}</text>`)
  return `<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">
${grid.join("\n")}
<line class="axis" x1="${left}" x2="${width - right}" y1="${height - bottom}" y2="${height - bottom}"/><line class="axis" x1="${left}" x2="${left}" y1="${top}" y2="${height - bottom}"/>
<text class="label" x="${(left + width - right) / 2}" y="${height - 10}" text-anchor="middle">proxy ${esc(s.metric)} (${s.proxyIterations} iterations, mean over seeds)</text>
<text class="label" transform="translate(14 ${(top + height - bottom) / 2}) rotate(-90)" text-anchor="middle">long ${esc(s.metric)} (${s.longIterations} iterations)</text>
${legend.join("")}
${points.join("\n")}
</svg>`
}

export const renderFidelityBody = (task: string, s: Summary): string => {
  const rows = s.losses.map((l, i) => `<tr><td>${esc(l.name)}${i === s.proxyPick ? " <b>(proxy's pick)</b>" : ""}${i === s.longBest ? " <b>(best long)</b>" : ""}</td>` +
    `<td>${esc(l.origin)}</td><td class="num">${f4(l.proxy.mean)} ± ${f4(l.proxy.sd)}</td><td class="num">${f4(l.long.mean)} ± ${f4(l.long.sd)}</td>` +
    `<td class="num">${l.proxySeconds.toFixed(1)} / ${l.longSeconds.toFixed(1)}</td><td><code>${esc(l.loss)}</code></td></tr>`)
  return `<h1>Proxy fidelity: ${esc(task)}</h1>
<p>${s.losses.length} losses, seeds ${esc(s.losses[0]?.seeds.join(", ") ?? "")}; ${esc(s.metric)} after the proxy (${s.proxyIterations} iterations) and after ${s.longIterations} iterations, same recipe otherwise.</p>
<table class="stats"><tr><th>Kendall τ-b</th><td class="num">${f4(s.kendallTau)}</td></tr>
<tr><th>Spearman ρ</th><td class="num">${f4(s.spearman)}</td></tr>
<tr><th>top-${s.k} retrieval</th><td class="num">${f4(s.topKRetrieval)}</td></tr>
<tr><th>regret of the proxy's pick</th><td class="num">${f4(s.regret)}</td></tr></table>
<div class="charts">${fidelityScatter(s)}</div>
<table class="losses"><tr><th>loss</th><th>origin</th><th>proxy mean ± sd</th><th>long mean ± sd</th><th>s per training (proxy / long)</th><th>formula</th></tr>
${rows.join("\n")}</table>`
}

export const renderFidelityPage = (task: string, s: Summary): string => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>autoloss fidelity: ${esc(task)}</title>
<style>${PAGE_CSS}</style></head><body><main>
${renderFidelityBody(task, s)}
</main></body></html>
`
