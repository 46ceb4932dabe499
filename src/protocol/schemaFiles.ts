/**
 * The JSON files under `protocol/schemas/`: one JSON Schema per message type, the tensor schema and
 * the protocol constants. `scripts/gen-schemas.ts` writes them; a test checks the committed copies.
 */
import {
  BLOB_FRAME_MIN_BYTES, FRAME_REF_EXT_TYPE, HEARTBEAT_INTERVAL_MS, HEARTBEAT_LIVENESS, MAX_FRAME_BYTES,
  MESSAGE_TYPES, PROTOCOL_VERSION, RECONNECT_INITIAL_MS, RECONNECT_MAX_MS, TENSOR_DTYPES, DTYPE_BYTES
} from "./constants.ts"
import { MESSAGE_SCHEMAS, Tensor } from "./messages.ts"

const DIALECT = "https://json-schema.org/draft/2020-12/schema"

const withHeader = (id: string, schema: object): object => ({
  $schema: DIALECT,
  $id: `https://autoloss.invalid/protocol/v${PROTOCOL_VERSION}/${id}.json`,
  title: id,
  ...schema
})

/** File name → file text (2-space JSON with a final newline). */
export const schemaFiles = (): Record<string, string> => {
  const files: Record<string, object> = {}
  for (const type of MESSAGE_TYPES) files[`${type}.json`] = withHeader(type, MESSAGE_SCHEMAS[type])
  files["tensor.json"] = withHeader("tensor", Tensor)
  files["constants.json"] = {
    PROTOCOL_VERSION, HEARTBEAT_INTERVAL_MS, HEARTBEAT_LIVENESS, RECONNECT_INITIAL_MS,
    RECONNECT_MAX_MS, MAX_FRAME_BYTES, FRAME_REF_EXT_TYPE, BLOB_FRAME_MIN_BYTES, MESSAGE_TYPES, TENSOR_DTYPES, DTYPE_BYTES
  }
  return Object.fromEntries(Object.entries(files).map(([name, obj]) => [name, JSON.stringify(obj, null, 2) + "\n"]))
}
