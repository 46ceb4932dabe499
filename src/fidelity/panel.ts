/**
 * A calibration panel: the losses a fidelity measurement trains, as a JSON file
 *
 *   { "task": "pose", "losses": [ { "name": "baseline", "origin": "baseline", "loss": "<expr>" }, ... ],
 *     ...anything else (how the random losses were drawn) is kept but not read }
 *
 * `origin` is one of baseline, paper, variation, random, other. The shipped panels are
 * `src/fidelity/panels/<task>.json` (CLI task names: seg, pose = native pose, det, ins, mmpose, mmseg).
 */
import { existsSync, readFileSync } from "node:fs"
import { dirname, join } from "node:path"
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
  return { task, path, losses }
}
