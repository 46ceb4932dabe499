import { loadSummary } from "./src/cli/summary.ts"
for (const dir of process.argv.slice(2)) {
  const s = await loadSummary(dir)
  const c = s.counters
  const sel = s.selection
  console.log(dir.split("/").pop(), JSON.stringify({ rung0: c["trainedRung0"], rung1: c["trainedRung1"], spent: c["spentUnits"], chosen: sel?.chosen.loss, held: sel?.chosen.heldOut.values.map((v) => +v.toFixed(3)), base: sel?.baseline.heldOut.values.map((v) => +v.toFixed(3)), conf: sel?.confirmation?.vsBaseline.mean.toFixed(3), verdict: sel?.verdict, setAside: sel?.setAside }))
}
