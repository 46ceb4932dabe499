/**
 * The fixed candidate stream of the rejection benchmark, drawn by the search's own generator
 * (`randomLoss`, `offspring`): half random initial losses, half offspring of passing parents
 * (copy 10% / re-init 45% / two mutations 45%, so hopeless offspring are included). Parents start
 * as losses known to pass seg rejection (cross-entropy and the paper's Table 8 seg losses); every
 * mutated offspring that passes the static check joins the parent pool, so later offspring descend from earlier ones, as in a
 * search, without anyone having run rejection.
 *
 *   npx tsx bench/gen-candidates.ts --n 400 --seed 7 > candidates.json
 *
 * Prints `{ "seed", "n", "candidates": [{ "text", "origin", "wire" }, ...] }`; same seed and n, same
 * stream on every machine.
 */
import { parseArgs } from "node:util"
import { Rng } from "../src/graph/rng.ts"
import { randomLoss } from "../src/graph/random.ts"
import { offspring } from "../src/graph/mutate.ts"
import { parseLoss, printLoss } from "../src/graph/syntax.ts"
import { toWire } from "../src/graph/wire.ts"
import { DENSE } from "../src/graph/types.ts"
import { staticCheck } from "../src/search/static-check.ts"
import type { LossGraph } from "../src/graph/types.ts"

const PASSING_PARENTS = [
  "neg(mul(y, log(y_hat)))",
  "neg(log(mul(tanh(mul(y, inv(add(one, y)))), add(square(y_hat), y))))",
  "exp(square(add(y, neg(sqrt(y_hat)))))"
]

const { values } = parseArgs({ options: { n: { type: "string", default: "400" }, seed: { type: "string", default: "7" } } })
const n = Number(values.n)
const rng = new Rng(Number(values.seed))
const parents: LossGraph[] = PASSING_PARENTS.map((t) => parseLoss(t, { kinds: { loss: DENSE } }))
const out: Array<{ text: string; origin: string; wire: unknown }> = []
for (let i = 0; i < n; i++) {
  let graph: LossGraph
  let origin: string
  if (rng.chance(0.5)) {
    graph = randomLoss([{ name: "loss", kind: DENSE }], rng)
    origin = "random"
  } else {
    const parent = rng.pick(parents)
    const child = offspring(parent, rng)
    graph = child.graph
    origin = child.how[0]?.kind ?? "copy"
    // Mutated offspring that might pass join the pool (bounded, like a search's recent population).
    if (origin === "mutate" && staticCheck(graph).ok) parents.push(graph)
    if (parents.length > 50) parents.splice(PASSING_PARENTS.length, 1)
  }
  out.push({ text: printLoss(graph), origin, wire: toWire(graph) })
}
process.stdout.write(JSON.stringify({ seed: Number(values.seed), n, candidates: out }) + "\n")
