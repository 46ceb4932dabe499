// Wire form v1 (protocol/README.md): exact shape, byte-exact msgpack, strict decoding.
import t from "tap"
import assert from "node:assert/strict"
import fc from "fast-check"
import { pack } from "msgpackr"
import { BOX, DENSE } from "../../src/graph/types.ts"
import { parseLoss } from "../../src/graph/syntax.ts"
import { GraphValidationError } from "../../src/graph/validate.ts"
import { GRAPH_WIRE_VERSION, decodeLoss, encodeLoss, fromWire, toWire } from "../../src/graph/wire.ts"
import { FC, anyGraphArb } from "./_arbitraries.ts"

const example = parseLoss("neg(mul(y, log(y_hat)))")

t.test("toWire gives the README's example shape", async (t) => {
  t.equal(GRAPH_WIRE_VERSION, 1)
  t.strictSame(toWire(example), {
    v: 1,
    branches: [{ name: "loss", kind: "dense", inputs: ["y_hat", "y", "one"], tree: ["neg", ["mul", "y", ["log", "y_hat"]]] }]
  })
})

t.test("encodeLoss matches Python msgpack.packb byte for byte", async (t) => {
  // .venv/bin/python -c "import msgpack; print(msgpack.packb({'v':1,'branches':[{'name':'loss','kind':'dense',
  //   'inputs':['y_hat','y','one'],'tree':['neg',['mul','y',['log','y_hat']]]}]}).hex())"
  const python = "82a17601a86272616e636865739184a46e616d65a46c6f7373a46b696e64a564656e7365a6696e7075747393a5795f686174a179" +
    "a36f6e65a47472656592a36e656793a36d756ca17992a36c6f67a5795f686174"
  t.equal(Buffer.from(encodeLoss(example)).toString("hex"), python)
})

t.test("round trips: fromWire(toWire(g)) and decodeLoss(encodeLoss(g)) give g", async (t) => {
  fc.assert(fc.property(anyGraphArb, (g) => {
    assert.deepStrictEqual(fromWire(toWire(g)), g)
    assert.deepStrictEqual(decodeLoss(encodeLoss(g)), g)
  }), FC)
  const det = parseLoss("rpn_cls: neg(mul(y, log(y_hat))); rpn_reg: neg(log(mul(i, inv(e))))")
  const back = fromWire(toWire(det))
  t.equal(back.branches[0]?.kind, DENSE, "built-in kinds come back as the same objects")
  t.equal(back.branches[1]?.kind, BOX)
  const custom = fromWire({ v: 1, branches: [{ name: "kp", kind: "heatmap", inputs: ["y_hat", "y", "w"], tree: ["mul", "w", "y"] }] })
  t.same(custom.branches[0]?.kind, { name: "heatmap", inputs: ["y_hat", "y", "w"] })
})

t.test("a wire version other than 1 is refused", async (t) => {
  const wire = toWire(example)
  t.throws(() => fromWire({ ...wire, v: 2 }), { name: "GraphValidationError", message: "unsupported graph wire version 2 (this build reads 1)" })
  t.throws(() => decodeLoss(pack({ ...wire, v: 2 })), /unsupported graph wire version 2/)
  t.throws(() => fromWire({ branches: wire.branches }), /unsupported graph wire version undefined/)
})

t.test("malformed wire losses are refused with branch and path", async (t) => {
  const b = { name: "cls", kind: "dense", inputs: ["y_hat", "y", "one"], tree: "y" }
  const cases: Array<[what: string, obj: unknown, message: string]> = [
    ["not a map", [1, []], "a wire loss must be a map"],
    ["extra field", { v: 1, branches: [], extra: 1 }, "the wire loss has an unknown field 'extra'"],
    ["branches not an array", { v: 1, branches: {} }, "'branches' must be an array"],
    ["empty", { v: 1, branches: [] }, "a loss needs at least one branch"],
    ["branch not a map", { v: 1, branches: ["y"] }, "#0@[]: a wire branch must be a map"],
    ["branch lacks tree", { v: 1, branches: [{ name: "cls", kind: "dense", inputs: ["y"] }] }, "cls@[]: the branch lacks the field 'tree'"],
    ["branch extra field", { v: 1, branches: [{ ...b, weight: 1 }] }, "cls@[]: the branch has an unknown field 'weight'"],
    ["name not a string", { v: 1, branches: [{ ...b, name: 3 }] }, "#0@[]: 'name' must be a string"],
    ["inputs not strings", { v: 1, branches: [{ ...b, inputs: ["y", 1] }] }, "cls@[]: 'inputs' must be an array of strings"],
    ["inputs repeat", { v: 1, branches: [{ ...b, inputs: ["y", "y"] }] }, "cls@[]: 'inputs' repeats a name"],
    ["unknown operator", { v: 1, branches: [{ ...b, tree: ["neg", ["lgo", "y"]] }] }, "cls@[0]: unknown operator 'lgo'"],
    ["wrong arity", { v: 1, branches: [{ ...b, tree: ["neg", ["mul", "y"]] }] }, "cls@[0]: operator 'mul' takes 2 arguments, got 1"],
    ["number as node", { v: 1, branches: [{ ...b, tree: ["add", "y", 3] }] }, "cls@[1]: not a node: want an input name or [op, ...children]"],
    ["empty array as node", { v: 1, branches: [{ ...b, tree: [] }] }, "cls@[]: not a node: want an input name or [op, ...children]"],
    ["leaf not among inputs", { v: 1, branches: [{ ...b, tree: ["add", "y", ["neg", "i"]] }] }, "cls@[1,0]: unknown input 'i' (kind dense: y_hat, y, one)"],
    ["duplicate names", { v: 1, branches: [b, b] }, "cls@[]: duplicate branch name 'cls'"]
  ]
  for (const [what, obj, message] of cases) {
    const err = t.throws(() => fromWire(obj), GraphValidationError, what) as unknown as GraphValidationError
    t.equal(err.message, message, what)
  }
  t.throws(() => fromWire({ v: 1, branches: [b, { ...b, name: "b2" }] }, { maxBranches: 1 }), /2 branches exceed the limit of 1/)
  t.throws(() => decodeLoss(new Uint8Array([0x92, 0x01])), /not a msgpack loss: Unexpected end/)
  t.throws(() => decodeLoss(new Uint8Array([0x01, 0x02])), /not a msgpack loss/)
})

t.test("a depth bomb fails on depth, not with a stack overflow", async (t) => {
  let tree: unknown = "y"
  for (let i = 0; i < 100_000; i++) tree = ["neg", tree]
  t.throws(() => fromWire({ v: 1, branches: [{ name: "loss", kind: "dense", inputs: ["y"], tree }] }), /loss@\[(0,){15}0\]: depth exceeds the limit of 16 operators/)
})
