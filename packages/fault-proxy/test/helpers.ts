/**
 * Helpers of the fault proxy's tests: a server on port 0 stopped when the test ends, upstream
 * TCP servers whose accepted sockets the test can drive, and client sockets that record what
 * they receive and how they ended. Every wait is on a condition with a deadline.
 */
import { connect, createServer } from 'node:net'
import type { Server, Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { onTestFinished } from 'vitest'
import { waitFor } from '@hsmlab/testing'
import { FaultClient, startFaultProxy } from '../src/index.js'
import type { FaultProxy, FaultProxyOptions } from '../src/index.js'

export { waitFor }

/** A socket and what happened to it. */
export class Peer {
  readonly socket: Socket
  chunks: Buffer[] = []
  /** Time of each chunk's arrival (performance.now()). */
  times: number[] = []
  ended = false
  closed = false
  error: string | undefined

  constructor (socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk)
      this.times.push(performance.now())
    })
    socket.on('end', () => { this.ended = true })
    socket.on('error', (err: NodeJS.ErrnoException) => { this.error = err.code ?? err.message })
    socket.on('close', () => { this.closed = true })
  }

  data (): Buffer {
    return Buffer.concat(this.chunks)
  }

  text (): string {
    return this.data().toString('utf8')
  }

  async waitForBytes (n: number, timeoutMs = 10_000): Promise<Buffer> {
    await waitFor(() => this.data().length >= n, { timeoutMs, intervalMs: 2, what: `${n} bytes (got ${this.data().length})` })
    return this.data()
  }

  /** Waits until the other side closed: a FIN (end; sockets here allow half-open) or a reset. */
  async waitForClose (timeoutMs = 10_000): Promise<void> {
    await waitFor(() => this.ended || this.closed, { timeoutMs, intervalMs: 2, what: 'socket closed by the other side' })
  }
}

/** A fault proxy on 127.0.0.1 port 0 and a FaultClient on it, stopped when the test ends. */
export async function startServer (options: FaultProxyOptions = {}): Promise<{ server: FaultProxy, client: FaultClient }> {
  const server = await startFaultProxy({ host: '127.0.0.1', port: 0, ...options })
  onTestFinished(async () => { await server.stop() })
  return { server, client: new FaultClient({ url: server.url }) }
}

/** An upstream TCP server: `echo` echoes what it receives; otherwise it only records. */
export interface Upstream {
  port: number
  address: string
  peers: Peer[]
  server: Server
  waitForPeer: (index?: number) => Promise<Peer>
}

export async function startUpstream (mode: 'echo' | 'record' = 'echo'): Promise<Upstream> {
  const peers: Peer[] = []
  const server = createServer({ allowHalfOpen: true, noDelay: true }, socket => {
    const peer = new Peer(socket)
    peers.push(peer)
    if (mode === 'echo') {
      socket.on('data', (chunk: Buffer) => { socket.write(chunk) })
      socket.on('end', () => { socket.end() })
    }
  })
  await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', resolve) })
  onTestFinished(async () => {
    for (const peer of peers) peer.socket.destroy()
    await new Promise<void>(resolve => { server.close(() => { resolve() }) })
  })
  const port = (server.address() as { port: number }).port
  return {
    port,
    address: `127.0.0.1:${port}`,
    peers,
    server,
    waitForPeer: async (index = 0) => await waitFor(() => peers[index], { what: `upstream connection ${index}` })
  }
}

/** The port of a proxy's `listen` (`127.0.0.1:41234`). */
export function listenPort (listen: string): number {
  return Number(listen.slice(listen.lastIndexOf(':') + 1))
}

/** Connects to a port; resolves once connected, or with the error code when it fails. */
export async function connectTo (port: number): Promise<Peer> {
  const socket = connect({ host: '127.0.0.1', port, noDelay: true, allowHalfOpen: true })
  const peer = new Peer(socket)
  onTestFinished(() => { socket.destroy() })
  await new Promise<void>(resolve => {
    socket.once('connect', resolve)
    socket.once('close', () => { resolve() })
  })
  return peer
}

/** Sends `payload` and waits for as many bytes back; resolves with the elapsed milliseconds. */
export async function roundTrip (peer: Peer, payload: string, timeoutMs = 10_000): Promise<number> {
  const before = peer.data().length
  const started = performance.now()
  peer.socket.write(payload)
  await peer.waitForBytes(before + Buffer.byteLength(payload), timeoutMs)
  return (peer.times[peer.times.length - 1] ?? performance.now()) - started
}

/** A proxy named `name` in front of `upstream`, listening on a free port. */
export async function proxyTo (client: FaultClient, name: string, upstream: Upstream, groups?: string[]): Promise<number> {
  const proxy = await client.createProxy({ name, listen: '127.0.0.1:0', upstream: upstream.address, ...(groups === undefined ? {} : { groups }) })
  return listenPort(proxy.listen)
}
