// `autoloss compare` end to end: real workers, tiny seg trainings (2 steps on 16 images).
import t from "tap"
import { execa } from "execa"
import { fileURLToPath } from "node:url"

const bin = fileURLToPath(new URL("../../bin/autoloss.js", import.meta.url))
const autoloss = (...args: string[]) => execa("node", [bin, "compare", ...args], { reject: false })
const TINY = ["--option", "train_images=16", "--option", "eval_images=4", "--option", "threads=1", "--option", "iterations=2", "--option", "batch_size=8"]
const CE = "neg(mul(y, log(y_hat)))"

t.test("usage errors exit 2 and name the problem", async (t) => {
  const noLoss = await autoloss("--task", "seg")
  t.equal(noLoss.exitCode, 2)
  t.match(noLoss.stderr, /--loss is required/)
  const syntax = await autoloss("--task", "seg", "--loss", CE, "--against", "neg(mul(y, log(y_hat))")
  t.equal(syntax.exitCode, 2)
  t.match(syntax.stderr, /--against: .*column 23/)
  const seeds = await autoloss("--task", "seg", "--loss", CE, "--seeds", "1,x")
  t.equal(seeds.exitCode, 2)
  t.match(seeds.stderr, /--seeds wants comma-separated non-negative integers, got '1,x'/)
})

t.test("the task's baseline against itself ties on every seed; --json pairs runs by seed", async (t) => {
  const r = await autoloss("--task", "seg", "--loss", CE, "--seeds", "3,5", ...TINY, "--workers", "2", "--json")
  t.equal(r.exitCode, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  t.equal(out.metric, "miou", "the task's default metric")
  t.same(out.seeds, [3, 5])
  t.same(out.runs.loss.map((x: { seed: number }) => x.seed), [3, 5])
  t.same(out.runs.reference.map((x: { seed: number }) => x.seed), [3, 5])
  // seg's baseline is this very cross-entropy, and a seed fixes initialisation and data order
  t.same(out.runs.loss.map((x: { metrics: unknown }) => x.metrics), out.runs.reference.map((x: { metrics: unknown }) => x.metrics))
  t.same([out.wins, out.ties, out.losses], [0, 2, 0])
  t.same(out.pairedTest, { t: 0, critical: 6.314 }, "no difference: t = 0 against 1 df's 6.314")
  t.equal(out.against.text, "baseline")
  t.match(r.stderr, /seed 3 loss: miou \d\.\d{4}/)
})

t.test("an option the task does not know is refused (exit 2); a training job that fails exits 1 with the worker's reason", async (t) => {
  const [refused, failed] = await Promise.all([
    autoloss("--task", "seg", "--loss", CE, "--seeds", "1", "--options", JSON.stringify({ iterations: 2, no_such_option: 1 }), "--workers", "1"),
    autoloss("--task", "seg", "--loss", CE, "--seeds", "1", "--option", "iterations=1", "--option", "train_images=8", "--option", "device=cuda:99", "--workers", "1")
  ])
  t.equal(refused.exitCode, 2)
  t.match(refused.stderr, /autoloss compare: .*no_such_option/)
  t.equal(failed.exitCode, 1, failed.stderr)
  t.match(failed.stderr, /autoloss compare: \S.* \(\w+ in the (baseline|train-loss) job\)/)
})
