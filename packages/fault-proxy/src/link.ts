/**
 * One direction of one proxied connection (Toxiproxy's ToxicLink): bytes read from `source` go
 * through the chain of toxic stages of that direction and are written to `dest`.
 *
 * With no toxic in effect (none, or none whose toxicity draw applied) the link is a bare pipe:
 * each chunk Node reads is written to the destination as is, with the usual pause/drain
 * backpressure, and nothing else is allocated or checked but one flag. Otherwise chunks go
 * through the stages; the source is paused while the stages and the destination's write buffer
 * hold more than `bufferBytesMax`, so that a slow toxic pushes back on the sender.
 */
import type { Socket } from 'node:net'
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

  constructor (owner: LinkOwner, direction: Direction, source: Socket, dest: Socket, toxics: readonly Toxic[], options: { bufferBytesMax: number, blackholed: boolean }) {
    this.#owner = owner
    this.direction = direction
    this.#source = source
    this.#dest = dest
    this.#bufferBytesMax = options.bufferBytesMax
    this.#blackholed = options.blackholed
    for (const toxic of toxics) this.addToxic(toxic)
    this.#refresh()
  }

  /** Starts reading from the source. */
  start (): void {
    this.#dest.on('drain', this.#maybeResume)
    this.#source.on('end', this.#onEnd)
    this.#source.on('data', this.#onData)
    // A held connection's client was paused explicitly, and a 'data' listener does not undo that.
    this.#source.resume()
  }

  #onData = (chunk: Buffer): void => {
    if (this.#direct) {
      if (!this.#dest.write(chunk)) this.#pause()
      return
    }
    if (this.#closed) return
    if (this.#blackholed) {
      this.droppedBytes += chunk.length
      return
    }
    const head = this.#chain[0]
    if (head === undefined) this.#writer.push(chunk)
    else head.stage.push(chunk)
    if (this.#held > this.#bufferBytesMax || this.#dest.writableNeedDrain) this.#pause()
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
