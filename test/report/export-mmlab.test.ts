import t from "tap"
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { run as exportVerb } from "../../src/cli/verbs/export.ts"
import { CONFIG, tempDir, writeSyntheticRun } from "./fixture.ts"

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

const SHIPPED_CONFIG = resolve("python_workers/autoloss_worker/configs/det_faster_rcnn_shapes.py")
const CE = "neg(mul(y, log(y_hat)))"
const detLoss = (rpnReg: string, rcnnReg: string) => `rpn_cls: ${CE}; rpn_reg: ${rpnReg}; rcnn_cls: ${CE}; rcnn_reg: ${rcnnReg}`
const trained = (score: number) => ({ kind: "trained" as const, score, trainMs: 1000, trainWorker: "w1" })

/** A det run: candidate 1 (the paper's searched box losses) scores best. */
const DET_SPECS: Parameters<typeof writeSyntheticRun>[1] = [
  { text: detLoss("neg(log(mul(i, inv(u))))", "neg(log(mul(i, inv(u))))"), parent: null, how: "random", screen: "w1", fate: trained(0.1) },
  { text: detLoss("mul(e, inv(add(i, u)))", "neg(log(mul(i, inv(e))))"), parent: null, how: "random", screen: "w1", fate: trained(0.3) },
  { text: detLoss("mul(e, inv(i))", "mul(e, inv(i))"), parent: null, how: "random", screen: "w2", fate: { kind: "rejected" } }
]

const detRun = async (t: Parameters<typeof tempDir>[0]): Promise<string> => {
  const dir = tempDir(t, "autoloss-export-mmlab-")
  await writeSyntheticRun(dir, DET_SPECS)
  writeFileSync(join(dir, "run.json"), JSON.stringify({ ...CONFIG, task: "det", metric: "bbox_map", options: { iterations: 20 } }))
  return dir
}

t.test("export --format mmdet writes the best loss as a fragment on the run's config", async (t) => {
  const dir = await detRun(t)
  const r = await capture(() => exportVerb([dir, "--format", "mmdet"]))
  t.equal(r.code, 0, r.stderr)
  const path = resolve(dir, "found_loss_mmdet.py")
  t.match(r.stdout, `exported candidate 1 (score 0.3) as an mmdet config fragment to ${path}`)
  t.match(r.stdout, `base ${SHIPPED_CONFIG}; branches rpn_cls, rpn_reg, rcnn_cls, rcnn_reg`)
  const text = readFileSync(path, "utf8")
  t.match(text, `# autoloss export: candidate 1 (score 0.3) of the 'det' run ${resolve(dir)}\n`)
  t.match(text, `# Train with MMDetection's own tools: python tools/train.py ${path}\n`)
  t.match(text, `_base_ = ['${SHIPPED_CONFIG}']\n`, "the config the run searched with (the task's default)")
  t.match(text, "custom_imports = dict(imports=['autoloss_worker.mmlab.registry'], allow_failed_imports=False)")
  t.match(text, "# rpn_reg: mul(e, inv(add(i, u)))\n        loss_bbox=dict(", "the best candidate's branches, text above each")
  t.match(text, "# rcnn_reg: neg(log(mul(i, inv(e))))\n")
  t.equal(text.match(/type='AutoLossGraph'/g)?.length, 4)
  t.equal(text.match(/loss_weight=10\.0/g)?.length, 2, "the paper's regression weight on both box branches")
})

t.test("export --format mmdet takes a candidate, an output path and a user's base config", async (t) => {
  const dir = await detRun(t)
  const user = join(dir, "user_config.py")
  writeFileSync(user, `_base_ = ['${SHIPPED_CONFIG}']\n`)
  const out = join(dir, "mine.py")
  const r = await capture(() => exportVerb([dir, "--format", "mmdet", "--candidate", "0", "--out", out, "--base", user]))
  t.equal(r.code, 0, r.stderr)
  const text = readFileSync(out, "utf8")
  t.match(text, "candidate 0 (score 0.1)")
  t.match(text, `_base_ = ['${resolve(user)}']\n`)
  t.match(text, "# rcnn_reg: neg(log(mul(i, inv(u))))\n")
})

t.test("export to an MMLab format refuses what cannot work, saying why", async (t) => {
  const dir = await detRun(t)
  const mismatch = await capture(() => exportVerb([dir, "--format", "mmseg"]))
  t.equal(mismatch.code, 2)
  t.match(mismatch.stderr, `autoloss export: --format mmseg does not match the run's task 'det': its config ${SHIPPED_CONFIG} is an mmdet config`)
  t.match(mismatch.stderr, "use --format mmdet")

  // A native task (seg, pose) is refused the same way (exit 2): test_mmlab_export.py checks the message.
  const noBase = await capture(() => exportVerb([dir, "--format", "mmdet", "--base", join(dir, "missing.py")]))
  t.equal(noBase.code, 1)
  t.match(noBase.stderr, `base config '${resolve(dir, "missing.py")}' does not exist`)

  const unknown = await capture(() => exportVerb([dir, "--format", "mmdet", "--candidate", "99"]))
  t.equal(unknown.code, 1)
  t.match(unknown.stderr, "has no candidate 99")
  const weight = await capture(() => exportVerb([dir, "--format", "mmdet", "--weight", "rpn_reg=2"]))
  t.equal(weight.code, 2)
  t.match(weight.stderr, "--weight applies to --format torch; --format mmdet uses the task's loss weights")
  const baseForTorch = await capture(() => exportVerb([dir, "--format", "torch", "--base", "x.py"]))
  t.equal(baseForTorch.code, 2)
  t.match(baseForTorch.stderr, "--base applies to the MMLab formats")

  rmSync(join(dir, "run.json"))
  const noConfig = await capture(() => exportVerb([dir, "--format", "mmdet"]))
  t.equal(noConfig.code, 1)
  t.match(noConfig.stderr, "has no run.json: the run's task (and its config) is unknown")
  t.notOk(existsSync(join(dir, "found_loss_mmdet.py")), "nothing written on refusal")
})
