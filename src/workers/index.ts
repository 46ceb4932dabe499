/** The worker fabric: a ZeroMQ pool of long-lived Python workers (see `WorkerPool.ts`). */
export * as PoolError from "./PoolError.ts"
export * as RunKeys from "./RunKeys.ts"
export * as WorkerPool from "./WorkerPool.ts"
export { runMain } from "./runMain.ts"
