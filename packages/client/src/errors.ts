/** Errors of the client library; branch on `code`. Failures the HSM reports arrive as `WireError` (@hsmlab/protocol). */
export class ClientError extends Error {
  readonly code: string
  constructor (code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.name = 'ClientError'
  }
}

/** The HSM could not be reached (refused, unreachable, handshake never completed). */
export const CLIENT_ERR_CONNECT = 'CLIENT_ERR_CONNECT'
/** The HSM is not a genuine HSM of the expected cluster (its certificate does not verify). */
export const CLIENT_ERR_UNTRUSTED = 'CLIENT_ERR_UNTRUSTED'
/** The HSM did not answer a request in time. */
export const CLIENT_ERR_TIMEOUT = 'CLIENT_ERR_TIMEOUT'
/** The connection closed before the answer came. */
export const CLIENT_ERR_CLOSED = 'CLIENT_ERR_CLOSED'
/** Too many requests in flight on one connection. */
export const CLIENT_ERR_BUSY = 'CLIENT_ERR_BUSY'
/** A configuration file that cannot be read or is not in the expected shape. */
export const CLIENT_ERR_CONFIG = 'CLIENT_ERR_CONFIG'
