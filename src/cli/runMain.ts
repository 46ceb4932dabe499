/**
 * Runs a control-plane program so that SIGINT/SIGTERM interrupt it: its scopes close (workers get
 * SIGTERM then SIGKILL, sockets close) before the process exits. A second signal exits at once.
 * Logs go to stderr. Returns the exit code: 0 success, 1 failure (printed), 128 + signal number after a signal.
 */
import { Cause, Effect, Exit, Fiber, Logger } from "effect"

/** Logs (a worker lost, a job re-dispatched) go to stderr: stdout carries only the verb's result. */
const logsToStderr = Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger))

const SIGNAL_CODES = { SIGINT: 2, SIGTERM: 15 } as const

export const runMain = async <A, E>(program: Effect.Effect<A, E>): Promise<number> => {
  const fiber = Effect.runFork(program.pipe(Effect.provide(logsToStderr)))
  let received: keyof typeof SIGNAL_CODES | undefined
  const handlers = (Object.keys(SIGNAL_CODES) as Array<keyof typeof SIGNAL_CODES>).map((signal) => {
    const handler = () => {
      if (received !== undefined) process.exit(128 + SIGNAL_CODES[signal]) // second signal: no more waiting
      received = signal
      process.stderr.write(`autoloss: ${signal}, shutting down workers (again to force)\n`)
      Effect.runFork(Fiber.interrupt(fiber))
    }
    process.on(signal, handler)
    return [signal, handler] as const
  })
  try {
    const exit = await Effect.runPromise(Fiber.await(fiber))
    if (received !== undefined) return 128 + SIGNAL_CODES[received]
    if (Exit.isSuccess(exit)) return 0
    process.stderr.write(`${Cause.pretty(exit.cause)}\n`)
    return 1
  } finally {
    for (const [signal, handler] of handlers) process.off(signal, handler)
  }
}
