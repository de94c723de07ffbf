/**
 * Errors of the process layer, with a stable `PROCESS_ERR_*` code each. Callers branch on `code`,
 * never on the class; every code is in docs/errors.md.
 */
export class ProcessError extends Error {
  readonly code: string
  constructor (code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.name = 'ProcessError'
  }
}

/** A server's command line cannot be understood: a flag is unknown, missing, or out of range. */
export const PROCESS_ERR_USAGE = 'PROCESS_ERR_USAGE'

/**
 * What a bin's `parse` throws for a bad command line: `runServer` prints the message, then the
 * usage, and exits 1 (it does so for any error `parse` throws; this one says it on purpose).
 */
export class UsageError extends ProcessError {
  constructor (message: string, options?: ErrorOptions) {
    super(PROCESS_ERR_USAGE, message, options)
    this.name = 'UsageError'
  }
}
