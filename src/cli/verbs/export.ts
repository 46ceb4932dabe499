/**
 * `autoloss export DIR --format torch|mmdet|mmpose|mmseg|csv|jsonl`: writes the run's chosen loss
 * (the held-out choice, else the best proxy score; or `--candidate ID`) as a standalone PyTorch
 * module (`src/graph/torch-export.ts`, needs only torch) or as an MMLab config fragment, written by
 * the worker's `export-mmlab` job (`autoloss_worker.mmlab.export`, the same edits proxy training
 * makes); csv|jsonl write every candidate of the run (`docs/candidates-export.md`).
 */
import { writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { Effect } from "effect"
import { exportTorchModule, TorchExportError } from "../../graph/torch-export.ts"
import { fromWire } from "../../graph/wire.ts"
import { candidateRecords, toCsv, toJsonl } from "../../report/candidates-export.ts"
import { type Answer, answerOf } from "../../report/model.ts"
import { type CandidateRecord, loadRun, type RunData, RunDataError } from "../../report/run-data.ts"
import { UsageError } from "../args.ts"
import { runWithPool } from "../pool-job.ts"
import { defineVerb, type Parsed, type VerbOutput } from "../verb.ts"

export const MMLAB_FORMATS = ["mmdet", "mmpose", "mmseg"] as const
export type MmlabFormat = (typeof MMLAB_FORMATS)[number]
export const DATA_FORMATS = ["csv", "jsonl"] as const
export type DataFormat = (typeof DATA_FORMATS)[number]
export const FORMATS = ["torch", ...MMLAB_FORMATS, ...DATA_FORMATS] as const
export const DEFAULT_EXPORT_FILE = "found_loss.py"
export const defaultMmlabFile = (format: MmlabFormat): string => `found_loss_${format}.py`

/** Whose `tools/train.py` trains the fragment. */
const LIBRARY: Record<MmlabFormat, string> = { mmdet: "MMDetection", mmpose: "MMPose", mmseg: "MMSegmentation" }


const parseWeights = (pairs: ReadonlyArray<string>): Record<string, number> => {
  const weights: Record<string, number> = {}
  for (const pair of pairs) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.+)$/.exec(pair)
    const w = m === null ? NaN : Number(m[2])
    if (m === null || !Number.isFinite(w)) throw new UsageError(`--weight wants BRANCH=NUMBER, got '${pair}'`)
    weights[m[1]!] = w
  }
  return weights
}

type Request =
  | { readonly format: "torch"; readonly className: string; readonly weights: Record<string, number> }
  | { readonly format: MmlabFormat; readonly base: string | undefined }
  | { readonly format: DataFormat }

interface Request0 {
  readonly dir: string
  readonly out: string
  readonly candidateId: number | undefined
  readonly request: Request
}

const parse = ({ values, positionals }: Parsed<typeof flags>): Request0 => {
  const dir = positionals[0]!
  const format = values.format
  let candidateId: number | undefined
  if (values.candidate !== undefined) {
    if (!/^\d+$/.test(values.candidate)) throw new UsageError(`--candidate wants a candidate id, got '${values.candidate}'`)
    candidateId = Number(values.candidate)
  }
  if (format === "torch") {
    if (values.base !== undefined) throw new UsageError("--base applies to the MMLab formats (mmdet, mmpose, mmseg), not torch")
    return {
      dir, candidateId, out: values.out ?? join(dir, DEFAULT_EXPORT_FILE),
      request: { format, className: values["class-name"] ?? "FoundLoss", weights: parseWeights(values.weight ?? []) }
    }
  }
  const data = DATA_FORMATS.find((f) => f === format)
  if (data !== undefined) {
    const other = (["candidate", "class-name", "weight", "base"] as const).find((k) => values[k] !== undefined)
    if (other !== undefined) throw new UsageError(`--${other} does not apply to --format ${data}: it writes every candidate of the run`)
    return { dir, candidateId: undefined, out: values.out ?? join(dir, `candidates.${data}`), request: { format: data } }
  }
  const mmlab = MMLAB_FORMATS.find((f) => f === format)
  if (mmlab === undefined) throw new UsageError(`unknown --format '${format}' (supported: ${FORMATS.join(", ")})`)
  // The task fixes the branches' loss weights and head settings; a fragment carries them as searched.
  if (values.weight !== undefined) throw new UsageError(`--weight applies to --format torch; --format ${mmlab} uses the task's loss weights`)
  if (values["class-name"] !== undefined) throw new UsageError(`--class-name applies to --format torch, not ${mmlab}`)
  return { dir, candidateId, out: values.out ?? join(dir, defaultMmlabFile(mmlab)), request: { format: mmlab, base: values.base } }
}

const writeTorch = (chosen: CandidateRecord, out: string, request: Extract<Request, { format: "torch" }>, io: VerbOutput): number => {
  const graph = fromWire(chosen.wire)
  if (graph.branches.length > 1 && Object.keys(request.weights).length === 0) {
    io.stderr("autoloss export: note: every branch weight is 1.0; give the task's weights with --weight BRANCH=W\n")
  }
  writeFileSync(out, exportTorchModule(graph, { className: request.className, weights: request.weights }))
  io.stdout(`exported candidate ${chosen.id} (score ${chosen.score}) as ${request.className} to ${out}\n`)
  return 0
}

/** Writes the fragment as an `export-mmlab` job on a one-worker pool (one source of truth for keys, kinds and weights). */
const writeMmlab = (
  dir: string, task: string, options: Readonly<Record<string, unknown>>, chosen: CandidateRecord, out: string,
  request: Extract<Request, { format: MmlabFormat }>, io: VerbOutput
): Promise<number> => {
  const header = [
    `autoloss export: candidate ${chosen.id} (score ${chosen.score}) of the '${task}' run ${resolve(dir)}`,
    `Train with ${LIBRARY[request.format]}'s own tools: python tools/train.py ${resolve(out)}`
  ]
  const payload = {
    task, format: request.format, loss: chosen.wire, out: resolve(out), options, header,
    ...(request.base === undefined ? {} : { base: resolve(request.base) })
  }
  return runWithPool("export", ["cpu"], (pool) => pool.submit("export-mmlab", payload).pipe(Effect.map((r) => {
    const result = r as { path: string; base: string; branches: string[] }
    io.stdout(
      `exported candidate ${chosen.id} (score ${chosen.score}) as an ${request.format} config fragment to ${result.path}\n` +
        `  base ${result.base}; branches ${result.branches.join(", ")}\n` +
        `  train it with ${LIBRARY[request.format]}'s tools/train.py ${result.path}\n`
    )
  })), io)
}

const isData = (r: Request): r is Extract<Request, { format: DataFormat }> => (DATA_FORMATS as ReadonlyArray<string>).includes(r.format)

const writeData = (run: RunData, out: string, format: DataFormat, io: VerbOutput): number => {
  const records = candidateRecords(run)
  writeFileSync(out, format === "csv" ? toCsv(records) : toJsonl(records))
  io.stdout(`exported ${records.length} candidates as ${format} to ${out} (columns: docs/candidates-export.md)\n`)
  return 0
}

/** Which loss was written and why (null answer: the one `--candidate` named). */
export const whichLoss = (answer: Answer | null): string => {
  if (answer === null) return "the candidate --candidate named"
  const d = answer.decision
  if (d === null) return "the best proxy score: this run made no held-out selection (or it has not finished)"
  const f = d.finalists.find((x) => x.id === d.chosen)!
  const k = d.confirmation
  const confirmation = k === null
    ? "; not confirmed on further seeds (the run had none)"
    : `; on confirmation seeds ${k.seeds.join(",")} ${k.comparison.loss.mean.toFixed(4)} vs the baseline's ${k.comparison.against.mean.toFixed(4)}: ` +
      (k.verdict.kind === "confirmed" ? "confirmed"
        : k.verdict.kind === "inconclusive" ? `inconclusive (${k.verdict.reason})`
        : "NOT confirmed, the baseline is at least as good")
  return `the held-out choice: ${d.metric} ${f.comparison.loss.mean.toFixed(4)} on seeds ${d.seeds.join(",")} ` +
    `(the baseline ${d.baseline.mean.toFixed(4)}), best of the top ${d.finalists.length} by proxy score` + confirmation
}

const flags = {
  format: {
    type: "string", required: true, value: "torch|mmdet|mmpose|mmseg|csv|jsonl",
    help: "a PyTorch module, an MMLab config fragment for that library (the run's task decides which fits), or every candidate as a table"
  },
  out: { type: "string", value: "FILE", help: "where to write", defaultText: `DIR/${DEFAULT_EXPORT_FILE} (torch), DIR/found_loss_<format>.py (MMLab), DIR/candidates.<format>` },
  candidate: { type: "string", value: "ID", help: "export this candidate instead of the run's answer", defaultText: "the held-out choice, else the best proxy score" },
  "class-name": { type: "string", value: "NAME", help: "torch: the nn.Module's class name", defaultText: "FoundLoss" },
  weight: { type: "string", multiple: true, value: "BRANCH=W", help: "torch: a branch's weight in the total loss", defaultText: "1.0 each" },
  base: { type: "string", value: "CONFIG", help: "MMLab: the config the fragment builds on", defaultText: "the config the run searched with" }
} as const

export const { spec, summary, run } = defineVerb({
  name: "export",
  summary: "export the run's chosen loss as a PyTorch module or an MMLab config fragment",
  positionals: "DIR",
  positionalNoun: "run directory",
  positionalCount: 1,
  flags,
  description: `
--format torch: a standalone PyTorch nn.Module file that needs only torch.
--format mmdet|mmpose|mmseg: a config fragment an unmodified checkout's tools/train.py trains:
  _base_ = the config the run searched with (or --base), custom_imports for autoloss's registry,
  and AutoLossGraph at each branch's key with the task's loss weights and head settings. The
  format must be the library of the run's task (det, ins: mmdet; mmpose: mmpose; mmseg: mmseg).
--format csv|jsonl: every candidate of the run (formula per branch, hash, provenance, verdicts,
  proxy and held-out metrics; columns in docs/candidates-export.md).
Exit: 0 ok, 1 nothing to export / unreadable run / the loss does not fit the config, 2 usage error
(incl. a format that does not match the run's task).`,
  examples: [
    "autoloss export runs/seg-1 --format torch",
    "autoloss export runs/det-1 --format torch --weight rpn_cls=1 --weight rpn_reg=1 --class-name DetLoss",
    "autoloss export runs/det-1 --format mmdet --out found_loss_mmdet.py",
    "autoloss export runs/seg-1 --format csv"
  ]
}, async (args, io) => {
  const { dir, out, candidateId, request } = parse(args)
  try {
    const run = loadRun(dir)
    if (isData(request)) return writeData(run, out, request.format, io)
    const loss = request
    const answer = candidateId === undefined ? answerOf(run) : null
    const chosen = candidateId === undefined ? answer?.candidate : run.candidates.find((c) => c.id === candidateId)
    if (chosen === undefined) {
      throw new RunDataError(candidateId === undefined ? `${dir}: no loss has a finite score yet, nothing to export` : `${dir} has no candidate ${candidateId}`)
    }
    if (loss.format !== "torch" && run.config === null) {
      throw new RunDataError(`${dir} has no run.json: the run's task (and its config) is unknown`)
    }
    const code = loss.format === "torch"
      ? writeTorch(chosen, out, loss, io)
      : await writeMmlab(dir, run.config!.task, run.config!.options, chosen, out, loss, io)
    if (code === 0) io.stdout(`  ${whichLoss(answer)}\n`)
    return code
  } catch (e) {
    if (!(e instanceof RunDataError || e instanceof TorchExportError)) throw e
    io.stderr(`autoloss export: ${e.message}\n`)
    return 1
  }
})
