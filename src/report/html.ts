/**
 * The report as one self-contained HTML page: inline CSS (KaTeX's with its fonts as data URIs),
 * inline SVG plots, formulas pre-rendered by KaTeX. No network access, no script, except the small
 * live-update script of `autoloss serve` (`live: true`), which swaps in a fresh `<main>` when the
 * server says the database changed.
 */
import { lossFormulas } from "./formulas.ts"
import { katexStyle, renderMath } from "./math.ts"
import type { Decision } from "../search/selection.ts"
import { type Funnel, type ReportModel, type RungStep, TOP_MEAN_OF, type TopLoss, uninformativeRungs } from "./model.ts"
import { showFidelity } from "../search/fidelity.ts"
import { escapeXml as esc, lineChart } from "./svg.ts"
import { setAsideNote, VERDICT_ADVICE } from "./verdict.ts"

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]

const fmtScore = (v: number | null): string =>
  v === null ? "—" : v === -Infinity ? "invalid (−∞)" : Number.isFinite(v) ? v.toFixed(4) : String(v)
const fmtTime = (ms: number | null): string => (ms === null ? "—" : new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC"))
const fmtMs = (ms: number | null): string => (ms === null ? "—" : ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(0)} ms`)

const curveCharts = (m: ReportModel): string => {
  const scatter = (x: (p: ReportModel["curve"][number]) => number) => {
    const series = [
      { name: "best", color: COLORS[0]!, points: m.curve.map((p) => [x(p), p.best] as const) },
      { name: `best-${TOP_MEAN_OF} mean`, color: COLORS[1]!, points: m.curve.map((p) => [x(p), p.topMean] as const) },
      { name: "each evaluation", color: "#999", markersOnly: true, points: m.curve.map((p) => [x(p), Number.isFinite(p.score) ? p.score : null] as const) }
    ]
    // The handcrafted baseline on the same proxy (seed and data): a flat reference across the run.
    if (m.baselineProxy !== null && m.curve.length > 0) {
      const xs = m.curve.map(x)
      series.push({ name: "baseline (proxy)", color: COLORS[2]!, points: [[Math.min(...xs), m.baselineProxy], [Math.max(...xs), m.baselineProxy]] as const })
    }
    return series
  }
  const y = m.config?.metric ?? "proxy score"
  return [
    lineChart(scatter((p) => p.evaluations), { title: "Score vs proxy evaluations", xLabel: "proxy evaluations", yLabel: y }),
    lineChart(scatter((p) => p.elapsedS / 60), { title: "Score vs time", xLabel: "minutes since start (estimated)", yLabel: y })
  ].join("\n")
}

const FUNNEL_ROWS: ReadonlyArray<readonly [keyof Funnel, string, string]> = [
  ["generated", "generated", "proposals made by the scheduler"],
  ["staticRejected", "statically rejected", "refused before any job (e.g. a branch ignores its prediction)"],
  ["screened", "screened", "judged by the loss-rejection protocol"],
  ["passed", "passed", "g(L; ξ) ≥ η"],
  ["equivalent", "equivalent", "took a gradient-equivalent loss's score"],
  ["duplicate", "duplicate", "took an identical loss's score"],
  ["trained", "trained", "proxy trainings finished"],
  ["invalid", "invalid", "training stopped on NaN/Inf"],
  ["abandoned", "abandoned", "never screened: the budget was spent first"],
  ["pending", "pending", "awaiting a verdict"]
]

const funnelSection = (f: Funnel): string => {
  const max = Math.max(1, f.generated)
  const rows = FUNNEL_ROWS.map(([key, label, why]) => {
    const n = f[key]
    const pct = (100 * n) / max
    return `<tr class="funnel-row" data-stage="${key}" data-count="${n}"><th>${label}</th><td class="num">${n}</td>` +
      `<td class="barcell"><div class="bar" style="width:${pct.toFixed(2)}%"></div></td><td class="why">${esc(why)}</td></tr>`
  })
  return `<table class="funnel">${rows.join("")}</table>`
}

const throughputSection = (m: ReportModel): string => {
  const t = m.throughput
  const x = t.binStarts.map((s) => s / 60)
  // Proposals first, so the per-worker lines are drawn on top of it.
  const series = [
    { name: "proposed/min", color: "#aaa", points: t.proposedPerMin.map((v, j) => [x[j]!, v] as const) },
    ...t.screensPerMin.map((w, i) => ({
      name: `screens/min ${w.worker}`,
      color: COLORS[(i + 2) % COLORS.length]!,
      points: w.values.map((v, j) => [x[j]!, v] as const)
    }))
  ]
  const chart = lineChart(series, {
    title: `Throughput (bins of ${t.binS} s)`,
    xLabel: "minutes since start (estimated)",
    yLabel: "per minute",
    radius: 2
  })
  const rows = t.workers.map((w) =>
    `<tr><td>${esc(w.worker)}</td><td class="num">${w.screens}</td><td class="num">${fmtMs(w.screenMsMean)}</td>` +
    `<td class="num">${w.trainings}</td><td class="num">${fmtMs(w.trainMsMean)}</td></tr>`
  )
  const table = rows.length === 0
    ? "<p>No jobs finished yet.</p>"
    : `<table class="workers"><tr><th>worker</th><th>screenings</th><th>mean screening</th><th>trainings</th><th>mean training</th></tr>${rows.join("")}</table>`
  return chart + table
}

const metricsTable = (metrics: Readonly<Record<string, number>> | null): string => {
  if (metrics === null) return ""
  const entries = Object.entries(metrics).sort(([a], [b]) => (a < b ? -1 : 1))
  return `<table class="metrics"><tr>${entries.map(([k]) => `<th>${esc(k)}</th>`).join("")}</tr>` +
    `<tr>${entries.map(([, v]) => `<td class="num">${Number.isFinite(v) ? v.toFixed(4) : String(v)}</td>`).join("")}</tr></table>`
}

const lossCard = (top: TopLoss, task: string | undefined): string => {
  const c = top.candidate
  const f = lossFormulas(c.wire, task)
  const simplified = f.simplified === null
    ? f.unverified === null ? "" : `<p class="note">A simplification was found but not verified (${esc(f.unverified)}); not shown.</p>`
    : `<div class="formula-label">simplified (verified numerically: value and gradients)</div>` +
      `<div class="formula simplified">${renderMath(f.simplified.tex)}</div><code>${esc(f.simplified.text)}</code>`
  const lineage = top.lineage.map((s) =>
    `<li><span class="cid">#${s.id}</span> <span class="score">${fmtScore(s.score)}</span> — ${esc(s.how)}<br><code>${esc(s.text)}</code></li>`
  )
  if (top.lineageOmitted > 0) lineage.push(`<li>… ${top.lineageOmitted} older ancestors</li>`)
  return `<article class="loss" data-rank="${top.rank}" data-candidate="${c.id}">
<h3>#${top.rank} · candidate ${c.id} · score ${fmtScore(c.score)}${c.rung === undefined ? "" : ` at rung ${c.rung}`}</h3>
<div class="formula original">${renderMath(f.tex)}</div><code>${esc(c.text)}</code>
${simplified}
${metricsTable(c.proxyMetrics)}
<details${top.rank === 1 ? " open" : ""}><summary>lineage (${top.lineage.length + top.lineageOmitted} steps, newest first)</summary><ol class="lineage">${lineage.join("")}</ol></details>
</article>`
}

const signed = (x: number): string => (x >= 0 ? "+" : "") + x.toFixed(4)

/** The chosen loss's held-out runs beside the baseline's, seed by seed, then the finalists. */
const heldOutTables = (d: Decision): string => {
  const chosen = d.finalists.find((f) => f.id === d.chosen)!
  const c = chosen.comparison
  const head = `<tr><th></th><th>proxy</th>${d.seeds.map((s) => `<th>seed ${s}</th>`).join("")}<th>mean</th><th>sd</th></tr>`
  const line = (label: string, proxy: string, values: ReadonlyArray<string>, mean: string, sd: string) =>
    `<tr><th>${label}</th><td class="num">${proxy}</td>${values.map((v) => `<td class="num">${v}</td>`).join("")}` +
    `<td class="num">${mean}</td><td class="num">${sd}</td></tr>`
  const seedTable = `<table class="heldout">${head}` +
    line("chosen", fmtScore(chosen.proxyScore), c.loss.values.map((v) => v.toFixed(4)), c.loss.mean.toFixed(4), c.loss.sd.toFixed(4)) +
    line("baseline", fmtScore(d.baselineProxy), c.against.values.map((v) => v.toFixed(4)), c.against.mean.toFixed(4), c.against.sd.toFixed(4)) +
    line("difference", d.baselineProxy === null ? "—" : signed(chosen.proxyScore - d.baselineProxy), c.diff.values.map(signed), signed(c.diff.mean), c.diff.sd.toFixed(4)) +
    "</table>"
  const verdict = `<p>${esc(d.metric)}: better than the baseline on ${c.wins} of ${d.seeds.length} held-out seeds ` +
    `(${c.ties} tie(s), ${c.losses} worse)${c.diff.mean > 0 ? "" : "; no finalist beats the baseline on the held-out mean"}.</p>`
  const finalists = `<table class="finalists"><tr><th>proxy rank</th><th>candidate</th><th>proxy</th><th>held-out mean</th><th>vs baseline</th><th>wins</th></tr>` +
    d.finalists.map((f) =>
      `<tr${f.id === d.chosen ? ' class="chosen"' : ""} data-candidate="${f.id}"><td class="num">${f.rank}</td><td class="num">${f.id}${f.id === d.chosen ? " ★" : ""}</td>` +
      `<td class="num">${fmtScore(f.proxyScore)}</td><td class="num">${f.comparison.loss.mean.toFixed(4)}</td>` +
      `<td class="num">${signed(f.comparison.diff.mean)}</td><td class="num">${f.comparison.wins}/${d.seeds.length}</td></tr>`
    ).join("") + "</table>"
  return seedTable + verdict + confirmationSection(d) + `<h3>Finalists</h3>` + finalists
}

/** Plain advice text as an HTML sentence: escaped, capitalised, `code` in backticks set as code, a full stop. */
const sentence = (text: string): string =>
  esc(text.charAt(0).toUpperCase() + text.slice(1)).replace(/`([^`]*)`/g, "<code>$1</code>") + "."

/** The losses set aside as the baseline rediscovered, each with its formula text; empty when none. */
const setAsideSection = (a: NonNullable<ReportModel["answer"]>): string => {
  const note = setAsideNote(a.setAside.map((s) => ({ id: s.candidate.id, score: s.score })))
  if (note === null) return ""
  return `<p class="note set-aside" data-set-aside="${a.setAside.map((s) => s.candidate.id).join(",")}">${esc(note)}:</p><ul>` +
    a.setAside.map((s) => `<li>candidate ${s.candidate.id}: <code>${esc(s.candidate.text)}</code></li>`).join("") + "</ul>"
}

/** The chosen loss against the baseline on the seeds that took no part in the choice: the verdict. */
const confirmationSection = (d: Decision): string => {
  const k = d.confirmation
  if (k === null) {
    return `<p class="note" data-verdict="unconfirmed">No confirmation seeds: the difference above is measured on the seeds the answer was chosen on, ` +
      "so it overstates the answer's advantage (best of the finalists).</p>"
  }
  const c = k.comparison
  const head = `<tr><th></th>${k.seeds.map((s) => `<th>seed ${s}</th>`).join("")}<th>mean</th><th>sd</th></tr>`
  const line = (label: string, values: ReadonlyArray<string>, mean: string, sd: string) =>
    `<tr><th>${label}</th>${values.map((v) => `<td class="num">${v}</td>`).join("")}<td class="num">${mean}</td><td class="num">${sd}</td></tr>`
  const table = `<table class="confirmation">${head}` +
    line("chosen", c.loss.values.map((v) => v.toFixed(4)), c.loss.mean.toFixed(4), c.loss.sd.toFixed(4)) +
    line("baseline", c.against.values.map((v) => v.toFixed(4)), c.against.mean.toFixed(4), c.against.sd.toFixed(4)) +
    line("difference", c.diff.values.map(signed), signed(c.diff.mean), c.diff.sd.toFixed(4)) + "</table>"
  const v = k.verdict
  const verdict = v.kind === "confirmed"
    ? `<p class="verdict confirmed" data-verdict="confirmed">Confirmed: ${esc(v.reason)}.</p>`
    : v.kind === "inconclusive"
    ? `<p class="verdict inconclusive" data-verdict="inconclusive">Inconclusive: ${esc(v.reason)}. ${sentence(VERDICT_ADVICE.inconclusive)}</p>`
    : `<p class="verdict not-confirmed" data-verdict="not-confirmed">Not confirmed: on seeds it was not chosen on, the answer does not beat the baseline (${signed(c.diff.mean)} on the mean, better on ${c.wins} of ${k.seeds.length}). ` +
      `${sentence(VERDICT_ADVICE["not-confirmed"])}</p>`
  return `<h3>Confirmation (seeds ${k.seeds.join(", ")}, not used to choose)</h3>` + table + verdict
}

const answerSection = (m: ReportModel): string => {
  const a = m.answer
  if (a === null) return "<p>No loss has been evaluated yet.</p>"
  const c = a.candidate
  const how = a.decision === null
    ? `<p>Candidate ${c.id}, the best proxy score (${fmtScore(c.score)}) of the search. ` +
      (m.selection === null
        ? "No held-out selection was made: the score of one training on the search's seed overstates the best of many."
        : `The held-out selection is running: ${m.selection.done} of ${m.selection.total} trainings done.`) + "</p>"
    : `<p>Candidate ${c.id}: the best held-out ${esc(a.decision.metric)} of the top ${a.decision.finalists.length} losses by proxy score, ` +
      `each trained again with the handcrafted baseline from seeds ${a.decision.seeds.join(", ")} (new initialisation and batch order; ` +
      `tasks whose data is generated from a <code>data_seed</code> option, seg and pose, also get new data).</p>`
  return `<article class="answer" data-candidate="${c.id}">${how}` +
    `<div class="formula original">${renderMath(lossFormulas(c.wire, m.config?.task).tex)}</div><code>${esc(c.text)}</code>` +
    (a.decision === null ? metricsTable(c.proxyMetrics) : heldOutTables(a.decision)) +
    setAsideSection(a) +
    "</article>"
}

/** Successive halving: how many losses reached each rung, and how they scored there. */
const ladderSection = (ladder: ReadonlyArray<RungStep>): string => {
  const head = "<tr><th>rung</th><th>proxy length</th><th>trained</th><th title=\"continued from the rung below’s cached state; the others trained from step 0\">continued</th><th>invalid</th><th>best</th><th>median</th><th>leaders</th></tr>"
  const rows = [...ladder].reverse().map((r) =>
    `<tr data-rung="${r.rung}"><td class="num">${r.rung}</td>` +
    `<td class="num">${r.fraction === 1 ? "full" : `1/${Math.round(1 / r.fraction)}`}${r.iterations === null ? "" : ` (${r.iterations} it.)`}</td>` +
    `<td class="num">${r.trained}</td><td class="num">${r.rung === 0 ? "–" : r.continued}</td><td class="num">${r.invalid}</td><td class="num">${fmtScore(r.best)}</td><td class="num">${fmtScore(r.median)}</td>` +
    `<td>${r.leaders.map((l) => `<span class="cid">#${l.id}</span> ${l.score.toFixed(4)} <code>${esc(l.text)}</code>`).join("<br>")}</td></tr>`
  )
  const warnings = uninformativeRungs(ladder).map((r) =>
    `<p class="warning" data-rung="${r.rung}">Rung ${r.rung} does not rank its losses: ${r.tie!.count} of ${r.trained} results score exactly ` +
    `${r.tie!.score.toFixed(4)}, so promotions from it followed proposal order.</p>`
  )
  return "<p>Every admitted loss trains at rung 0; the top 1/η of the results at a rung so far move up, continuing their training " +
    "from the state the worker cached at the rung below (the <em>continued</em> column; a worker without it trains from step 0). " +
    "Losses are ranked by the highest rung they reached, then by their score there.</p>" + warnings.join("") +
    `<table class="ladder">${head}${rows.join("")}</table>`
}

const configSection = (m: ReportModel): string => {
  const c = m.config
  const rows: Array<[string, string]> = [
    ["run directory", m.dir],
    ["started", fmtTime(m.createdAt)],
    ["latest outcome", fmtTime(m.lastOutcomeAt)]
  ]
  if (c !== null) {
    rows.push(
      ["task / metric", `${c.task} / ${c.metric ?? "(task default)"}`],
      ["scheduler", `${c.scheduler} (K = ${c.initialPopulation}, P = ${c.populationSize}, T = ${c.tournamentPercent}%)`],
      c.fidelity?.kind === "asha"
        ? ["budget", `${((m.counters["spentUnits"] ?? 0) / (m.counters["unitsPerFull"] ?? 1)).toFixed(1)} of ${c.budget} full-proxy equivalents (${showFidelity(c.fidelity)})`]
        : ["budget", `${m.counters["trained"] ?? 0} of ${c.budget} proxy evaluations`],
      ["seed / equivalence", `${c.seed} / ${c.equivalence}`]
    )
  }
  return `<table class="config">${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join("")}</table>`
}

/** The page's `<main>` content; the live view swaps exactly this. */
export const renderReportBody = (m: ReportModel): string => {
  const task = m.config?.task
  return `<h1>${esc(m.title)}</h1>
${configSection(m)}
<section id="answer"><h2>The answer</h2>${answerSection(m)}</section>
<section id="curve"><h2>Search curve</h2><div class="charts">${curveCharts(m)}</div></section>
<section id="funnel"><h2>Candidates</h2>${funnelSection(m.funnel)}</section>
<section id="throughput"><h2>Throughput per worker</h2>${throughputSection(m)}</section>
${m.ladder === null ? "" : `<section id="rungs"><h2>Rung ladder</h2>${ladderSection(m.ladder)}</section>`}
<section id="top"><h2>Top ${m.top.length} losses</h2>${m.top.map((t) => lossCard(t, task)).join("\n")}</section>
<section id="notes"><h2>Notes</h2><ul>${m.caveats.map((c) => `<li>${esc(c)}</li>`).join("")}</ul></section>`
}

export const PAGE_CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:1340px;margin:0 auto;padding:16px 24px}
h1{font-size:22px;margin:8px 0 12px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
h3{font-size:15px;margin:0 0 6px}
table{border-collapse:collapse}th,td{padding:2px 8px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.config th{color:#555;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{background:#fff;border:1px solid #e3e3e3}
svg .grid{stroke:#eee}svg .axis,svg .axis-tick{stroke:#888}svg text{font-size:11px;fill:#444}
svg .chart-title{font-size:13px;font-weight:600;fill:#222}svg .label{font-size:12px}svg .empty{fill:#999}
.funnel .barcell{width:420px}.funnel .bar{background:#4a7fb5;height:14px;min-width:1px}.funnel .why{color:#666}
.workers{margin-top:8px}.workers th{border-bottom:1px solid #ccc}
article.loss,article.answer{background:#fff;border:1px solid #e3e3e3;padding:10px 14px;margin:12px 0}
.formula{overflow-x:auto}.formula-label{color:#555;margin-top:8px;font-size:12px}
code{font-size:12px;color:#333;word-break:break-all}
.metrics{margin-top:8px}.metrics th{font-weight:500;color:#555;border-bottom:1px solid #ddd}
.lineage{margin:4px 0;padding-left:20px}.lineage li{margin:3px 0}.cid{font-weight:600}.score{color:#1f5f9f}
.note{color:#8a5a00}.heldout,.finalists,.confirmation{margin-top:8px}.heldout th,.finalists th,.confirmation th{color:#555;font-weight:500}
.verdict{font-weight:600}.verdict.confirmed{color:#1d6b2a}.verdict.not-confirmed{color:#a12a1a}.verdict.inconclusive{color:#8a5a00}
.finalists tr.chosen td{font-weight:600}#live{position:fixed;top:6px;right:10px;font-size:12px;color:#666}
`

/** Polls nothing: the server pushes `update` events (SSE) and the page fetches the new body. */
const LIVE_SCRIPT = `
(() => {
  const badge = document.getElementById("live");
  const refresh = async () => {
    const r = await fetch("/body", { cache: "no-store" });
    if (r.ok) { document.querySelector("main").innerHTML = await r.text(); badge.textContent = "live · updated " + new Date().toLocaleTimeString(); }
  };
  const events = new EventSource("/events");
  events.addEventListener("update", () => { refresh().catch(() => {}); });
  events.onerror = () => { badge.textContent = "live · reconnecting…"; };
})();
`

export const renderReportPage = (m: ReportModel, options: { readonly live?: boolean } = {}): string => `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(m.title)}</title>
<style>${katexStyle()}</style>
<style>${PAGE_CSS}</style>
</head><body>
${options.live ? '<div id="live">live</div>' : ""}
<main>
${renderReportBody(m)}
</main>
${options.live ? `<script>${LIVE_SCRIPT}</script>` : ""}
</body></html>
`
