// `autoloss slots` end to end: a real local worker runs the `slots` job. Each run that reaches the
// worker costs a Python start (and, for a readable config, importing the library's models).
import t from "tap"
import { execa } from "execa"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { formatSlots } from "../../src/cli/verbs/slots.ts"

const bin = fileURLToPath(new URL("../../bin/autoloss.js", import.meta.url))
const autoloss = (...args: string[]) => execa("node", [bin, "slots", ...args], { reject: false })
const shippedDet = fileURLToPath(new URL("../../python_workers/autoloss_worker/configs/det_faster_rcnn_shapes.py", import.meta.url))

const hasMmdet = (await execa(process.env["AUTOLOSS_PYTHON"] ?? ".venv/bin/python", ["-c", "import mmdet.models"], { reject: false })).exitCode === 0

t.test("the table: aligned columns, the reason under each slot that cannot be searched", async (t) => {
  const row = (key: string, name: string, kind: string, loss_type: string, searchable: boolean, reason: string) =>
    ({ key, name, kind, loss_type, head_type: "H", searchable, reason })
  const text = formatSlots("/c.py", "mmdet", [
    row("bbox_head.loss_cls", "cls", "cls_quality", "QualityFocalLoss", false, "soft target"),
    row("bbox_head.loss_bbox", "reg", "box", "GIoULoss", true, "decoded")
  ])
  t.equal(text, [
    "/c.py (mmdet): 2 loss slot(s), 1 searchable",
    "",
    "key                  branch  kind         loss              searchable",
    "bbox_head.loss_cls   cls     cls_quality  QualityFocalLoss  no",
    "                     why not: soft target",
    "bbox_head.loss_bbox  reg     box          GIoULoss          yes"
  ].join("\n"))
})

t.test("--help prints the usage and exits 0; usage mistakes exit 2", async (t) => {
  const help = await autoloss("--help")
  t.equal(help.exitCode, 0)
  t.match(help.stdout, /usage: autoloss slots --config FILE/)
  const none = await autoloss()
  t.equal(none.exitCode, 2)
  t.match(none.stderr, /--config is required/)
  const unknown = await autoloss("--config", "x.py", "--bogus")
  t.equal(unknown.exitCode, 2)
  t.match(unknown.stderr, /Unknown option '--bogus'/)
})

t.test("an unreadable config: one line naming the file, exit 1, no traceback", async (t) => {
  const r = await autoloss("--config", "/nonexistent/cfg.py")
  t.equal(r.exitCode, 1)
  t.match(r.stderr, /autoloss slots: cannot read the config \/nonexistent\/cfg\.py: FileNotFoundError/)
  t.notMatch(r.stderr, /Traceback|attempt 1/)
})

t.test("the shipped Faster R-CNN config: the paper's four branches, all searchable", { skip: !hasMmdet && "mmdet is not installed" }, async (t) => {
  const r = await autoloss("--config", shippedDet, "--json")
  t.equal(r.exitCode, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  t.equal(out.library, "mmdet")
  t.same(out.slots.map((s: { name: string; kind: string; searchable: boolean }) => [s.name, s.kind, s.searchable]), [
    ["rpn_cls", "cls_sigmoid", true], ["rpn_reg", "box", true], ["rcnn_cls", "cls_softmax", true], ["rcnn_reg", "box", true]
  ])
  t.same(out.selected, ["rpn_cls", "rpn_reg", "rcnn_cls", "rcnn_reg"])
  const table = await autoloss("--config", shippedDet)
  t.equal(table.exitCode, 0)
  t.match(table.stdout, /4 loss slot\(s\), 4 searchable/)
  t.match(table.stdout, /roi_head\.bbox_head\.loss_bbox\s+rcnn_reg\s+box\s+L1Loss\s+yes/)
})

t.test("a config with nothing to search: the table, then one paragraph naming slot and loss type, exit 1", { skip: !hasMmdet && "mmdet is not installed" }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "autoloss-slots-"))
  const config = join(dir, "gfl_dfl_only.py")
  writeFileSync(config, [
    "default_scope = 'mmdet'",
    "model = dict(type='GFL', bbox_head=dict(type='GFLHead', num_classes=3, in_channels=8,",
    "    loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25)))", ""
  ].join("\n"))
  const r = await autoloss("--config", config)
  t.equal(r.exitCode, 1)
  t.match(r.stdout, /bbox_head\.loss_dfl\s+dfl\s+distribution\s+DistributionFocalLoss\s+no/)
  t.match(r.stderr, /autoloss slots: autoloss cannot search the loss at model\.bbox_head\.loss_dfl \(DistributionFocalLoss in GFLHead, kind distribution\)/)
  t.equal(r.stderr.trim().split("\n").length, 1, "one paragraph")
  const named = await autoloss("--config", config, "--branches", "dfl")
  t.equal(named.exitCode, 1)
  t.match(named.stderr, /no paper input describes a distribution over box sides/)
  t.notMatch(named.stderr, /Traceback|attempt 1/)
})
