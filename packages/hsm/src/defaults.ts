/**
 * Every limit and timeout of the HSM node, with its unit in the name and its default. Options of
 * `startHsm`, `provisionHsm` and the `hsmlab-hsm` flags fall back to these.
 */
import { FRAME_BYTES_MAX } from '@hsmlab/protocol'

export const hsmDefaults = {
  /** Address the server binds. @default '127.0.0.1' */
  host: '127.0.0.1',
  /** Port the server binds; 0 lets the system choose (read it from the ready line). @default 0 */
  port: 0,
  /** Token keys a cluster may hold (reference B/C: 3,300 per cluster). @default 3300 */
  keysMax: 3300,
  /** Users an HSM may hold (reference B.2: 1,024 per cluster). @default 1024 */
  usersMax: 1024,
  /** Failed logins after which a user is locked out (reference B.2). @default 5 */
  loginFailuresMax: 5,
  /**
   * scrypt cost N of new password verifiers (r = 8, p = 1, so 128·N·r bytes = 4 MiB of memory).
   * Real HSMs do not stretch passwords the way a web service must; we keep a verifier on disk
   * only because the store is ours, and CMU logs in on every HSM of a cluster at once, so a
   * login must stay in the low milliseconds: N = 4096 takes about 10 ms on one core, a quarter
   * of the crypto package's default. Existing verifiers keep the cost they were made with.
   * @default 4096
   */
  passwordHashCost: 4096,
  /** Largest WebSocket message accepted, in bytes (ws `maxPayload`). @default 16777216 (16 MiB) */
  frameBytesMax: FRAME_BYTES_MAX,
  /**
   * Time a connection has to send its whole HTTP upgrade request (from connecting, or from the
   * first byte of a request), in milliseconds; past it the server answers 408 and closes the
   * connection, so that half-sent requests cannot hold sockets. @default 10000
   */
  headersTimeoutMs: 10_000,
  /** A connection that has not sent its `hello` by then (after the upgrade) is dropped, in milliseconds. @default 5000 */
  handshakeTimeoutMs: 5_000,
  /**
   * Interval of WebSocket pings; a connection that did not answer the previous ping is dropped,
   * in milliseconds. @default 30000
   */
  heartbeatIntervalMs: 30_000,
  /**
   * Requests one connection may have in processing; past it the server stops reading that
   * socket until one finishes (back-pressure, nothing is refused). @default 1024
   */
  requestsInFlightMax: 1024,
  /** Open connections the server accepts; more are refused at the WebSocket upgrade. @default 4096 */
  connectionsMax: 4096,
  /** How long `stop()` waits for requests in processing before it closes the stores, in milliseconds. @default 5000 */
  stopTimeoutMs: 5_000,
  /** Handles of one HSM are `slot * handlesPerSlot + n`. @default 262144 */
  handlesPerSlot: 262_144,
  /** The first `n` an HSM gives out in its slot (the AWS examples start at 6). @default 6 */
  firstHandleIndex: 6,
  /** Slots are 0 to `slotsMax - 1`, so that every handle fits in 31 bits. @default 8192 */
  slotsMax: 8_192,
  /**
   * Handles given out for key creations in flight that the key table remembers; past it, those
   * long stored are forgotten (and, if still full, all of them). @default 4096
   */
  reservedHandlesMax: 4_096,
  /**
   * How long a key creation with minServers > 1 waits for the key to reach that many HSMs when
   * the request gives no timeout, in milliseconds. @default 10000
   */
  keySyncTimeoutMs: 10_000,
  /**
   * How far the time a backup request was signed at (`exportBackup`'s `requestedAtMs`) may be
   * from this HSM's clock, either way, in milliseconds; it bounds how long a captured request can
   * be replayed. @default 300000 (5 minutes)
   */
  backupRequestSkewMsMax: 300_000,
  /**
   * How long a quorum token is kept after getToken, in milliseconds ("by default, tokens expire
   * ten minutes after their creation"). @default 600000 (10 minutes)
   */
  quorumTokenTtlMs: 600_000,
  /** Quorum tokens an HSM holds at once ("the HSM can store up to 1024 quorum tokens"). @default 1024 */
  quorumTokensMax: 1024,
  /**
   * Changes the synchronisation change sequence keeps (syncChanges); a caller that fell further
   * behind gets a full answer instead. About 100 bytes each. @default 65536
   */
  syncChangesRetainedMax: 65_536
} as const
