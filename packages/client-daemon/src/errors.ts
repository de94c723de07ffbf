/** Errors of the client daemon; branch on `code`. */
export class ClientDaemonError extends Error {
  readonly code: string
  constructor (code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.name = 'ClientDaemonError'
  }
}

/** The daemon's socket cannot be made (the path is taken by a live daemon, or its directory is not writable). */
export const CLIENT_DAEMON_ERR_LISTEN = 'CLIENT_DAEMON_ERR_LISTEN'
/** A frame on the daemon's socket that cannot be read (too large, truncated, unknown operation or tag); the connection is closed. */
export const CLIENT_DAEMON_ERR_FRAME = 'CLIENT_DAEMON_ERR_FRAME'

/** Every code above, for the errors/docs test. */
export const CLIENT_DAEMON_ERROR_CODES: readonly string[] = [CLIENT_DAEMON_ERR_LISTEN, CLIENT_DAEMON_ERR_FRAME]
