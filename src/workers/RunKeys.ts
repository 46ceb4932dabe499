/**
 * CURVE keys of one run: the pool's key pair and one client key pair shared by the run's workers,
 * stored as `<run>/keys.json` (mode 0600). A remote worker needs the pool's public key and the client
 * pair (`workerKeyFile`); the pool admits only that client key (ZAP), so a peer without the file can
 * neither connect, receive jobs nor submit results.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { curveKeyPair } from "zeromq"

export interface RunKeys {
  readonly serverPublic: string
  readonly serverSecret: string
  readonly clientPublic: string
  readonly clientSecret: string
}

/** What `python -m autoloss_worker --curve-keys-file` reads. */
export interface WorkerKeyFile {
  readonly server_public: string
  readonly client_public: string
  readonly client_secret: string
}

export const KEYS_FILE = "keys.json"

export const generateRunKeys = (): RunKeys => {
  const server = curveKeyPair()
  const client = curveKeyPair()
  return { serverPublic: server.publicKey, serverSecret: server.secretKey, clientPublic: client.publicKey, clientSecret: client.secretKey }
}

const Z85_KEY = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/

const checkKeys = (obj: unknown, path: string): RunKeys => {
  const rec = (typeof obj === "object" && obj !== null ? obj : {}) as Record<string, unknown>
  for (const field of ["serverPublic", "serverSecret", "clientPublic", "clientSecret"] as const) {
    const v = rec[field]
    if (typeof v !== "string" || !Z85_KEY.test(v)) throw new Error(`${path}: '${field}' is not a 40-character Z85 key`)
  }
  return rec as unknown as RunKeys
}

/** Reads `<runDir>/keys.json`, refusing a file that others may read. */
export const readRunKeys = (runDir: string): RunKeys => {
  const path = join(runDir, KEYS_FILE)
  const mode = statSync(path).mode & 0o777
  if ((mode & 0o077) !== 0) throw new Error(`${path} has mode ${mode.toString(8)}; secret keys must be 0600`)
  return checkKeys(JSON.parse(readFileSync(path, "utf8")), path)
}

/** The run's keys: read when present, else generated and written with mode 0600. */
export const ensureRunKeys = (runDir: string): RunKeys => {
  if (existsSync(join(runDir, KEYS_FILE))) return readRunKeys(runDir)
  mkdirSync(runDir, { recursive: true })
  const keys = generateRunKeys()
  const path = join(runDir, KEYS_FILE)
  writeFileSync(path, JSON.stringify(keys, null, 2) + "\n", { mode: 0o600, flag: "wx" })
  chmodSync(path, 0o600) // the umask may have narrowed it further; never wider
  return keys
}

export const workerKeyFile = (keys: RunKeys): WorkerKeyFile => ({
  server_public: keys.serverPublic,
  client_public: keys.clientPublic,
  client_secret: keys.clientSecret
})
