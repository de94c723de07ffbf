/**
 * One client connection through a proxy: the accepted socket, the socket to the upstream, and
 * the two links between them (upstream = client → server, downstream = server → client).
 *
 * Half-closes pass through (a client's FIN reaches the server as a FIN once the data before it
 * is out); an error or reset on either side destroys both. A connection accepted while its proxy
 * is blackholed is held: no upstream is dialled and what the client sends is dropped, as if its
 * packets were lost; on heal it dials the upstream if nothing was lost, else it is closed.
 */
import type { Socket } from 'node:net'
import { Link } from './link.js'
import type { LinkOwner } from './link.js'
import type { Logger } from './logger.js'
import { SocketReader } from './socket-reader.js'
import type { Toxic } from './toxic.js'

/** What a connection needs from its proxy. */
export interface ConnectionHost {
  readonly name: string
  readonly logger: Logger
  readonly bufferBytesMax: number
  readonly readBufferBytes: number
  /** `host:port` of the upstream, parsed; undefined when it cannot be parsed. */
  upstreamAddress: () => { host: string, port: number } | undefined
  toxics: (direction: 'upstream' | 'downstream') => readonly Toxic[]
  isBlackholed: () => boolean
  drawApplied: (connection: number, toxic: Toxic) => boolean
  drawInt: (connection: number, toxic: Toxic, kind: 'jitter' | 'slice', n: number) => number
  onEvent: (connection: Connection, event: 'open' | 'close' | 'upstream-failed') => void
}

type State = 'connecting' | 'held' | 'open' | 'closing' | 'closed'

function resetSocket (socket: Socket): void {
  if (socket.destroyed) return
  // resetAndDestroy needs a connected TCP handle; a socket still connecting is just destroyed.
  if (socket.connecting) socket.destroy()
  else socket.resetAndDestroy()
}

function endSocket (socket: Socket): void {
  if (socket.destroyed) return
  if (socket.writableEnded) {
    if (socket.writableFinished) socket.destroy()
    else socket.once('finish', () => socket.destroy())
    return
  }
  socket.end(() => { socket.destroy() })
}

export class Connection implements LinkOwner {
  readonly id: number
  readonly client: Socket
  upstream: Socket | undefined
  #host: ConnectionHost
  readonly #clientReader: SocketReader
  readonly #upstreamReader: SocketReader
  #state: State = 'connecting'
  #links: Link[] = []
  #heldDroppedBytes = 0
  #clientClosed = false
  #upstreamClosed = true

  /** `accepted`: the socket as the proxy's listener (with `pauseOnConnect`) accepted it. */
  constructor (host: ConnectionHost, id: number, accepted: Socket) {
    this.#host = host
    this.id = id
    this.#clientReader = new SocketReader(host.readBufferBytes)
    this.#upstreamReader = new SocketReader(host.readBufferBytes)
    const client = this.#clientReader.adopt(accepted, { allowHalfOpen: true })
    this.client = client
    client.setNoDelay(true)
    client.on('error', this.#onError)
    client.on('close', this.#onClientClose)
  }

  /** Dials the upstream (or holds the client while the proxy is blackholed). */
  start (): void {
    if (this.#host.isBlackholed()) this.#hold()
    else this.#dial()
  }

  #hold (): void {
    this.#state = 'held'
    this.#clientReader.consumer = this.#dropHeld
    this.client.once('end', this.#heldEnd)
    this.client.resume()
  }

  // A held client that hangs up has nobody to tell: there is no upstream yet.
  #heldEnd = (): void => {
    if (this.#state === 'held') this.destroy()
  }

  #dropHeld = (chunk: Buffer): boolean => {
    this.#heldDroppedBytes += chunk.length
    return false
  }

  #dial (): void {
    const address = this.#host.upstreamAddress()
    if (address === undefined) {
      this.#host.logger.error({ proxy: this.#host.name }, 'unable to open connection to upstream: bad address')
      this.#host.onEvent(this, 'upstream-failed')
      this.destroy()
      return
    }
    this.#state = 'connecting'
    this.#upstreamClosed = false
    const upstream = this.#upstreamReader.connect({ host: address.host, port: address.port, allowHalfOpen: true, noDelay: true })
    this.upstream = upstream
    upstream.on('error', this.#onUpstreamError)
    upstream.on('close', this.#onUpstreamClose)
    upstream.once('connect', () => {
      if (this.#state !== 'connecting') return
      this.#state = 'open'
      const options = { bufferBytesMax: this.#host.bufferBytesMax, blackholed: this.#host.isBlackholed() }
      const up = new Link(this, 'upstream', this.client, this.#clientReader, upstream, this.#host.toxics('upstream'), options)
      const down = new Link(this, 'downstream', upstream, this.#upstreamReader, this.client, this.#host.toxics('downstream'), options)
      this.#links = [up, down]
      up.start()
      down.start()
      this.#host.onEvent(this, 'open')
    })
  }

  #onError = (err: Error): void => {
    this.#host.logger.debug({ proxy: this.#host.name, connection: this.id, err: err.message }, 'connection error')
    this.destroy()
  }

  #onUpstreamError = (err: Error): void => {
    if (this.#state === 'connecting') {
      // Toxiproxy closes the client when the upstream cannot be reached (#265: accept, then fail).
      this.#host.logger.error({ proxy: this.#host.name, upstream: this.#host.upstreamAddress(), err: err.message }, 'unable to open connection to upstream')
      this.#host.onEvent(this, 'upstream-failed')
    }
    this.#onError(err)
  }

  #onClientClose = (): void => {
    this.#clientClosed = true
    this.#maybeClosed()
  }

  #onUpstreamClose = (): void => {
    this.#upstreamClosed = true
    this.#maybeClosed()
  }

  #maybeClosed (): void {
    if (this.#state === 'closed') return
    // A socket that closes while the other has not even started (held, dialling) ends it all.
    if (this.#clientClosed && this.#state !== 'open' && this.#state !== 'closing') {
      this.destroy()
    }
    if (!this.#clientClosed || !this.#upstreamClosed) return
    this.#state = 'closed'
    for (const link of this.#links) link.close()
    this.#host.onEvent(this, 'close')
  }

  link (direction: 'upstream' | 'downstream'): Link | undefined {
    return this.#links.find(l => l.direction === direction)
  }

  addToxic (toxic: Toxic): void {
    this.link(toxic.direction)?.addToxic(toxic)
  }

  removeToxic (toxic: Toxic): void {
    this.link(toxic.direction)?.removeToxic(toxic.name)
  }

  updateToxic (toxic: Toxic): void {
    this.link(toxic.direction)?.updateToxic(toxic)
  }

  /** Starts or stops the blackhole; on heal, a connection that lost data is closed. */
  setBlackholed (on: boolean): void {
    if (this.#state === 'held') {
      if (on) return
      this.client.off('end', this.#heldEnd)
      if (this.#heldDroppedBytes > 0) {
        this.close()
        return
      }
      // Nothing is read until the upstream link starts.
      this.client.pause()
      this.#dial()
      return
    }
    if (this.#state !== 'open') return
    if (!on && this.#links.some(l => l.droppedBytes > 0)) {
      this.close()
      return
    }
    for (const link of this.#links) link.setBlackholed(on)
  }

  /** Bytes dropped by a blackhole so far, both directions. */
  droppedBytes (): number {
    return this.#heldDroppedBytes + this.#links.reduce((sum, l) => sum + l.droppedBytes, 0)
  }

  // LinkOwner
  drawApplied (toxic: Toxic): boolean {
    return this.#host.drawApplied(this.id, toxic)
  }

  drawInt (toxic: Toxic, kind: 'jitter' | 'slice', n: number): number {
    return this.#host.drawInt(this.id, toxic, kind, n)
  }

  /** Graceful close of both sockets once what was written to them is out (FIN). */
  close (): void {
    if (this.#state === 'closed' || this.#state === 'closing') return
    this.#state = 'closing'
    for (const link of this.#links) link.close()
    endSocket(this.client)
    if (this.upstream !== undefined) endSocket(this.upstream)
  }

  /** TCP RST to both peers. */
  reset (): void {
    if (this.#state === 'closed') return
    this.#state = 'closing'
    for (const link of this.#links) link.close()
    resetSocket(this.client)
    if (this.upstream !== undefined) resetSocket(this.upstream)
  }

  /** Closes both sockets now (what Toxiproxy does when a proxy is disabled or deleted). */
  destroy (): void {
    if (this.#state === 'closed') return
    if (this.#state !== 'closing') this.#state = 'closing'
    for (const link of this.#links) link.close()
    this.client.destroy()
    this.upstream?.destroy()
  }
}
