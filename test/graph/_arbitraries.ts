// Shared generators for the graph-core tests (not a test file: tap only runs *.test.ts).
import fc from "fast-check"
import { OP_NAMES, arityOf } from "../../src/graph/ops.ts"
import type { OpName } from "../../src/graph/ops.ts"
import { BOX, DENSE, input, op } from "../../src/graph/types.ts"
import type { BranchKind, LossGraph, Node } from "../../src/graph/types.ts"
import { Rng } from "../../src/graph/rng.ts"
import { randomLoss } from "../../src/graph/random.ts"

/** Pinned so a failure reproduces; ≥ a few hundred runs per property. */
export const FC = { seed: 0x5eed, numRuns: 300 } as const

export const UNARY: ReadonlyArray<OpName> = OP_NAMES.filter((o) => arityOf(o) === 1)
export const BINARY: ReadonlyArray<OpName> = OP_NAMES.filter((o) => arityOf(o) === 2)

/** Irregular trees (not just the full depth-3 ones initialisation makes), at most `maxDepth` operators deep. */
export const treeArb = (kind: BranchKind, maxDepth = 6): fc.Arbitrary<Node> =>
  fc.letrec<{ node: Node }>((tie) => ({
    node: fc.oneof(
      { maxDepth, depthIdentifier: "tree" },
      fc.constantFrom(...kind.inputs).map(input),
      fc.tuple(fc.constantFrom(...UNARY), tie("node")).map(([o, a]) => op(o, a)),
      fc.tuple(fc.constantFrom(...BINARY), tie("node"), tie("node")).map(([o, a, b]) => op(o, a, b))
    )
  })).node

export const kindArb: fc.Arbitrary<BranchKind> = fc.constantFrom(DENSE, BOX)

export const graphArb = (maxBranches = 4): fc.Arbitrary<LossGraph> =>
  fc
    .uniqueArray(fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,7}$/), { minLength: 1, maxLength: maxBranches })
    .chain((names) =>
      fc.tuple(...names.map((name) => kindArb.chain((kind) => treeArb(kind).map((root) => ({ name, kind, root })))))
    )
    .map((branches) => ({ branches }))

/** Graphs as the search makes them: paper initialisation from a seed, one to three branches. */
export const initialGraphArb: fc.Arbitrary<LossGraph> = fc
  .tuple(fc.integer({ min: 0, max: 2 ** 31 }), fc.constantFrom(1, 2, 3))
  .map(([seed, n]) =>
    randomLoss(Array.from({ length: n }, (_, i) => ({ name: `b${i}`, kind: i % 2 === 0 ? DENSE : BOX })), new Rng(seed)))

/** Both kinds of graphs. */
export const anyGraphArb: fc.Arbitrary<LossGraph> = fc.oneof(graphArb(), initialGraphArb)

/** |observed − p| within 5 binomial standard deviations of n draws. */
export const within5Sigma = (count: number, n: number, p: number): boolean =>
  Math.abs(count / n - p) <= 5 * Math.sqrt((p * (1 - p)) / n)
