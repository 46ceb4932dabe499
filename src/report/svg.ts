/**
 * A tiny line-chart renderer producing inline SVG (no library, no script): linear axes with "nice"
 * ticks, one polyline per series with a circle per data point, and a legend. Gaps (null y) break
 * a line. Every data point is a `<circle class="point">` carrying `data-x`/`data-y`, so tests and
 * readers can find the numbers behind the picture.
 */

export interface Series {
  readonly name: string
  readonly points: ReadonlyArray<readonly [x: number, y: number | null]>
  /** CSS colour. */
  readonly color: string
  /** Draw only markers (a scatter), no line. */
  readonly markersOnly?: boolean
}

export interface ChartOptions {
  readonly title: string
  readonly xLabel: string
  readonly yLabel: string
  readonly width?: number
  readonly height?: number
  /** Marker radius; 0 hides markers (they are still emitted, invisible, for the data). */
  readonly radius?: number
}

export const escapeXml = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

/** Ticks at 1, 2 or 5 × 10^k covering [lo, hi], about `count` of them. */
export const niceTicks = (lo: number, hi: number, count = 5): number[] => {
  if (!(hi > lo)) return [lo]
  const raw = (hi - lo) / Math.max(1, count)
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  const step = ([1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? 10 * magnitude)
  const ticks: number[] = []
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)))
  return ticks
}

/** Short labels: 1200 → "1.2k", 0.12345 → "0.123". */
export const formatTick = (v: number): string => {
  const a = Math.abs(v)
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`
  if (a >= 1e4) return `${Number((v / 1e3).toPrecision(3))}k`
  if (a === 0) return "0"
  return String(Number(v.toPrecision(3)))
}

/** Domain padded so a flat series still has height. */
const domain = (values: ReadonlyArray<number>): [number, number] => {
  if (values.length === 0) return [0, 1]
  let lo = Math.min(...values)
  let hi = Math.max(...values)
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1
    lo -= pad
    hi += pad
  }
  return [lo, hi]
}

const fmt = (v: number): string => v.toFixed(1)

/** Legend text metrics (11 px sans-serif), estimated: SVG cannot measure text without a script. */
const LEGEND_CHAR_W = 6.2
const LEGEND_ROW_H = 16

export const lineChart = (series: ReadonlyArray<Series>, options: ChartOptions): string => {
  const width = options.width ?? 640
  const height = options.height ?? 300
  const radius = options.radius ?? 2.5
  // The legend flows in rows under the x-axis label, so it never hides data; the chart grows to fit.
  const legendAt: Array<{ x: number; y: number }> = []
  let legendRows = 0
  {
    let x = Infinity
    for (const s of series) {
      const w = 16 + LEGEND_CHAR_W * s.name.length + 18
      if (x + w > width - 16) {
        legendRows++
        x = 60
      }
      legendAt.push({ x, y: 0 })
      x += w
    }
  }
  const plotAreaH = height
  const totalH = plotAreaH + legendRows * LEGEND_ROW_H
  const margin = { left: 60, right: 16, top: 28, bottom: 44 }
  const plotW = width - margin.left - margin.right
  const plotH = plotAreaH - margin.top - margin.bottom
  {
    let row = -1
    let lastX = Infinity
    for (const p of legendAt) {
      if (p.x <= lastX) row++
      lastX = p.x
      p.y = plotAreaH + row * LEGEND_ROW_H + 6
    }
  }
  const xs = series.flatMap((s) => s.points.map((p) => p[0]))
  const ys = series.flatMap((s) => s.points.flatMap((p) => (p[1] === null || !Number.isFinite(p[1]) ? [] : [p[1]])))
  const [x0, x1] = domain(xs)
  const xTicks = niceTicks(x0, x1)
  const yTicks = niceTicks(...domain(ys))
  const [y0, y1] = [Math.min(yTicks[0] ?? 0, ...domain(ys)), Math.max(yTicks[yTicks.length - 1] ?? 1, ...domain(ys))]
  const sx = (x: number): number => margin.left + ((x - x0) / (x1 - x0)) * plotW
  const sy = (y: number): number => margin.top + plotH - ((y - y0) / (y1 - y0)) * plotH

  const parts: string[] = []
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 ${width} ${totalH}" width="${width}" height="${totalH}">`,
    `<title>${escapeXml(options.title)}</title>`,
    `<text class="chart-title" x="${margin.left}" y="18">${escapeXml(options.title)}</text>`
  )
  // grid and axes
  for (const t of yTicks) {
    parts.push(
      `<line class="grid" x1="${margin.left}" x2="${margin.left + plotW}" y1="${fmt(sy(t))}" y2="${fmt(sy(t))}"/>`,
      `<text class="tick" x="${margin.left - 6}" y="${fmt(sy(t) + 4)}" text-anchor="end">${formatTick(t)}</text>`
    )
  }
  for (const t of xTicks.filter((v) => v >= x0 && v <= x1)) {
    parts.push(
      `<line class="axis-tick" x1="${fmt(sx(t))}" x2="${fmt(sx(t))}" y1="${margin.top + plotH}" y2="${margin.top + plotH + 4}"/>`,
      `<text class="tick" x="${fmt(sx(t))}" y="${margin.top + plotH + 16}" text-anchor="middle">${formatTick(t)}</text>`
    )
  }
  parts.push(
    `<line class="axis" x1="${margin.left}" x2="${margin.left + plotW}" y1="${margin.top + plotH}" y2="${margin.top + plotH}"/>`,
    `<line class="axis" x1="${margin.left}" x2="${margin.left}" y1="${margin.top}" y2="${margin.top + plotH}"/>`,
    `<text class="label" x="${margin.left + plotW / 2}" y="${plotAreaH - 8}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`,
    `<text class="label" transform="translate(14 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeXml(options.yLabel)}</text>`
  )
  if (xs.length === 0) {
    parts.push(`<text class="empty" x="${margin.left + plotW / 2}" y="${margin.top + plotH / 2}" text-anchor="middle">no data yet</text>`)
  }
  // series: a path per unbroken run of finite points, then the markers
  series.forEach((s, index) => {
    const color = escapeXml(s.color)
    parts.push(`<g class="series" data-series="${escapeXml(s.name)}">`)
    if (!s.markersOnly) {
      let run: string[] = []
      const flush = () => {
        if (run.length > 1) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.8" points="${run.join(" ")}"/>`)
        run = []
      }
      for (const [x, y] of s.points) {
        if (y === null || !Number.isFinite(y)) flush()
        else run.push(`${fmt(sx(x))},${fmt(sy(y))}`)
      }
      flush()
    }
    for (const [x, y] of s.points) {
      if (y === null || !Number.isFinite(y)) continue
      parts.push(
        `<circle class="point" cx="${fmt(sx(x))}" cy="${fmt(sy(y))}" r="${radius}" fill="${color}" data-x="${x}" data-y="${y}"/>`
      )
    }
    parts.push("</g>")
    const { x: lx, y: ly } = legendAt[index]!
    parts.push(
      `<rect class="legend-swatch" x="${lx}" y="${ly - 6}" width="12" height="4" fill="${color}"/>`,
      `<text class="legend" x="${lx + 16}" y="${ly}">${escapeXml(s.name)}</text>`
    )
  })
  parts.push("</svg>")
  return parts.join("\n")
}
