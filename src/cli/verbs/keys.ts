/**
 * `autoloss keys --run DIR [--out FILE]`: prints the worker key file a remote worker needs to join
 * the run's tcp pool (the pool's public key and the run's client key pair; JSON on stdout), creating
 * `DIR/keys.json` (0600) when the run has none yet. `--out` writes the file with mode 0600 instead.
 * Exit 0 ok, 1 unreadable or unsafe keys, 2 usage error.
 */
import { writeFileSync } from "node:fs"
import { parseArgs } from "node:util"
import { ensureRunKeys, KEYS_FILE, workerKeyFile } from "../../workers/RunKeys.ts"
import { firstSentence } from "../args.ts"

export const summary = "print the CURVE keys a remote worker needs to join a run's tcp pool"

const USAGE = "usage: autoloss keys --run DIR [--out FILE]"

export const run = async (argv: ReadonlyArray<string>): Promise<number> => {
  let runDir: string | undefined
  let out: string | undefined
  try {
    const { values } = parseArgs({ args: [...argv], options: { run: { type: "string" }, out: { type: "string" } }, strict: true })
    runDir = values.run
    out = values.out
  } catch (e) {
    process.stderr.write(`autoloss keys: ${firstSentence((e as Error).message)}\n${USAGE}\n`)
    return 2
  }
  if (runDir === undefined) {
    process.stderr.write(`autoloss keys: --run is required\n${USAGE}\n`)
    return 2
  }
  let text: string
  try {
    text = JSON.stringify(workerKeyFile(ensureRunKeys(runDir)), null, 2) + "\n"
  } catch (e) {
    process.stderr.write(`autoloss keys: ${(e as Error).message}\n`)
    return 1
  }
  if (out !== undefined) {
    writeFileSync(out, text, { mode: 0o600 })
    process.stderr.write(`wrote ${out} (mode 0600)\n`)
  } else {
    process.stdout.write(text)
  }
  process.stderr.write([
    `Keys of ${runDir}/${KEYS_FILE}. On the worker machine, save the JSON above as a file readable only by you`,
    "(chmod 600) and run:",
    "  npx autoloss worker --connect tcp://HOST:PORT --device cuda:0 --keys FILE",
    "Anyone holding this file can join the pool and receive its jobs; keep it secret.", ""
  ].join("\n"))
  return 0
}
