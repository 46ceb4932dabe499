/**
 * `autoloss slots --config FILE`: the loss slots of an unchanged
 * MMDetection / MMSegmentation / MMPose config (every `loss`, `loss_*`, `*_loss` entry under `model`,
 * in lists too), each with its key path, branch name, kind, loss type and whether autoloss can
 * search it (and why not). Discovery runs in a local worker as the `slots` job
 * (`autoloss_worker.mmlab.slots`). Exit: 0 at least one slot is searchable (with `--branches`: each
 * named one is), 1 nothing to search or the config cannot be read (one paragraph on stderr), 2 usage.
 */
import { resolve } from "node:path"
import { Effect } from "effect"
import type { WorkerPoolService } from "../../workers/WorkerPool.ts"
import { UsageError } from "../args.ts"
import { runWithPool } from "../pool-job.ts"
import { defineVerb, type VerbOutput } from "../verb.ts"

interface SlotRow {
  readonly key: string
  readonly name: string
  readonly kind: string
  readonly loss_type: string
  readonly head_type: string
  readonly searchable: boolean
  readonly reason: string
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

const program = (config: string, branches: ReadonlyArray<string> | undefined, json: boolean, io: VerbOutput, failed: () => void) =>
  (pool: WorkerPoolService) => Effect.gen(function* () {
    const payload = branches === undefined ? { config } : { config, branches: [...branches] }
    const out = yield* pool.submit("slots", payload, { maxAttempts: 1 })
    const slots = out["slots"] as ReadonlyArray<SlotRow>
    io.stdout(json ? JSON.stringify(out, null, 2) + "\n" : formatSlots(config, String(out["library"]), slots) + "\n")
    if (out["problem"] !== null && out["problem"] !== undefined) {
      failed()
      io.stderr(`autoloss slots: ${String(out["problem"])}\n`)
    }
  })

export const { spec, summary, run } = defineVerb({
  name: "slots",
  summary: "list the loss slots of an MMLab config and which ones autoloss can search",
  flags: {
    config: { type: "string", required: true, value: "FILE", help: "an MMDetection 3 / MMSegmentation 1 / MMPose 1 config, unchanged" },
    branches: { type: "string", value: "NAME,...", help: "check that these slots (branch names or key paths) can be searched", defaultText: "every slot" },
    json: { type: "boolean", default: false, help: "print {config, library, slots: [...], selected, problem} as JSON" }
  },
  description: `
Each slot: its key path under \`model\` (e.g. roi_head.bbox_head.0.loss_cls), the branch name a search
gives it (e.g. rcnn0_cls), its kind (cls_softmax, cls_sigmoid, cls_quality, box, score_bce, mask,
segmentation, heatmap, ...), the config's loss type, and yes/no with the reason: how the loss graph's
inputs are made there, or why they cannot be. Searching a config (--option branches=...) replaces only
the named slots; the others keep the config's own losses. The det task searches a Cascade R-CNN's
stage slots (rcnn0_cls, rcnn1_cls, ... / rcnn0_reg, ...) as its branches rcnn_cls / rcnn_reg, one
loss shared by every stage; the mmseg task searches every searchable segmentation slot as its own
branch (loss, aux, loss0, loss1, ...), the mmpose task every heatmap slot of a top-down head (loss, or
loss_0, loss_1, ... of a CPM / MSPN list of losses; docs/mmlab.md). Discovery runs in a local worker (the
\`slots\` job, autoloss_worker.mmlab.slots).
Exit: 0 at least one slot is searchable (with --branches: each named one is), 1 nothing to search or
the config cannot be read (one paragraph on stderr), 2 usage error.`,
  examples: ["autoloss slots --config my_faster_rcnn.py", "autoloss slots --config my_faster_rcnn.py --branches rcnn_cls,rcnn_reg --json"]
}, async ({ values }, io) => {
  const branches = values.branches?.split(",").map((b) => b.trim()).filter((b) => b !== "")
  if (branches !== undefined && branches.length === 0) throw new UsageError("--branches wants comma-separated slot names")
  let nothingToSearch = false
  const code = await runWithPool("slots", ["cpu"], program(resolve(values.config), branches, values.json, io, () => { nothingToSearch = true }), io)
  return code === 0 && nothingToSearch ? 1 : code
})
