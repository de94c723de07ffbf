/**
 * What a toxic does to one direction of one connection: a stage of the link's chain
 * (Toxiproxy's ToxicStub running a toxic's Pipe). A stage receives chunks and the end of the
 * stream from the stage before it and hands them on to the next, delayed, sliced, dropped or cut.
 *
 * Toxiproxy runs each stub as a goroutine fed by channels and interrupts it to change the chain;
 * here everything runs on the event loop, so a stage hands what it holds to the next one
 * synchronously when it is removed (`detach`) and nothing can slip in between.
 *
 * `end(close)` carries the end of the stream: `close = false` is the source's EOF (half-close
 * the destination), `close = true` is a toxic closing the connection (Toxiproxy's `stub.Close()`
 * from timeout or limit_data), which the link turns into a full close once data before it is out.
 */
import { performance } from 'node:perf_hooks'
import { attr } from './toxic.js'
import type { Toxic, ToxicType } from './toxic.js'

/** Node's longest timer; a longer delay would fire after 1 ms (TimeoutOverflowWarning). */
const TIMER_MAX_MS = 2 ** 31 - 1

/** `setTimeout` clamped to what Node can wait; callers that must not fire early check the clock. */
function later (fn: () => void, ms: number): NodeJS.Timeout {
  return setTimeout(fn, Math.min(TIMER_MAX_MS, Math.max(0, ms)))
}

/** Where a stage hands chunks on to: the next stage, or the link's writer. */
export interface ChunkSink {
  push: (chunk: Buffer) => void
  end: (close: boolean) => void
}

/** What a stage needs from its link. */
export interface StageContext {
  /** `bytes` entered the stage's hold (counted against the link's buffer bound). */
  hold: (bytes: number) => void
  /** `bytes` left the stage's hold. */
  release: (bytes: number) => void
  /** A uniform integer in [0, n) from the proxy's seeded PRNG, recorded as a draw of `kind`. */
  drawInt: (toxic: Toxic, kind: 'jitter' | 'slice', n: number) => number
  /** Resets the connection: TCP RST to both peers. */
  reset: () => void
}

abstract class Stage implements ChunkSink {
  next: ChunkSink
  toxic: Toxic
  applied: boolean
  /** The end reached this stage and waits behind held data or a delay. */
  protected endPending = false
  protected endClose = false
  /** The end went on to the next stage: nothing more is accepted. */
  protected done = false

  constructor (protected readonly ctx: StageContext, toxic: Toxic, applied: boolean, next: ChunkSink) {
    this.toxic = toxic
    this.applied = applied
    this.next = next
  }

  push (chunk: Buffer): void {
    if (this.done || this.endPending) return
    if (!this.applied) {
      this.next.push(chunk)
      return
    }
    this.onChunk(chunk)
  }

  end (close: boolean): void {
    if (this.done || this.endPending) return
    this.endPending = true
    this.endClose = close
    if (!this.applied) {
      this.finish(close)
      return
    }
    this.onEnd()
  }

  /** The toxic was removed: hand on everything held, in order, then the end if it came. */
  detach (): void {
    this.flush()
    if (this.endPending) this.finish(this.endClose)
    this.stopTimers()
  }

  /** The toxic's attributes or toxicity changed (`applied` is the new draw). */
  update (toxic: Toxic, applied: boolean): void {
    const wasApplied = this.applied
    this.toxic = toxic
    this.applied = applied
    if (!applied) {
      this.flush()
      this.stopTimers()
      if (this.endPending) this.finish(this.endClose)
      return
    }
    this.onUpdate(wasApplied)
  }

  /** The connection is gone: drop everything, stop every timer. */
  destroy (): void {
    this.done = true
    this.stopTimers()
    this.drop()
  }

  protected finish (close: boolean): void {
    if (this.done) return
    this.done = true
    this.stopTimers()
    this.next.end(close)
  }

  protected abstract onChunk (chunk: Buffer): void
  protected onEnd (): void {
    this.finish(this.endClose)
  }

  protected onUpdate (_wasApplied: boolean): void {}
  /** Hands on everything held, now. */
  protected flush (): void {}
  protected drop (): void {}
  protected stopTimers (): void {}
}

/** `noop`: data passes. */
class NoopStage extends Stage {
  protected onChunk (chunk: Buffer): void { this.next.push(chunk) }
}

interface Delayed { chunk: Buffer, arrivalMs: number, dueMs: number }

/**
 * `latency`: each chunk leaves `latency ± jitter` ms after it arrived (jitter drawn per chunk in
 * [-jitter, jitter), as Go's `rand.Int63n(2*jitter) - jitter`), never before the chunk ahead
 * of it. An update recomputes the due times of held chunks from their arrival, as Toxiproxy's
 * re-run does from the chunks' timestamps.
 */
class LatencyStage extends Stage {
  #queue: Delayed[] = []
  #timer: NodeJS.Timeout | undefined
  #lastDueMs = 0


  #delayMs (): number {
    const latency = attr(this.toxic, 'latency')
    const jitter = attr(this.toxic, 'jitter')
    return jitter > 0 ? latency + this.ctx.drawInt(this.toxic, 'jitter', jitter * 2) - jitter : latency
  }

  protected onChunk (chunk: Buffer): void {
    const now = performance.now()
    const dueMs = Math.max(now + this.#delayMs(), this.#lastDueMs)
    this.#lastDueMs = dueMs
    this.#queue.push({ chunk, arrivalMs: now, dueMs })
    this.ctx.hold(chunk.length)
    this.#schedule(now)
  }

  protected override onEnd (): void {
    if (this.#queue.length === 0) this.finish(this.endClose)
  }

  protected override onUpdate (): void {
    let last = 0
    for (const item of this.#queue) {
      item.dueMs = Math.max(item.arrivalMs + this.#delayMs(), last)
      last = item.dueMs
    }
    this.#lastDueMs = last
    this.stopTimers()
    this.#tick()
  }

  #schedule (now: number): void {
    if (this.#timer !== undefined || this.#queue.length === 0) return
    const wait = Math.max(0, Math.ceil((this.#queue[0]?.dueMs ?? now) - now))
    this.#timer = later(this.#tick, wait)
  }

  #tick = (): void => {
    this.#timer = undefined
    const now = performance.now()
    while (this.#queue.length > 0 && (this.#queue[0]?.dueMs ?? 0) <= now) {
      const item = this.#queue.shift() as Delayed
      this.ctx.release(item.chunk.length)
      this.next.push(item.chunk)
      if (this.done) return
    }
    if (this.#queue.length === 0) {
      if (this.endPending) this.finish(this.endClose)
      return
    }
    this.#schedule(now)
  }

  protected override flush (): void {
    const queue = this.#queue
    this.#queue = []
    for (const item of queue) {
      this.ctx.release(item.chunk.length)
      this.next.push(item.chunk)
    }
  }

  protected override drop (): void {
    for (const item of this.#queue) this.ctx.release(item.chunk.length)
    this.#queue = []
  }

  protected override stopTimers (): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }
}

/**
 * `bandwidth`: at most `rate` KB/s (1 KB = 1000 bytes): a piece of n bytes leaves n/rate ms after
 * the previous one, pieces being at most `rate * 100` bytes (100 ms worth), as Toxiproxy splits
 * them. A rate of 0 or less lets data pass (Toxiproxy's intent; its Go loop hangs on 0).
 */
class BandwidthStage extends Stage {
  #queue: Buffer[] = []
  #timer: NodeJS.Timeout | undefined
  #clockMs = 0
  #pieceDueMs: number | undefined


  protected onChunk (chunk: Buffer): void {
    this.#queue.push(chunk)
    this.ctx.hold(chunk.length)
    if (this.#timer === undefined) this.#pump()
  }

  protected override onEnd (): void {
    if (this.#queue.length === 0) this.finish(this.endClose)
  }

  protected override onUpdate (): void {
    this.#pieceDueMs = undefined
    this.stopTimers()
    this.#pump()
  }

  #pump = (): void => {
    this.#timer = undefined
    const rate = attr(this.toxic, 'rate')
    while (this.#queue.length > 0) {
      const head = this.#queue[0] as Buffer
      const size = rate <= 0 ? head.length : Math.min(head.length, rate * 100)
      const now = performance.now()
      if (rate > 0) {
        if (this.#pieceDueMs === undefined) {
          this.#clockMs = Math.max(now, this.#clockMs) + size / rate
          this.#pieceDueMs = this.#clockMs
        }
        if (this.#pieceDueMs > now) {
          this.#timer = later(this.#pump, Math.ceil(this.#pieceDueMs - now))
          return
        }
      }
      this.#pieceDueMs = undefined
      const piece = size === head.length ? head : head.subarray(0, size)
      if (size === head.length) this.#queue.shift()
      else this.#queue[0] = head.subarray(size)
      this.ctx.release(piece.length)
      this.next.push(piece)
      if (this.done) return
    }
    if (this.endPending) this.finish(this.endClose)
  }

  protected override flush (): void {
    const queue = this.#queue
    this.#queue = []
    for (const chunk of queue) {
      this.ctx.release(chunk.length)
      this.next.push(chunk)
    }
  }

  protected override drop (): void {
    for (const chunk of this.#queue) this.ctx.release(chunk.length)
    this.#queue = []
  }

  protected override stopTimers (): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }
}

/** `slow_close`: data passes; the end of the stream waits `delay` ms. */
class SlowCloseStage extends Stage {
  #timer: NodeJS.Timeout | undefined


  protected onChunk (chunk: Buffer): void { this.next.push(chunk) }

  protected override onEnd (): void {
    this.#timer = later(() => { this.finish(this.endClose) }, Math.max(0, attr(this.toxic, 'delay')))
  }

  protected override onUpdate (): void {
    if (this.endPending && !this.done) {
      this.stopTimers()
      this.onEnd()
    }
  }

  protected override stopTimers (): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }
}

/**
 * `timeout`: no data passes (it is dropped); after `timeout` ms from the moment the toxic took
 * hold of the link the connection is closed; with 0 it stays open until the toxic is removed.
 * Removing the toxic closes the connection too (Toxiproxy's Cleanup: the stream has a gap).
 */
class TimeoutStage extends Stage {
  #timer: NodeJS.Timeout | undefined

  constructor (ctx: StageContext, toxic: Toxic, applied: boolean, next: ChunkSink) {
    super(ctx, toxic, applied, next)
    if (applied) this.#arm()
  }


  #arm (): void {
    const timeout = attr(this.toxic, 'timeout')
    if (timeout > 0) this.#timer = later(() => { this.finish(true) }, timeout)
  }

  protected onChunk (): void {}

  protected override onUpdate (): void {
    this.stopTimers()
    this.#arm()
  }

  override detach (): void {
    if (this.applied && !this.done) this.finish(true)
    this.stopTimers()
  }

  protected override stopTimers (): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }
}

/**
 * `reset_peer`: when the first data (or the end) reaches the toxic, it is dropped and, `timeout`
 * ms later (at once for 0), the connection is reset: both peers get a TCP RST.
 */
class ResetPeerStage extends Stage {
  #timer: NodeJS.Timeout | undefined
  #triggered = false


  #trigger (): void {
    if (this.#triggered) return
    this.#triggered = true
    const timeout = attr(this.toxic, 'timeout')
    if (timeout <= 0) {
      this.done = true
      this.ctx.reset()
      return
    }
    this.#timer = later(() => { this.done = true; this.ctx.reset() }, timeout)
  }

  protected onChunk (): void { this.#trigger() }

  protected override onEnd (): void { this.#trigger() }

  // Toxiproxy cannot interrupt a triggered reset: it happens whatever the chain becomes.
  override detach (): void {
    if (!this.#triggered) super.detach()
  }

  override update (toxic: Toxic, applied: boolean): void {
    if (this.#triggered) {
      this.toxic = toxic
      return
    }
    super.update(toxic, applied)
  }

  protected override stopTimers (): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }
}

/**
 * `slicer`: each chunk is split into pieces of about `average_size` bytes (± `size_variation`,
 * drawn by Toxiproxy's halving algorithm) written one at a time, `delay` µs apart. Timers have
 * millisecond grain, so sub-millisecond delays are kept on average by a running clock.
 */
class SlicerStage extends Stage {
  #queue: Buffer[] = []
  #pieces: Buffer[] = []
  #timer: NodeJS.Timeout | undefined
  #clockMs = 0


  protected onChunk (chunk: Buffer): void {
    this.#queue.push(chunk)
    this.ctx.hold(chunk.length)
    if (this.#timer === undefined) this.#pump()
  }

  protected override onEnd (): void {
    if (this.#queue.length === 0 && this.#pieces.length === 0) this.finish(this.endClose)
  }

  /** Offsets [start, end, start, end, ...] of the pieces of a chunk (toxics/slicer.go `chunk`). */
  #slice (start: number, end: number, out: number[]): void {
    const average = attr(this.toxic, 'average_size')
    const variation = Math.max(0, attr(this.toxic, 'size_variation'))
    if (end - start - average <= variation || end - start <= 1) {
      out.push(start, end)
      return
    }
    const offset = variation > 0 ? this.ctx.drawInt(this.toxic, 'slice', variation * 2) - variation : 0
    const mid = Math.min(end - 1, Math.max(start + 1, start + Math.floor((end - start) / 2) + offset))
    this.#slice(start, mid, out)
    this.#slice(mid, end, out)
  }

  #pump = (): void => {
    this.#timer = undefined
    for (;;) {
      if (this.#pieces.length === 0) {
        const chunk = this.#queue.shift()
        if (chunk === undefined) {
          if (this.endPending) this.finish(this.endClose)
          return
        }
        const offsets: number[] = []
        this.#slice(0, chunk.length, offsets)
        for (let i = 0; i < offsets.length; i += 2) this.#pieces.push(chunk.subarray(offsets[i], offsets[i + 1]))
      }
      const piece = this.#pieces.shift() as Buffer
      this.ctx.release(piece.length)
      this.next.push(piece)
      if (this.done) return
      const delayUs = attr(this.toxic, 'delay')
      if (delayUs > 0) {
        const now = performance.now()
        this.#clockMs = Math.max(now, this.#clockMs) + delayUs / 1000
        const wait = this.#clockMs - now
        if (wait >= 1) {
          this.#timer = later(this.#pump, Math.floor(wait))
          return
        }
      }
    }
  }

  // Interrupted, Toxiproxy sends the rest of the chunk being sliced in one piece.
  #restOfChunk (): void {
    if (this.#pieces.length === 0) return
    const rest = this.#pieces.length === 1 ? this.#pieces[0] as Buffer : Buffer.concat(this.#pieces)
    this.#pieces = []
    this.ctx.release(rest.length)
    this.next.push(rest)
  }

  protected override onUpdate (): void {
    this.stopTimers()
    this.#restOfChunk()
    this.#pump()
  }

  protected override flush (): void {
    this.#restOfChunk()
    const queue = this.#queue
    this.#queue = []
    for (const chunk of queue) {
      this.ctx.release(chunk.length)
      this.next.push(chunk)
    }
  }

  protected override drop (): void {
    for (const piece of this.#pieces) this.ctx.release(piece.length)
    for (const chunk of this.#queue) this.ctx.release(chunk.length)
    this.#pieces = []
    this.#queue = []
  }

  protected override stopTimers (): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }
}

/**
 * `limit_data`: the first `bytes` bytes pass, then the connection is closed. The count survives
 * updates of the toxic (Toxiproxy keeps it as the stub's state).
 */
class LimitDataStage extends Stage {
  #transmitted = 0


  protected onChunk (chunk: Buffer): void {
    const limit = attr(this.toxic, 'bytes')
    const remaining = Math.max(0, limit - this.#transmitted)
    const piece = remaining < chunk.length ? chunk.subarray(0, remaining) : chunk
    if (piece.length > 0) {
      this.#transmitted += piece.length
      this.next.push(piece)
    }
    if (limit - this.#transmitted <= 0) this.finish(true)
  }
}

export type ToxicStage = Stage

const STAGES: Record<ToxicType, new (ctx: StageContext, toxic: Toxic, applied: boolean, next: ChunkSink) => Stage> = {
  noop: NoopStage,
  latency: LatencyStage,
  bandwidth: BandwidthStage,
  slow_close: SlowCloseStage,
  timeout: TimeoutStage,
  reset_peer: ResetPeerStage,
  slicer: SlicerStage,
  limit_data: LimitDataStage
}

/** The stage of a toxic on one link; `applied` is the toxicity draw (a stage not applied lets everything pass). */
export function createStage (ctx: StageContext, toxic: Toxic, applied: boolean, next: ChunkSink): Stage {
  return new STAGES[toxic.type](ctx, toxic, applied, next)
}
