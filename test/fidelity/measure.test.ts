// Fidelity bookkeeping: the panel file's checks and options, the cells a measurement needs, the store's resume
// guarantees (recipe checked, a cell never written twice) and the summary over stored cells.
import t from "tap"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { formatSummary, missingCells, planCells, summarise, summaryJson } from "../../src/fidelity/measure.ts"
import { branchMismatch, defaultPanelPath, loadPanel } from "../../src/fidelity/panel.ts"
import { cellKey, type CellResult, openFidelityStore } from "../../src/fidelity/store.ts"
import { renderFidelityPage } from "../../src/report/fidelity-page.ts"

const dir = () => mkdtempSync(join(tmpdir(), "fidelity-"))
const panelFile = (losses: unknown, task = "pose") => {
  const path = join(dir(), "panel.json")
  writeFileSync(path, JSON.stringify({ task, losses }))
  return path
}
const LOSSES = [
  { name: "mse", origin: "baseline", loss: "square(add(y_hat, neg(y)))" },
  { name: "l1", origin: "variation", loss: "abs(add(y_hat, neg(y)))" },
  { name: "a<b", origin: "random", loss: "tanh(mul(tanh(y_hat), neg(y)))" }
]

t.test("the shipped panels load and meet the issue's sizes", async (t) => {
  const panels = [["pose", "pose", 12], ["seg", "seg", 12], ["det", "det", 12], ["mmpose", "mmpose", 12], ["ins", "ins", 8],
    ["mmseg", "mmseg", 8], ["det-fcos", "det", 12]] as const
  for (const [file, task, min] of panels) {
    const p = loadPanel(defaultPanelPath(file), task)
    t.ok(p.losses.length >= min, `${task}: ${p.losses.length} losses`)
    t.equal(p.losses.filter((l) => l.origin === "baseline").length, 1, `${task}: one baseline`)
    t.ok(p.losses.filter((l) => l.origin === "random").length >= 6, `${task}: >= 6 random`)
    t.ok(p.losses.some((l) => l.origin === "paper"), `${task}: the paper's loss`)
  }
  // the FCOS panel's losses carry the FCOS config's three branches, in its order
  const fcos = loadPanel(defaultPanelPath("det-fcos"), "det")
  t.ok(fcos.losses.every((l) => l.graph.branches.map((b) => b.name).join() === "cls,reg,centerness"))
})

t.test("a bad panel names the entry and the problem", async (t) => {
  t.throws(() => loadPanel(panelFile(LOSSES), "seg"), /panel for task 'pose', not 'seg'/)
  t.throws(() => loadPanel(panelFile([LOSSES[0], { ...LOSSES[1], loss: "abs(add(y_hat, neg(y))" }]), "pose"), /losses\[1\] \(l1\): .*column/)
  t.throws(() => loadPanel(panelFile([LOSSES[0], { ...LOSSES[1], name: "mse" }]), "pose"), /name 'mse' is used twice/)
  t.throws(() => loadPanel(panelFile([LOSSES[0], { ...LOSSES[1], loss: "square(add(neg(y), y_hat))" }]), "pose"), /same loss as 'mse'/)
  t.throws(() => loadPanel(panelFile([LOSSES[0], { ...LOSSES[1], origin: "mine" }]), "pose"), /'origin' must be one of/)
  t.throws(() => loadPanel(panelFile([LOSSES[0]]), "pose"), /at least 2 losses/)
  t.throws(() => loadPanel("/nope/panel.json", "pose"), /no panel file/)
})

t.test("a panel's options: config relative to the panel file, iterations refused; branchMismatch names the loss", async (t) => {
  const d = dir()
  const file = join(d, "p.json")
  writeFileSync(file, JSON.stringify({ task: "pose", options: { config: "../cfg/x.py", threads: 1 }, losses: LOSSES }))
  const p = loadPanel(file, "pose")
  t.same(p.options, { config: join(dirname(d), "cfg", "x.py"), threads: 1 })
  t.same(loadPanel(panelFile(LOSSES), "pose").options, {}, "no options: none")
  writeFileSync(file, JSON.stringify({ task: "pose", options: { iterations: 5 }, losses: LOSSES }))
  t.throws(() => loadPanel(file, "pose"), /'options' may not set iterations/)
  writeFileSync(file, JSON.stringify({ task: "pose", options: [1], losses: LOSSES }))
  t.throws(() => loadPanel(file, "pose"), /'options' must be an object/)
  const dense = [{ name: "loss", kind: "dense" }]
  t.equal(branchMismatch(p, dense), null)
  t.match(branchMismatch(p, [{ name: "loss", kind: "box" }]) ?? "", /loss 'mse' has branches loss \(dense\), but task 'pose' with these options takes loss \(box\)/)
  t.match(branchMismatch(p, [...dense, { name: "aux", kind: "dense" }]) ?? "", /takes loss \(dense\), aux \(dense\)/)
})

const result = (hash: string, seed: number, iterations: number, map: number, extra: Partial<CellResult> = {}): CellResult => ({
  lossHash: hash, lossText: hash, seed, iterations, metrics: { map }, invalid: false, elapsedMs: 1000, pid: 1, recordedAt: 0, ...extra
})

t.test("cells: every loss x seed x budget, long first; resume skips stored ones", async (t) => {
  const panel = loadPanel(panelFile(LOSSES), "pose")
  const cells = planCells(panel, [1, 2], 10, 50)
  t.equal(cells.length, 12)
  t.same(cells.slice(0, 6).map((c) => c.iterations), [50, 50, 50, 50, 50, 50])
  t.equal(new Set(cells.map(cellKey)).size, 12)
  const stored = new Map([cells[0]!, cells[7]!].map((c) => [cellKey(c), result(c.lossHash, c.seed, c.iterations, 0.5)]))
  t.same(missingCells(cells, stored).map(cellKey), cells.filter((_, i) => i !== 0 && i !== 7).map(cellKey))
})

t.test("the store refuses another recipe and a second write of a cell; reads back what it stored", async (t) => {
  const d = dir()
  const recipe = { task: "pose", metric: "map", options: { train_images: 16 } }
  const s = openFidelityStore(d, recipe)
  s.put(result("h", 1, 10, 0.25, { invalid: true, metrics: { map: 0.25, other: NaN } }))
  t.throws(() => s.put(result("h", 1, 10, 0.3)), /storing cell h\/1\/10/)
  s.close()
  t.throws(() => openFidelityStore(d, { ...recipe, options: { train_images: 32 } }), /another recipe/)
  const again = openFidelityStore(d, { options: { train_images: 16 }, metric: "map", task: "pose" })
  const got = again.cells().get("h/1/10")!
  t.match(got, { seed: 1, iterations: 10, invalid: true, elapsedMs: 1000 })
  t.equal(got.metrics["map"], 0.25)
  t.ok(Number.isNaN(got.metrics["other"]), "NaN survives as NaN")
  again.close()
})

t.test("summary: means and sds per loss, statistics over the means, the page shows them", async (t) => {
  const panel = loadPanel(panelFile(LOSSES), "pose")
  const [a, b, c] = panel.losses.map((l) => l.hash) as [string, string, string]
  // proxy means 0.2, 0.4, 0.3; long means 0.5, 0.6, 0.9: proxy picks l1 (0.6), best is a<b (0.9)
  const rows = [
    result(a, 1, 10, 0.1), result(a, 2, 10, 0.3), result(a, 1, 50, 0.5), result(a, 2, 50, 0.5),
    result(b, 1, 10, 0.4), result(b, 2, 10, 0.4), result(b, 1, 50, 0.6), result(b, 2, 50, 0.6),
    result(c, 1, 10, 0.3), result(c, 2, 10, 0.3), result(c, 1, 50, 0.9), result(c, 2, 50, 0.9, { invalid: true })
  ]
  const s = summarise(panel, [1, 2], "map", 10, 50, new Map(rows.map((r) => [cellKey(r), r])))
  t.same(s.losses.map((l) => l.proxy.mean.toFixed(4)), ["0.2000", "0.4000", "0.3000"])
  t.equal(s.losses[0]!.proxy.sd.toFixed(4), "0.1414")
  t.same(s.losses[2]!.longInvalid, [2])
  t.equal(s.kendallTau.toFixed(4), "0.3333", "pairs: (a,b) C, (a,c) C, (b,c) D")
  t.equal(s.k, 1)
  t.equal(s.topKRetrieval, 0)
  t.equal(s.regret.toFixed(4), "0.3000")
  t.match(summaryJson("pose", s), { proxy_pick: "l1", long_best: "a<b", proxy_iterations: 10, long_iterations: 50 })
  t.equal(summaryJson("pose", s).baseline?.proxy_over_long.toFixed(4), "0.4000", "mse: 0.2 / 0.5")
  t.match(formatSummary(s), /l1 .*← proxy's pick/)
  const html = renderFidelityPage("pose", s)
  t.equal(html.match(/<circle class="point"/g)?.length, 3, "one point per loss")
  t.match(html, /<title>a&lt;b \(random\)\ntanh\(mul\(tanh\(y_hat\), neg\(y\)\)\)/, "formula on hover, escaped")
  t.match(html, /Kendall τ-b<\/th><td class="num">0\.3333/)
  t.throws(() => summarise(panel, [1, 3], "map", 10, 50, new Map(rows.map((r) => [cellKey(r), r]))), /no stored training of 'mse' for seed 3/)
})
