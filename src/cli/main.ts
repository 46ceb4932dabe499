/**
 * `autoloss <verb> [args]`: each verb lives in its own module `./verbs/<verb>.ts` and exports what
 * `defineVerb` (`./verb.ts`) builds from its declared command line: `spec`, `summary` and
 * `run(argv)` (the exit code). `autoloss help VERB` and `autoloss VERB --help` print its full usage.
 */
import { loadVerb, verbNames, type VerbModule } from "./registry.ts"
import { formatHelp, wantsHelp } from "./verb.ts"

const usage = async (): Promise<string> => {
  const lines = ["usage: autoloss <verb> [options]       autoloss help <verb> (or autoloss <verb> --help)", "", "verbs:"]
  for (const name of verbNames()) lines.push(`  ${name.padEnd(12)} ${(await loadVerb(name)).summary}`)
  return lines.join("\n")
}

const help = (name: string, verb: VerbModule): string =>
  verb.spec !== undefined ? formatHelp(verb.spec) : `autoloss ${name}: ${verb.summary}\n`

const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  const [name, ...rest] = argv
  if (name === undefined || name === "--help" || name === "-h" || (name === "help" && rest.length === 0)) {
    process.stdout.write((await usage()) + "\n")
    return name === undefined ? 2 : 0
  }
  const verbName = name === "help" ? rest[0]! : name
  if (!verbNames().includes(verbName)) {
    process.stderr.write(`autoloss: unknown verb '${verbName}'\n\n${await usage()}\n`)
    return 2
  }
  const verb = await loadVerb(verbName)
  if (name === "help" || (verb.spec === undefined && wantsHelp(rest))) {
    process.stdout.write(help(verbName, verb))
    return 0
  }
  return verb.run(rest)
}

process.exitCode = await main(process.argv.slice(2))
