/**
 * Where a proxied socket's reads land: net.Socket's `onread`, a buffer of the reader's own that
 * Node reads into and hands to a consumer, instead of a new 64 KiB buffer per read pushed
 * through the socket's readable stream. An idle link (a bare pipe) writes what it read straight
 * from that buffer; reading up to `bytes` at once and allocating nothing per read cut the proxy's
 * CPU time per byte moved by 40% (docs/faults.md "Cost with no toxic").
 *
 * The buffer is reused from read to read while nothing else holds it. A consumer that keeps a
 * view of the bytes (a write that did not complete at once still references them) says so, and
 * the next read goes into a new buffer.
 */
import { Socket, connect } from 'node:net'
import type { OnReadOpts, SocketConstructorOpts } from 'node:net'

/**
 * Takes the bytes of one read, a view of the reader's buffer that the next read overwrites;
 * returns true when it kept a reference to them, so that the next read needs another buffer.
 */
export type ChunkConsumer = (chunk: Buffer) => boolean

export class SocketReader {
  readonly #bytes: number
  #buffer: Buffer
  #consumer: ChunkConsumer | undefined

  /** `bytes`: the most one read takes. */
  constructor (bytes: number) {
    this.#bytes = bytes
    this.#buffer = Buffer.allocUnsafe(bytes)
  }

  /** The `onread` option of the socket this reader reads. */
  readonly onread: OnReadOpts = {
    // Node asks for the buffer of the next read after each callback.
    buffer: () => this.#buffer,
    // Always true: a link pauses its source itself (`pause()`), as backpressure requires.
    callback: (bytesRead: number, buffer: Uint8Array): boolean => {
      const consumer = this.#consumer
      // Sockets are made paused and resumed once they have a consumer: nothing reaches here first.
      if (consumer === undefined) throw new Error('a proxied socket was read before it had a consumer')
      // A view of the bytes read, not a copy.
      if (consumer(Buffer.from(buffer.buffer, buffer.byteOffset, bytesRead))) this.#buffer = Buffer.allocUnsafe(this.#bytes)
      return true
    }
  }

  /** Who takes the bytes from now on (the socket must be resumed for reads to happen). */
  set consumer (consumer: ChunkConsumer) {
    this.#consumer = consumer
  }

  /** A socket dialled to `options`, paused: it reads nothing until it is resumed. */
  connect (options: { host: string, port: number, allowHalfOpen: boolean, noDelay: boolean }): Socket {
    const socket = connect({ ...options, onread: this.onread })
    // Paused before it connects, so that it does not start reading once connected.
    socket.pause()
    return socket
  }

  /**
   * The socket a `net.Server` listening with `pauseOnConnect` just accepted, as a socket that
   * reads into this reader, paused. A server has no `onread` option, so the accepted socket's
   * TCP handle (Node's `_handle`, which has read nothing yet) moves into a socket made with it,
   * and the accepted one, now without a handle, is destroyed, which also takes it off the
   * server's count of connections (the proxy waits for its own connections on stop).
   */
  adopt (accepted: Socket, options: { allowHalfOpen: boolean }): Socket {
    const holder = accepted as unknown as { _handle: unknown }
    const handle = holder._handle
    if (handle === null || typeof handle !== 'object') throw new Error('an accepted socket without a handle cannot be adopted')
    holder._handle = null
    accepted.destroy()
    const socket = new Socket({ handle, allowHalfOpen: options.allowHalfOpen, onread: this.onread } as SocketConstructorOpts)
    // A socket made with a handle starts reading at once: stop before anything is read.
    socket.pause()
    return socket
  }
}
