/**
 * Runs a control-plane program so that SIGINT/SIGTERM interrupt it: its scopes close (workers get
 * SIGTERM then SIGKILL, sockets close) before the process exits. A second signal exits at once.
 * Returns the exit code: 0 success, 1 failure (printed), 128 + signal number after a signal.
 */
import { Cause, Effect, Exit, Fiber } from "effect"

const SIGNAL_CODES = { SIGINT: 2, SIGTERM: 15 } as const

export const runMain = async <A, E>(program: Effect.Effect<A, E>): Promise<number> => {
  const fiber = Effect.runFork(program)
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
