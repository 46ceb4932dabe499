/**
 * Random initialisation (AutoLoss-Zero §3.2): the output node has one child; every computational
 * node draws its operator uniformly from the 14 primitives and gets arity-many children; nodes at
 * depth D get input leaves drawn uniformly with replacement from the branch kind's inputs. So every
 * root→leaf path holds exactly D operator nodes. `Branch.root` is the output node's single child.
 */
import { OP_NAMES, arityOf } from "./ops.ts"
import { input, op } from "./types.ts"
import type { BranchKind, LossGraph, Node } from "./types.ts"
import type { Rng } from "./rng.ts"

/** D in the paper. */
export const INIT_DEPTH = 3

export const randomTree = (kind: BranchKind, rng: Rng, depth: number = INIT_DEPTH): Node => {
  if (!Number.isInteger(depth) || depth < 1) throw new RangeError(`randomTree depth must be an integer ≥ 1, got ${depth}`)
  if (kind.inputs.length === 0) throw new RangeError(`branch kind '${kind.name}' declares no inputs`)
  // Pre-order draws (operator, then its children left to right) fix the stream for a given seed.
  const grow = (level: number): Node => {
    const name = rng.pick(OP_NAMES)
    const args: Node[] = []
    for (let i = 0; i < arityOf(name); i++) {
      args.push(level === depth ? input(rng.pick(kind.inputs)) : grow(level + 1))
    }
    return op(name, ...args)
  }
  return grow(1)
}

export const randomLoss = (
  branches: ReadonlyArray<{ readonly name: string; readonly kind: BranchKind }>,
  rng: Rng
): LossGraph => ({ branches: branches.map(({ name, kind }) => ({ name, kind, root: randomTree(kind, rng) })) })
