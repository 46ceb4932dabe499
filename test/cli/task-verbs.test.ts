// `autoloss eval-loss | train-loss | baseline` end to end: one job each on a one-worker pool. Each
// verb that reaches Python costs a few seconds (worker start, torch import, data): keep them few and small.
import t from "tap"
import { execa } from "execa"
import { fileURLToPath } from "node:url"
import * as evalLoss from "../../src/cli/verbs/eval-loss.ts"
import * as trainLoss from "../../src/cli/verbs/train-loss.ts"
import * as baseline from "../../src/cli/verbs/baseline.ts"
import * as compare from "../../src/cli/verbs/compare.ts"
import * as parse from "../../src/cli/verbs/parse.ts"
import * as mutate from "../../src/cli/verbs/mutate.ts"
import * as simplify from "../../src/cli/verbs/simplify.ts"
import type { Verb, VerbOutput } from "../../src/cli/verb.ts"

const bin = fileURLToPath(new URL("../../bin/autoloss.js", import.meta.url))
const autoloss = (...args: string[]) => execa("node", [bin, ...args], { reject: false })

// Small data and budgets; the rejection protocol itself keeps the paper's constants.
const SMALL_SEG = ["--option", "train_images=48", "--option", "eval_images=8", "--option", "threads=1"]
const CE = "neg(mul(y, log(y_hat)))"

/** Run a verb in this process (for the cases that never reach Python), capturing what it writes. */
const inProcess = async (verb: Pick<Verb, "run">, ...argv: string[]) => {
  const out = { stdout: "", stderr: "" }
  const io: VerbOutput = { stdout: (s) => { out.stdout += s }, stderr: (s) => { out.stderr += s } }
  const exitCode = await verb.run(argv, io)
  return { exitCode, ...out }
}

t.test("a bad expression exits 2 with the column, before any Python runs", async (t) => {
  const r = await inProcess(evalLoss, "--task", "seg", "--loss", "neg(mul(y, lgo(y_hat)))")
  t.equal(r.exitCode, 2)
  t.match(r.stderr, /autoloss eval-loss: --loss: unknown operator 'lgo' at column 12/)
  t.match(r.stderr, /\n  neg\(mul\(y, lgo\(y_hat\)\)\)\n {13}\^\nusage: autoloss eval-loss --task T --loss/)
  const arity = await inProcess(trainLoss, "--task", "seg", "--loss", "add(y)")
  t.equal(arity.exitCode, 2)
  t.match(arity.stderr, /autoloss train-loss: --loss: operator 'add' takes 2 arguments, got 1 at column 1/)
})

t.test("the same syntax error exits 2 in every verb that takes an expression", async (t) => {
  const bad = "neg(lgo(y))"
  const runs = {
    parse: await inProcess(parse, bad),
    mutate: await inProcess(mutate, bad, "--seed", "1"),
    simplify: await inProcess(simplify, bad),
    "eval-loss": await inProcess(evalLoss, "--task", "seg", "--loss", bad),
    "train-loss": await inProcess(trainLoss, "--task", "seg", "--loss", bad),
    compare: await inProcess(compare, "--task", "seg", "--loss", CE, "--against", bad)
  }
  for (const [verb, r] of Object.entries(runs)) {
    t.equal(r.exitCode, 2, `${verb} exits 2`)
    t.match(r.stderr, new RegExp(`^autoloss ${verb}: .*unknown operator 'lgo' at column 5`), `${verb} names the column`)
  }
})

t.test("usage errors exit 2 with the synopsis", async (t) => {
  const noTask = await inProcess(evalLoss, "--loss", CE)
  t.equal(noTask.exitCode, 2)
  t.match(noTask.stderr, /--task is required\nusage: autoloss eval-loss/)
  const flag = await inProcess(trainLoss, "--task", "seg", "--loss", CE, "--budget", "3")
  t.equal(flag.exitCode, 2)
  t.match(flag.stderr, /Unknown option '--budget'/)
  const seed = await inProcess(evalLoss, "--task", "seg", "--loss", CE, "--seed", "1.5")
  t.equal(seed.exitCode, 2)
  t.match(seed.stderr, /--seed wants an integer ≥ 0, got '1.5'/)
  const baselineWithLoss = await inProcess(baseline, "--task", "seg", "--loss", CE)
  t.equal(baselineWithLoss.exitCode, 2)
  t.match(baselineWithLoss.stderr, /Unknown option '--loss'/, "baseline trains with the task's own loss")
  const device = await inProcess(baseline, "--task", "seg", "--device", "gpu0")
  t.equal(device.exitCode, 2)
  t.match(device.stderr, /--device wants cpu or cuda:N entries, got 'gpu0'/, "the device parser search and resume use")
  const option = await inProcess(baseline, "--task", "seg", "--option", "iterations")
  t.equal(option.exitCode, 2)
  t.match(option.stderr, /--option wants KEY=VALUE, got 'iterations'/)
  const json = await inProcess(baseline, "--task", "seg", "--options", "{iterations: 2}")
  t.equal(json.exitCode, 2)
  t.match(json.stderr, /--options is not JSON/)
})

t.test("an unknown task or option: the worker's refusal, exit 2; a job that fails: exit 1", async (t) => {
  const [task, option, failed] = await Promise.all([
    autoloss("eval-loss", "--task", "segm", "--loss", CE, "--json"),
    autoloss("train-loss", "--task", "seg", "--loss", CE, "--option", "no_such_option=1"),
    // passes every check, then training cannot move the network to a device that does not exist
    autoloss("baseline", "--task", "seg", "--option", "iterations=1", "--option", "train_images=8", "--option", "device=cuda:99")
  ])
  t.equal(task.exitCode, 2)
  t.match(task.stderr, /autoloss eval-loss: unknown task 'segm' \(known: det, ins, mmpose, mmseg, pose, seg\)/)
  t.equal(task.stdout, "")
  t.equal(option.exitCode, 2)
  t.match(option.stderr, /autoloss train-loss: .*no_such_option/)
  t.equal(failed.exitCode, 1, failed.stderr)
  t.match(failed.stderr, /^autoloss baseline: \S.* \(\w+ in the baseline job\)$/m, "the worker's exception, in its words")
})

t.test("eval-loss --json: cross-entropy passes the protocol at the paper's constants", async (t) => {
  const ce = await autoloss("eval-loss", "--task", "seg", "--metric", "miou", "--loss", CE, ...SMALL_SEG, "--json")
  t.equal(ce.exitCode, 0, ce.stderr)
  const r = JSON.parse(ce.stdout) as Record<string, unknown>
  t.same(Object.keys(r).sort(), ["branches", "elapsedMs", "fingerprint", "gradNorms", "invalid", "iterations", "passed", "score"])
  t.equal(r["passed"], true)
  t.equal(r["invalid"], false)
  t.equal(r["iterations"], 500)
  t.ok((r["score"] as number) >= 0.6)
  t.equal((r["gradNorms"] as number[]).length, 5) // rejected losses: python_workers/tests/test_rejection.py
})

t.test("train-loss and baseline print metrics; --options JSON is the same map as --option pairs", async (t) => {
  const tiny = { train_images: 16, eval_images: 4, threads: 1, iterations: 2, batch_size: 8 }
  const pairs = Object.entries(tiny).flatMap(([k, v]) => ["--option", `${k}=${v}`])
  const [train, viaJson, baselineRun] = await Promise.all([
    autoloss("train-loss", "--task", "seg", "--metric", "gacc", "--loss", CE, ...pairs, "--json"),
    autoloss("train-loss", "--task", "seg", "--metric", "gacc", "--loss", CE, "--options", JSON.stringify(tiny), "--json"),
    autoloss("baseline", "--task", "pose", ...pairs)
  ])
  t.equal(train.exitCode, 0, train.stderr)
  const r = JSON.parse(train.stdout) as { metrics: Record<string, number>; target: number; invalid: boolean; iterations: number }
  t.same(Object.keys(r).sort(), ["elapsedMs", "invalid", "iterations", "metrics", "resumedFrom", "target"])
  t.equal((r as { resumedFrom?: unknown }).resumedFrom, null, "no fidelity: trained from step 0")
  t.same(Object.keys(r.metrics).sort(), ["bf1", "biou", "fwiou", "gacc", "macc", "miou"])
  t.equal(r.target, r.metrics["gacc"])
  t.equal(r.iterations, 2)
  t.equal(viaJson.exitCode, 0, viaJson.stderr)
  t.same(JSON.parse(viaJson.stdout).metrics, r.metrics, "same options, same seed: the same training")
  t.equal(baselineRun.exitCode, 0, baselineRun.stderr)
  t.match(baselineRun.stdout, /target \d\.\d{4} after 2 iterations\n {2}map {4}\d\.\d{4}\n/)
})

t.test("eval-loss --branch checks one branch of a multi-branch task from its expression alone", async (t) => {
  const r = await autoloss("eval-loss", "--task", "det", "--branch", "rcnn_cls", "--loss", CE, "--json")
  t.equal(r.exitCode, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { passed: boolean; branches: Record<string, { passed: boolean; score: number }> }
  t.same(Object.keys(out.branches), ["rcnn_cls"], "only the requested branch was checked")
  t.equal(out.branches["rcnn_cls"]!.passed, true, "cross-entropy passes R-CNN classification (others at ground truth)")
  const wrongKind = await autoloss("eval-loss", "--task", "det", "--branch", "rcnn_reg", "--loss", CE, "--json")
  t.equal(wrongKind.exitCode, 2)
  t.match(wrongKind.stderr, /the loss has rcnn_reg \(dense\)/, "a dense expression for a box branch is refused, naming it")
  const train = await inProcess(trainLoss, "--task", "seg", "--branch", "loss", "--loss", CE)
  t.equal(train.exitCode, 2)
  t.match(train.stderr, /Unknown option '--branch'/, "train-loss trains every branch")
})
