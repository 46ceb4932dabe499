/**
 * Pure codecs between the store's values and its SQLite rows: JSON columns, number arrays that keep
 * NaN and ±Infinity, and the row decoders the store (and the report, which reads tables directly) use.
 */
import type { Plan, SelectionSettings } from "../results/selection.ts"
import type { CandidateStatus } from "./schema.ts"
import type { CandidateRow, LedgerRow, StoredHoldout, StoredRung, StoredSelection, StoredTrain } from "./types.ts"

/** JSON with sorted object keys, so equal configs compare equal as text. */
export const stableJson = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v
  )

export const orNull = <T>(v: T | undefined): T | null => (v === undefined ? null : v)

/** JSON for number arrays that keeps NaN and ±Infinity (plain JSON would turn them into null). */
export const encodeNumbers = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v))
export const decodeNumbers = <T>(text: string): T =>
  JSON.parse(text, (_key, v: unknown) =>
    v === "NaN" ? NaN : v === "Infinity" ? Infinity : v === "-Infinity" ? -Infinity : v
  ) as T
const bool = (v: unknown): boolean | null => (v === null || v === undefined ? null : v === 1)

/** A `selection` row (the report reads the table with these too). */
export const selectionFromRow = (r: Record<string, unknown>): StoredSelection => {
  const settings = JSON.parse(r["settings"] as string) as SelectionSettings
  return {
    settings,
    metric: r["metric"] as string,
    seeds: settings.seeds,
    confirmSeeds: settings.confirmSeeds ?? [],
    finalists: decodeNumbers<Plan["finalists"]>(r["finalists"] as string),
    // absent (a database before version 6) or NULL: a selection made without the baseline's key
    baselineKey: typeof r["baseline_key"] === "string" ? r["baseline_key"] : null,
    setAside: typeof r["set_aside"] === "string" ? decodeNumbers<Plan["setAside"]>(r["set_aside"]) : [],
    chosenId: r["chosen_id"] as number | null,
    completedAt: r["completed_at"] as number | null
  }
}

/** The columns `holdout_runs` and `rung_results` share: one training's result, who ran it and when. */
export const trainingColumns = ({ result, elapsedMs }: StoredTrain) => ({
  metrics: encodeNumbers(result.metrics),
  target: Number.isFinite(result.target) ? result.target : null,
  invalid: result.invalid ? 1 : 0,
  elapsedMs,
  workerId: orNull(result.workerId),
  attempt: orNull(result.attempt),
  pid: process.pid,
  recordedAt: Date.now()
})

/** A `rung_results` row (the report reads the table directly). */
export const rungFromRow = (r: Record<string, unknown>): StoredRung => ({
  candidateId: r["candidate_id"] as number,
  rung: r["rung"] as number,
  iterations: r["iterations"] as number,
  result: {
    metrics: decodeNumbers<Record<string, number>>(r["metrics"] as string),
    target: r["target"] === null ? NaN : (r["target"] as number),
    invalid: r["invalid"] === 1,
    ...(r["worker"] === null ? {} : { workerId: r["worker"] as string }),
    ...(r["attempt"] === null ? {} : { attempt: r["attempt"] as number }),
    // NULL, or absent in a version-4 database read by the report
    ...(typeof r["resumed_from"] === "number" ? { resumedFrom: r["resumed_from"] } : {})
  },
  elapsedMs: r["elapsed_ms"] as number
})

/** A `holdout_runs` row. */
export const holdoutFromRow = (r: Record<string, unknown>): StoredHoldout => ({
  subject: r["candidate_id"] === null ? "baseline" : (r["candidate_id"] as number),
  seed: r["seed"] as number,
  split: r["split"] as StoredHoldout["split"],
  iterations: r["iterations"] as number | null,
  metrics: decodeNumbers<Record<string, number>>(r["metrics"] as string),
  target: r["target"] === null ? NaN : (r["target"] as number),
  invalid: r["invalid"] === 1,
  elapsedMs: r["elapsed_ms"] as number,
  ...(r["worker"] === null ? {} : { workerId: r["worker"] as string }),
  ...(r["attempt"] === null ? {} : { attempt: r["attempt"] as number })
})

/** The worker and attempt columns of a stage, present only when recorded. */
export const provenance = (r: Record<string, unknown>, stage: "screen" | "train") => ({
  ...(r[`${stage}_worker`] === null ? {} : { workerId: r[`${stage}_worker`] as string }),
  ...(r[`${stage}_attempt`] === null ? {} : { attempt: r[`${stage}_attempt`] as number })
})

/** A `candidates` row. */
export const candidateFromRow = (r: Record<string, unknown>): CandidateRow => ({
  id: r["id"] as number,
  text: r["text"] as string,
  wire: JSON.parse(r["wire"] as string) as unknown,
  hash: r["hash"] as string,
  parentId: r["parent_id"] as number | null,
  how: JSON.parse(r["how"] as string) as unknown,
  status: r["status"] as CandidateStatus,
  duplicateOf: r["duplicate_of"] as number | null,
  staticBranch: r["static_branch"] as string | null,
  staticReason: r["static_reason"] as string | null,
  rejectionPassed: bool(r["rejection_passed"]),
  rejectionScore: r["rejection_score"] as number | null,
  equivalenceKey: r["equivalence_key"] as string | null,
  admissionIndex: r["admission_index"] as number | null,
  reusedFrom: r["reused_from"] as number | null,
  reuseKind: r["reuse_kind"] as "duplicate" | "equivalent" | null,
  targetScore: r["target_score"] as number | null,
  invalid: bool(r["invalid"]),
  score: r["score"] as number | null
})

/** An `evaluations` (ledger) row. */
export const ledgerFromRow = (r: Record<string, unknown>): LedgerRow => ({
  seq: r["seq"] as number,
  candidateId: r["candidate_id"] as number,
  stage: r["stage"] as "screen" | "train",
  worker: r["worker"] as string | null,
  attempt: r["attempt"] as number | null,
  elapsedMs: r["elapsed_ms"] as number,
  pid: r["pid"] as number
})
