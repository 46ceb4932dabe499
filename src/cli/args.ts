/** Shared bits of the verbs' argument handling. */

/** node:util's parseArgs messages go on to explain `--` quoting; the first sentence says it all. */
export const firstSentence = (message: string): string => message.split(/\.\s/)[0] ?? message
