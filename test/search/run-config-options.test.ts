// Task options from the command line: `--option a.b=V` pairs, and the one merge every verb uses to lay
// them over other options (a fidelity panel's, `--options JSON`'s), key by key inside nested maps.
import t from "tap"
import { mergeOptions, parseOptionPairs } from "../../src/search/run-config.ts"

t.test("--option pairs: dotted keys nest, values are JSON when they parse", async (t) => {
  t.same(parseOptionPairs(["iterations=50", "rejection.samples=3", "config=a/b.py", "flags=[1,2]"]),
    { iterations: 50, rejection: { samples: 3 }, config: "a/b.py", flags: [1, 2] })
  t.throws(() => parseOptionPairs(["iterations"]), /wants KEY=VALUE, got 'iterations'/)
  t.throws(() => parseOptionPairs(["a=1", "a.b=2"]), /'a' was already given a value/)
})

t.test("mergeOptions: over wins, nested maps merge key by key, nothing else merges", async (t) => {
  const panel = { config: "/abs/det_fcos.py", threads: 2, rejection: { samples: 2, seed: 7 }, ids: [1, 2] }
  const cli = parseOptionPairs(["rejection.samples=3", "threads=1", "ids=[3]"])
  t.same(mergeOptions(panel, cli), { config: "/abs/det_fcos.py", threads: 1, rejection: { samples: 3, seed: 7 }, ids: [3] })
  t.same(panel, { config: "/abs/det_fcos.py", threads: 2, rejection: { samples: 2, seed: 7 }, ids: [1, 2] }, "base untouched")
  t.same(mergeOptions({ rejection: { samples: 2 } }, { rejection: 5 }), { rejection: 5 }, "a value replaces a map")
  t.same(mergeOptions({ rejection: 5 }, { rejection: { samples: 2 } }), { rejection: { samples: 2 } }, "a map replaces a value")
  t.same(mergeOptions({}, {}), {})
})
