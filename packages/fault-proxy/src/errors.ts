/**
 * Errors of the fault proxy, with a stable `FAULT_ERR_*` code each. Callers branch on `code`, never
 * on the class. Every code is in `FAULT_PROXY_ERROR_CODES` and in docs/errors.md.
 *
 * What the HTTP API answers is not one of these: it answers Toxiproxy's `{"error": "...", "status": N}`
 * bodies. `FaultClient` turns such an answer into a `FaultError` with code `FAULT_ERR_API`, the
 * HTTP status in `statusCode` and the server's message in `apiMessage`.
 */
export class FaultError extends Error {
  readonly code: string
  /** For `FAULT_ERR_API`: the HTTP status the API answered. */
  readonly statusCode: number | undefined
  /** For `FAULT_ERR_API`: the `error` field of the API's answer (`proxy not found`). */
  readonly apiMessage: string | undefined
  constructor (code: string, message: string, options?: ErrorOptions & { statusCode?: number, apiMessage?: string }) {
    super(message, options)
    this.code = code
    this.name = 'FaultError'
    this.statusCode = options?.statusCode
    this.apiMessage = options?.apiMessage
  }
}

/** An option or flag is missing, malformed or out of range (a seed that is not an integer, a bad port). */
export const FAULT_ERR_INVALID_ARGUMENT = 'FAULT_ERR_INVALID_ARGUMENT'
/** The HTTP API could not listen on the requested host and port. */
export const FAULT_ERR_LISTEN = 'FAULT_ERR_LISTEN'
/** The `--config` file cannot be read, is not a JSON array of proxies, or populating from it failed. */
export const FAULT_ERR_CONFIG = 'FAULT_ERR_CONFIG'
/** The API answered with an error; `statusCode` and `apiMessage` say which. */
export const FAULT_ERR_API = 'FAULT_ERR_API'
/** The API could not be reached, or answered something that is not its JSON. */
export const FAULT_ERR_HTTP = 'FAULT_ERR_HTTP'
/** A request of `FaultClient` got no answer within `requestTimeoutMs`. */
export const FAULT_ERR_TIMEOUT = 'FAULT_ERR_TIMEOUT'

/** Every code of this package. */
export const FAULT_PROXY_ERROR_CODES: readonly string[] = [
  FAULT_ERR_INVALID_ARGUMENT,
  FAULT_ERR_LISTEN,
  FAULT_ERR_CONFIG,
  FAULT_ERR_API,
  FAULT_ERR_HTTP,
  FAULT_ERR_TIMEOUT
]
