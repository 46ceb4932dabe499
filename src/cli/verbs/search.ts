/**
 * `autoloss search --task T --out DIR`: searches a loss for the task (aging evolution + rejection +
 * equivalence) on local and/or remote workers, writing the run directory as it goes. At the end the
 * top K losses and the task's baseline are trained from held-out seeds and the best held-out mean is
 * the run's answer (`src/search/selection.ts`; `--select-top 0` skips it).
 */
import { runReported } from "../pool-job.ts"
import { checkRunConfig, DEFAULT_RUN, type RunConfig, type SchedulerName } from "../../search/run-config.ts"
import { searchProgram, writeRunFile } from "../../search/search-run.ts"
import { DEFAULT_SCREEN_BATCH } from "../../search/pool-evaluator.ts"
import type { EquivalenceMode } from "../../search/equivalence.ts"
import { UsageError } from "../args.ts"
import { CONNECT_FLAG, OPTION_FLAGS, parseConnect, parseFidelityFlag, parseJobOptions, parseSeedsFlag, parseWorkerDevices, WORKER_FLAGS } from "../job-flags.ts"
import { confirmSeedsOf, DEFAULT_SELECTION } from "../../search/selection.ts"
import { makeSink } from "../progress.ts"
import { printSummary } from "../summary.ts"
import { TASKS_HELP } from "../task-job.ts"
import { defineVerb } from "../verb.ts"

const intFlag = (name: string, v: string | undefined, fallback: number): number => {
  if (v === undefined) return fallback
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name} wants a non-negative integer, got '${v}'`)
  return Number(v)
}

export const { spec, summary, run } = defineVerb({
  name: "search",
  summary: "search a loss function for a task (aging evolution + rejection + equivalence)",
  flags: {
    task: { type: "string", required: true, value: "T", help: TASKS_HELP },
    out: { type: "string", required: true, value: "DIR", help: "the run directory (run.json, search.db; resume it with `autoloss resume DIR`)" },
    metric: { type: "string", value: "M", help: "the metric the search maximises", defaultText: "the task's" },
    budget: { type: "string", value: "N", help: "losses to proxy-train (with asha: full-proxy equivalents)", defaultText: String(DEFAULT_RUN.budget) },
    fidelity: {
      type: "string",
      value: "full|asha[:eta=E,min=F]",
      help: "full: every admitted loss gets the full proxy; asha: successive halving over proxy iterations (rungs min·eta^r below 1, then the full proxy; min = 1/M; asha alone = eta=3,min=1/9)",
      defaultText: "full"
    },
    population: { type: "string", value: "K", help: "initial population (losses that passed rejection)", defaultText: String(DEFAULT_RUN.initialPopulation) },
    tournament: { type: "string", value: "PCT", help: "tournament size, percent of the population", defaultText: String(DEFAULT_RUN.tournamentPercent) },
    "max-population": { type: "string", value: "P", help: "population cap (aging evolution drops the oldest)", defaultText: String(DEFAULT_RUN.populationSize) },
    seed: { type: "string", value: "S", help: "random seed of the search", defaultText: String(DEFAULT_RUN.seed) },
    ...WORKER_FLAGS,
    ...CONNECT_FLAG,
    scheduler: { type: "string", value: "aging|random|naive", help: "how candidates are chosen", defaultText: DEFAULT_RUN.scheduler },
    equivalence: { type: "string", value: "directional|paper", help: "the gradient-equivalence test", defaultText: DEFAULT_RUN.equivalence },
    "screen-window": { type: "string", value: "N", help: "candidates screened ahead of training", defaultText: `max(${DEFAULT_RUN.screenWindow}, 2 × workers)` },
    "screen-batch": { type: "string", value: "N", help: "candidates per screening job (1: one job each)", defaultText: String(DEFAULT_SCREEN_BATCH) },
    "train-concurrency": { type: "string", value: "N", help: "proxy trainings at once (the search's decisions depend on it, not on the workers)", defaultText: String(DEFAULT_RUN.trainConcurrency) },
    "max-candidates": { type: "string", value: "N", help: "stop after this many candidates were generated", defaultText: "no limit" },
    ...OPTION_FLAGS,
    "select-top": { type: "string", value: "K", help: "finalists trained again from the held-out seeds (0: the proxy best is the answer)", defaultText: String(DEFAULT_SELECTION.top) },
    "holdout-seeds": { type: "string", value: "S,S,...", help: "the held-out seeds (new ones: not the search's)", defaultText: DEFAULT_SELECTION.seeds.join(",") },
    "select-iterations": { type: "string", value: "N", help: "training iterations of each held-out run", defaultText: "the task's (or the run's) full proxy" },
    "confirm-seeds": { type: "string", value: "S,S,...|none", help: "seeds the chosen loss and the baseline are trained from once more, after the choice: its unbiased check", defaultText: confirmSeedsOf(DEFAULT_SELECTION).join(",") },
    json: { type: "boolean", default: false, help: "print the end-of-run summary as JSON (also when stdout is not a terminal)" }
  },
  description: `
The paper's full search is --budget 500 --population 20. Progress goes to stderr (JSON lines when not
a terminal). At the end the top K losses and the task's baseline are trained from the held-out seeds
and the best held-out mean is the run's answer; then the answer and the baseline are trained from the
confirmation seeds, which took no part in the choice: the verdict (does it beat the baseline?) is read
there. The summary is readable on a terminal, JSON with --json or when stdout is not a terminal.
Exit: 0 done, 1 failed (message printed), 2 usage error; 130/143 after SIGINT/SIGTERM (resume it).`,
  examples: [
    "autoloss search --task seg --budget 60 --population 12 --workers 2 --out runs/seg-1",
    "autoloss search --task det --devices cuda:0,cuda:1 --option branches=rpn_cls,rcnn_cls --out runs/det-1",
    "autoloss search --task seg --option iterations=300 --option rejection.samples=5 --out runs/seg-2",
    "autoloss search --task seg --budget 60 --fidelity asha:eta=3,min=1/9 --out runs/seg-asha"
  ]
}, async ({ values }, io) => {
  const out = values.out
  const endpoint = parseConnect(values.connect)
  const devices = parseWorkerDevices(values, 2, endpoint !== undefined)
  const config: RunConfig = {
    ...DEFAULT_RUN,
    task: values.task,
    metric: values.metric ?? null,
    seed: intFlag("seed", values.seed, DEFAULT_RUN.seed),
    budget: intFlag("budget", values.budget, DEFAULT_RUN.budget),
    initialPopulation: intFlag("population", values.population, DEFAULT_RUN.initialPopulation),
    populationSize: intFlag("max-population", values["max-population"], DEFAULT_RUN.populationSize),
    tournamentPercent: values.tournament === undefined ? DEFAULT_RUN.tournamentPercent : Number(values.tournament),
    scheduler: (values.scheduler ?? DEFAULT_RUN.scheduler) as SchedulerName,
    equivalence: (values.equivalence ?? DEFAULT_RUN.equivalence) as EquivalenceMode,
    screenWindow: intFlag("screen-window", values["screen-window"], Math.max(DEFAULT_RUN.screenWindow, 2 * devices.length)),
    trainConcurrency: intFlag("train-concurrency", values["train-concurrency"], DEFAULT_RUN.trainConcurrency),
    ...(values["screen-batch"] === undefined ? {} : { screenBatch: intFlag("screen-batch", values["screen-batch"], DEFAULT_SCREEN_BATCH) }),
    maxCandidates: values["max-candidates"] === undefined ? null : intFlag("max-candidates", values["max-candidates"], 0),
    options: parseJobOptions(values),
    ...parseFidelityFlag(values.fidelity),
    selection: {
      top: intFlag("select-top", values["select-top"], DEFAULT_SELECTION.top),
      seeds: values["holdout-seeds"] === undefined ? DEFAULT_SELECTION.seeds : parseSeedsFlag("--holdout-seeds", values["holdout-seeds"]),
      iterations: values["select-iterations"] === undefined ? DEFAULT_SELECTION.iterations : intFlag("select-iterations", values["select-iterations"], 0),
      confirmSeeds: values["confirm-seeds"] === undefined
        ? confirmSeedsOf(DEFAULT_SELECTION)
        : values["confirm-seeds"] === "none" ? [] : parseSeedsFlag("--confirm-seeds", values["confirm-seeds"])
    }
  }
  const problems = checkRunConfig(config)
  if (problems.length > 0) throw new UsageError(problems.join("; "))
  try {
    writeRunFile(out, config)
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
  process.stderr.write(`autoloss search: run directory ${out} (resume with 'autoloss resume ${out}')\n`)
  const code = await runReported("search", searchProgram(out, config, { devices, endpoint }, makeSink(process.stderr)), io)
  if (code === 0) await printSummary(out, { json: values.json })
  return code
})
