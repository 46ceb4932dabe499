/**
 * Every candidate of a run as data (`autoloss export DIR --format csv|jsonl`): one record per
 * proposal, in proposal order, with its formula per branch, provenance, rejection verdict and
 * gradient norms, proxy training and, for the held-out finalists, their held-out metrics. JSONL
 * writes the records as they are; CSV flattens them (nested keys joined by `.`, arrays as JSON).
 * Non-finite numbers are written as `NaN`, `Infinity`, `-Infinity` (strings in JSONL, as the run
 * database stores them). Columns: `docs/candidates-export.md`. Pure.
 */
import { printNode } from "../graph/syntax.ts"
import { fromWire } from "../graph/wire.ts"
import { decide } from "../search/selection.ts"
import { describeHow } from "./model.ts"
import type { RunData } from "./run-data.ts"

type Value = string | number | boolean | null | ReadonlyArray<unknown> | { readonly [k: string]: Value }

export type CandidateExport = { readonly [k: string]: Value }

const finite = (v: number | null): number | string | null => (v === null ? null : Number.isFinite(v) ? v : String(v))
const numbers = (xs: ReadonlyArray<number> | null) => (xs === null ? null : xs.map((x) => finite(x)))
const metrics = (m: Readonly<Record<string, number>> | null) =>
  m === null ? null : Object.fromEntries(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, finite(v)]))

export const candidateRecords = (run: Pick<RunData, "candidates" | "selection">): CandidateExport[] => {
  const sel = run.selection
  const decision = sel === null ? null : decide(sel.plan, sel.runs)
  const rankOf = new Map(sel?.plan.finalists.map((f, i) => [f.id, i + 1]) ?? [])
  return run.candidates.map((c) => {
    const rank = rankOf.get(c.id)
    const heldOut = rank === undefined || sel === null
      ? null
      : {
          rank,
          chosen: decision !== null && decision.chosen === c.id,
          mean: decision?.finalists.find((f) => f.id === c.id)?.comparison.loss.mean ?? null,
          seeds: Object.fromEntries(
            sel.runs.filter((r) => r.subject === c.id && r.split === "held-out").map((r) => [String(r.seed), metrics(r.metrics)])
          )
        }
    return {
      id: c.id,
      status: c.status,
      loss: c.text,
      branches: Object.fromEntries(fromWire(c.wire).branches.map((b) => [b.name, printNode(b.root)])),
      hash: c.hash,
      parentId: c.parentId,
      how: describeHow(c.how),
      duplicateOf: c.duplicateOf,
      staticBranch: c.staticBranch,
      staticReason: c.staticReason,
      rejection: {
        passed: c.rejectionPassed,
        score: finite(c.rejectionScore),
        invalid: c.rejectionInvalid,
        gradNorms: numbers(c.gradNorms),
        ms: c.screenMs,
        worker: c.screenWorker
      },
      equivalenceKey: c.equivalenceKey,
      admissionIndex: c.admissionIndex,
      reusedFrom: c.reusedFrom,
      reuseKind: c.reuseKind,
      proxy: { metrics: metrics(c.proxyMetrics), target: finite(c.targetScore), invalid: c.invalid, ms: c.trainMs, worker: c.trainWorker },
      score: finite(c.score),
      heldOut
    }
  })
}

export const toJsonl = (records: ReadonlyArray<CandidateExport>): string => records.map((r) => JSON.stringify(r) + "\n").join("")

type Cell = string | number | boolean | null

/** Leaves of a record: nested keys joined by `.`, arrays as JSON; a null group is one null leaf. */
const flatten = (v: Value, path: ReadonlyArray<string>, out: Array<[ReadonlyArray<string>, Cell]>): void => {
  if (v !== null && typeof v === "object" && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v as { readonly [k: string]: Value })) flatten(x, [...path, k], out)
  } else out.push([path, Array.isArray(v) ? JSON.stringify(v) : (v as Cell)])
}

const csvCell = (v: Cell | undefined): string => {
  if (v === null || v === undefined) return ""
  const s = String(v)
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

/**
 * CSV with one header row: every leaf any record has, grouped as in the records (a key's children
 * sit where the key first appeared; a group that is null in one record and nested in another, such
 * as `heldOut` or `proxy.metrics`, becomes its children's columns, empty where it was null).
 */
export const toCsv = (records: ReadonlyArray<CandidateExport>): string => {
  interface Node { readonly children: Map<string, Node> }
  const root: Node = { children: new Map() }
  const flat = records.map((r) => {
    const leaves: Array<[ReadonlyArray<string>, Cell]> = []
    flatten(r, [], leaves)
    for (const [path] of leaves) {
      let node = root
      for (const k of path) {
        let next = node.children.get(k)
        if (next === undefined) node.children.set(k, (next = { children: new Map() }))
        node = next
      }
    }
    return new Map(leaves.map(([path, v]) => [path.join("."), v]))
  })
  const columns: string[] = []
  const walk = (node: Node, prefix: string): void => {
    for (const [k, child] of node.children) {
      const name = prefix === "" ? k : `${prefix}.${k}`
      if (child.children.size === 0) columns.push(name)
      else walk(child, name)
    }
  }
  walk(root, "")
  return [columns.map(csvCell).join(","), ...flat.map((f) => columns.map((k) => csvCell(f.get(k))).join(","))].join("\n") + "\n"
}
