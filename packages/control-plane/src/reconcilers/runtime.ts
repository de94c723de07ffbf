/**
 * The small runtime the reconcilers share, built outside them and handed in (as js-libp2p's
 * connection manager is given its parts): background tasks run once at a time per key, wake-ups
 * of the reconciling pass (on a tick and on demand), the region-to-region client, and the real
 * clock the reconcilers' delays are measured on. A test hands the reconcilers one with a fake
 * region client and clock, and runs their passes itself.
 */
import type { LabClock } from '../clock.js'
import type { ControlPlaneTuning } from '../defaults.js'
import type { Logger } from '../logger.js'
import type { RegionRequest, RegionResponse, RegionsMap } from '../regions.js'
import type { StateStore } from '../state-store.js'

/** The control planes of the other regions. */
export interface RegionClient {
  /** The regions file, read now. */
  regions: () => Promise<RegionsMap>
  /** Sends a (signed, when credentials are set) request to the control plane of `region`. */
  fetch: (region: string, request: RegionRequest) => Promise<RegionResponse>
}

/** How long `stop` waits for running tasks before it lets them be, in milliseconds. */
const STOP_WAIT_MS = 5_000

/** Options of `Runtime`. */
export interface RuntimeInit {
  log: Logger
  regionClient: RegionClient
  /** Real milliseconds since the epoch. @default Date.now */
  realNow?: () => number
}

/** Tasks, wake-ups and the region client. */
export class Runtime {
  readonly regionClient: RegionClient
  readonly realNow: () => number
  private readonly log: Logger
  private readonly tasks = new Map<string, Promise<void>>()
  private readonly abort = new AbortController()
  private pass: (() => Promise<void>) | undefined
  private timer: NodeJS.Timeout | undefined
  private passing = false
  private again = false
  private stopped = false

  constructor (init: RuntimeInit) {
    this.log = init.log
    this.regionClient = init.regionClient
    this.realNow = init.realNow ?? Date.now
  }

  /** True once `stop` was called: no task starts any more. */
  get stopping (): boolean {
    return this.stopped
  }

  /** Aborts when the runtime stops (a copy waiting to retry ends at once). */
  get signal (): AbortSignal {
    return this.abort.signal
  }

  /**
   * Runs `work` as the task `key` unless that task runs already or the runtime stops; its failure
   * is logged; once it ends, a pass follows. Returns the task, or undefined when it was not started.
   */
  run (key: string, work: () => Promise<void>): Promise<void> | undefined {
    if (this.stopped || this.tasks.has(key)) return undefined
    const task = work().catch(err => { this.log.warn({ task: key, err: (err as Error).message }, 'background task failed') })
      .finally(() => { this.tasks.delete(key); this.kick() })
    this.tasks.set(key, task)
    return task
  }

  /** Resolves once no task runs (tasks started meanwhile included): what a test waits for after a pass. */
  async settled (): Promise<void> {
    while (this.tasks.size > 0) await Promise.allSettled([...this.tasks.values()])
  }

  /** Runs `pass` every `tickIntervalMs`, now, and on each `kick`; one pass at a time. */
  start (pass: () => Promise<void>, tickIntervalMs: number): void {
    this.pass = pass
    this.timer = setInterval(() => { this.kick() }, tickIntervalMs)
    this.kick()
  }

  /** Wakes the pass (state changes to carry out); a wake-up during a pass runs another after it. */
  kick (): void {
    const pass = this.pass
    if (this.stopped || pass === undefined) return
    if (this.passing) { this.again = true; return }
    this.passing = true
    setImmediate(() => {
      // Stopped meanwhile: no pass starts after stop.
      if (this.stopped) { this.passing = false; return }
      void pass().catch(err => { this.log.error({ err }, 'background pass failed') }).finally(() => {
        this.passing = false
        if (this.again && !this.stopped) { this.again = false; this.kick() }
      })
    })
  }

  /** No more passes or tasks; waits (a few seconds at most) for the running tasks to end. Safe to call twice. */
  async stop (): Promise<void> {
    this.stopped = true
    if (this.timer !== undefined) clearInterval(this.timer)
    this.abort.abort()
    const tasks = Promise.allSettled([...this.tasks.values()])
    let deadline: NodeJS.Timeout | undefined
    await Promise.race([tasks, new Promise<void>(resolve => { deadline = setTimeout(resolve, STOP_WAIT_MS) })])
    clearTimeout(deadline)
  }
}

/** What every reconciler is given: the state, the lab clock, the tuning, its logger and the runtime. */
export interface ReconcilerComponents {
  store: StateStore
  clock: LabClock
  tuning: ControlPlaneTuning
  log: Logger
  runtime: Runtime
}

/** A doubling delay from `base`, capped at `max`, after `failures` failures. */
export function backoff (base: number, max: number, failures: number): number {
  return Math.min(max, base * 2 ** Math.max(0, Math.min(failures - 1, 20)))
}
