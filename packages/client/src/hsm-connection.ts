import { createRequire } from 'node:module'
import type WebSocket from 'ws'
import { ClientHandshake, CryptoError } from '@hsmlab/crypto'
import type { HsmCertificate, SecureChannel } from '@hsmlab/crypto'
import {
  FRAME_BYTES_MAX, PENDING_REQUESTS_MAX, PROTOCOL_VERSION, REQUEST_TIMEOUT_MS, WireError,
  asResponse, asWelcome, decode, encode, holdWritesUntilNextTurn
} from '@hsmlab/protocol'
import type { OperationArgs, OperationName, OperationResult, WriteHold } from '@hsmlab/protocol'
import { CONNECT_TIMEOUT_MS } from './defaults.js'
import {
  ClientError, CLIENT_ERR_BUSY, CLIENT_ERR_CLOSED, CLIENT_ERR_CONNECT, CLIENT_ERR_TIMEOUT, CLIENT_ERR_UNTRUSTED
} from './errors.js'

/** ws's `generateMask`: leaves the masking key all zero (see `connect`). */
function zeroMask (mask: Buffer): void {
  mask.fill(0)
}

// ws is CommonJS: `require` loads it in about half the time of an ESM import, for which Node first
// scans each of its files for exports (some 15 ms of every process start). Types come from above.
const ws = createRequire(import.meta.url)('ws') as typeof import('ws')

/** Options of `HsmConnection.connect`. */
export interface ConnectOptions {
  /** `ws://host:port` of the HSM. */
  url: string
  /** Public key of the cluster's trust anchor (the configuration's CAfile). */
  trustAnchor: Uint8Array
  /** Refuse an HSM of any other cluster. */
  expectedClusterId?: string
  /** For HSM-to-HSM links: prove this HSM's identity right after the handshake (`peerHello`). */
  peerIdentity?: { secretKey: Uint8Array, certificate: HsmCertificate }
  /** @default 5000 */
  connectTimeoutMs?: number
  /** @default 30000 */
  requestTimeoutMs?: number
  /** @default 1024 */
  pendingRequestsMax?: number
}

interface Pending {
  resolve: (value: unknown) => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

function toBytes (data: WebSocket.RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data)
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  return data
}

/**
 * One encrypted connection to one HSM. Requests may be pipelined; each response is matched by id.
 * A non-zero status rejects with a `WireError` carrying the HSM's return code.
 */
export class HsmConnection {
  readonly url: string
  readonly certificate: HsmCertificate
  private readonly socket: WebSocket
  private readonly channel: SecureChannel
  private readonly pending = new Map<number, Pending>()
  /** The requests of one turn leave in one write (holdWritesUntilNextTurn). */
  private readonly writeHold: WriteHold = { writesHeld: false }
  private readonly closeListeners: Array<(reason: Error) => void> = []
  private readonly requestTimeoutMs: number
  private readonly pendingRequestsMax: number
  private nextId = 1
  private closedWith: Error | undefined

  private constructor (url: string, socket: WebSocket, channel: SecureChannel, options: ConnectOptions) {
    this.url = url
    this.socket = socket
    this.channel = channel
    if (channel.peerCertificate === undefined) throw new Error('client channel without a peer certificate')
    this.certificate = channel.peerCertificate
    this.requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS
    this.pendingRequestsMax = options.pendingRequestsMax ?? PENDING_REQUESTS_MAX
    socket.on('message', data => { this.onMessage(toBytes(data)) })
    socket.on('close', () => { this.shutdown(new ClientError(CLIENT_ERR_CLOSED, `the connection to ${url} closed`)) })
    socket.on('error', err => { this.shutdown(new ClientError(CLIENT_ERR_CLOSED, `the connection to ${url} failed: ${err.message}`, { cause: err })) })
  }

  /** The HSM's id, from its verified certificate. */
  get hsmId (): string { return this.certificate.hsmId }
  /** The HSM's cluster, from its verified certificate. */
  get clusterId (): string { return this.certificate.clusterId }
  /** True once the connection is closed; calls then fail with CLIENT_ERR_CLOSED. */
  get closed (): boolean { return this.closedWith !== undefined }

  /** Connects, checks the HSM against the trust anchor, and sets up the encrypted channel. */
  static async connect (options: ConnectOptions): Promise<HsmConnection> {
    const connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS
    // A zero masking key: ws then neither copies nor XORs each frame it sends (in JavaScript, ~4%
    // of a client daemon's CPU per 4 KiB PKCS#11 call), and the HSM's ws does not XOR it back.
    // Masking keeps a browser's script from steering the bytes an HTTP proxy on the path sees;
    // these frames come from no browser and are AES-GCM ciphertext already.
    const socket = new ws.WebSocket(options.url, { maxPayload: FRAME_BYTES_MAX, handshakeTimeout: connectTimeoutMs, perMessageDeflate: false, generateMask: zeroMask })
    const handshake = new ClientHandshake()
    let connection: HsmConnection
    try {
      const channel = await new Promise<SecureChannel>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new ClientError(CLIENT_ERR_CONNECT, `${options.url} did not complete the handshake within ${connectTimeoutMs} ms`)) }, connectTimeoutMs)
        const fail = (err: Error): void => { clearTimeout(timer); reject(err) }
        socket.once('error', err => { fail(new ClientError(CLIENT_ERR_CONNECT, `cannot connect to ${options.url}: ${err.message}`, { cause: err })) })
        socket.once('close', () => { fail(new ClientError(CLIENT_ERR_CONNECT, `${options.url} closed the connection during the handshake`)) })
        socket.once('open', () => {
          socket.send(encode({ type: 'hello', version: PROTOCOL_VERSION, ...handshake.hello }))
        })
        socket.once('message', data => {
          clearTimeout(timer)
          try {
            const welcome = asWelcome(decode(toBytes(data)))
            resolve(handshake.finish(welcome, options.trustAnchor, options.expectedClusterId))
          } catch (err) {
            const untrusted = err instanceof CryptoError
            reject(new ClientError(untrusted ? CLIENT_ERR_UNTRUSTED : CLIENT_ERR_CONNECT, `${options.url}: ${(err as Error).message}`, { cause: err }))
          }
        })
      })
      socket.removeAllListeners()
      connection = new HsmConnection(options.url, socket, channel, options)
    } catch (err) {
      socket.removeAllListeners()
      socket.on('error', () => {})
      socket.terminate()
      throw err
    }
    if (options.peerIdentity !== undefined) {
      const proof = connection.channel.proveIdentity(options.peerIdentity.secretKey, options.peerIdentity.certificate)
      try {
        await connection.call('peerHello', { certificate: { ...proof.certificate }, signature: proof.signature })
      } catch (err) {
        await connection.close()
        throw err
      }
    }
    return connection
  }

  /** Sends one request and resolves with its result. */
  async call<O extends OperationName> (op: O, args: OperationArgs<O>, options: { timeoutMs?: number } = {}): Promise<OperationResult<O>> {
    if (this.closedWith !== undefined) throw this.closedWith
    if (this.pending.size >= this.pendingRequestsMax) {
      throw new ClientError(CLIENT_ERR_BUSY, `${this.pending.size} requests are already waiting for ${this.url}`)
    }
    const id = this.nextId++
    const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs
    const result = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new ClientError(CLIENT_ERR_TIMEOUT, `${this.url} did not answer ${op} within ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(id, { resolve, reject, timer })
    })
    holdWritesUntilNextTurn(this.socket, this.writeHold)
    this.socket.send(this.channel.encrypt(encode({ id, op, args })))
    return await (result as Promise<OperationResult<O>>)
  }

  /** Called once when the connection closes, with the reason. */
  onClose (listener: (reason: Error) => void): void {
    if (this.closedWith !== undefined) listener(this.closedWith)
    else this.closeListeners.push(listener)
  }

  /** Closes the connection; pending calls fail with CLIENT_ERR_CLOSED. Safe to call twice. */
  async close (): Promise<void> {
    if (this.socket.readyState === ws.WebSocket.CLOSED) { this.shutdown(new ClientError(CLIENT_ERR_CLOSED, `the connection to ${this.url} was closed`)); return }
    const closed = new Promise<void>(resolve => { this.socket.once('close', () => { resolve() }) })
    this.shutdown(new ClientError(CLIENT_ERR_CLOSED, `the connection to ${this.url} was closed`))
    this.socket.close()
    const timer = setTimeout(() => { this.socket.terminate() }, 1000)
    await closed
    clearTimeout(timer)
  }

  private onMessage (bytes: Uint8Array): void {
    let frame
    try {
      frame = asResponse(decode(this.channel.decrypt(bytes)))
    } catch (err) {
      // A frame that fails to decrypt breaks the channel's counter: nothing after it can be trusted.
      this.shutdown(new ClientError(CLIENT_ERR_CLOSED, `${this.url} sent a frame that could not be read: ${(err as Error).message}`, { cause: err }))
      this.socket.terminate()
      return
    }
    const pending = this.pending.get(frame.id)
    if (pending === undefined) return
    this.pending.delete(frame.id)
    clearTimeout(pending.timer)
    if (frame.status === 0) pending.resolve(frame.result ?? {})
    else pending.reject(new WireError(frame.status, frame.message))
  }

  private shutdown (reason: Error): void {
    if (this.closedWith !== undefined) return
    this.closedWith = reason
    for (const p of this.pending.values()) { clearTimeout(p.timer); p.reject(reason) }
    this.pending.clear()
    for (const listener of this.closeListeners.splice(0)) listener(reason)
  }
}
