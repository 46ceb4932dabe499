/**
 * A calibration panel: the losses a fidelity measurement trains, as a JSON file
 *
 *   { "task": "pose", "losses": [ { "name": "baseline", "origin": "baseline", "loss": "<expr>" }, ... ],
 *     "options": { "config": "../my_config.py" },   (optional: the task options the panel is for)
 *     ...anything else (how the random losses were drawn) is kept but not read }
 *
 * `origin` is one of baseline, paper, variation, random, other. `options` are the task options
 * the panel's losses were drawn for (a det panel for another MMDetection config names it: its
 * branches are that config's slots); a relative `config` is relative to the panel file, as an
 * MMLab `_base_` is to its config. The command line's options go over them. The shipped panels are
 * `src/fidelity/panels/<task>.json` (CLI task names: seg, pose = native pose, det, ins, mmpose,
 * mmseg), and `det-fcos.json` for the shipped FCOS config.
 */
import { existsSync, readFileSync } from "node:fs"
import { dirname, isAbsolute, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { hashLoss } from "../graph/canonical.ts"
import { GraphSyntaxError, parseLoss } from "../graph/syntax.ts"
import type { LossGraph } from "../graph/types.ts"
import { GraphValidationError, validateLoss } from "../graph/validate.ts"

export const ORIGINS = ["baseline", "paper", "variation", "random", "other"] as const
export type Origin = (typeof ORIGINS)[number]

export interface PanelLoss {
  readonly name: string
  readonly origin: Origin
  readonly text: string
  readonly graph: LossGraph
  readonly hash: string
}

export interface Panel {
  readonly task: string
  readonly path: string
  readonly losses: ReadonlyArray<PanelLoss>
  /** the task options the panel is for (`config` resolved against the panel's directory) */
  readonly options: Readonly<Record<string, unknown>>
}

export class PanelError extends Error {}

export const PANELS_DIR = join(dirname(fileURLToPath(import.meta.url)), "panels")

export const defaultPanelPath = (task: string): string => join(PANELS_DIR, `${task}.json`)

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

/** Reads and checks a panel: every loss parses and validates, names and losses are unique. */
export const loadPanel = (path: string, task: string): Panel => {
  if (!existsSync(path)) throw new PanelError(`no panel file ${path}`)
  let doc: unknown
  try {
    doc = JSON.parse(readFileSync(path, "utf8"))
  } catch (e) {
    throw new PanelError(`${path} is not JSON: ${(e as Error).message}`)
  }
  if (!isRecord(doc) || !Array.isArray(doc["losses"])) throw new PanelError(`${path}: want an object with a 'losses' array`)
  if (doc["task"] !== undefined && doc["task"] !== task) {
    throw new PanelError(`${path} is a panel for task '${String(doc["task"])}', not '${task}'`)
  }
  const names = new Set<string>(), hashes = new Map<string, string>()
  const losses = doc["losses"].map((entry: unknown, i): PanelLoss => {
    const where = `${path}: losses[${i}]`
    if (!isRecord(entry)) throw new PanelError(`${where} is not an object`)
    const { name, origin, loss } = entry
    if (typeof name !== "string" || name === "") throw new PanelError(`${where}: 'name' must be a non-empty string`)
    if (typeof loss !== "string") throw new PanelError(`${where} (${name}): 'loss' must be an expression string`)
    if (!ORIGINS.includes(origin as Origin)) throw new PanelError(`${where} (${name}): 'origin' must be one of ${ORIGINS.join(", ")}, got ${JSON.stringify(origin)}`)
    if (names.has(name)) throw new PanelError(`${where}: name '${name}' is used twice`)
    names.add(name)
    let graph: LossGraph
    try {
      graph = parseLoss(loss)
      validateLoss(graph)
    } catch (e) {
      if (e instanceof GraphSyntaxError || e instanceof GraphValidationError) throw new PanelError(`${where} (${name}): ${e.message}`)
      throw e
    }
    const hash = hashLoss(graph)
    const twin = hashes.get(hash)
    if (twin !== undefined) throw new PanelError(`${where} (${name}) is the same loss as '${twin}'`)
    hashes.set(hash, name)
    return { name, origin: origin as Origin, text: loss, graph, hash }
  })
  if (losses.length < 2) throw new PanelError(`${path}: a panel needs at least 2 losses to rank, has ${losses.length}`)
  return { task, path, losses, options: panelOptions(path, doc["options"]) }
}

const panelOptions = (path: string, options: unknown): Record<string, unknown> => {
  if (options === undefined) return {}
  if (!isRecord(options)) throw new PanelError(`${path}: 'options' must be an object of task options`)
  if ("iterations" in options) throw new PanelError(`${path}: 'options' may not set iterations (the fidelity run sets them per budget)`)
  const config = options["config"]
  if (config === undefined) return { ...options }
  if (typeof config !== "string" || config === "") throw new PanelError(`${path}: options.config must be a config file path`)
  return { ...options, config: isAbsolute(config) ? config : resolve(dirname(path), config) }
}

/**
 * Why the panel's losses cannot be trained on a task whose branches are `branches` (task-info's,
 * in order), or null: every loss must carry exactly those branches with those kinds. The message
 * names the first loss that does not and both branch lists, and says how to name the config.
 */
export const branchMismatch = (
  panel: Panel, branches: ReadonlyArray<{ readonly name: string; readonly kind: string }>
): string | null => {
  const want = branches.map((b) => `${b.name} (${b.kind})`).join(", ")
  const listed = (l: PanelLoss): string => l.graph.branches.map((b) => `${b.name} (${b.kind.name})`).join(", ")
  const wrong = panel.losses.find((l) => listed(l) !== want)
  if (wrong === undefined) return null
  return `panel ${panel.path}: loss '${wrong.name}' has branches ${listed(wrong)}, but task '${panel.task}' with these options takes ` +
    `${want}. A panel drawn for another config needs that config (--option config=FILE, or "options" in the panel file).`
}
