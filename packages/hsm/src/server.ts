/**
 * The HSM's WebSocket server: one encrypted channel and one session per connection.
 *
 * A connection opens with a clear `hello` (answered with `welcome`, crypto's handshake); every
 * later message is one request, encrypted by the channel, answered with one encrypted response
 * carrying the same id. Requests of one connection are processed concurrently (at most
 * `requestsInFlightMax`; past that the socket is not read until one finishes). A request that
 * cannot be understood gets an error response and only that request fails:
 *
 * - bytes that are not MessagePack, or not a request map: RET_INVALID_FRAME (id 0 when the frame
 *   names none);
 * - an operation the protocol does not know, or this HSM does not serve: RET_UNKNOWN_OPERATION;
 * - arguments of the wrong shape: RET_INVALID_INPUT, the message naming the field;
 * - a `WireError` from a handler: its return code;
 * - a change the store could not make durable because the disk is full (`STORE_ERR_NO_SPACE`):
 *   RET_STORAGE_FULL, since the store kept nothing of it and takes writes again once there is
 *   space, so the client can act on it (reads go on meanwhile);
 * - any other exception: RET_INTERNAL (logged).
 *
 * A frame that fails to decrypt breaks the channel's counters, so that connection (and only that
 * one) is answered with RET_INVALID_FRAME under id 0 and closed.
 */
import { channel as diagnosticsChannel } from 'node:diagnostics_channel'
import { createServer } from 'node:http'
import type { Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createRequire } from 'node:module'
import type { RawData, WebSocket, WebSocketServer } from 'ws'
import { acceptHandshake } from '@hsmlab/crypto'
import type { SecureChannel } from '@hsmlab/crypto'
import {
  OPERATION_SPECS, PROTOCOL_VERSION, ReturnCode, WireError, asHello, asRequest, checkShape, decode, encode, holdWritesUntilNextTurn, isOperationName
} from '@hsmlab/protocol'
import type { ResponseFrame } from '@hsmlab/protocol'
import { STORE_ERR_NO_SPACE } from '@hsmlab/store'
import type { HandlerTable, HsmContext, Session } from './context.js'
import { HsmError, HSM_ERR_LISTEN } from './errors.js'
import type { Logger } from './logger.js'
import { checkPrecoRestriction } from './permissions.js'
import { createSession, endLogin } from './session.js'

// ws is CommonJS: `require` loads it in about half the time of an ESM import, for which Node first
// scans each of its files for exports (some 15 ms of every HSM start). Its types come from above.
const ws = createRequire(import.meta.url)('ws') as typeof import('ws')

/** Published on `node:diagnostics_channel` after every answered request. */
export interface RequestEvent {
  hsmId: string
  sessionId: number
  id: number
  op: string
  status: number
  durationMs: number
}

/** Name of the diagnostics channel `RequestEvent`s are published on. */
export const REQUEST_CHANNEL = 'hsmlab:hsm:request'
const requestChannel = diagnosticsChannel(REQUEST_CHANNEL)

/** Options of `HsmServer`. */
export interface HsmServerOptions {
  ctx: HsmContext
  /** The set `ctx.sessions` exposes; the server adds and removes the sessions of its connections. */
  sessions: Set<Session>
  handlers: HandlerTable
  logger: Logger
  host: string
  port: number
  frameBytesMax: number
  handshakeTimeoutMs: number
  headersTimeoutMs: number
  heartbeatIntervalMs: number
  requestsInFlightMax: number
  connectionsMax: number
  /** Called once a connection's session has ended (its socket closed), for state kept per session elsewhere. */
  onSessionEnd?: (session: Session) => void
}

type AnyHandler = (ctx: HsmContext, session: Session, args: unknown) => Promise<unknown>

function toBytes (data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data)
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  return data
}

/** How often Node looks for connections past their headers timeout: a quarter of it, 10 ms to 1 s. */
function checkingIntervalMs (timeoutMs: number): number {
  return Math.min(1_000, Math.max(10, Math.floor(timeoutMs / 4)))
}

/** The id of something that looked like a request, or 0. */
function idOf (value: unknown): number {
  if (typeof value === 'object' && value !== null && 'id' in value) {
    const id = value.id
    if (typeof id === 'number' && Number.isSafeInteger(id)) return id
  }
  return 0
}

function errorResponse (id: number, err: WireError): ResponseFrame {
  // The client rebuilds `new WireError(status, message)`, which prefixes the code's own text, so
  // only the detail travels.
  const frame: ResponseFrame = { id, status: err.status }
  if (err.detail !== undefined) frame.message = err.detail
  return frame
}

/** One client (or peer HSM) connection. */
class Connection {
  state: 'handshake' | 'open' | 'closed' = 'handshake'
  channel: SecureChannel | undefined
  readonly session: Session
  alive = true
  inFlight = 0
  paused = false
  /** Its answers of one turn leave in one write (holdWritesUntilNextTurn). */
  writesHeld = false
  readonly socket: WebSocket
  readonly remote: string

  constructor (socket: WebSocket, sessionId: number, remote: string) {
    this.socket = socket
    this.session = createSession(sessionId)
    this.remote = remote
  }
}

/** The WebSocket server of one HSM. Build it, `listen()`, and `close()` once. */
export class HsmServer {
  private readonly options: HsmServerOptions
  private readonly log: Logger
  private readonly connections = new Set<Connection>()
  private readonly inFlight = new Set<Promise<void>>()
  private readonly http: HttpServer
  private readonly wss: WebSocketServer
  private heartbeat: NodeJS.Timeout | undefined
  private nextSessionId = 1
  private closing = false

  constructor (options: HsmServerOptions) {
    this.options = options
    this.log = options.logger
    // A connection must send its whole upgrade request within `headersTimeoutMs` of the first
    // byte (or of connecting), or Node answers 408 and closes it: without this bound, Node's
    // defaults (60 s, checked every 30 s) let half-sent requests hold sockets for a minute and
    // more. The check runs a few times per bound so that a connection is closed soon after it.
    // After the upgrade the socket leaves the HTTP server, and `handshakeTimeoutMs` bounds the
    // wait for `hello`.
    const { headersTimeoutMs } = options
    this.http = createServer({
      headersTimeout: headersTimeoutMs,
      requestTimeout: headersTimeoutMs,
      connectionsCheckingInterval: checkingIntervalMs(headersTimeoutMs)
    }, (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain', connection: 'close' })
      res.end('This is an hsmlab HSM: speak its protocol over a WebSocket.\n')
    })
    this.wss = new ws.WebSocketServer({
      server: this.http,
      maxPayload: options.frameBytesMax,
      perMessageDeflate: false,
      verifyClient: (_info, done) => {
        if (this.closing) done(false, 503, 'HSM shutting down')
        else if (this.connections.size >= options.connectionsMax) done(false, 503, 'too many connections')
        else done(true)
      }
    })
    this.wss.on('connection', (socket, req) => { this.onConnection(socket, `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`) })
    this.wss.on('error', err => { this.log.error({ err }, 'WebSocket server error') })
  }

  /** Binds the host and port; resolves with the port actually bound. */
  async listen (): Promise<{ host: string, port: number }> {
    const { host, port } = this.options
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        reject(new HsmError(HSM_ERR_LISTEN, `cannot listen on ${host}:${port}: ${err.message}`, { cause: err }))
      }
      this.http.once('error', onError)
      this.http.listen(port, host, () => {
        this.http.off('error', onError)
        resolve()
      })
    })
    this.http.on('error', err => { this.log.error({ err }, 'HTTP server error') })
    const { heartbeatIntervalMs } = this.options
    this.heartbeat = setInterval(() => { this.beat() }, heartbeatIntervalMs)
    this.heartbeat.unref()
    const address = this.http.address() as AddressInfo
    return { host, port: address.port }
  }

  /** Number of open connections. */
  get connectionCount (): number {
    return this.connections.size
  }

  /**
   * Stops accepting connections and requests, lets requests in processing finish (at most
   * `timeoutMs`) and send their answers, then closes every connection. Safe to call twice.
   */
  async close (timeoutMs: number): Promise<void> {
    if (this.closing) return
    this.closing = true
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat)
    const httpClosed = new Promise<void>(resolve => { this.http.close(() => { resolve() }) })
    await this.drain(timeoutMs)
    const socketsClosed = [...this.connections].map(async conn => await new Promise<void>(resolve => {
      if (conn.socket.readyState === ws.WebSocket.CLOSED) { resolve(); return }
      conn.socket.once('close', () => { resolve() })
      conn.socket.close(1001, 'HSM shutting down')
      setTimeout(() => { conn.socket.terminate() }, 500).unref()
    }))
    await Promise.all(socketsClosed)
    this.wss.close()
    this.http.closeAllConnections()
    await httpClosed
  }

  private async drain (timeoutMs: number): Promise<void> {
    if (this.inFlight.size === 0) return
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<void>(resolve => { timer = setTimeout(resolve, timeoutMs) })
    await Promise.race([Promise.allSettled([...this.inFlight]), timeout])
    clearTimeout(timer)
    if (this.inFlight.size > 0) this.log.warn({ requests: this.inFlight.size }, 'stopping with requests still in processing')
  }

  private beat (): void {
    for (const conn of this.connections) {
      if (!conn.alive) {
        this.log.info({ session: conn.session.id, remote: conn.remote }, 'dropping a connection that did not answer the heartbeat')
        conn.socket.terminate()
        continue
      }
      conn.alive = false
      conn.socket.ping()
    }
  }

  private onConnection (socket: WebSocket, remote: string): void {
    const conn = new Connection(socket, this.nextSessionId++, remote)
    this.connections.add(conn)
    this.log.debug({ session: conn.session.id, remote }, 'connection opened')
    const handshakeTimer = setTimeout(() => {
      if (conn.state === 'handshake') {
        this.log.info({ session: conn.session.id, remote }, 'dropping a connection that sent no hello')
        socket.terminate()
      }
    }, this.options.handshakeTimeoutMs)
    handshakeTimer.unref()
    socket.on('pong', () => { conn.alive = true })
    socket.on('message', (data, isBinary) => {
      conn.alive = true
      if (conn.state === 'handshake') this.onHello(conn, toBytes(data), isBinary)
      else if (conn.state === 'open') this.onFrame(conn, toBytes(data), isBinary)
    })
    socket.on('error', err => {
      this.log.info({ session: conn.session.id, remote, err: err.message }, 'connection error')
    })
    socket.on('close', () => {
      clearTimeout(handshakeTimer)
      conn.state = 'closed'
      this.connections.delete(conn)
      this.options.sessions.delete(conn.session)
      endLogin(conn.session)
      delete conn.session.peer
      delete conn.session.channel
      this.options.onSessionEnd?.(conn.session)
      this.log.debug({ session: conn.session.id, remote }, 'connection closed')
    })
  }

  private onHello (conn: Connection, bytes: Uint8Array, isBinary: boolean): void {
    const { identity } = this.options.ctx
    try {
      if (!isBinary) throw new WireError(ReturnCode.INVALID_FRAME, 'the first frame must be a binary hello')
      let hello
      try {
        hello = asHello(decode(bytes, this.options.frameBytesMax))
      } catch (err) {
        throw new WireError(ReturnCode.INVALID_FRAME, (err as Error).message)
      }
      if (hello.version !== PROTOCOL_VERSION) {
        throw new WireError(ReturnCode.INVALID_FRAME, `protocol version ${hello.version} is not supported; this HSM speaks version ${PROTOCOL_VERSION}`)
      }
      const { welcome, channel } = acceptHandshake(hello, identity.identity.secretKey, identity.certificate)
      const cert = welcome.certificate
      conn.socket.send(encode({
        type: 'welcome',
        version: PROTOCOL_VERSION,
        ephemeralPublicKey: welcome.ephemeralPublicKey,
        certificate: { hsmId: cert.hsmId, clusterId: cert.clusterId, publicKey: cert.publicKey, signature: cert.signature },
        signature: welcome.signature
      }))
      conn.channel = channel
      conn.session.channel = channel
      conn.state = 'open'
      this.options.sessions.add(conn.session)
      this.log.debug({ session: conn.session.id }, 'handshake done')
    } catch (err) {
      const wire = err instanceof WireError ? err : new WireError(ReturnCode.INVALID_FRAME, (err as Error).message)
      this.log.info({ session: conn.session.id, remote: conn.remote, reason: wire.message }, 'handshake refused')
      // No channel yet: the refusal goes in clear, then the connection closes.
      conn.socket.send(encode(errorResponse(0, wire)))
      conn.state = 'closed'
      conn.socket.close(1002, 'handshake refused')
    }
  }

  private send (conn: Connection, frame: ResponseFrame): void {
    if (conn.channel === undefined || conn.socket.readyState !== ws.WebSocket.OPEN) return
    holdWritesUntilNextTurn(conn.socket, conn)
    // Encrypt and send together: the channel's counter must follow the order of the sends.
    conn.socket.send(conn.channel.encrypt(encode(frame)))
  }

  private onFrame (conn: Connection, bytes: Uint8Array, isBinary: boolean): void {
    if (this.closing) return
    if (!isBinary) {
      this.send(conn, errorResponse(0, new WireError(ReturnCode.INVALID_FRAME, 'text frames are not part of the protocol')))
      return
    }
    const channel = conn.channel as SecureChannel
    let plain: Uint8Array
    try {
      plain = channel.decrypt(bytes)
    } catch (err) {
      this.log.info({ session: conn.session.id, remote: conn.remote, reason: (err as Error).message }, 'closing a connection whose frame failed to decrypt')
      this.send(conn, errorResponse(0, new WireError(ReturnCode.INVALID_FRAME, 'a frame failed to decrypt (changed, replayed or out of order); the connection is closed')))
      conn.state = 'closed'
      conn.socket.close(1002, 'channel broken')
      return
    }
    let value: unknown
    try {
      value = decode(plain, this.options.frameBytesMax)
    } catch (err) {
      this.send(conn, errorResponse(0, new WireError(ReturnCode.INVALID_FRAME, (err as Error).message)))
      return
    }
    let request
    try {
      request = asRequest(value)
    } catch (err) {
      this.send(conn, errorResponse(idOf(value), new WireError(ReturnCode.INVALID_FRAME, (err as Error).message)))
      return
    }
    this.track(conn, request.id, request.op, this.dispatch(conn.session, request.op, request.args))
  }

  private async dispatch (session: Session, op: string, args: unknown): Promise<unknown> {
    if (!isOperationName(op)) throw new WireError(ReturnCode.UNKNOWN_OPERATION, `unknown operation '${op}'`)
    const problem = checkShape(OPERATION_SPECS[op], args)
    if (problem !== undefined) throw new WireError(ReturnCode.INVALID_INPUT, `${op}: ${problem}`)
    // The table is a plain object: only its own entries are handlers, never what it inherits.
    const handlers = this.options.handlers
    const handler = (Object.hasOwn(handlers, op) ? handlers[op] : undefined) as AnyHandler | undefined
    if (handler === undefined) throw new WireError(ReturnCode.UNKNOWN_OPERATION, `this HSM does not serve '${op}'`)
    checkPrecoRestriction(session, op)
    return await handler(this.options.ctx, session, args)
  }

  private track (conn: Connection, id: number, op: string, work: Promise<unknown>): void {
    conn.inFlight++
    if (conn.inFlight >= this.options.requestsInFlightMax && !conn.paused) {
      conn.paused = true
      conn.socket.pause()
    }
    const done = this.answer(conn, id, op, work).finally(() => {
      conn.inFlight--
      this.inFlight.delete(done)
      if (conn.paused && conn.inFlight < this.options.requestsInFlightMax) {
        conn.paused = false
        conn.socket.resume()
      }
    })
    this.inFlight.add(done)
  }

  private async answer (conn: Connection, id: number, op: string, work: Promise<unknown>): Promise<void> {
    const started = performance.now()
    let frame: ResponseFrame
    try {
      const result = await work
      frame = { id, status: 0, result: result ?? {} }
    } catch (err) {
      if (err instanceof WireError) {
        frame = errorResponse(id, err)
      } else if ((err as { code?: unknown }).code === STORE_ERR_NO_SPACE) {
        this.log.warn({ op, session: conn.session.id, err: (err as Error).message }, 'a change did not fit on the disk')
        frame = errorResponse(id, new WireError(ReturnCode.STORAGE_FULL, `${op}: the file system of the HSM's data directory is full; free space on it and retry`))
      } else {
        this.log.error({ err, op, session: conn.session.id }, 'handler failed')
        frame = errorResponse(id, new WireError(ReturnCode.INTERNAL, `${op} failed inside the HSM; see its log`))
      }
    }
    try {
      this.send(conn, frame)
    } catch (err) {
      this.log.error({ err, op, session: conn.session.id }, 'cannot send a response')
      this.send(conn, errorResponse(id, new WireError(ReturnCode.INTERNAL, `the result of ${op} could not be encoded`)))
    }
    if (requestChannel.hasSubscribers) {
      const event: RequestEvent = { hsmId: this.options.ctx.identity.hsmId, sessionId: conn.session.id, id, op, status: frame.status, durationMs: performance.now() - started }
      requestChannel.publish(event)
    }
  }
}
