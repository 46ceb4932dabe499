// PyTorch export: exact generated code for small losses, shared subtrees computed once, helpers
// only for used operators, clear errors, and the Python fixtures equal to a fresh generation
// (python_workers/tests/test_torch_export.py runs them against the torch interpreter).
import t from "tap"
import { readFileSync } from "node:fs"
import { parseLoss } from "../../src/graph/syntax.ts"
import { TorchExportError, exportTorchModule } from "../../src/graph/torch-export.ts"
import { FIXTURES_PATH, generateFixtures } from "../../scripts/gen-torch-export-fixtures.ts"

const exported = (text: string, weights?: Record<string, number>): string =>
  exportTorchModule(parseLoss(text), weights === undefined ? { className: "FoundLoss" } : { className: "FoundLoss", weights })

/** The lines of `elementwise_<branch>` after its docstring. */
const body = (source: string, branch: string): string[] => {
  const lines = source.split("\n")
  const start = lines.findIndex((l) => l.startsWith(`    def elementwise_${branch}(`))
  const docEnd = lines.findIndex((l, i) => i > start + 1 && l === `        """`)
  const end = lines.findIndex((l, i) => i > docEnd && l.startsWith("        return "))
  return lines.slice(docEnd + 1, end + 1)
}

t.test("one line per node, named temporaries, the subtree as a comment", async (t) => {
  const src = exported("neg(mul(y, log(y_hat)))")
  t.same(body(src, "loss"), [
    "        t1 = _log(y_hat)  # log(y_hat)",
    "        t2 = y * t1  # mul(y, log(y_hat))",
    "        t3 = -t2  # neg(mul(y, log(y_hat)))",
    "        return t3"
  ])
  t.match(src, /    def elementwise_loss\(self, y_hat: torch.Tensor, y: torch.Tensor\) -> torch.Tensor:\n        """loss: neg\(mul\(y, log\(y_hat\)\)\)\n/)
  t.match(src, /^"""FoundLoss: a loss function found by AutoLoss-Zero search/)
  t.match(src, /\n    loss: neg\(mul\(y, log\(y_hat\)\)\)\n/)
  t.match(src, /\nclass FoundLoss\(torch.nn.Module\):\n/)
})

t.test("every operator's Python form; identical subtrees computed once", async (t) => {
  const src = exported("add(mul(abs(exp(y)), tanh(square(y))), add(min_pool(mean_c(inv(y))), max_pool(mean_nhw(sqrt(abs(exp(y)))))))")
  t.same(body(src, "loss"), [
    "        t1 = torch.exp(y)  # exp(y)",
    "        t2 = torch.abs(t1)  # abs(exp(y))",
    "        t3 = torch.square(y)  # square(y)",
    "        t4 = torch.tanh(t3)  # tanh(square(y))",
    "        t5 = t2 * t4  # mul(abs(exp(y)), tanh(square(y)))",
    "        t6 = _inv(y)  # inv(y)",
    "        t7 = _mean_c(t6)  # mean_c(inv(y))",
    "        t8 = _min_pool(t7)  # min_pool(mean_c(inv(y)))",
    "        t9 = _sqrt(t2)  # sqrt(abs(exp(y)))", // abs(exp(y)) reused from t2
    "        t10 = _mean_nhw(t9)  # mean_nhw(sqrt(abs(exp(y))))",
    "        t11 = _max_pool(t10)  # max_pool(mean_nhw(sqrt(abs(exp(y)))))",
    "        t12 = t8 + t11  # add(min_pool(mean_c(inv(y))), max_pool(mean_nhw(sqrt(abs(exp(y))))))",
    "        t13 = t5 + t12", // its text is longer than 72 characters: no comment
    "        return t13"
  ])
  for (const helper of ["_inv", "_sqrt", "_mean_c", "_mean_nhw", "_max_pool", "_min_pool"]) t.match(src, new RegExp(`\ndef ${helper}\\(x`), helper)
  t.match(src, "\nimport torch.nn.functional as F\n")
  t.same(body(exported("one"), "loss"), ["        return one"])
})

t.test("helpers and imports only for the operators used", async (t) => {
  const src = exported("neg(mul(y, exp(y_hat)))")
  t.notMatch(src, /\ndef _(inv|log|sqrt|mean_nhw|mean_c|max_pool|min_pool)\(/)
  t.notMatch(src, "torch.nn.functional")
  const imports = src.split("\n").filter((l) => /^(import|from) /.test(l))
  t.same(imports, ["from __future__ import annotations", "from typing import Mapping", "import torch"])
})

t.test("branches, kinds' inputs, weights", async (t) => {
  const src = exported("rpn_cls: neg(mul(y, log(y_hat))); rpn_reg: neg(log(mul(i, inv(e))))", { rpn_reg: 10, rpn_cls: 0.5 })
  t.match(src, '    BRANCHES = ("rpn_cls", "rpn_reg")\n')
  t.match(src, '    INPUTS = {"rpn_cls": ("y_hat", "y", "one"), "rpn_reg": ("i", "u", "e", "one")}\n')
  t.match(src, '    USED = {"rpn_cls": ("y_hat", "y"), "rpn_reg": ("i", "e")}\n')
  t.match(src, '    DEFAULT_WEIGHTS = {"rpn_cls": 0.5, "rpn_reg": 10.0}\n')
  t.match(src, "Value: L = 0.5·L_rpn_cls + 10.0·L_rpn_reg,")
  t.match(src, "    def elementwise_rpn_reg(self, i: torch.Tensor, e: torch.Tensor) -> torch.Tensor:\n")
  t.match(exported("add(y, one)"), '    DEFAULT_WEIGHTS = {"loss": 1.0}\n')
  t.match(exported("add(y, one)"), '    USED = {"loss": ("y", "one")}\n')
})

t.test("errors name what cannot be exported", async (t) => {
  const g = parseLoss("neg(y)")
  t.throws(() => exportTorchModule(g, { className: "class" }), new TorchExportError("class name 'class' is not a usable Python identifier"))
  t.throws(() => exportTorchModule(g, { className: "My-Loss" }), new TorchExportError("class name 'My-Loss' is not a usable Python identifier"))
  t.throws(() => exportTorchModule(g, { className: "L", weights: { cls: 1 } }), new TorchExportError("weight given for unknown branch 'cls'"))
  t.throws(() => exportTorchModule(g, { className: "L", weights: { loss: NaN } }), new TorchExportError("weight NaN is not finite"))
  const clash = parseLoss("a: neg(self)", { kinds: { a: { name: "odd", inputs: ["self", "one"] } } })
  t.throws(() => exportTorchModule(clash, { className: "L" }), new TorchExportError("input 'self' of branch 'a' clashes with a name the generated code uses"))
  const temp = parseLoss("a: neg(t1)", { kinds: { a: { name: "odd", inputs: ["t1", "one"] } } })
  t.throws(() => exportTorchModule(temp, { className: "L" }), new TorchExportError("input 't1' of branch 'a' clashes with a name the generated code uses"))
})

t.test("Python fixtures are what the generator writes now", async (t) => {
  // If this fails: npx tsx scripts/gen-torch-export-fixtures.ts, then run python_workers/tests/test_torch_export.py.
  t.ok(readFileSync(FIXTURES_PATH, "utf8") === generateFixtures(), "python_workers/tests/fixtures/torch_export.json is stale")
})
