// The Python verdict cache keys a loss by `fastreject.cache.loss_key`, which claims to be the TS
// canonical text (`canonicalText`, what `hashLoss` digests). Both languages key the same losses:
// random and mutated multi-branch losses, including argument swaps of add/mul at any depth.
import t from "tap"
import { execa } from "execa"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { canonicalText } from "../../src/graph/canonical.ts"
import { offspring } from "../../src/graph/mutate.ts"
import { randomLoss } from "../../src/graph/random.ts"
import { Rng } from "../../src/graph/rng.ts"
import { BOX, DENSE, op, type LossGraph, type Node } from "../../src/graph/types.ts"
import { toWire } from "../../src/graph/wire.ts"
import { DEFAULT_PYTHON } from "../../src/workers/internal/localWorkers.ts"

/** The same loss with the arguments of every commutative node swapped (same canonical text). */
const swapped = (g: LossGraph): LossGraph => {
  const swap = (n: Node): Node =>
    n.type === "input" ? n : (n.op === "add" || n.op === "mul") ? op(n.op, swap(n.args[1]!), swap(n.args[0]!)) : op(n.op, ...n.args.map(swap))
  return { branches: g.branches.map((b) => ({ ...b, root: swap(b.root) })) }
}

const losses = (): LossGraph[] => {
  const rng = new Rng(11)
  const out: LossGraph[] = []
  const shapes = [[{ name: "loss", kind: DENSE }], [{ name: "rpn_cls", kind: DENSE }, { name: "rpn_reg", kind: BOX }]]
  for (const shape of shapes) {
    for (let i = 0; i < 60; i++) {
      let g = randomLoss(shape, rng)
      for (let m = 0; m < 3; m++) {
        out.push(g, swapped(g))
        g = offspring(g, rng).graph
      }
    }
  }
  return out
}

t.test("Python's verdict-cache key is the TS canonical text, loss by loss", async (t) => {
  const graphs = losses()
  const dir = mkdtempSync(join(tmpdir(), "autoloss-canonical-"))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, "wires.json")
  writeFileSync(file, JSON.stringify(graphs.map(toWire)))
  const script = [
    "import json, sys",
    "from autoloss_worker.graph import loss_from_wire",
    "from autoloss_worker.fastreject.cache import loss_key",
    "print(json.dumps([loss_key(loss_from_wire(w)) for w in json.load(open(sys.argv[1]))]))"
  ].join("\n")
  const r = await execa(process.env["AUTOLOSS_PYTHON"] ?? DEFAULT_PYTHON, ["-c", script, file])
  const keys = JSON.parse(r.stdout) as string[]
  t.equal(keys.length, graphs.length)
  const differing = graphs.map((g, i) => ({ ts: canonicalText(g), py: keys[i] })).filter((p) => p.ts !== p.py)
  t.same(differing.slice(0, 3), [], `${differing.length} of ${graphs.length} keys differ`)
  // the test has teeth: swapped twins share a key, and most losses differ from each other
  t.equal(keys[0], keys[1], "a loss and its swapped twin share a key")
  t.ok(new Set(keys).size > graphs.length / 4, `${new Set(keys).size} distinct keys`)
  t.ok(graphs.some((g, i) => JSON.stringify(toWire(g)) !== JSON.stringify(toWire(graphs[i ^ 1]!)) && keys[i] === keys[i ^ 1]),
    "some twins differ in argument order yet share a key")
})
