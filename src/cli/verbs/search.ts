/**
 * `autoloss search --task T [--metric M] [--budget N] [--population K] [--tournament PCT]
 *   [--max-population P] [--seed S] [--workers N | --devices LIST] [--connect tcp://HOST:PORT]
 *   [--scheduler aging|random|naive] [--equivalence directional|paper] [--screen-window N]
 *   [--train-concurrency N] [--option KEY=VALUE ...] [--select-top K] [--holdout-seeds 101,102,103]
 *   [--select-iterations N] [--json] --out DIR`
 * At the end the top K losses and the task's baseline are trained from the held-out seeds and the
 * best held-out mean is the run's answer (`src/search/selection.ts`; `--select-top 0` skips it).
 * The summary is readable on a terminal, JSON with `--json` or when stdout is not a terminal.
 * Exit: 0 done, 1 failed (message printed), 2 usage error; 130/143 after SIGINT/SIGTERM (resume it).
 */
import { parseArgs } from "node:util"
import { runMain } from "../../workers/runMain.ts"
import { checkRunConfig, DEFAULT_RUN, parseOptionPairs, type RunConfig, type SchedulerName } from "../../search/run-config.ts"
import { DEFAULT_SELECTION, parseSeedList } from "../../search/selection.ts"
import { searchProgram, writeRunFile } from "../../search/search-run.ts"
import type { EquivalenceMode } from "../../search/equivalence.ts"
import { makeSink } from "../progress.ts"
import { printSummary } from "../summary.ts"

export const summary = "search a loss function for a task (aging evolution + rejection + equivalence)"

const USAGE =
  "usage: autoloss search --task T [--metric M] [--budget N] [--population K] [--tournament PCT] [--max-population P]\n" +
  "         [--seed S] [--workers N | --devices cpu,cuda:0,...] [--connect tcp://HOST:PORT] [--scheduler aging|random|naive]\n" +
  "         [--equivalence directional|paper] [--screen-window N] [--train-concurrency N] [--max-candidates N]\n" +
  "         [--option KEY=VALUE ...] [--select-top K] [--holdout-seeds 101,102,103] [--select-iterations N] [--json] --out DIR"

const intFlag = (name: string, v: string | undefined, fallback: number): number => {
  if (v === undefined) return fallback
  if (!/^\d+$/.test(v)) throw new Error(`--${name} wants a non-negative integer, got '${v}'`)
  return Number(v)
}

export const run = async (argv: ReadonlyArray<string>): Promise<number> => {
  let config: RunConfig
  let devices: string[]
  let out: string
  let endpoint: string | undefined
  let json = false
  try {
    const { values } = parseArgs({
      args: [...argv],
      strict: true,
      options: {
        task: { type: "string" }, metric: { type: "string" }, budget: { type: "string" }, population: { type: "string" },
        tournament: { type: "string" }, "max-population": { type: "string" }, seed: { type: "string" },
        workers: { type: "string" }, devices: { type: "string" }, connect: { type: "string" }, scheduler: { type: "string" },
        equivalence: { type: "string" }, "screen-window": { type: "string" }, "train-concurrency": { type: "string" },
        "max-candidates": { type: "string" }, option: { type: "string", multiple: true }, out: { type: "string" },
        "select-top": { type: "string" }, "holdout-seeds": { type: "string" }, "select-iterations": { type: "string" },
        json: { type: "boolean", default: false }
      }
    })
    if (!values.task) throw new Error("--task is required (e.g. seg, pose)")
    if (!values.out) throw new Error("--out DIR is required (the run directory)")
    if (values.workers !== undefined && values.devices !== undefined) throw new Error("give --workers or --devices, not both")
    out = values.out
    json = values.json
    endpoint = values.connect
    if (endpoint !== undefined && !/^tcp:\/\/[^:]+:\d+$/.test(endpoint)) throw new Error(`--connect wants tcp://HOST:PORT, got '${endpoint}'`)
    devices = values.devices !== undefined
      ? values.devices.split(",").map((d) => d.trim())
      : Array.from({ length: intFlag("workers", values.workers, 2) }, () => "cpu")
    const bad = devices.find((d) => !/^(cpu|cuda:\d+)$/.test(d))
    if (bad !== undefined) throw new Error(`--devices wants cpu or cuda:N entries, got '${bad}'`)
    if (devices.length === 0 && endpoint === undefined) throw new Error("no workers: give --workers ≥ 1, --devices, or --connect for remote workers")
    config = {
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
      maxCandidates: values["max-candidates"] === undefined ? null : intFlag("max-candidates", values["max-candidates"], 0),
      options: parseOptionPairs(values.option ?? []),
      selection: {
        top: intFlag("select-top", values["select-top"], DEFAULT_SELECTION.top),
        seeds: values["holdout-seeds"] === undefined ? DEFAULT_SELECTION.seeds : parseSeedList("--holdout-seeds", values["holdout-seeds"]),
        iterations: values["select-iterations"] === undefined ? DEFAULT_SELECTION.iterations : intFlag("select-iterations", values["select-iterations"], 0)
      }
    }
    const problems = checkRunConfig(config)
    if (problems.length > 0) throw new Error(problems.join("; "))
    writeRunFile(out, config)
  } catch (e) {
    process.stderr.write(`autoloss search: ${(e as Error).message}\n${USAGE}\n`)
    return 2
  }
  process.stderr.write(`autoloss search: run directory ${out} (resume with 'autoloss resume ${out}')\n`)
  const code = await runMain(searchProgram(out, config, { devices, endpoint }, makeSink(process.stderr)))
  if (code === 0) await printSummary(out, { json })
  return code
}
