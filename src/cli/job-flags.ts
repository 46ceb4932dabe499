/**
 * The flags every verb that runs Python work shares, declared and parsed once: where the workers
 * run (`--workers N | --devices LIST`, `--device D` for one worker) and the job's task options
 * (`--option KEY=VALUE`, repeatable; `--options JSON` is the same map at once).
 */
import { mergeOptions, parseOptionPairs } from "../search/run-config.ts"
import { type Fidelity, parseFidelity } from "../search/fidelity.ts"
import { parseSeedList } from "../search/selection.ts"
import { DEVICE_PATTERN } from "../workers/internal/localWorkers.ts"
import { UsageError } from "./args.ts"
import type { FlagSpec } from "./verb.ts"

/** One device name, `cpu` or `cuda:N`, or a `UsageError` naming the flag. */
export const parseDevice = (flag: string, text: string): string => {
  if (!DEVICE_PATTERN.test(text)) throw new UsageError(`${flag} wants cpu or cuda:N entries, got '${text}'`)
  return text
}

/** `--seeds 1,2,3` (or `--holdout-seeds`): distinct non-negative integers, or a `UsageError` naming the flag. */
export const parseSeedsFlag = (flag: string, text: string): number[] => {
  try {
    return parseSeedList(flag, text)
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
}

/**
 * `--fidelity full|asha[:eta=E,min=F]` as the run config's field: absent for full (so run.json of a
 * full-fidelity search is what it was before the option existed), or a `UsageError`.
 */
export const parseFidelityFlag = (text: string | undefined): { readonly fidelity?: Fidelity } => {
  if (text === undefined) return {}
  try {
    const fidelity = parseFidelity(text)
    return fidelity.kind === "full" ? {} : { fidelity }
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
}

export const WORKER_FLAGS = {
  workers: { type: "string", value: "N", help: "local CPU workers to start", defaultText: "2" },
  devices: { type: "string", value: "cpu,cuda:0,...", help: "one local worker per listed device (instead of --workers)" }
} as const satisfies Record<string, FlagSpec>

/**
 * The local workers' devices from `--workers N` (N CPU workers) or `--devices LIST`; `fallback`
 * CPU workers when neither is given. With `remote` (a `--connect` endpoint) zero local workers is allowed.
 */
export const parseWorkerDevices = (
  values: { readonly workers?: string | undefined; readonly devices?: string | undefined },
  fallback: number,
  remote = false
): string[] => {
  if (values.workers !== undefined && values.devices !== undefined) throw new UsageError("give --workers or --devices, not both")
  let devices: string[]
  if (values.devices !== undefined) {
    devices = values.devices.split(",").map((d) => d.trim()).filter((d) => d !== "").map((d) => parseDevice("--devices", d))
  } else {
    if (values.workers !== undefined && !/^\d+$/.test(values.workers)) throw new UsageError(`--workers wants an integer ≥ ${remote ? 0 : 1}, got '${values.workers}'`)
    devices = Array.from({ length: values.workers === undefined ? fallback : Number(values.workers) }, () => "cpu")
  }
  if (devices.length === 0 && !remote) throw new UsageError("no workers: give --workers ≥ 1 or --devices")
  return devices
}

export const CONNECT_FLAG = {
  connect: { type: "string", value: "tcp://HOST:PORT", help: "also listen here for remote workers (`autoloss worker`, `autoloss launch`; CURVE keys from `autoloss keys`)", defaultText: "local workers only" }
} as const satisfies Record<string, FlagSpec>

/** The pool's tcp endpoint for remote workers, checked. */
export const parseConnect = (endpoint: string | undefined): string | undefined => {
  if (endpoint !== undefined && !/^tcp:\/\/[^:]+:\d+$/.test(endpoint)) throw new UsageError(`--connect wants tcp://HOST:PORT, got '${endpoint}'`)
  return endpoint
}

export const OPTION_FLAGS = {
  option: {
    type: "string", multiple: true, value: "KEY=VALUE",
    help: "a task option (iterations, train_images, device, config, rejection.samples ...); VALUE is JSON when it parses, else a string"
  },
  options: { type: "string", value: "JSON", help: "task options as one JSON object (merged under the --option pairs)" }
} as const satisfies Record<string, FlagSpec>

/** The job's `options` map: `--options JSON` first, each `--option KEY=VALUE` over it. */
export const parseJobOptions = (values: { readonly option?: ReadonlyArray<string> | undefined; readonly options?: string | undefined }): Record<string, unknown> => {
  let base: Record<string, unknown> = {}
  if (values.options !== undefined) {
    let parsed: unknown
    try {
      parsed = JSON.parse(values.options)
    } catch (e) {
      throw new UsageError(`--options is not JSON: ${(e as Error).message}`)
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new UsageError("--options must be a JSON object")
    base = parsed as Record<string, unknown>
  }
  let pairs: Record<string, unknown>
  try {
    pairs = parseOptionPairs(values.option ?? [])
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
  return mergeOptions(base, pairs)
}

