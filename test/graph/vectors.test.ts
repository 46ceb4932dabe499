// The committed golden vectors are exactly what the generator produces now, and their wire bytes,
// text and graphs agree with each other through the TS parser, printer and codec.
import t from "tap"
import { readFileSync } from "node:fs"
import { VECTORS_PATH, type Vectors, buildVectors, formatVectors } from "../../scripts/gen-vectors.ts"
import { parseLoss, printLoss } from "../../src/graph/syntax.ts"
import { GRAPH_WIRE_VERSION, decodeLoss, encodeLoss } from "../../src/graph/wire.ts"
import { OP_NAMES } from "../../src/graph/ops.ts"

const committed = readFileSync(VECTORS_PATH, "utf8")
const vectors = JSON.parse(committed) as Vectors

t.test("committed vectors equal a fresh generation (regenerate with npx tsx scripts/gen-vectors.ts)", async (t) => {
  const fresh = formatVectors(buildVectors())
  t.ok(fresh === committed, "protocol/vectors/graphs.json is up to date")
  t.ok(committed.length < 1024 * 1024, `file is small (${committed.length} bytes)`)
  t.equal(vectors.graph_wire_version, GRAPH_WIRE_VERSION)
})

t.test("wire bytes, text and graph agree for every case", async (t) => {
  for (const c of vectors.cases) {
    const bytes = Buffer.from(c.wire_b64, "base64")
    t.equal(printLoss(decodeLoss(bytes)), c.text, `${c.name}: wire decodes to the text`)
    t.equal(Buffer.from(encodeLoss(parseLoss(c.text))).toString("base64"), c.wire_b64, `${c.name}: text encodes to the wire`)
  }
})

t.test("the cases cover what the protocol promises", async (t) => {
  const texts = vectors.cases.map((c) => c.text)
  for (const op of OP_NAMES) {
    t.ok(texts.some((x) => x.includes(`${op}(`)), `operator ${op} appears`)
  }
  t.ok(vectors.cases.some((c) => c.branches.length > 1), "a multi-branch loss")
  t.ok(vectors.cases.some((c) => /\b[iue]\b/.test(c.text)), "a box branch")
  t.ok(vectors.cases.filter((c) => c.name.startsWith("random_")).length >= 30, "at least 30 random graphs")
  const withGrads = vectors.cases.filter((c) => c.grads !== null)
  t.ok(withGrads.length >= vectors.cases.length * 0.8, "most cases carry gradients")
  for (const c of vectors.cases) {
    // every case without gradients says why
    if (c.grads === null) t.match(c.note, /no grads: /, `${c.name} explains missing grads`)
    t.ok(!("one" in c.inputs), `${c.name}: 'one' is left to the receiver`)
    const sum = c.branches.reduce((s, b) => s + b.value, 0)
    t.ok(Math.abs(sum - c.value) <= 1e-12 * Math.max(1, Math.abs(c.value)), `${c.name}: value is the sum of branch values`)
  }
})
