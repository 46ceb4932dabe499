/**
 * A ZAP handler (ZeroMQ RFC 27) admitting CURVE clients by public key, per ZAP domain.
 * libzmq consults the handler bound at `inproc://zeromq.zap.01` of the socket's context: one per
 * process (zeromq.js's default context), shared by every pool through `allowClients`.
 */
import { Router } from "zeromq"

const ZAP_ENDPOINT = "inproc://zeromq.zap.01"

/** domain → admitted client public keys (Z85) */
const domains = new Map<string, ReadonlySet<string>>()
let handler: Router | undefined

const Z85_CHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

/** Z85-encodes a 32-byte key (ZeroMQ RFC 32), to compare ZAP's raw credentials with our text keys. */
export const z85Encode = (bytes: Uint8Array): string => {
  if (bytes.length % 4 !== 0) throw new Error(`z85: length ${bytes.length} is not a multiple of 4`)
  let out = ""
  for (let i = 0; i < bytes.length; i += 4) {
    let value = ((bytes[i]! << 24) >>> 0) + (bytes[i + 1]! << 16) + (bytes[i + 2]! << 8) + bytes[i + 3]!
    const chunk: string[] = []
    for (let j = 0; j < 5; j++) {
      chunk.unshift(Z85_CHARS[value % 85]!)
      value = Math.floor(value / 85)
    }
    out += chunk.join("")
  }
  return out
}

const text = (frame: Buffer | undefined): string => (frame ? frame.toString("utf8") : "")

const serve = async (socket: Router): Promise<void> => {
  for (;;) {
    let frames: Buffer[]
    try {
      frames = await socket.receive()
    } catch {
      return // closed
    }
    // [routing id, empty delimiter, version, request id, domain, address, identity, mechanism, credentials...]
    const [peer, delimiter, version, requestId, domain, , , mechanism, credentials] = frames
    if (!peer || !delimiter || !requestId) continue
    const allowed = domains.get(text(domain))
    const key = credentials && credentials.length === 32 ? z85Encode(credentials) : undefined
    const ok = text(version) === "1.0" && text(mechanism) === "CURVE" && key !== undefined && allowed?.has(key) === true
    try {
      await socket.send([peer, delimiter, "1.0", requestId, ok ? "200" : "400", ok ? "OK" : "client key not admitted", ok ? key : "", ""])
    } catch {
      return
    }
  }
}

/** Admits `clientKeys` on `domain` until the returned release is called. */
export const allowClients = async (domain: string, clientKeys: ReadonlyArray<string>): Promise<() => void> => {
  if (domains.has(domain)) throw new Error(`ZAP domain ${domain} is already registered`)
  domains.set(domain, new Set(clientKeys))
  if (!handler) {
    handler = new Router({ linger: 0 })
    await handler.bind(ZAP_ENDPOINT)
    void serve(handler)
  }
  return () => {
    domains.delete(domain)
    if (domains.size === 0 && handler) {
      handler.close()
      handler = undefined
    }
  }
}
