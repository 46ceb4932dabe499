/**
 * A verb declares its command line once (`VerbSpec`): the same declaration parses its arguments,
 * prints `autoloss VERB --help` (every option, its default, examples) and is what the help test
 * checks. `defineVerb(spec, body)` gives the `run(argv)` that `main.ts` calls:
 * `--help`/`-h` anywhere before `--` prints the full usage and exits 0; a `UsageError` (or a
 * flag parseArgs refuses) prints the message and the synopsis and exits 2.
 */
import { parseArgs } from "node:util"
import { firstSentence, UsageError } from "./args.ts"

export interface FlagSpec {
  readonly type: "string" | "boolean"
  readonly multiple?: boolean
  readonly short?: string
  /** Applied by the parser when the flag is absent, and shown in the help. */
  readonly default?: string | boolean
  /** Shown in the help when the default is computed later (e.g. "the task's", "2 × workers"). */
  readonly defaultText?: string
  /** Placeholder for the value in the help, e.g. "N", "DIR". */
  readonly value?: string
  /** The parser refuses a command line without it. */
  readonly required?: boolean
  readonly help: string
}

export type FlagSpecs = Readonly<Record<string, FlagSpec>>

export interface VerbSpec<F extends FlagSpecs = FlagSpecs> {
  readonly name: string
  readonly summary: string
  /** What follows the verb on the synopsis line besides the options, e.g. `DIR`, `"<expr>"`. */
  readonly positionals?: string
  /** What one positional is, for the error when their count is wrong ("run directory"). */
  readonly positionalNoun?: string
  /** How many positionals the verb takes (default none); checked before the body runs. */
  readonly positionalCount?: number | "any"
  readonly flags: F
  /** Paragraphs after the option list: what the verb does, exit codes. */
  readonly description: string
  readonly examples: ReadonlyArray<string>
}

/** The values parseArgs yields for these flags (string | boolean | arrays, defaults filled in). */
type ValueOf<S extends FlagSpec> =
  S["type"] extends "boolean"
    ? (S["multiple"] extends true ? boolean[] : boolean)
    : (S["multiple"] extends true ? string[] : string)
export type FlagValues<F extends FlagSpecs> = {
  -readonly [K in keyof F]: F[K]["default"] extends string | boolean ? ValueOf<F[K]>
    : F[K]["required"] extends true ? ValueOf<F[K]> : ValueOf<F[K]> | undefined
}

export interface Parsed<F extends FlagSpecs> {
  readonly values: FlagValues<F>
  readonly positionals: ReadonlyArray<string>
}

/** Where a verb writes; tests pass their own to capture output without a subprocess. */
export interface VerbOutput {
  readonly stdout: (text: string) => void
  readonly stderr: (text: string) => void
}

export const processOutput: VerbOutput = {
  stdout: (text) => { process.stdout.write(text) },
  stderr: (text) => { process.stderr.write(text) }
}

export interface Verb<F extends FlagSpecs = FlagSpecs> {
  readonly spec: VerbSpec<F>
  readonly summary: string
  readonly run: (argv: ReadonlyArray<string>, out?: VerbOutput) => Promise<number>
}

const flagLabel = (name: string, f: FlagSpec): string =>
  `${f.short === undefined ? "" : `-${f.short}, `}--${name}${f.type === "string" ? ` ${f.value ?? "VALUE"}` : ""}`

/** The one-line synopsis: positionals and required flags, then a pointer to the full help. */
export const synopsis = (spec: VerbSpec): string => {
  const required = Object.entries(spec.flags).filter(([, f]) => f.required === true).map(([name, f]) => flagLabel(name, f))
  const head = [`autoloss ${spec.name}`, ...(spec.positionals === undefined ? [] : [spec.positionals]), ...required].join(" ")
  return `usage: ${head} [options]   ('autoloss help ${spec.name}' lists them)`
}

const HELP_WIDTH = 100

/** `text` in lines of at most `width` characters (words never split), each after `indent`. */
const wrap = (text: string, indent: number, width = HELP_WIDTH): string[] => {
  const lines: string[] = []
  let line = ""
  for (const word of text.split(" ")) {
    if (line !== "" && indent + line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else {
      line = line === "" ? word : `${line} ${word}`
    }
  }
  lines.push(line)
  return lines.map((l, i) => (i === 0 ? l : " ".repeat(indent) + l))
}

/** The full usage: synopsis, every option with its default, description, examples. */
export const formatHelp = (spec: VerbSpec): string => {
  const entries = Object.entries(spec.flags)
  const labels = entries.map(([name, f]) => flagLabel(name, f))
  const width = Math.min(34, Math.max(...labels.map((l) => l.length), 10)) + 2
  const lines = [synopsis(spec).replace(/ {3}\(.*\)$/, ""), "", spec.summary, "", "options:"]
  entries.forEach(([, f], i) => {
    const label = labels[i]!
    const dflt = f.defaultText ?? (f.default === undefined || f.default === false ? undefined : String(f.default))
    // the default is one unbreakable token (NUL for its spaces until wrapped)
    const text = `${f.required === true ? "(required) " : ""}${f.help}${f.multiple === true ? " (repeatable)" : ""}` +
      (dflt === undefined ? "" : ` [default: ${dflt}]`.replace(/(?<=.) /g, "\0"))
    const body = wrap(text, width + 2).join("\n").replace(/\0/g, " ")
    lines.push(label.length + 2 > width ? `  ${label}\n  ${" ".repeat(width)}${body}` : `  ${label.padEnd(width)}${body}`)
  })
  lines.push(`  ${"-h, --help".padEnd(width)}print this help and exit`)
  lines.push("", ...spec.description.trim().split("\n"), "", "examples:", ...spec.examples.map((e) => `  ${e}`))
  return lines.join("\n") + "\n"
}

/** True when the command line asks for help (`--help`/`-h` before any `--`). */
export const wantsHelp = (argv: ReadonlyArray<string>): boolean => {
  const end = argv.indexOf("--")
  return (end === -1 ? argv : argv.slice(0, end)).some((a) => a === "--help" || a === "-h")
}

/** Parses `argv` against the spec; every refusal is a `UsageError`. */
export const parseVerbArgs = <F extends FlagSpecs>(spec: VerbSpec<F>, argv: ReadonlyArray<string>): Parsed<F> => {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string; default?: string | boolean }> = {}
  for (const [name, f] of Object.entries(spec.flags)) {
    options[name] = {
      type: f.type,
      ...(f.multiple === undefined ? {} : { multiple: f.multiple }),
      ...(f.short === undefined ? {} : { short: f.short }),
      ...(f.default === undefined ? {} : { default: f.default })
    }
  }
  let parsed
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: true })
  } catch (e) {
    throw new UsageError(firstSentence((e as Error).message))
  }
  for (const [name, f] of Object.entries(spec.flags)) {
    if (f.required === true && parsed.values[name] === undefined) throw new UsageError(`--${name} is required`)
  }
  const want = spec.positionalCount ?? 0
  const got = parsed.positionals.length
  if (want !== "any" && got !== want) {
    throw new UsageError(want === 0
      ? `unexpected argument '${parsed.positionals[0]}'`
      : `want exactly ${want === 1 ? "one" : want} ${spec.positionalNoun ?? spec.positionals ?? "argument"}, got ${got}`)
  }
  return { values: parsed.values as FlagValues<F>, positionals: parsed.positionals }
}

/**
 * The verb: help, parsing and usage errors handled here, the body gets parsed values. A body may
 * throw `UsageError` for checks of its own (exit 2); anything else it throws is a bug.
 */
export const defineVerb = <const F extends FlagSpecs>(
  spec: VerbSpec<F>,
  body: (args: Parsed<F>, out: VerbOutput) => Promise<number>
): Verb<F> => ({
  spec,
  summary: spec.summary,
  run: async (argv, out = processOutput) => {
    if (wantsHelp(argv)) {
      out.stdout(formatHelp(spec))
      return 0
    }
    try {
      return await body(parseVerbArgs(spec, argv), out)
    } catch (e) {
      if (!(e instanceof UsageError)) throw e
      out.stderr(`autoloss ${spec.name}: ${e.message}\n${synopsis(spec)}\n`)
      return 2
    }
  }
})
