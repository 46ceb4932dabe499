/**
 * Where V8 marks the old generation. By default helper threads mark concurrently with JavaScript.
 * When local workers already occupy the machine's cores, those helper threads take CPU from the
 * workers instead of using idle cores: on the 2-core development machine with one local worker,
 * 4 MB echo jobs ran at 390–520 MB/s with concurrent marking and 716–897 MB/s without it
 * (`bench/fabric.ts` measures both). Each large received message is external memory, and external
 * memory is what starts the marking cycles, so large payloads make this matter.
 */
import { availableParallelism } from "node:os"
import { setFlagsFromString } from "node:v8"

/** "auto": turn concurrent marking off when local workers leave at most one core free. */
export type ConcurrentMarking = "auto" | "on" | "off"

/** What to do with V8's flag. "auto" never turns marking on: V8 sets its marking machinery up at
 * start, and a process started with `--no-concurrent-marking` must not have it switched on later. */
export const markingAction = (policy: ConcurrentMarking, cores: number, localWorkers: number): "on" | "off" | "leave" => {
  if (policy !== "auto") return policy
  return localWorkers > 0 && cores <= localWorkers + 1 ? "off" : "leave"
}

/** Applies the policy to the whole process (V8 reads the flag at the start of each marking cycle);
 * returns what it did. */
export const applyConcurrentMarking = (policy: ConcurrentMarking, localWorkers: number, cores = availableParallelism()) => {
  const action = markingAction(policy, cores, localWorkers)
  if (action !== "leave") setFlagsFromString(action === "on" ? "--concurrent-marking" : "--no-concurrent-marking")
  return action
}
