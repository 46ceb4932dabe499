// `autoloss eval-loss | train-loss | baseline` end to end through the Python task CLI. Each verb that
// reaches Python costs a few seconds (torch import, data generation): keep them few and small.
import t from "tap"
import { execa } from "execa"
import { fileURLToPath } from "node:url"
import * as evalLoss from "../../src/cli/verbs/eval-loss.ts"
import * as trainLoss from "../../src/cli/verbs/train-loss.ts"
import * as baseline from "../../src/cli/verbs/baseline.ts"

const bin = fileURLToPath(new URL("../../bin/autoloss.js", import.meta.url))
const autoloss = (...args: string[]) => execa("node", [bin, ...args], { reject: false })

// Small data and budgets; the rejection protocol itself keeps the paper's constants.
const SMALL_SEG = JSON.stringify({ train_images: 48, eval_images: 8, threads: 1 })
const CE = "neg(mul(y, log(y_hat)))"

/** Run a verb in this process (for the cases that never reach Python), capturing what it writes. */
const inProcess = async (verb: { run: (argv: ReadonlyArray<string>) => Promise<number> }, ...argv: string[]) => {
  const out: string[] = []
  const err: string[] = []
  const write = { out: process.stdout.write, err: process.stderr.write }
  process.stdout.write = ((chunk: string) => out.push(chunk) > 0) as typeof process.stdout.write
  process.stderr.write = ((chunk: string) => err.push(chunk) > 0) as typeof process.stderr.write
  try {
    const exitCode = await verb.run(argv)
    return { exitCode, stdout: out.join(""), stderr: err.join("") }
  } finally {
    process.stdout.write = write.out
    process.stderr.write = write.err
  }
}

t.test("a bad expression exits 1 with the column, before any Python runs", async (t) => {
  const r = await inProcess(evalLoss, "--task", "seg", "--loss", "neg(mul(y, lgo(y_hat)))")
  t.equal(r.exitCode, 1)
  t.match(r.stderr, /autoloss eval-loss: unknown operator 'lgo' at column 12/)
  t.match(r.stderr, /\n  neg\(mul\(y, lgo\(y_hat\)\)\)\n {13}\^/)
  const arity = await inProcess(trainLoss, "--task", "seg", "--loss", "add(y)")
  t.equal(arity.exitCode, 1)
  t.match(arity.stderr, /autoloss train-loss: operator 'add' takes 2 arguments, got 1 at column 1/)
})

t.test("usage errors exit 2", async (t) => {
  const noTask = await inProcess(evalLoss, "--loss", CE)
  t.equal(noTask.exitCode, 2)
  t.match(noTask.stderr, /--task is required\nusage: autoloss eval-loss/)
  const flag = await inProcess(trainLoss, "--task", "seg", "--loss", CE, "--budget", "3")
  t.equal(flag.exitCode, 2)
  t.match(flag.stderr, /Unknown option '--budget'/)
  const seed = await inProcess(evalLoss, "--task", "seg", "--loss", CE, "--seed", "1.5")
  t.equal(seed.exitCode, 2)
  t.match(seed.stderr, /--seed must be a non-negative integer/)
  const baselineWithLoss = await inProcess(baseline, "--task", "seg", "--loss", CE)
  t.equal(baselineWithLoss.exitCode, 2)
  t.match(baselineWithLoss.stderr, /baseline takes no --loss/)
})

t.test("an unknown task: a clear error from Python and a non-zero exit", async (t) => {
  const r = await autoloss("eval-loss", "--task", "segm", "--loss", CE, "--json")
  t.equal(r.exitCode, 2)
  t.match(r.stderr, /autoloss eval-loss: unknown task 'segm' \(known: det, ins, mmpose, mmseg, pose, seg\)/)
  t.equal(r.stdout, "") // unknown metrics and options: python_workers/tests/test_tasks_seg.py
})

t.test("eval-loss --json: cross-entropy passes the protocol at the paper's constants", async (t) => {
  const ce = await autoloss("eval-loss", "--task", "seg", "--metric", "miou", "--loss", CE, "--options", SMALL_SEG, "--json")
  t.equal(ce.exitCode, 0, ce.stderr)
  const r = JSON.parse(ce.stdout) as Record<string, unknown>
  t.same(Object.keys(r).sort(), ["branches", "elapsedMs", "fingerprint", "gradNorms", "invalid", "iterations", "passed", "score"])
  t.equal(r["passed"], true)
  t.equal(r["invalid"], false)
  t.equal(r["iterations"], 500)
  t.ok((r["score"] as number) >= 0.6)
  t.equal((r["gradNorms"] as number[]).length, 5) // rejected losses: python_workers/tests/test_rejection.py
})

t.test("train-loss and baseline --json print metrics", async (t) => {
  const options = JSON.stringify({ train_images: 16, eval_images: 4, threads: 1, iterations: 2, batch_size: 8 })
  const [train, baseline] = await Promise.all([
    autoloss("train-loss", "--task", "seg", "--metric", "gacc", "--loss", CE, "--options", options, "--json"),
    autoloss("baseline", "--task", "pose", "--options", options)
  ])
  t.equal(train.exitCode, 0, train.stderr)
  const r = JSON.parse(train.stdout) as { metrics: Record<string, number>; target: number; invalid: boolean; iterations: number }
  t.same(Object.keys(r).sort(), ["elapsedMs", "invalid", "iterations", "metrics", "target"])
  t.same(Object.keys(r.metrics).sort(), ["bf1", "biou", "fwiou", "gacc", "macc", "miou"])
  t.equal(r.target, r.metrics["gacc"])
  t.equal(r.iterations, 2)
  t.equal(baseline.exitCode, 0, baseline.stderr)
  t.match(baseline.stdout, /target \d\.\d{4} after 2 iterations\n {2}map {4}\d\.\d{4}\n/)
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
  const train = await autoloss("train-loss", "--task", "seg", "--branch", "loss", "--loss", CE)
  t.equal(train.exitCode, 2)
  t.match(train.stderr, /--branch is for eval-loss/)
})
