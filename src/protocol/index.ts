/** Messages between the pool and its workers: constants, TypeBox schemas, msgpack codec, tensors. */
export * as Codec from "./codec.ts"
export * as Constants from "./constants.ts"
export * as Messages from "./messages.ts"
export * as Tensors from "./tensors.ts"
