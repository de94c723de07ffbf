/**
 * One proxy: a listener, an upstream address, a chain of toxics per direction, and the
 * connections it carries (Toxiproxy's proxy.go). It also carries hsmlab's extensions: the groups
 * it belongs to, and whether one of them is partitioned or blackholed right now.
 */
import { lookup } from 'node:dns/promises'
import { createServer, isIP } from 'node:net'
import type { Server, Socket } from 'node:net'
import { joinHostPort, listenErrorMessage, splitHostPort } from './address.js'
import { Connection } from './connection.js'
import type { ConnectionHost } from './connection.js'
import { ApiError } from './go-json.js'
import type { Logger } from './logger.js'
import { toxicJson } from './toxic.js'
import type { Direction, Toxic, ToxicJson } from './toxic.js'

/** How long `stop` waits for the connections it destroyed to report closed, in milliseconds. */
const STOP_WAIT_MS = 2_000

/** A proxy as the API prints it. `hsmlab` is only there when the proxy has explicit groups. */
export interface ProxyJson {
  name: string
  listen: string
  upstream: string
  enabled: boolean
  toxics: ToxicJson[]
  hsmlab?: { groups: string[] }
}

/** What a proxy needs from the collection that owns it. */
export interface ProxyHost {
  readonly logger: Logger
  readonly bufferBytesMax: number
  readonly readBufferBytes: number
  drawApplied: (proxy: string, connection: number, toxic: Toxic) => boolean
  drawInt: (proxy: string, connection: number, toxic: Toxic, kind: 'jitter' | 'slice', n: number) => number
  onConnectionEvent: (proxy: string, connection: number, event: 'open' | 'close' | 'refused' | 'upstream-failed') => void
}

/** The groups a proxy belongs to: its explicit ones, and every `/` prefix of its name (`a`, `a/b`, `a/b/c`). */
export function effectiveGroups (name: string, explicit: readonly string[]): string[] {
  const groups = new Set<string>()
  const parts = name.split('/')
  for (let i = 1; i <= parts.length; i++) groups.add(parts.slice(0, i).join('/'))
  for (const group of explicit) groups.add(group)
  return [...groups]
}

export class Proxy {
  readonly name: string
  listen: string
  upstream: string
  enabled = false
  /** Explicit groups (`hsmlab.groups`). */
  groups: string[]
  partitioned = false
  blackholed = false
  readonly #host: ProxyHost
  readonly #chains: Record<Direction, Toxic[]> = { upstream: [], downstream: [] }
  readonly #connections = new Set<Connection>()
  #server: Server | undefined
  #nextConnection = 1
  /** Resolves `stop`'s wait once the last connection closed. */
  #onDrained: (() => void) | undefined
  readonly #connectionHost: ConnectionHost

  constructor (host: ProxyHost, init: { name: string, listen: string, upstream: string, groups?: readonly string[] }) {
    this.#host = host
    this.name = init.name
    this.listen = init.listen
    this.upstream = init.upstream
    this.groups = [...(init.groups ?? [])]
    this.#connectionHost = {
      name: this.name,
      logger: host.logger,
      bufferBytesMax: host.bufferBytesMax,
      readBufferBytes: host.readBufferBytes,
      upstreamAddress: () => {
        const parsed = splitHostPort(this.upstream)
        if ('error' in parsed) return undefined
        return { host: parsed.host === '' ? 'localhost' : parsed.host, port: parsed.port }
      },
      toxics: direction => this.#chains[direction],
      isBlackholed: () => this.blackholed,
      drawApplied: (connection, toxic) => host.drawApplied(this.name, connection, toxic),
      drawInt: (connection, toxic, kind, n) => host.drawInt(this.name, connection, toxic, kind, n),
      onEvent: (connection, event) => {
        if (event === 'close') {
          this.#connections.delete(connection)
          if (this.#connections.size === 0) this.#onDrained?.()
        }
        host.onConnectionEvent(this.name, connection.id, event)
      }
    }
  }

  /** Effective groups: explicit ones and the name's prefixes. */
  effectiveGroups (): string[] {
    return effectiveGroups(this.name, this.groups)
  }

  /** Live connections. */
  connectionCount (): number {
    return this.#connections.size
  }

  /** Starts listening; throws an `ApiError` (500) worded as Go's net.Listen when it cannot. */
  async start (): Promise<void> {
    if (this.enabled) return
    const parsed = splitHostPort(this.listen)
    if ('error' in parsed) throw new ApiError(`listen tcp: address ${this.listen}: ${parsed.error}`, 500)
    // Go listens on a host name's first IPv4 address (localhost:0 gives 127.0.0.1:<port>).
    let host = parsed.host
    if (host !== '' && isIP(host) === 0) {
      try {
        host = (await lookup(host, { verbatim: false })).address
      } catch (err) {
        throw new ApiError(listenErrorMessage(this.listen, parsed.host, err as NodeJS.ErrnoException), 500)
      }
    }
    // Paused on connect: a connection takes the accepted socket's handle before anything is read
    // (SocketReader.adopt).
    const server = createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, this.#onConnection)
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new ApiError(listenErrorMessage(this.listen, parsed.host, err), 500))
      }
      server.once('error', onError)
      server.listen({ host: host === '' ? undefined : host, port: parsed.port }, () => {
        server.off('error', onError)
        resolve()
      })
    })
    server.on('error', (err: Error) => { this.#host.logger.warn({ proxy: this.name, err: err.message }, 'error while accepting client') })
    const address = server.address()
    if (address !== null && typeof address === 'object') this.listen = joinHostPort(address.address, address.port)
    this.#server = server
    this.enabled = true
    this.#host.logger.info({ name: this.name, proxy: this.listen, upstream: this.upstream }, 'started proxy')
  }

  /** Stops listening and closes every connection. */
  async stop (): Promise<void> {
    if (!this.enabled) return
    this.enabled = false
    const server = this.#server
    this.#server = undefined
    // The listener closes at once; then the wait is for the connections, destroyed here (the
    // server does not count them: they took over its sockets' handles). The wait is bounded so
    // that an API call can never hang on a socket (Toxiproxy #159, #412).
    const listenerClosed = new Promise<void>(resolve => {
      if (server === undefined) resolve()
      else server.close(() => { resolve() })
    })
    const drained = new Promise<void>(resolve => {
      if (this.#connections.size === 0) resolve()
      else this.#onDrained = resolve
    })
    for (const connection of this.#connections) connection.destroy()
    let timer: NodeJS.Timeout | undefined
    const bounded = new Promise<void>(resolve => { timer = setTimeout(resolve, STOP_WAIT_MS) })
    await Promise.race([Promise.all([listenerClosed, drained]), bounded])
    clearTimeout(timer)
    this.#onDrained = undefined
    this.#host.logger.info({ name: this.name, proxy: this.listen, upstream: this.upstream }, 'terminated proxy')
  }

  #onConnection = (client: Socket): void => {
    const id = this.#nextConnection++
    if (this.partitioned) {
      // Refused: accepted (the kernel already did) and reset at once.
      client.on('error', () => {})
      client.resetAndDestroy()
      this.#host.onConnectionEvent(this.name, id, 'refused')
      return
    }
    if (this.#host.logger.isLevelEnabled('debug')) {
      this.#host.logger.debug({ name: this.name, client: `${client.remoteAddress ?? ''}:${client.remotePort ?? ''}`, proxy: this.listen, upstream: this.upstream }, 'accepted client')
    }
    const connection = new Connection(this.#connectionHost, id, client)
    this.#connections.add(connection)
    connection.start()
  }

  /** All toxics, upstream chain first (Toxiproxy's GetToxicArray order). */
  toxics (): Toxic[] {
    return [...this.#chains.upstream, ...this.#chains.downstream]
  }

  findToxic (name: string): Toxic | undefined {
    return this.#chains.upstream.find(t => t.name === name) ?? this.#chains.downstream.find(t => t.name === name)
  }

  /** Adds a toxic at the end of its direction's chain, on every live connection too. */
  addToxic (toxic: Toxic): void {
    this.#chains[toxic.direction].push(toxic)
    for (const connection of this.#connections) connection.addToxic(toxic)
  }

  /** Replaces a toxic's attributes and toxicity, on every live connection too. */
  updateToxic (toxic: Toxic): void {
    const chain = this.#chains[toxic.direction]
    const index = chain.findIndex(t => t.name === toxic.name)
    if (index < 0) return
    chain[index] = toxic
    for (const connection of this.#connections) connection.updateToxic(toxic)
  }

  /** Removes a toxic; what it held on live connections goes on at once. */
  removeToxic (name: string): boolean {
    const toxic = this.findToxic(name)
    if (toxic === undefined) return false
    const chain = this.#chains[toxic.direction]
    chain.splice(chain.indexOf(toxic), 1)
    for (const connection of this.#connections) connection.removeToxic(toxic)
    return true
  }

  /** Removes every toxic. */
  resetToxics (): void {
    for (const toxic of this.toxics()) this.removeToxic(toxic.name)
  }

  /** Partition on: every connection is reset and new ones are refused; off: new ones are accepted. */
  setPartitioned (on: boolean): void {
    if (this.partitioned === on) return
    this.partitioned = on
    if (on) for (const connection of this.#connections) connection.reset()
  }

  /** Blackhole on: data is dropped both ways; off: data flows again, connections that lost some are closed. */
  setBlackholed (on: boolean): void {
    if (this.blackholed === on) return
    this.blackholed = on
    for (const connection of this.#connections) connection.setBlackholed(on)
  }

  /** Sum of bytes dropped by the blackhole on live connections. */
  droppedBytes (): number {
    let sum = 0
    for (const connection of this.#connections) sum += connection.droppedBytes()
    return sum
  }

  toJSON (): ProxyJson {
    const json: ProxyJson = {
      name: this.name,
      listen: this.listen,
      upstream: this.upstream,
      enabled: this.enabled,
      toxics: this.toxics().map(toxicJson)
    }
    if (this.groups.length > 0) json.hsmlab = { groups: [...this.groups] }
    return json
  }
}
