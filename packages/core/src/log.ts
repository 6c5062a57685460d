/** Anything with `warn` (console, pino, winston): usagewire reports what it could not understand there. */
export interface Logger {
  warn(message: string): void
}

/** Tells `logger`, if any; a logger that throws is no reason to fail a response or a sink. */
export function warn(logger: Logger | undefined, message: string): void {
  try {
    logger?.warn(`usagewire: ${message}`)
  } catch {
    // Nothing to do: the message is lost, the response is not.
  }
}

/**
 * What `error` says, for a log line: never throws, whatever was thrown (an object without a prototype,
 * or with a `toString` that throws, has no string form).
 */
export function describeError(error: unknown): string {
  try {
    if (error instanceof Error) return String(error.message)
    return String(error)
  } catch {
    return Object.prototype.toString.call(error)
  }
}
