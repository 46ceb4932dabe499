/**
 * The 14 primitive operators of AutoLoss-Zero (Li et al., CVPR 2022, Table 1).
 * All are shape preserving on (N, C, H, W) tensors; ε = 1e-12.
 * Adding an operator here must break compilation of every exhaustive switch over `OpName`
 * (evaluator, printers, canonicaliser) until it is handled there too.
 */
export const EPSILON = 1e-12

export const OPS = {
  add: { arity: 2, commutative: true },
  mul: { arity: 2, commutative: true },
  neg: { arity: 1, commutative: false },
  abs: { arity: 1, commutative: false },
  inv: { arity: 1, commutative: false },
  log: { arity: 1, commutative: false },
  exp: { arity: 1, commutative: false },
  tanh: { arity: 1, commutative: false },
  square: { arity: 1, commutative: false },
  sqrt: { arity: 1, commutative: false },
  mean_nhw: { arity: 1, commutative: false },
  mean_c: { arity: 1, commutative: false },
  max_pool: { arity: 1, commutative: false },
  min_pool: { arity: 1, commutative: false }
} as const satisfies Record<string, { readonly arity: 1 | 2; readonly commutative: boolean }>

export type OpName = keyof typeof OPS
export type Arity = (typeof OPS)[OpName]["arity"]

/** Operators in a fixed order: the order random sampling indexes into (must never change silently). */
export const OP_NAMES: ReadonlyArray<OpName> = [
  "add", "mul", "neg", "abs", "inv", "log", "exp", "tanh", "square", "sqrt",
  "mean_nhw", "mean_c", "max_pool", "min_pool"
]

export const isOpName = (name: string): name is OpName => Object.hasOwn(OPS, name)

export const arityOf = (op: OpName): Arity => OPS[op].arity
