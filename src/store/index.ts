export * as Schema from "./schema.ts"
export * as Store from "./Store.ts"
export * as StoreError from "./StoreError.ts"
