/**
 * `autoloss keys --run DIR`: prints the worker key file a remote worker needs to join the run's tcp
 * pool (the pool's public key and the run's client key pair; JSON on stdout), creating
 * `DIR/keys.json` (0600) when the run has none yet.
 */
import { writeFileSync } from "node:fs"
import { ensureRunKeys, KEYS_FILE, workerKeyFile } from "../../workers/RunKeys.ts"
import { defineVerb } from "../verb.ts"

export const { spec, summary, run } = defineVerb({
  name: "keys",
  summary: "print the CURVE keys a remote worker needs to join a run's tcp pool",
  flags: {
    run: { type: "string", required: true, value: "DIR", help: "the run directory (its keys.json is created when missing)" },
    out: { type: "string", value: "FILE", help: "write the key file here with mode 0600 instead of printing it", defaultText: "stdout" }
  },
  description: "Anyone holding the key file can join the pool and receive its jobs; keep it secret.\nExit: 0 ok, 1 unreadable or unsafe keys, 2 usage error.",
  examples: ["autoloss keys --run runs/seg-1 --out worker-keys.json"]
}, async ({ values }, io) => {
  const runDir = values.run
  let text: string
  try {
    text = JSON.stringify(workerKeyFile(ensureRunKeys(runDir)), null, 2) + "\n"
  } catch (e) {
    io.stderr(`autoloss keys: ${(e as Error).message}\n`)
    return 1
  }
  if (values.out !== undefined) {
    writeFileSync(values.out, text, { mode: 0o600 })
    io.stderr(`wrote ${values.out} (mode 0600)\n`)
  } else {
    io.stdout(text)
  }
  io.stderr([
    `Keys of ${runDir}/${KEYS_FILE}. On the worker machine, save the JSON above as a file readable only by you`,
    "(chmod 600) and run:",
    "  npx autoloss worker --connect tcp://HOST:PORT --device cuda:0 --keys FILE",
    "Anyone holding this file can join the pool and receive its jobs; keep it secret.", ""
  ].join("\n"))
  return 0
})
