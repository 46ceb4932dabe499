// The det task on the shipped one-stage config (RetinaNet), end to end through the worker pool:
// a rejection check, then four tiny proxy trainings (2 iterations, 4 validation images, random
// initialisation) of `compare`, the one-paragraph refusal of a config det cannot search, and the
// fidelity verb on a panel made for the shipped FCOS config.
import t from "tap"
import { execa } from "execa"
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, relative } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../..", import.meta.url))
const bin = `${root}bin/autoloss.js`
const autoloss = (...args: string[]) => execa("node", [bin, ...args], { reject: false })
const RETINANET = `${root}python_workers/autoloss_worker/configs/det_retinanet_shapes.py`
const ONE_STAGE = ["--option", `config=${RETINANET}`, "--option", "pretrained=false"]
const TINY = ["--option", "iterations=2", "--option", "warmup_iters=1", "--option", "val_images=4"]
// mmdet's sigmoid FocalLoss (γ 2, α 1/4) and 1 − GIoU: the config's own losses, the task's baseline
const QUARTER = "inv(add(add(one, one), add(one, one)))"
const FOCAL = `add(mul(${QUARTER}, mul(y, mul(square(add(one, neg(y_hat))), neg(log(y_hat))))), ` +
  `mul(add(one, neg(${QUARTER})), mul(add(one, neg(y)), mul(square(y_hat), neg(log(add(one, neg(y_hat))))))))`
const GIOU = "add(one, add(neg(mul(i, inv(u))), mul(add(e, neg(u)), inv(e))))"
const BASELINE = `cls: ${FOCAL}; reg: ${GIOU}`

const mmdetConfigs = (() => {
  const lib = `${root}.venv/lib`
  const python = existsSync(lib) ? readdirSync(lib).find((d) => d.startsWith("python")) : undefined
  const dir = python ? `${lib}/${python}/site-packages/mmdet/.mim/configs` : ""
  return existsSync(dir) ? dir : undefined
})()

t.test("one-stage RetinaNet: the baseline passes rejection on branches cls and reg", async (t) => {
  const r = await autoloss("eval-loss", "--task", "det", ...ONE_STAGE, "--loss", BASELINE, "--json")
  t.equal(r.exitCode, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { passed: boolean; branches: Record<string, { passed: boolean; score: number }> }
  t.same(Object.keys(out.branches), ["cls", "reg"], "the branches the worker discovered in the config")
  t.ok(out.passed, JSON.stringify(out.branches))
})

t.test("one-stage RetinaNet: compare trains the loss and the baseline through the pool, seed by seed", async (t) => {
  const r = await autoloss("compare", "--task", "det", "--loss", BASELINE, "--seeds", "1,2", ...ONE_STAGE, ...TINY,
    "--workers", "2", "--json")
  t.equal(r.exitCode, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  t.equal(out.metric, "bbox_map")
  t.same(out.runs.loss.map((x: { seed: number }) => x.seed), [1, 2])
  for (const run of [...out.runs.loss, ...out.runs.reference]) {
    t.ok(run.metrics.bbox_map >= 0 && run.metrics.bbox_map <= 1, JSON.stringify(run.metrics))
  }
  // the baseline is these very trees, and a seed fixes initialisation and data order
  t.same(out.runs.loss.map((x: { metrics: unknown }) => x.metrics), out.runs.reference.map((x: { metrics: unknown }) => x.metrics))
})

t.test("a config det cannot search: exit 1, one paragraph naming the head, no traceback", { skip: mmdetConfigs ? false : "mmdet is not installed" }, async (t) => {
  const r = await autoloss("eval-loss", "--task", "det", "--option", `config=${mmdetConfigs}/vfnet/vfnet_r50_fpn_1x_coco.py`,
    "--loss", BASELINE, "--json")
  t.equal(r.exitCode, 1, r.stderr)
  t.match(r.stderr, /cannot search VFNetHead: it computes its losses in VFNetHead\.loss_by_feat/)
  t.notMatch(r.stderr, /Traceback|File "/)
})

t.test("fidelity with a panel for another det config: one error naming the loss and both branch lists, nothing trained", async (t) => {
  const out = mkdtempSync(join(tmpdir(), "fid-mismatch-"))
  const FASTER = `${root}python_workers/autoloss_worker/configs/det_faster_rcnn_shapes.py`
  const r = await autoloss("fidelity", "--task", "det", "--panel", `${root}src/fidelity/panels/det-fcos.json`, "--option", `config=${FASTER}`,
    "--option", "pretrained=false", "--seeds", "1", "--workers", "1", "--out", out)
  t.equal(r.exitCode, 1, r.stderr)
  t.match(r.stderr, /loss 'baseline' has branches cls \(dense\), reg \(box\), centerness \(dense\), but task 'det' with these options takes rpn_cls \(dense\), rpn_reg \(box\), rcnn_cls \(dense\), rcnn_reg \(box\)/)
  t.notOk(existsSync(join(out, "fidelity.db")), "no training was stored")
})

t.test("fidelity takes a panel's config from the panel file, relative to it", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "fid-panel-"))
  const panel = join(dir, "fcos-two.json")
  writeFileSync(panel, JSON.stringify({
    task: "det", options: { config: relative(dir, `${root}python_workers/autoloss_worker/configs/det_fcos_shapes.py`) },
    losses: [
      { name: "baseline", origin: "baseline", loss: `cls: ${FOCAL}; reg: ${GIOU}; centerness: neg(mul(y, log(y_hat)))` },
      { name: "log-iou", origin: "variation", loss: `cls: ${FOCAL}; reg: neg(log(mul(i, inv(u)))); centerness: neg(mul(y, log(y_hat)))` }
    ]
  }))
  const r = await autoloss("fidelity", "--task", "det", "--panel", panel, "--iterations", "1", "--long-factor", "2", "--seeds", "1",
    "--option", "pretrained=false", "--option", "warmup_iters=1", "--option", "val_images=4", "--workers", "2", "--out", join(dir, "run"), "--json")
  t.equal(r.exitCode, 0, r.stderr)
  const json = JSON.parse(r.stdout) as { options: { config: string }; panel: unknown[]; proxy_iterations: number; long_iterations: number }
  t.equal(json.options.config, `${root}python_workers/autoloss_worker/configs/det_fcos_shapes.py`)
  t.equal(json.panel.length, 2)
  t.same([json.proxy_iterations, json.long_iterations], [1, 2])
})
