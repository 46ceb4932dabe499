/**
 * The loss-graph core, one namespace per module: `import { Syntax, Mutate } from "./graph/index.ts"`
 * then `Syntax.parseLoss(...)`, `Mutate.offspring(...)`.
 */
export * as Ops from "./ops.ts"
export * as Types from "./types.ts"
export * as Rng from "./rng.ts"
export * as Syntax from "./syntax.ts"
export * as Validate from "./validate.ts"
export * as Wire from "./wire.ts"
export * as Random from "./random.ts"
export * as Mutate from "./mutate.ts"
export * as Canonical from "./canonical.ts"
export * as Latex from "./latex.ts"
