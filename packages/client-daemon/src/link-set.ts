/**
 * One connection to every HSM of the cluster, all logged in as the same crypto user (or none, for
 * the daemon's own probe set): what one application's login stands on, as CMU and KMU log in on
 * every HSM connection.
 *
 * Balancing: calls go round-robin over the HSMs whose connection is open (an HSM that is not
 * ACTIVE closes or refuses connections, so open means usable). A call that may be repeated
 * (reads, crypto) and fails because its connection closed or timed out is tried again on the next
 * open HSM, until every HSM was tried or the operation's deadline passed, and so is one that an
 * HSM answers with RET_INVALID_HANDLE (the key may not have replicated there yet); one that may not
 * (creating or destroying a key) fails with the error. A connection that closes is opened again in
 * the background, after `reconnectDelayMs`, doubling up to `reconnectDelayMaxMs`, and logged in
 * again; a login the HSM refuses leaves that HSM out until the next attempt.
 */
import { HsmConnection, WireError } from '@hsmlab/client'
import type { ServerConfig } from '@hsmlab/client'
import { ReturnCode } from '@hsmlab/protocol'
import type { OperationArgs, OperationName, OperationResult } from '@hsmlab/protocol'
import type { Logger } from '@hsmlab/process'

/** What the links need to know, given by the daemon. */
export interface LinkSetOptions {
  servers: ServerConfig[]
  trustAnchors: Map<string, Uint8Array>
  connectTimeoutMs: number
  requestTimeoutMs: number
  reconnectDelayMs: number
  reconnectDelayMaxMs: number
  logger: Logger
  /** Logs in as this CU on every connection. */
  credentials?: { userName: string, password: string }
}

/** One HSM's link. */
export class HsmLink {
  connection: HsmConnection | undefined
  /** Bumped at each new connection: a session key made on an older one is gone. */
  generation = 0
  private connecting: Promise<void> | undefined
  private timer: NodeJS.Timeout | undefined
  private delayMs: number
  private stopped = false

  constructor (readonly index: number, readonly server: ServerConfig, private readonly set: LinkSet) {
    this.delayMs = set.options.reconnectDelayMs
  }

  get open (): boolean {
    return this.connection !== undefined && !this.connection.closed
  }

  /** Connects (and logs in) now, unless it is connected or connecting; never throws. */
  async connect (): Promise<void> {
    if (this.stopped || this.open) return
    this.connecting ??= this.attempt().finally(() => { this.connecting = undefined })
    await this.connecting
  }

  private async attempt (): Promise<void> {
    const { options } = this.set
    const server = this.server
    let connection: HsmConnection | undefined
    try {
      connection = await HsmConnection.connect({
        url: `ws://${server.hostname}:${server.port}`,
        trustAnchor: options.trustAnchors.get(server.caFile) ?? new Uint8Array(),
        connectTimeoutMs: options.connectTimeoutMs,
        requestTimeoutMs: options.requestTimeoutMs
      })
      if (options.credentials !== undefined) {
        await connection.call('login', { userType: 'CU', userName: options.credentials.userName, password: options.credentials.password })
      }
    } catch (err) {
      await connection?.close()
      options.logger.debug({ server: this.index, err: (err as Error).message }, 'HSM connection failed')
      // A refused login is final for this set (a wrong password stays wrong): the caller sees it at login.
      if (err instanceof WireError) this.set.loginFailure ??= err
      this.schedule()
      return
    }
    if (this.stopped) { await connection.close(); return }
    this.connection = connection
    this.generation++
    this.delayMs = options.reconnectDelayMs
    options.logger.debug({ server: this.index, hsm: connection.hsmId }, 'HSM connected')
    connection.onClose(reason => {
      if (this.connection !== connection) return
      this.connection = undefined
      options.logger.info({ server: this.index, reason: reason.message }, 'HSM connection lost; reconnecting')
      this.schedule()
    })
  }

  private schedule (): void {
    if (this.stopped || this.timer !== undefined || this.set.loginFailure !== undefined) return
    const delay = this.delayMs
    this.delayMs = Math.min(this.delayMs * 2, this.set.options.reconnectDelayMaxMs)
    this.timer = setTimeout(() => {
      this.timer = undefined
      void this.connect()
    }, delay)
    this.timer.unref()
  }

  async stop (): Promise<void> {
    this.stopped = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    await this.connecting
    const connection = this.connection
    this.connection = undefined
    await connection?.close()
  }
}

/** A failure to reach any HSM: the daemon answers CKR_DEVICE_ERROR. */
export class ClusterUnreachable extends Error {}

/** True for failures of the connection rather than answers of the HSM. */
export function isConnectionFailure (err: unknown): boolean {
  return !(err instanceof WireError)
}

export class LinkSet {
  readonly links: HsmLink[]
  /** The HSM's refusal of the credentials, once one refused them. */
  loginFailure: WireError | undefined
  private next = 0

  constructor (readonly options: LinkSetOptions) {
    this.links = options.servers.map((server, i) => new HsmLink(i, server, this))
  }

  /** Connects every link; resolves when each attempt ended. */
  async start (): Promise<void> {
    await Promise.all(this.links.map(async link => { await link.connect() }))
  }

  openLinks (): HsmLink[] {
    return this.links.filter(l => l.open)
  }

  /** The open links in the order the next call tries them (round-robin). */
  private order (): HsmLink[] {
    const open = this.openLinks()
    if (open.length === 0) return open
    const start = this.next++ % open.length
    return [...open.slice(start), ...open.slice(0, start)]
  }

  /**
   * One call on one HSM, balanced; `retry` lets a connection failure move it to the next HSM.
   * `pinned` runs it on that link only (session keys). Throws the HSM's WireError, or
   * ClusterUnreachable when no HSM could take it before `deadline` (ms since the epoch).
   */
  async call<O extends OperationName> (op: O, args: OperationArgs<O>, opts: { retry: boolean, deadline: number, pinned?: HsmLink }): Promise<{ result: OperationResult<O>, link: HsmLink }> {
    let candidates = opts.pinned === undefined ? this.order() : (opts.pinned.open ? [opts.pinned] : [])
    if (candidates.length === 0 && opts.pinned === undefined) {
      // Nothing open: try to connect once, now, within the deadline.
      await Promise.race([
        Promise.all(this.links.map(async l => { await l.connect() })),
        new Promise(resolve => { setTimeout(resolve, Math.max(0, opts.deadline - Date.now())).unref() })
      ])
      candidates = this.order()
    }
    let last: unknown
    for (const link of candidates) {
      const connection = link.connection
      const remaining = opts.deadline - Date.now()
      if (connection === undefined || remaining <= 0) continue
      try {
        const result = await connection.call(op, args, { timeoutMs: Math.min(remaining, this.options.requestTimeoutMs) })
        return { result, link }
      } catch (err) {
        // A token key acknowledged on some HSMs may not have reached this one yet (replication is
        // asynchronous): a read that may be repeated asks the next HSM before answering "no such key".
        const missing = err instanceof WireError && err.status === ReturnCode.INVALID_HANDLE.code && opts.retry && opts.pinned === undefined
        if (!isConnectionFailure(err) && !missing) throw err
        if (missing && link === candidates[candidates.length - 1]) throw err
        last = err
        this.options.logger.debug({ server: link.index, op, err: (err as Error).message }, 'HSM call failed')
        if (!opts.retry) break
      }
    }
    throw new ClusterUnreachable(last === undefined ? 'no HSM of the cluster is connected' : `no HSM answered: ${(last as Error).message}`)
  }

  /**
   * The same read on every open link at once; the answers of those that answered. Throws the HSM's
   * refusal if one refused, or ClusterUnreachable when none answered.
   */
  async fromAll<O extends OperationName> (op: O, args: OperationArgs<O>, deadline: number): Promise<Array<OperationResult<O>>> {
    const open = this.openLinks()
    if (open.length === 0) throw new ClusterUnreachable('no HSM of the cluster is connected')
    const outcomes = await Promise.allSettled(open.map(async link => {
      const connection = link.connection
      if (connection === undefined) throw new ClusterUnreachable('the connection closed')
      return await connection.call(op, args, { timeoutMs: Math.max(1, Math.min(deadline - Date.now(), this.options.requestTimeoutMs)) })
    }))
    const refused = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected' && !isConnectionFailure(o.reason))
    if (refused !== undefined) throw refused.reason
    const answers = outcomes.flatMap(o => o.status === 'fulfilled' ? [o.value] : [])
    if (answers.length === 0) throw new ClusterUnreachable('no HSM answered')
    return answers
  }

  /** The same call on every open link (setAttribute: each HSM's copy). */
  async everywhere<O extends OperationName> (op: O, args: OperationArgs<O>, deadline: number): Promise<void> {
    const open = this.openLinks()
    if (open.length === 0) throw new ClusterUnreachable('no HSM of the cluster is connected')
    const outcomes = await Promise.allSettled(open.map(async link => await link.connection?.call(op, args, { timeoutMs: Math.max(1, Math.min(deadline - Date.now(), this.options.requestTimeoutMs)) })))
    const answered = outcomes.filter(o => o.status === 'fulfilled')
    // An HSM the key has not reached yet answers "invalid handle"; it gets the changed key by
    // replication. Any other refusal, or that answer from every HSM, is the caller's.
    const lagging = (reason: unknown): boolean => reason instanceof WireError && reason.status === ReturnCode.INVALID_HANDLE.code && answered.length > 0
    const refused = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected' && !isConnectionFailure(o.reason) && !lagging(o.reason))
    if (refused !== undefined) throw refused.reason
    if (answered.length === 0) {
      const invalid = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected' && !isConnectionFailure(o.reason))
      if (invalid !== undefined) throw invalid.reason
      throw new ClusterUnreachable('no HSM answered')
    }
  }

  async stop (): Promise<void> {
    await Promise.all(this.links.map(async l => { await l.stop() }))
  }
}

