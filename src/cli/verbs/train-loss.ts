/**
 * `autoloss train-loss --task seg --metric miou --loss "<expr>" [--seed S] [--options JSON] [--json]`:
 * proxy-train a fresh network with the loss and evaluate every metric of the task. With --json prints
 * `{"metrics":{...},"target","invalid","iterations","elapsedMs"}`; training stops at the first
 * non-finite loss (`invalid`, metrics 0). Budgets and data sizes: --options '{"iterations": 100}'.
 */
import { runTaskJob } from "./eval-loss.ts"

export const summary = "proxy-train a network with one loss on a task and print its metrics"

export const run = (argv: ReadonlyArray<string>): Promise<number> => runTaskJob("train-loss", argv)
