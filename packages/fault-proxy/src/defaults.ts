/**
 * Every limit and default of the fault proxy, with its unit in the name. Options of
 * `startFaultProxy`, `FaultClient` and the flags of `hsmlab-fault-proxy` fall back to these.
 */
export const faultProxyDefaults = {
  /** Address the HTTP API binds. @default '127.0.0.1' */
  host: '127.0.0.1',
  /** Port the HTTP API binds: Toxiproxy's, so that its clients find it without flags; labs pass 0. @default 8474 */
  port: 8474,
  /** Log level of the bin (pino JSON lines on stderr). @default 'silent' */
  logLevel: 'silent',
  /**
   * Bytes one direction of one connection may hold inside its toxics (and in the destination's
   * write buffer) before the proxy stops reading from the source, so that a slow toxic pushes
   * back on the sender as a slow network would, instead of buffering without bound.
   * @default 4194304
   */
  linkBufferBytesMax: 4 * 1024 * 1024,
  /**
   * Size of the buffer each proxied socket reads into, so the most one read takes. Node's own
   * reads take at most 64 KiB; reading more at once when more is waiting means fewer reads and
   * writes per byte moved. Memory the kernel never wrote into is not resident, so a socket that
   * carries small messages costs little more than with a small buffer.
   * @default 262144
   */
  linkReadBufferBytes: 256 * 1024,
  /** Largest request body the HTTP API reads; a larger one is answered 400 `bad request body`. @default 1048576 */
  apiBodyBytesMax: 1024 * 1024,
  /**
   * Time a client of the HTTP API has to send a request's headers (from connecting, or from the
   * first byte of a request on a kept-alive connection), in milliseconds; past it the server
   * answers 408 and closes the connection, so that half-sent requests cannot hold sockets.
   * @default 10000
   */
  apiHeadersTimeoutMs: 10_000,
  /**
   * Time a client of the HTTP API has to send a whole request, body included, in milliseconds
   * (at least `apiHeadersTimeoutMs`); past it the server answers 408 and closes the connection.
   * @default 30000
   */
  apiRequestTimeoutMs: 30_000,
  /** How long `FaultClient` waits for an answer, in milliseconds. @default 10000 */
  requestTimeoutMs: 10_000,
  /** The Toxiproxy release whose API this proxy serves, reported by `GET /version`. @default '2.12.0' */
  toxiproxyVersion: '2.12.0'
} as const
