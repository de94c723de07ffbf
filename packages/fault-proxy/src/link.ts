/**
 * One direction of one proxied connection (Toxiproxy's ToxicLink): bytes read from `source` go
 * through the chain of toxic stages of that direction and are written to `dest`.
 *
 * The source reads into a buffer of its `SocketReader`. With no toxic in effect (none, or none
 * whose toxicity draw applied) the link is a bare pipe: the bytes of each read are written to
 * the destination from that buffer, with the usual pause/drain backpressure, and nothing is
 * allocated or checked but one flag and the destination's write queue. Otherwise a copy of each
 * read goes through the stages (which may hold it for a while); the source is paused while the
 * stages and the destination's write buffer hold more than `bufferBytesMax`, so that a slow
 * toxic pushes back on the sender.
 */
import type { Socket } from 'node:net'
import type { SocketReader } from './socket-reader.js'
import { createStage } from './toxic-stage.js'
import type { ChunkSink, StageContext, ToxicStage } from './toxic-stage.js'
import type { Direction, Toxic } from './toxic.js'

/** What a link needs from its connection. */
export interface LinkOwner {
  /** The toxicity draw of `toxic` for a link of this connection. */
  drawApplied: (toxic: Toxic) => boolean
  drawInt: (toxic: Toxic, kind: 'jitter' | 'slice', n: number) => number
  /** Closes the connection gracefully once what was written is out (a toxic cut it). */
  close: () => void
  /** Resets the connection (reset_peer). */
  reset: () => void
}

interface ChainEntry {
  toxic: Toxic
  stage: ToxicStage
}

export class Link implements StageContext {
  readonly direction: Direction
  readonly #owner: LinkOwner
  readonly #source: Socket
  readonly #reader: SocketReader
  readonly #dest: Socket
  readonly #bufferBytesMax: number
  #chain: ChainEntry[] = []
  #direct = true
  #held = 0
  #paused = false
  #blackholed: boolean
  #closed = false
  /** Bytes dropped while blackholed. */
  droppedBytes = 0
  /** An end that reached the writer while blackholed: `close` flag, or undefined. */
  #swallowedEnd: boolean | undefined

  readonly #writer: ChunkSink = {
    push: (chunk: Buffer): void => {
      if (this.#closed) return
      if (this.#blackholed) {
        this.droppedBytes += chunk.length
        return
      }
      this.#dest.write(chunk)
    },
    end: (close: boolean): void => {
      if (this.#closed) return
      if (this.#blackholed) {
        this.#swallowedEnd = close
        return
      }
      if (close) this.#owner.close()
      else this.#dest.end()
    }
  }

  /** `reader`: the one `source` reads into. */
  constructor (owner: LinkOwner, direction: Direction, source: Socket, reader: SocketReader, dest: Socket, toxics: readonly Toxic[], options: { bufferBytesMax: number, blackholed: boolean }) {
    this.#owner = owner
    this.direction = direction
    this.#source = source
    this.#reader = reader
    this.#dest = dest
    this.#bufferBytesMax = options.bufferBytesMax
    this.#blackholed = options.blackholed
    for (const toxic of toxics) this.addToxic(toxic)
    this.#refresh()
  }

  /** Starts reading from the source (made paused, see SocketReader). */
  start (): void {
    this.#dest.on('drain', this.#maybeResume)
    this.#source.on('end', this.#onEnd)
    this.#reader.consumer = this.#onRead
    this.#source.resume()
  }

  // `chunk` is a view of the reader's buffer; returns true when it is kept (see SocketReader).
  #onRead = (chunk: Buffer): boolean => {
    if (this.#direct) {
      // A write queued behind others would keep the read buffer for a while: it gets a copy, so
      // that a link never keeps more than one read buffer.
      if (this.#dest.writableLength > 0) {
        if (!this.#dest.write(Buffer.from(chunk))) this.#pause()
        return false
      }
      if (!this.#dest.write(chunk)) this.#pause()
      // Whatever the socket could not write at once still references the buffer.
      return this.#dest.writableLength > 0
    }
    if (this.#closed) return false
    if (this.#blackholed) {
      this.droppedBytes += chunk.length
      return false
    }
    // Stages hold chunks for as long as their toxic says: they get a copy of the bytes.
    const copy = Buffer.from(chunk)
    const head = this.#chain[0]
    if (head === undefined) this.#writer.push(copy)
    else head.stage.push(copy)
    if (this.#held > this.#bufferBytesMax || this.#dest.writableNeedDrain) this.#pause()
    return false
  }

  #onEnd = (): void => {
    if (this.#direct) {
      this.#dest.end()
      return
    }
    const head = this.#chain[0]
    if (head === undefined) this.#writer.end(false)
    else head.stage.end(false)
  }

  #pause (): void {
    if (this.#paused) return
    this.#paused = true
    this.#source.pause()
  }

  #maybeResume = (): void => {
    if (!this.#paused || this.#closed) return
    if (this.#held > this.#bufferBytesMax || this.#dest.writableNeedDrain) return
    this.#paused = false
    this.#source.resume()
  }

  #refresh (): void {
    this.#direct = !this.#closed && !this.#blackholed && this.#chain.every(entry => !entry.stage.applied)
  }

  // StageContext
  hold (bytes: number): void {
    this.#held += bytes
  }

  release (bytes: number): void {
    this.#held -= bytes
    if (this.#paused) this.#maybeResume()
  }

  drawInt (toxic: Toxic, kind: 'jitter' | 'slice', n: number): number {
    return this.#owner.drawInt(toxic, kind, n)
  }

  reset (): void {
    this.#owner.reset()
  }

  /** Appends a toxic to the end of the chain, drawing its toxicity for this link. */
  addToxic (toxic: Toxic): void {
    const stage = createStage(this, toxic, this.#owner.drawApplied(toxic), this.#writer)
    const last = this.#chain[this.#chain.length - 1]
    if (last !== undefined) last.stage.next = stage
    this.#chain.push({ toxic, stage })
    this.#refresh()
  }

  /** Removes a toxic: what its stage holds goes on at once. */
  removeToxic (name: string): void {
    const index = this.#chain.findIndex(entry => entry.toxic.name === name)
    const entry = this.#chain[index]
    if (entry === undefined) return
    entry.stage.detach()
    const previous = this.#chain[index - 1]
    if (previous !== undefined) previous.stage.next = entry.stage.next
    this.#chain.splice(index, 1)
    this.#refresh()
    this.#maybeResume()
  }

  /** New attributes or toxicity for a toxic: its toxicity is drawn again for this link. */
  updateToxic (toxic: Toxic): void {
    const entry = this.#chain.find(e => e.toxic.name === toxic.name)
    if (entry === undefined) return
    entry.toxic = toxic
    entry.stage.update(toxic, this.#owner.drawApplied(toxic))
    this.#refresh()
    this.#maybeResume()
  }

  /** Starts or stops dropping everything that crosses the link (blackhole). */
  setBlackholed (on: boolean): void {
    if (this.#blackholed === on) return
    this.#blackholed = on
    this.#refresh()
    if (!on) {
      const end = this.#swallowedEnd
      this.#swallowedEnd = undefined
      if (end !== undefined) this.#writer.end(end)
      this.#maybeResume()
    }
  }

  /** The connection is closing or gone: nothing more goes through, every timer stops. */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    this.#refresh()
    for (const entry of this.#chain) entry.stage.destroy()
    this.#dest.off('drain', this.#maybeResume)
  }
}
