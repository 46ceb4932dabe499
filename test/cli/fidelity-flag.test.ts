// `--fidelity full|asha[:eta=E,min=F]`: parsing (pure), what run.json stores, the progress line.
import t from "tap"
import { UsageError } from "../../src/cli/args.ts"
import { parseFidelityFlag } from "../../src/cli/job-flags.ts"
import { describe, workUnits } from "../../src/cli/progress.ts"
import { parseFidelity, showFidelity } from "../../src/search/fidelity.ts"
import { checkRunConfig, DEFAULT_RUN } from "../../src/search/run-config.ts"

t.test("full, asha with the defaults, and explicit eta and min", async (t) => {
  t.same(parseFidelity("full"), { kind: "full" })
  t.same(parseFidelity("asha"), { kind: "asha", eta: 3, minFraction: 1 / 9 })
  t.same(parseFidelity("asha:eta=2,min=1/8"), { kind: "asha", eta: 2, minFraction: 0.125 })
  t.same(parseFidelity("asha:min=0.25,eta=2"), { kind: "asha", eta: 2, minFraction: 0.25 })
  t.equal(showFidelity(parseFidelity("asha:eta=3,min=1/27")), "asha:eta=3,min=1/27")
  t.equal(showFidelity(parseFidelity("full")), "full")
})

t.test("bad fidelity text: a usage error naming the problem", async (t) => {
  const usage = (text: string, pattern: RegExp) => t.throws(() => parseFidelityFlag(text), { constructor: UsageError, message: pattern }, text)
  usage("half", /--fidelity wants full or asha\[:eta=E,min=F\], got 'half'/)
  usage("asha:eta=1", /--fidelity asha: eta must be an integer ≥ 2, got 1/)
  usage("asha:eta=x", /eta wants an integer ≥ 2, got 'x'/)
  usage("asha:min=0.3", /min must be 1\/M for an integer M ≥ 2 \(1\/3, 1\/9, 0\.25, \.\.\.\), got 0.3/)
  usage("asha:min=1/1", /min must be in \(0, 1\), got 1/)
  usage("asha:min=a", /min wants a fraction such as 1\/9, got 'a'/)
  usage("asha:rungs=3", /unknown key 'rungs' \(keys: eta, min\)/)
  usage("asha:eta", /'eta' is not KEY=VALUE/)
})

t.test("a min that is no power of 1/eta is read as Ray Tune's rungs, and shown as given", async (t) => {
  t.same(parseFidelity("asha:eta=4,min=1/3"), { kind: "asha", eta: 4, minFraction: 1 / 3 })
  t.equal(showFidelity(parseFidelity("asha:eta=4,min=1/3")), "asha:eta=4,min=1/3")
  t.same(parseFidelity("asha:eta=4"), { kind: "asha", eta: 4, minFraction: 1 / 9 }, "eta=4 with the default min: rungs 1/9, 4/9, 1")
})

t.test("run.json: no field for full (as before the option), the fidelity for asha, validated", async (t) => {
  t.same(parseFidelityFlag(undefined), {})
  t.same(parseFidelityFlag("full"), {})
  t.same(parseFidelityFlag("asha"), { fidelity: { kind: "asha", eta: 3, minFraction: 1 / 9 } })
  const run = { ...DEFAULT_RUN, task: "seg" }
  t.same(checkRunConfig({ ...run, ...parseFidelityFlag("asha") }), [])
  t.same(checkRunConfig({ ...run, fidelity: { kind: "asha", eta: 3, minFraction: 0.3 } }), [
    "fidelity asha: min must be 1/M for an integer M ≥ 2 (1/3, 1/9, 0.25, ...), got 0.3"
  ])
})

t.test("progress: trainings per rung and the cost in full-proxy equivalents with asha", async (t) => {
  const base = { elapsedS: 60, budget: 10, best: null, selection: null, done: false }
  const full = describe({ ...base, counters: { proposed: 60, trained: 4 } })
  t.match(full, /\| trained 4\/10 \|/)
  const asha = { proposed: 60, trained: 20, trainedRung0: 20, trainedRung1: 5, trainedRung2: 1, promoted: 6, spentUnits: 36, unitsPerFull: 9 }
  const line = describe({ ...base, counters: asha })
  t.match(line, /\| rungs 20\/5\/1 \(promoted 6\) \| cost 4\.0\/10 \|/)
  t.notMatch(line, /trained 20/)
  t.same(workUnits({ counters: asha, budget: 10, selection: null }), { done: 4, total: 10 })
})
