/**
 * `autoloss slots --config FILE [--branches NAME,...] [--json]`: the loss slots of an unchanged
 * MMDetection / MMSegmentation / MMPose config (every `loss`, `loss_*`, `*_loss` entry under `model`,
 * in lists too), each with its key path, branch name, kind, loss type and whether autoloss can
 * search it (and why not). Discovery runs in a local worker as the `slots` job
 * (`autoloss_worker.mmlab.slots`). Exit: 0 at least one slot is searchable (with `--branches`: each
 * named one is), 1 nothing to search or the config cannot be read (one paragraph on stderr), 2 usage.
 */
import { resolve } from "node:path"
import { Effect } from "effect"
import { JobError } from "../../workers/PoolError.ts"
import { runMain } from "../../workers/runMain.ts"
import { layer, WorkerPool } from "../../workers/WorkerPool.ts"
import { parseFlags, UsageError, withUsage } from "../args.ts"

export const summary = "list the loss slots of an MMLab config and which ones autoloss can search"

const USAGE = [
  "usage: autoloss slots --config FILE [--branches NAME,...] [--json]",
  "",
  "  --config FILE      an MMDetection 3 / MMSegmentation 1 / MMPose 1 config, unchanged",
  "  --branches A,B     check that these slots (branch names or key paths) can be searched",
  "  --json             print {config, library, slots: [...], selected, problem} as JSON",
  "",
  "Each slot: its key path under `model` (e.g. roi_head.bbox_head.0.loss_cls), the branch name a",
  "search gives it (e.g. rcnn0_cls), its kind (cls_softmax, cls_sigmoid, cls_quality, box, score_bce,",
  "mask, segmentation, heatmap, ...), the config's loss type, and yes/no with the reason: how the",
  "loss graph's inputs are made there, or why they cannot be. Searching a config (`--option",
  "branches=...`) replaces only the named slots; the others keep the config's own losses."
].join("\n")

interface SlotRow {
  readonly key: string
  readonly name: string
  readonly kind: string
  readonly loss_type: string
  readonly head_type: string
  readonly searchable: boolean
  readonly reason: string
}

interface Parsed {
  readonly config: string
  readonly branches: ReadonlyArray<string> | undefined
  readonly json: boolean
}

const parse = (argv: ReadonlyArray<string>): Parsed => {
  const { values } = parseFlags({
    args: [...argv],
    strict: true,
    options: { config: { type: "string" }, branches: { type: "string" }, json: { type: "boolean", default: false } }
  })
  if (values.config === undefined) throw new UsageError("--config is required")
  const branches = values.branches?.split(",").map((b) => b.trim()).filter((b) => b !== "")
  if (branches !== undefined && branches.length === 0) throw new UsageError("--branches wants comma-separated slot names")
  return { config: resolve(values.config), branches, json: values.json }
}

/** The table: one line per slot, the reason under a searchable no. */
export const formatSlots = (config: string, library: string, slots: ReadonlyArray<SlotRow>): string => {
  const width = (f: (s: SlotRow) => string, min: number) => Math.max(min, ...slots.map((s) => f(s).length))
  const [wk, wn, wt, wl] = [width((s) => s.key, 3), width((s) => s.name, 6), width((s) => s.kind, 4), width((s) => s.loss_type, 4)]
  const row = (k: string, n: string, t: string, l: string, s: string) => `${k.padEnd(wk)}  ${n.padEnd(wn)}  ${t.padEnd(wt)}  ${l.padEnd(wl)}  ${s}`
  const lines = [`${config} (${library}): ${slots.length} loss slot(s), ${slots.filter((s) => s.searchable).length} searchable`, "",
    row("key", "branch", "kind", "loss", "searchable")]
  for (const s of slots) {
    lines.push(row(s.key, s.name, s.kind, s.loss_type, s.searchable ? "yes" : "no"))
    if (!s.searchable) lines.push(`${" ".repeat(wk + 2)}why not: ${s.reason}`)
  }
  return lines.join("\n")
}

/** What the worker said, without the pool's attempt bookkeeping: a SlotError is a paragraph for the user. */
const reasonOf = (e: unknown): string => {
  if (e instanceof JobError && e.reason === "job-raised") return e.attempts.at(-1)?.message ?? e.message
  return (e as Error).message
}

const program = (p: Parsed) => Effect.gen(function* () {
  const pool = yield* WorkerPool
  const payload = p.branches === undefined ? { config: p.config } : { config: p.config, branches: [...p.branches] }
  const out = yield* pool.submit("slots", payload, { maxAttempts: 1 })
  const slots = out["slots"] as ReadonlyArray<SlotRow>
  if (p.json) process.stdout.write(JSON.stringify(out, null, 2) + "\n")
  else process.stdout.write(formatSlots(p.config, String(out["library"]), slots) + "\n")
  return out["problem"] === null || out["problem"] === undefined ? null : String(out["problem"])
}).pipe(Effect.provide(layer({ local: { devices: ["cpu"] } })))

export const run = (argv: ReadonlyArray<string>): Promise<number> => withUsage("slots", USAGE, async () => {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(USAGE + "\n")
    return 0
  }
  const parsed = parse(argv)
  let failed = false
  const code = await runMain(program(parsed).pipe(
    Effect.tap((problem) => Effect.sync(() => {
      if (problem !== null) {
        failed = true
        process.stderr.write(`autoloss slots: ${problem}\n`)
      }
    })),
    Effect.catchAll((e) => Effect.sync(() => {
      failed = true
      process.stderr.write(`autoloss slots: ${reasonOf(e)}\n`)
    }))
  ))
  return failed ? 1 : code
})
