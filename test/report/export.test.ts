import t from "tap"
import { spawnSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { run as exportVerb } from "../../src/cli/verbs/export.ts"
import { SPECS, tempDir, writeSyntheticRun } from "./fixture.ts"

/** Runs a verb in-process, capturing what it writes. */
const capture = async (f: () => Promise<number>) => {
  const out: string[] = []
  const err: string[] = []
  const o = process.stdout.write.bind(process.stdout)
  const e = process.stderr.write.bind(process.stderr)
  process.stdout.write = ((s: string) => (out.push(s), true)) as typeof process.stdout.write
  process.stderr.write = ((s: string) => (err.push(s), true)) as typeof process.stderr.write
  try {
    const code = await f()
    return { code, stdout: out.join(""), stderr: err.join("") }
  } finally {
    process.stdout.write = o
    process.stderr.write = e
  }
}

/** Imports the exported module and compares it with the worker's interpreter on random inputs. */
const PY_CHECK = String.raw`
import importlib.util, json, sys
import torch
torch.set_num_threads(1)
from autoloss_worker.graph import branch_value, compile_branch, loss_from_wire
path, wire = sys.argv[1], json.loads(sys.argv[2])
spec = importlib.util.spec_from_file_location("found_loss", path)
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
graph = loss_from_wire(wire)
worst = 0.0
for seed in range(3):
    g = torch.Generator().manual_seed(seed)
    y_hat = torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64).requires_grad_(True)
    y = torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64)
    exported = mod.FoundLoss()(y_hat=y_hat, y=y)
    (g_exp,) = torch.autograd.grad(exported, y_hat)
    ref = sum(branch_value(compile_branch(b)({"y_hat": y_hat, "y": y})) for b in graph.branches)
    (g_ref,) = torch.autograd.grad(ref, y_hat)
    assert exported.dim() == 0, exported.shape
    worst = max(worst, abs(float(exported - ref)), float((g_exp - g_ref).abs().max()))
print(json.dumps({"worst": worst}))
`

t.test("export --format torch writes the best loss as a module that matches the interpreter", async (t) => {
  const dir = tempDir(t)
  await writeSyntheticRun(dir)
  const r = await capture(() => exportVerb([dir, "--format", "torch"]))
  t.equal(r.code, 0, r.stderr)
  const path = join(dir, "found_loss.py")
  t.match(r.stdout, `exported candidate 10 (score 0.5) as FoundLoss to ${path}`)
  const source = readFileSync(path, "utf8")
  t.match(source, "loss: neg(mul(abs(y), sqrt(y_hat)))", "the best candidate (10) was exported")
  t.notMatch(source, /autoloss_worker/, "standalone: no import of the project")

  const wire = JSON.parse(JSON.stringify((await import("../../src/report/run-data.ts")).loadRun(dir).candidates[10]!.wire))
  const py = spawnSync(".venv/bin/python", ["-c", PY_CHECK, path, JSON.stringify(wire)], { encoding: "utf8" })
  t.equal(py.status, 0, py.stderr)
  t.ok((JSON.parse(py.stdout) as { worst: number }).worst < 1e-12, py.stdout)
})

t.test("export picks a given candidate, a class name and an output path", async (t) => {
  const dir = tempDir(t)
  await writeSyntheticRun(dir)
  const out = join(dir, "other.py")
  const r = await capture(() => exportVerb([dir, "--format", "torch", "--candidate", "4", "--class-name", "SquaredError", "--out", out]))
  t.equal(r.code, 0, r.stderr)
  t.match(readFileSync(out, "utf8"), `class SquaredError(`)
  t.match(readFileSync(out, "utf8"), SPECS[4]!.text)
})

t.test("export refuses what it cannot do, with a clear message", async (t) => {
  const dir = tempDir(t)
  await writeSyntheticRun(dir)
  // The MMLab formats (and their refusal on a native task such as this seg run): test/report/export-mmlab.test.ts, test_mmlab_export.py
  const unknown = await capture(() => exportVerb([dir, "--format", "onnx"]))
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, "unknown --format 'onnx'")
  const missing = await capture(() => exportVerb([dir, "--format", "torch", "--candidate", "99"]))
  t.equal(missing.code, 1)
  t.match(missing.stderr, "has no candidate 99")
  const badWeight = await capture(() => exportVerb([dir, "--format", "torch", "--weight", "loss=x"]))
  t.equal(badWeight.code, 2)
  t.match(badWeight.stderr, "--weight wants BRANCH=NUMBER, got 'loss=x'")
  const notARun = await capture(() => exportVerb([join(dir, "nowhere"), "--format", "torch"]))
  t.equal(notARun.code, 1)
  t.match(notARun.stderr, "not a search run directory")
  t.notOk(existsSync(join(dir, "found_loss.py")), "nothing written on refusal")
})

t.test("export writes the held-out choice when the run made one, and says which loss it wrote", async (t) => {
  const { SELECTION, writeSelection } = await import("./fixture.ts")
  const dir = tempDir(t)
  await writeSyntheticRun(dir)
  const proxy = await capture(() => exportVerb([dir, "--format", "torch", "--out", join(dir, "a.py")]))
  t.match(proxy.stdout, /exported candidate 10 .*\n  the best proxy score: this run made no held-out selection/)
  await writeSelection(dir)
  const r = await capture(() => exportVerb([dir, "--format", "torch", "--out", join(dir, "b.py")]))
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, `exported candidate ${SELECTION.chosen} (score 0.4) as FoundLoss`)
  t.match(r.stdout, "\n  the held-out choice: miou 0.3400 on seeds 101,102 (the baseline 0.3100), best of the top 2 by proxy score; not confirmed on further seeds (the run had none)\n")
  t.match(readFileSync(join(dir, "b.py"), "utf8"), `loss: ${SPECS[SELECTION.chosen]!.text}`)
  const given = await capture(() => exportVerb([dir, "--format", "torch", "--candidate", "0", "--out", join(dir, "c.py")]))
  t.match(given.stdout, "the candidate --candidate named")
  // with confirmation: chosen 0.29, 0.30 against the baseline's 0.31, 0.32 on seeds 201, 202
  const confirmed = tempDir(t)
  await writeSyntheticRun(confirmed)
  await writeSelection(confirmed, [[201, 0.29, 0.31], [202, 0.30, 0.32]])
  const k = await capture(() => exportVerb([confirmed, "--format", "torch", "--out", join(confirmed, "d.py")]))
  t.match(k.stdout, "; on confirmation seeds 201,202 0.2950 vs the baseline's 0.3150: NOT confirmed, the baseline is at least as good\n")
})
