/**
 * Where V8 marks the old generation. By default helper threads mark concurrently with JavaScript.
 * When local workers already occupy the machine's cores, those helper threads take CPU from the
 * workers instead of using idle cores: on the 2-core development machine with one local worker,
 * 4 MB echo jobs ran at 350–500 MB/s with concurrent marking and 560–700 MB/s without it
 * (`bench/fabric.ts` measures both). Each large received message is external memory, and external
 * memory is what starts the marking cycles, so large payloads make this matter.
 */
import { availableParallelism } from "node:os"
import { setFlagsFromString } from "node:v8"

/** "auto": mark on the main thread when local workers leave at most one core free. */
export type ConcurrentMarking = "auto" | "on" | "off"

export const concurrentMarkingWanted = (policy: ConcurrentMarking, cores: number, localWorkers: number): boolean => {
  if (policy !== "auto") return policy === "on"
  return localWorkers === 0 || cores > localWorkers + 1
}

/** Sets V8's flag for the whole process (it is read at the start of each marking cycle); a later
 * pool with another policy sets it again. Returns whether marking is now concurrent. */
export const applyConcurrentMarking = (policy: ConcurrentMarking, localWorkers: number, cores = availableParallelism()): boolean => {
  const on = concurrentMarkingWanted(policy, cores, localWorkers)
  setFlagsFromString(on ? "--concurrent-marking" : "--no-concurrent-marking")
  return on
}
