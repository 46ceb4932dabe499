/** Shared bits of the verbs' argument handling. */
import { DEFAULT_PYTHON } from "../workers/internal/localWorkers.ts"

/** node:util's parseArgs messages go on to explain `--` quoting; the first sentence says it all. */
export const firstSentence = (message: string): string => message.split(/\.\s/)[0] ?? message

/** The interpreter the verbs run Python jobs with: the project's venv, unless AUTOLOSS_PYTHON names another. */
export const verbPython = (): string => process.env["AUTOLOSS_PYTHON"] ?? DEFAULT_PYTHON
