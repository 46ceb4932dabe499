// Every verb in src/cli/verbs answers --help from its declared spec: each option it parses, each
// default, examples that are valid command lines. Runs the verbs in-process; the routing in
// main.ts (`autoloss help VERB`, `VERB --help`, `VERB -h`) once through the real binary.
import t from "tap"
import { execa } from "execa"
import { fileURLToPath } from "node:url"
import { loadVerb, verbNames } from "../../src/cli/registry.ts"
import { parseVerbArgs, type VerbOutput } from "../../src/cli/verb.ts"

const bin = fileURLToPath(new URL("../../bin/autoloss.js", import.meta.url))

const capture = () => {
  const out = { stdout: "", stderr: "" }
  const io: VerbOutput = { stdout: (s) => { out.stdout += s }, stderr: (s) => { out.stderr += s } }
  return { out, io }
}

/** A shell command line's words: whitespace splits outside single or double quotes. */
const words = (line: string): string[] =>
  [...line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!)

const names = verbNames()
t.ok(names.length >= 16, `${names.length} verbs found in src/cli/verbs`)

for (const name of names) {
  t.test(`${name} --help`, async (t) => {
    const verb = await loadVerb(name)
    if (verb.spec === undefined) {
      t.fail(`${name} declares no spec: build it with defineVerb (src/cli/verb.ts) so it answers --help`)
      return
    }
    const spec = verb.spec
    t.equal(spec.name, name, "the spec names its own verb")
    for (const argv of [["--help"], ["-h"]]) {
      const { out, io } = capture()
      t.equal(await verb.run(argv, io), 0, `${argv[0]} exits 0`)
      t.equal(out.stderr, "")
      const help = out.stdout
      t.match(help, new RegExp(`^usage: autoloss ${name}\\b`))
      t.match(help, spec.summary)
      for (const [flag, f] of Object.entries(spec.flags)) {
        const line = help.split("\n").find((l) => l.includes(`--${flag} `) || l.endsWith(`--${flag}`))
        t.ok(line !== undefined, `--${flag} is in the help`)
        const shown = f.defaultText ?? (f.default === undefined || f.default === false ? undefined : String(f.default))
        if (shown !== undefined) t.match(help, `[default: ${shown}]`, `--${flag}'s default is in the help`)
      }
      t.match(help, /\nexamples:\n {2}autoloss /)
    }
    t.ok(spec.examples.length > 0, "at least one example")
    for (const example of spec.examples) {
      const [prog, verbWord, ...argv] = words(example)
      t.same([prog, verbWord], ["autoloss", name], `example '${example}' runs this verb`)
      t.doesNotThrow(() => parseVerbArgs(spec, argv), `example '${example}' parses`)
    }
    // The verb parses with this very spec: an undeclared flag is refused with the synopsis, exit 2.
    const { out, io } = capture()
    t.equal(await verb.run(["--no-such-flag"], io), 2)
    t.match(out.stderr, new RegExp(`^autoloss ${name}: Unknown option '--no-such-flag'\\nusage: autoloss ${name}`))
  })
}

t.test("the binary routes help: `help VERB`, `VERB --help`, `VERB -h` print the same; `help` lists the verbs", async (t) => {
  const [viaHelp, viaFlag, viaShort, list] = await Promise.all([
    execa("node", [bin, "help", "search"], { reject: false }),
    execa("node", [bin, "search", "--help"], { reject: false }),
    execa("node", [bin, "search", "--task", "seg", "-h"], { reject: false }),
    execa("node", [bin, "help"], { reject: false })
  ])
  for (const r of [viaHelp, viaFlag, viaShort, list]) t.equal(r.exitCode, 0, r.stderr)
  t.match(viaHelp.stdout, /^usage: autoloss search --task T --out DIR \[options\]\n/)
  t.match(viaHelp.stdout, /--budget N +losses to proxy-train \(with asha: full-proxy equivalents\)\s+\[default: 500\]/)
  t.match(viaHelp.stdout, /--fidelity full\|asha\[:eta=E,min=F\] +full: every admitted loss/)
  t.equal(viaFlag.stdout, viaHelp.stdout)
  t.equal(viaShort.stdout, viaHelp.stdout)
  for (const name of names) t.match(list.stdout, new RegExp(`\\n {2}${name} +\\S`), `help lists ${name}`)
  const unknown = await execa("node", [bin, "help", "serach"], { reject: false })
  t.equal(unknown.exitCode, 2)
  t.match(unknown.stderr, /unknown verb 'serach'/)
})
