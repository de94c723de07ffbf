/**
 * Errors of the console, with a stable `CONSOLE_ERR_*` code each (docs/errors.md). What the
 * console answers a browser is an HTTP status with a JSON `{ code, message }` body; the codes
 * below are those of the process itself and of its API's refusals.
 */
export class ConsoleError extends Error {
  readonly code: string
  constructor (code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.name = 'ConsoleError'
  }
}

/** The console could not listen on 127.0.0.1 at the port asked for. */
export const CONSOLE_ERR_LISTEN = 'CONSOLE_ERR_LISTEN'
/** A request of the page was malformed (a body that is not JSON, a field missing); answered with 400. */
export const CONSOLE_ERR_REQUEST = 'CONSOLE_ERR_REQUEST'
/** What the page asked the lab to do failed (the control plane or the fault proxy refused it); answered with 502 and the lab's message. */
export const CONSOLE_ERR_LAB = 'CONSOLE_ERR_LAB'

/** Every code of this package. */
export const CONSOLE_ERROR_CODES: readonly string[] = [CONSOLE_ERR_LISTEN, CONSOLE_ERR_REQUEST, CONSOLE_ERR_LAB]
