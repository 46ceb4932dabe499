// `autoloss parse | random | mutate` end to end (each spawn costs about a second: keep them few).
import t from "tap"
import { execa } from "execa"
import { fileURLToPath } from "node:url"
import { Rng } from "../../src/graph/rng.ts"
import { randomLoss } from "../../src/graph/random.ts"
import { offspring } from "../../src/graph/mutate.ts"
import { parseLoss, printLoss } from "../../src/graph/syntax.ts"
import { BOX, DENSE } from "../../src/graph/types.ts"

const bin = fileURLToPath(new URL("../../bin/autoloss.js", import.meta.url))
const autoloss = (...args: string[]) => execa("node", [bin, ...args], { reject: false })

t.test("parse --json: canonical form, hash, depth, size, LaTeX", async (t) => {
  const ok = await autoloss("parse", "rpn_cls: neg(mul(y, log(y_hat))); rpn_reg: neg(log(mul(i, inv(e))))", "--json")
  t.equal(ok.exitCode, 0, ok.stderr)
  const report = JSON.parse(ok.stdout) as Record<string, unknown>
  t.same(report, {
    ok: true,
    canonical: "rpn_cls: neg(mul(log(y_hat), y)); rpn_reg: neg(log(mul(i, inv(e))))",
    hash: "511fdb8404af40ef",
    depth: 4, // max over branches (rpn_reg: neg → log → mul → inv)
    size: 5 + 6, // sum over branches
    latex: "L_{\\mathrm{rpn\\_cls}} = -y \\cdot \\log\\left(\\hat{y}\\right),\\quad L_{\\mathrm{rpn\\_reg}} = -\\log\\left(i \\cdot \\frac{1}{e + \\epsilon}\\right)",
    branches: [{ name: "rpn_cls", kind: "dense", depth: 3, size: 5 }, { name: "rpn_reg", kind: "box", depth: 4, size: 6 }]
  })
})

t.test("parse errors and bad flags: exit 2, a syntax error with its column", async (t) => {
  const bad = await autoloss("parse", "neg(lgo(y))", "--json")
  t.equal(bad.exitCode, 2)
  t.same(JSON.parse(bad.stdout), { ok: false, error: "unknown operator 'lgo' at column 5", column: 5 })
  const human = await autoloss("parse", "add(y)")
  t.equal(human.exitCode, 2)
  t.match(human.stderr, /operator 'add' takes 2 arguments, got 1 at column 1\n  add\(y\)\n  \^/)
  const flag = await autoloss("random", "--seed", "1", "--colour")
  t.equal(flag.exitCode, 2)
  t.match(flag.stderr, /Unknown option '--colour'\nusage: autoloss random/)
})

t.test("random and mutate print what the library gives for the seed", async (t) => {
  const random = await autoloss("random", "--seed", "9", "--count", "3", "--branches", "cls:dense,reg:box")
  t.equal(random.exitCode, 0, random.stderr)
  const rng = new Rng(9)
  const spec = [{ name: "cls", kind: DENSE }, { name: "reg", kind: BOX }]
  t.same(random.stdout.split("\n"), Array.from({ length: 3 }, () => printLoss(randomLoss(spec, rng))))

  const parent = "neg(mul(y, log(y_hat)))"
  const mutate = await autoloss("mutate", parent, "--seed", "4", "--count", "5", "--json")
  t.equal(mutate.exitCode, 0, mutate.stderr)
  const lines = mutate.stdout.split("\n").map((l) => JSON.parse(l) as { loss: string; hash: string; how: unknown })
  const mrng = new Rng(4)
  const want = Array.from({ length: 5 }, () => offspring(parseLoss(parent), mrng))
  t.same(lines.map((l) => l.loss), want.map((o) => printLoss(o.graph)))
  t.same(lines.map((l) => l.how), want.map((o) => o.how))
})

t.test("--kind: a box branch built only from `one` stays a box branch", async (t) => {
  const inferred = await autoloss("parse", "reg: exp(one)", "--json")
  t.equal((JSON.parse(inferred.stdout) as { branches: Array<{ kind: string }> }).branches[0]!.kind, "dense", "inferred from its leaves")
  const given = await autoloss("parse", "reg: exp(one)", "--kind", "reg=box", "--json")
  t.equal((JSON.parse(given.stdout) as { branches: Array<{ kind: string }> }).branches[0]!.kind, "box")
  // mutations of a box branch draw box leaves (i, u, e), never y_hat or y
  const kids = await autoloss("mutate", "reg: exp(one)", "--kind", "reg=box", "--seed", "2", "--count", "30")
  t.equal(kids.exitCode, 0, kids.stderr)
  t.notMatch(kids.stdout, /y_hat|\by\b/)
  t.match(kids.stdout, /\b[iue]\b/)
  const bad = await autoloss("mutate", "reg: exp(one)", "--kind", "reg=boxy", "--seed", "2")
  t.equal(bad.exitCode, 2)
  t.match(bad.stderr, /--kind wants BRANCH=dense\|box, got 'reg=boxy'/)
})
