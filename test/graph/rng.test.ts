// PCG32 against the published pcg-c-basic demo output and an independent Python reference.
import t from "tap"
import { Rng } from "../../src/graph/rng.ts"
import { within5Sigma } from "./_arbitraries.ts"

const draws = (rng: Rng, n: number, f: (r: Rng) => number = (r) => r.uint32()): number[] =>
  Array.from({ length: n }, () => f(rng))

t.test("seed 42 reproduces pcg32-demo (initstate 42, initseq 54)", async (t) => {
  t.same(draws(new Rng(42), 6), [0xa15c02b7, 0x7b47f409, 0xba1d3330, 0x83d2f293, 0xbfa4784b, 0xcbed606e])
})

t.test("seeds using the high 32 bits match a Python big-integer PCG32", async (t) => {
  // python: state=0; inc=(54<<1)|1; step; state+=seed; step; out = rotr32(((old>>18)^old)>>27, old>>59)
  t.same(draws(new Rng(0), 4), [1203932051, 3113183783, 2101201694, 4034269462])
  t.same(draws(new Rng(2 ** 53 - 1), 4), [2285046032, 1746973319, 2855516544, 1678796242])
})

t.test("derived draws follow from uint32", async (t) => {
  const raw = draws(new Rng(42), 6)
  // (2^32 − 10) mod 10 = 6, and none of these is below it, so int(10) is a plain modulo here.
  t.same(draws(new Rng(42), 6, (r) => r.int(10)), raw.map((x) => x % 10))
  t.same(draws(new Rng(42), 6, (r) => r.float()), raw.map((x) => x / 2 ** 32))
  t.same(draws(new Rng(42), 3, (r) => r.pick(["a", "b", "c"]).charCodeAt(0)), raw.slice(0, 3).map((x) => 97 + (x % 3)))
})

t.test("int is uniform and in range, chance has its probability", async (t) => {
  const rng = new Rng(7)
  const n = 30_000
  const counts = [0, 0, 0]
  for (let i = 0; i < n; i++) counts[rng.int(3)]! += 1
  t.ok(counts.every((c) => within5Sigma(c, n, 1 / 3)), `counts ${counts}`)
  let hits = 0
  for (let i = 0; i < n; i++) if (rng.chance(0.1)) hits += 1
  t.ok(within5Sigma(hits, n, 0.1), `${hits} hits`)
  t.ok(draws(rng, 100, (r) => r.int(1)).every((x) => x === 0))
  t.ok(draws(rng, 100, (r) => r.int(2 ** 32)).every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32))
  t.notOk(draws(rng, 1000, (r) => (r.chance(0) ? 1 : 0)).includes(1))
  t.notOk(draws(rng, 1000, (r) => (r.chance(1) ? 1 : 0)).includes(0))
})

t.test("state round trip resumes the exact stream", async (t) => {
  const rng = new Rng(12345)
  draws(rng, 17)
  const state = rng.getState()
  t.match(state, /^pcg32:[0-9a-f]{16}:[0-9a-f]{16}$/)
  const copy = Rng.fromState(state)
  t.same(draws(copy, 100), draws(rng, 100))
  t.equal(copy.getState(), rng.getState())
})

t.test("bad arguments are refused", async (t) => {
  for (const seed of [-1, 1.5, Number.NaN, 2 ** 53]) t.throws(() => new Rng(seed), RangeError, `seed ${seed}`)
  for (const n of [0, -3, 2.5, 2 ** 32 + 1]) t.throws(() => new Rng(1).int(n), RangeError, `int(${n})`)
  t.throws(() => new Rng(1).pick([]), RangeError)
  t.throws(() => Rng.fromState("xoshiro:00"), /not an Rng state/)
  t.throws(() => Rng.fromState("pcg32:0000000000000000:0000000000000002"), /even increment/)
})
