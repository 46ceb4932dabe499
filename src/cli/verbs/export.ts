/**
 * `autoloss export DIR --format torch|mmdet|mmpose|mmseg [--out FILE] [--candidate ID] ...`: writes
 * the run's answer (`answerOf`: the held-out choice when the run made one, else the best proxy
 * score), or candidate ID, and says which it wrote.
 *
 * - `--format torch [--class-name NAME] [--weight BRANCH=W ...]`: a standalone PyTorch `nn.Module`
 *   file that needs only torch (`src/graph/torch-export.ts`). Default output `DIR/found_loss.py`.
 * - `--format mmdet|mmpose|mmseg [--base FILE]`: an MMLab config fragment that an unmodified
 *   checkout's `tools/train.py` trains: `_base_` = the config the run searched with (or FILE),
 *   `custom_imports` for autoloss's registry, and `AutoLossGraph` at each branch's key with the
 *   task's loss weights and head settings. Written by `python -m autoloss_worker.cli export-mmlab`
 *   (`autoloss_worker.mmlab.export`), the same edits proxy training makes. The format must be the
 *   library of the run's task (det, ins: mmdet). Default output `DIR/found_loss_<format>.py`.
 *
 * - `--format csv|jsonl`: every candidate of the run with its provenance, rejection, proxy and
 *   held-out results (`src/report/candidates-export.ts`, columns in `docs/candidates-export.md`).
 *   Default output `DIR/candidates.<format>`.
 *
 * Exit 0 ok, 1 nothing to export / unreadable run / loss does not fit the config, 2 usage error
 * (incl. a format that does not match the run's task).
 */
import { writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { execa } from "execa"
import { exportTorchModule, TorchExportError } from "../../graph/torch-export.ts"
import { encodeLoss, fromWire } from "../../graph/wire.ts"
import { candidateRecords, toCsv, toJsonl } from "../../report/candidates-export.ts"
import { type Answer, answerOf } from "../../report/model.ts"
import { type CandidateRecord, loadRun, type RunData, RunDataError } from "../../report/run-data.ts"
import { parseFlags, UsageError, verbPython as python, withUsage } from "../args.ts"

export const summary = "export the run's chosen loss as a PyTorch module or an MMLab config fragment"

const USAGE = [
  "usage: autoloss export DIR --format torch [--out FILE] [--candidate ID] [--class-name NAME] [--weight BRANCH=W ...]",
  "       autoloss export DIR --format mmdet|mmpose|mmseg [--out FILE] [--candidate ID] [--base CONFIG]",
  "       autoloss export DIR --format csv|jsonl [--out FILE]"
].join("\n")

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

interface Parsed {
  readonly dir: string
  readonly out: string
  readonly candidateId: number | undefined
  readonly request: Request
}

const parse = (argv: ReadonlyArray<string>): Parsed => {
  const { values, positionals } = parseFlags({
    args: [...argv],
    strict: true,
    allowPositionals: true,
    options: {
      format: { type: "string" },
      out: { type: "string" },
      candidate: { type: "string" },
      "class-name": { type: "string" },
      weight: { type: "string", multiple: true },
      base: { type: "string" }
    }
  })
  if (positionals.length !== 1) throw new UsageError(`want exactly one run directory, got ${positionals.length}`)
  const dir = positionals[0]!
  const format = values.format
  if (format === undefined) throw new UsageError(`--format is required (${FORMATS.join(", ")})`)
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

const writeTorch = (chosen: CandidateRecord, out: string, request: Extract<Request, { format: "torch" }>): number => {
  const graph = fromWire(chosen.wire)
  if (graph.branches.length > 1 && Object.keys(request.weights).length === 0) {
    process.stderr.write("autoloss export: note: every branch weight is 1.0; give the task's weights with --weight BRANCH=W\n")
  }
  writeFileSync(out, exportTorchModule(graph, { className: request.className, weights: request.weights }))
  process.stdout.write(`exported candidate ${chosen.id} (score ${chosen.score}) as ${request.className} to ${out}\n`)
  return 0
}

/** Writes the fragment through the worker package (one source of truth for keys, kinds and weights). */
const writeMmlab = async (
  dir: string, task: string, options: Readonly<Record<string, unknown>>, chosen: CandidateRecord, out: string,
  request: Extract<Request, { format: MmlabFormat }>
): Promise<number> => {
  const header = [
    `autoloss export: candidate ${chosen.id} (score ${chosen.score}) of the '${task}' run ${resolve(dir)}`,
    `Train with ${LIBRARY[request.format]}'s own tools: python tools/train.py ${resolve(out)}`
  ]
  const args = [
    "-u", "-m", "autoloss_worker.cli", "export-mmlab", "--task", task, "--format", request.format,
    "--loss-wire-b64", Buffer.from(encodeLoss(fromWire(chosen.wire))).toString("base64"),
    "--out", resolve(out), "--options", JSON.stringify(options), ...header.flatMap((line) => ["--header", line])
  ]
  if (request.base !== undefined) args.push("--base", resolve(request.base))
  const child = await execa(python(), args, { reject: false, stdin: "ignore" })
  if (child.exitCode === undefined) {
    process.stderr.write(`autoloss export: could not run ${python()}: ${child.shortMessage}\n`)
    return 1
  }
  if (child.exitCode !== 0) {
    process.stderr.write((child.stderr || child.stdout).replace(/^error: /m, "autoloss export: ") + "\n")
    if (child.exitCode === 2) process.stderr.write(`${USAGE}\n`)
    return child.exitCode
  }
  // Libraries may print while the config loads; the result is the last line.
  const last = child.stdout.trim().split("\n").pop() ?? ""
  const result = JSON.parse(last) as { path: string; base: string; branches: string[] }
  process.stdout.write(
    `exported candidate ${chosen.id} (score ${chosen.score}) as an ${request.format} config fragment to ${result.path}\n` +
      `  base ${result.base}; branches ${result.branches.join(", ")}\n` +
      `  train it with ${LIBRARY[request.format]}'s tools/train.py ${result.path}\n`
  )
  return 0
}

const isData = (r: Request): r is Extract<Request, { format: DataFormat }> => (DATA_FORMATS as ReadonlyArray<string>).includes(r.format)

const writeData = (run: RunData, out: string, format: DataFormat): number => {
  const records = candidateRecords(run)
  writeFileSync(out, format === "csv" ? toCsv(records) : toJsonl(records))
  process.stdout.write(`exported ${records.length} candidates as ${format} to ${out} (columns: docs/candidates-export.md)\n`)
  return 0
}

/** Which loss was written and why (null answer: the one `--candidate` named). */
export const whichLoss = (answer: Answer | null): string => {
  if (answer === null) return "the candidate --candidate named"
  const d = answer.decision
  if (d === null) return "the best proxy score: this run made no held-out selection (or it has not finished)"
  const f = d.finalists.find((x) => x.id === d.chosen)!
  return `the held-out choice: ${d.metric} ${f.comparison.loss.mean.toFixed(4)} on seeds ${d.seeds.join(",")} ` +
    `(the baseline ${d.baseline.mean.toFixed(4)}), best of the top ${d.finalists.length} by proxy score`
}

export const run = (argv: ReadonlyArray<string>): Promise<number> => withUsage("export", USAGE, async () => {
  const { dir, out, candidateId, request } = parse(argv)
  try {
    const run = loadRun(dir)
    if (isData(request)) return writeData(run, out, request.format)
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
      ? writeTorch(chosen, out, loss)
      : await writeMmlab(dir, run.config!.task, run.config!.options, chosen, out, loss)
    if (code === 0) process.stdout.write(`  ${whichLoss(answer)}\n`)
    return code
  } catch (e) {
    if (!(e instanceof RunDataError || e instanceof TorchExportError)) throw e
    process.stderr.write(`autoloss export: ${e.message}\n`)
    return 1
  }
})
