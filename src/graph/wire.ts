/**
 * Loss graphs on the wire, version 1 (`protocol/README.md`): a msgpack map
 * `{ v: 1, branches: [{ name, kind, inputs, tree }] }` where a tree is an input name or
 * `[op, ...children]`. `fromWire` accepts only exactly that shape and validates it like
 * `validateLoss`; every rejection is a `GraphValidationError` naming branch and path.
 */
import { Packr, unpack } from "msgpackr"
import { arityOf, isOpName } from "./ops.ts"
import { BUILTIN_KINDS, input, op } from "./types.ts"
import type { Branch, BranchKind, LossGraph, Node } from "./types.ts"
import { DEFAULT_LIMITS, GraphValidationError, validateLoss } from "./validate.ts"
import type { Limits } from "./validate.ts"

export const GRAPH_WIRE_VERSION = 1

export type WireNode = string | readonly [string, ...WireNode[]]

export interface WireBranch {
  readonly name: string
  readonly kind: string
  readonly inputs: ReadonlyArray<string>
  readonly tree: WireNode
}

export interface WireLoss {
  readonly v: typeof GRAPH_WIRE_VERSION
  readonly branches: ReadonlyArray<WireBranch>
}

const LOSS_KEYS = ["v", "branches"]
const BRANCH_KEYS = ["name", "kind", "inputs", "tree"]

const nodeToWire = (n: Node): WireNode => (n.type === "input" ? n.name : [n.op, ...n.args.map(nodeToWire)])

export const toWire = (g: LossGraph): WireLoss => ({
  v: GRAPH_WIRE_VERSION,
  branches: g.branches.map((b) => ({ name: b.name, kind: b.kind.name, inputs: [...b.kind.inputs], tree: nodeToWire(b.root) }))
})

const isPlainMap = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array)

const checkKeys = (obj: Record<string, unknown>, allowed: ReadonlyArray<string>, branch: string, what: string): void => {
  for (const key of allowed) {
    if (!Object.hasOwn(obj, key)) throw new GraphValidationError(branch, [], `${what} lacks the field '${key}'`)
  }
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) throw new GraphValidationError(branch, [], `${what} has an unknown field '${key}'`)
  }
}

export const fromWire = (obj: unknown, limits?: Partial<Limits>): LossGraph => {
  const lim: Limits = { ...DEFAULT_LIMITS, ...limits }
  if (!isPlainMap(obj)) throw new GraphValidationError("", [], "a wire loss must be a map")
  if (obj["v"] !== GRAPH_WIRE_VERSION) {
    throw new GraphValidationError("", [], `unsupported graph wire version ${String(obj["v"])} (this build reads ${GRAPH_WIRE_VERSION})`)
  }
  checkKeys(obj, LOSS_KEYS, "", "the wire loss")
  const wireBranches = obj["branches"]
  if (!Array.isArray(wireBranches)) throw new GraphValidationError("", [], "'branches' must be an array")
  if (wireBranches.length > lim.maxBranches) {
    throw new GraphValidationError("", [], `${wireBranches.length} branches exceed the limit of ${lim.maxBranches}`)
  }
  const g: LossGraph = { branches: wireBranches.map((b: unknown, i) => branchFromWire(b, i, lim)) }
  validateLoss(g, lim)
  return g
}

const branchFromWire = (b: unknown, index: number, lim: Limits): Branch => {
  const label = `#${index}`
  if (!isPlainMap(b)) throw new GraphValidationError(label, [], "a wire branch must be a map")
  const name = typeof b["name"] === "string" ? b["name"] : label
  checkKeys(b, BRANCH_KEYS, name, "the branch")
  if (typeof b["name"] !== "string") throw new GraphValidationError(label, [], "'name' must be a string")
  const kindName = b["kind"]
  const inputs = b["inputs"]
  if (typeof kindName !== "string") throw new GraphValidationError(name, [], "'kind' must be a string")
  if (!Array.isArray(inputs) || !inputs.every((x): x is string => typeof x === "string")) {
    throw new GraphValidationError(name, [], "'inputs' must be an array of strings")
  }
  if (new Set(inputs).size !== inputs.length) throw new GraphValidationError(name, [], "'inputs' repeats a name")
  return { name, kind: kindFor(kindName, inputs), root: treeFromWire(b["tree"], name, [], 0, lim) }
}

/** The built-in kind object when name and inputs match one, so round trips keep identity too. */
const kindFor = (name: string, inputs: ReadonlyArray<string>): BranchKind =>
  BUILTIN_KINDS.find((k) => k.name === name && k.inputs.length === inputs.length && k.inputs.every((x, i) => x === inputs[i])) ??
  { name, inputs: [...inputs] }

/** Shape, operator names, arity and the depth guard; leaves against inputs are `validateLoss`'s job. */
const treeFromWire = (t: unknown, branch: string, path: ReadonlyArray<number>, depth: number, lim: Limits): Node => {
  if (typeof t === "string") return input(t)
  if (!Array.isArray(t) || typeof t[0] !== "string") {
    throw new GraphValidationError(branch, path, "not a node: want an input name or [op, ...children]")
  }
  const [name, ...children] = t as [string, ...unknown[]]
  if (!isOpName(name)) throw new GraphValidationError(branch, path, `unknown operator '${name}'`)
  if (depth + 1 > lim.maxDepth) throw new GraphValidationError(branch, path, `depth exceeds the limit of ${lim.maxDepth} operators`)
  const arity = arityOf(name)
  if (children.length !== arity) {
    throw new GraphValidationError(
      branch, path, `operator '${name}' takes ${arity} argument${arity === 1 ? "" : "s"}, got ${children.length}`)
  }
  return op(name, ...children.map((c, i) => treeFromWire(c, branch, [...path, i], depth + 1, lim)))
}

/**
 * Plain msgpack maps (no msgpackr records or extensions) in the smallest map header, so the bytes
 * equal Python's `msgpack.packb` (msgpackr's default `pack` always writes map16).
 */
const packr = new Packr({ useRecords: false, variableMapSize: true })

/** msgpack bytes of `toWire(g)`. */
export const encodeLoss = (g: LossGraph): Uint8Array => packr.pack(toWire(g))

export const decodeLoss = (bytes: Uint8Array, limits?: Partial<Limits>): LossGraph => {
  let obj: unknown
  try {
    obj = unpack(bytes)
  } catch (e) {
    throw new GraphValidationError("", [], `not a msgpack loss: ${e instanceof Error ? e.message : String(e)}`)
  }
  return fromWire(obj, limits)
}
