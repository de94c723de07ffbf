/**
 * Replication of token keys between the HSMs of one cluster (reference G.3: "AWS CloudHSM keeps
 * the keys on the individual HSMs in sync"; session keys and users are not replicated).
 *
 * ```ts
 * const replicator = createReplicator(ctx, { logger, syncIntervalMs: 1000 })
 * await replicator.start()   // dials ctx.peers(); call after the server listens
 * replicator.peersChanged(peers)   // from the setPeers handler
 * await replicator.stop()    // safe twice
 * ```
 *
 * `ctx` is the HSM's context; the replicator reads `identity`, `keys`, `users` and `peers()`
 * from it, and never `ctx.replicator` (so the context may hand the replicator out lazily).
 *
 * How:
 * - Links. This HSM dials every peer of `ctx.peers()` (itself left out) with the client library,
 *   as an HSM of the cluster (`peerIdentity`: the server checks it with peerHello), and keeps the
 *   link up: a link that drops or cannot be opened is redialled after a capped exponential
 *   backoff with jitter (`reconnectDelayMinMs` doubling up to `reconnectDelayMaxMs`, each delay
 *   drawn from its upper half). Every HSM dials every other, so each pair has a link each way
 *   and each HSM pulls what it misses over its own.
 * - Push. `keyCreated` masks the key once and sends it (peerPush) to every linked peer through
 *   that peer's queue (`pushConcurrency` at a time, at most `pushQueueMax` waiting; a push that
 *   does not fit is dropped and left to anti-entropy). It resolves once the key is on
 *   `minServers` HSMs counting this one; with minServers 1 at once, and the masking and sending
 *   wait for the end of the current turn of the event loop, so that the reply to the request
 *   that made the key does not wait for them. Otherwise, if that has not
 *   happened within `timeoutMs`, it rejects with RET_MIN_SERVERS_NOT_MET (right away when the
 *   cluster has too few HSMs to ever get there). While waiting, a push to a peer whose link is
 *   down waits for the link to come back (until the deadline).
 * - Delete. `keyDeleted` sends peerDelete to every linked peer (not waited for).
 * - Anti-entropy. On every (re)connection and every `syncIntervalMs`, ask each peer for its
 *   inventory (peerInventory: live keys with digests, deleted handles; just `same` when the
 *   peer's summary of its handles equals this HSM's, the usual case): tombstone every handle it
 *   reports deleted (at most `tombstonesPerRoundMax` a round), and fetch (peerFetch, at most
 *   `fetchesPerRoundMax` a round, `fetchConcurrency` at a time) every key it holds that this HSM
 *   neither holds nor deleted. A round that hit a bound is followed by another one at once. So an
 *   HSM that was stopped or cut off catches up by itself, deletes included. Keys present on both
 *   sides are never overwritten, even when their digests differ (see peer-handlers.ts).
 *
 * Logs go to the `hsmlab:hsm:replication` child of `logger`; each stored key, pushed or fetched,
 * is also published on the diagnostics channel `hsmlab:hsm:replicated` (`storeReplicatedKey`).
 * The answering side of every peer* request is handlers/peer-handlers.ts.
 */
import { channel as diagnosticsChannel } from 'node:diagnostics_channel'
import { pino } from 'pino'
import type { Logger } from 'pino'
import { HsmConnection } from '@hsmlab/client'
import type { ConnectOptions } from '@hsmlab/client'
import { Attribute, ReturnCode, WireError } from '@hsmlab/protocol'
import type { OperationArgs, OperationName, OperationResult, PeerAddress } from '@hsmlab/protocol'
import type { HsmContext, KeyRecord, Replicator } from './context.js'
import { isTombstone } from './context.js'
import { inventorySummary } from './key-digest.js'
import { maskKey, openMasked, readMaskedKey } from './masked-objects.js'
import PQueue from 'p-queue'

/** The diagnostics channel a replicated key is published on. */
export const REPLICATED_CHANNEL = 'hsmlab:hsm:replicated'

/** What `hsmlab:hsm:replicated` carries. */
export interface ReplicatedMessage {
  handle: number
  /** The HSM the key came from. */
  fromHsmId: string
  /** The HSM that stored it. */
  toHsmId: string
  /** `Date.now()` when it was stored durably. */
  atMs: number
}

const replicatedChannel = diagnosticsChannel(REPLICATED_CHANNEL)

/**
 * Stores a key that came from a peer (pushed to this HSM, or fetched by it), unless this HSM
 * holds its handle already (a key or a tombstone), and publishes it on `REPLICATED_CHANNEL`.
 * Returns true when it was stored.
 */
export async function storeReplicatedKey (ctx: HsmContext, record: KeyRecord, fromHsmId: string): Promise<boolean> {
  if (record.attributes[Attribute.TOKEN] !== 1) return false
  const stored = await ctx.keys.insertCopy(record)
  if (stored && replicatedChannel.hasSubscribers) {
    const message: ReplicatedMessage = { handle: record.handle, fromHsmId, toHsmId: ctx.identity.hsmId, atMs: Date.now() }
    replicatedChannel.publish(message)
  }
  return stored
}

/** The part of `HsmConnection` the replicator uses (tests may supply their own). */
export interface PeerConnection {
  /** The id in the certificate of the HSM at the other end, when known. */
  readonly hsmId?: string
  call: <O extends OperationName>(op: O, args: OperationArgs<O>, options?: { timeoutMs?: number }) => Promise<OperationResult<O>>
  onClose: (listener: (reason: Error) => void) => void
  close: () => Promise<void>
}

/** Opens a link to a peer; `HsmConnection.connect` by default. */
export type PeerConnector = (options: ConnectOptions) => Promise<PeerConnection>

/** Defaults of `createReplicator`'s options. */
export const replicationDefaults = {
  /** Interval of anti-entropy rounds with each peer, in milliseconds. @default 1000 */
  syncIntervalMs: 1_000,
  /** First redial delay after a link dropped or failed, in milliseconds. @default 100 */
  reconnectDelayMinMs: 100,
  /** Largest redial delay, in milliseconds. @default 5000 */
  reconnectDelayMaxMs: 5_000,
  /** Pushes (peerPush, peerDelete) in flight to one peer. @default 8 */
  pushConcurrency: 8,
  /** Pushes waiting for one peer; more are dropped and left to anti-entropy. @default 4096 */
  pushQueueMax: 4_096,
  /** Keys fetched from one peer in one anti-entropy round. @default 256 */
  fetchesPerRoundMax: 256,
  /** peerFetch requests in flight to one peer. @default 4 */
  fetchConcurrency: 4,
  /** Tombstones written from one peer's inventory in one round. @default 4096 */
  tombstonesPerRoundMax: 4_096,
  /** How long one peer request may take, in milliseconds. @default 10000 */
  requestTimeoutMs: 10_000,
  /** How long opening a link may take, in milliseconds. @default 5000 */
  connectTimeoutMs: 5_000
} as const

/** Options of `createReplicator`. Every number has its default in `replicationDefaults`. */
export interface ReplicatorOptions {
  /** Root or component logger; the replicator logs under its `hsmlab:hsm:replication` child. @default silent */
  logger?: Logger
  /** Opens peer links. @default HsmConnection.connect */
  connect?: PeerConnector
  /** Random numbers in [0, 1) for the backoff jitter. @default Math.random */
  random?: () => number
  syncIntervalMs?: number
  reconnectDelayMinMs?: number
  reconnectDelayMaxMs?: number
  pushConcurrency?: number
  pushQueueMax?: number
  fetchesPerRoundMax?: number
  fetchConcurrency?: number
  tombstonesPerRoundMax?: number
  requestTimeoutMs?: number
  connectTimeoutMs?: number
}

/** What the replicator knows about one peer. */
export interface PeerLinkStatus {
  hsmId: string
  endpoint: string
  connected: boolean
  /** When the last anti-entropy round with it finished, `Date.now()`. */
  lastSyncAtMs?: number
  /** Why the link last failed or dropped. */
  lastError?: string
}

/** A `Replicator` with a view for status pages and tests. */
export interface ClusterReplicator extends Replicator {
  /** One entry per peer. */
  links: () => PeerLinkStatus[]
  /** Runs one anti-entropy round with every linked peer now, and waits for it. */
  syncNow: () => Promise<void>
}

type Settings = Required<Omit<ReplicatorOptions, 'logger' | 'connect' | 'random'>>

function errorText (err: unknown): string {
  return err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err)
}

/** One peer: its link, its push queue, its redial timer. */
class PeerLink {
  readonly hsmId: string
  readonly endpoint: string
  readonly queue: PQueue
  connection: PeerConnection | undefined
  lastSyncAtMs: number | undefined
  lastError: string | undefined
  /** Set while an anti-entropy round runs, so rounds never overlap. */
  syncing: Promise<void> | undefined
  private dialing = false
  private attempts = 0
  private timer: NodeJS.Timeout | undefined
  private closed = false
  private readonly waiters = new Set<() => void>()
  private readonly r: Replication

  constructor (r: Replication, peer: PeerAddress) {
    this.r = r
    this.hsmId = peer.hsmId
    this.endpoint = peer.endpoint
    this.queue = new PQueue({ concurrency: r.settings.pushConcurrency })
  }

  get isClosed (): boolean { return this.closed }

  async dial (): Promise<void> {
    if (this.closed || this.dialing || this.connection !== undefined) return
    this.dialing = true
    const { identity } = this.r.ctx
    try {
      const connection = await this.r.connect({
        url: this.endpoint,
        trustAnchor: identity.anchorPublicKey,
        expectedClusterId: identity.clusterId,
        peerIdentity: { secretKey: identity.identity.secretKey, certificate: identity.certificate },
        connectTimeoutMs: this.r.settings.connectTimeoutMs,
        requestTimeoutMs: this.r.settings.requestTimeoutMs
      })
      if (this.closed) { await connection.close(); return }
      this.connection = connection
      this.attempts = 0
      this.lastError = undefined
      if (connection.hsmId !== undefined && connection.hsmId !== this.hsmId) {
        // Still an HSM of this cluster (the handshake checked it), so replicating with it is safe;
        // but the peer list names another HSM at this address.
        this.r.log.warn({ peer: this.hsmId, url: this.endpoint, answered: connection.hsmId }, 'another HSM of the cluster answers at this peer\'s address')
      }
      this.r.log.info({ peer: this.hsmId, url: this.endpoint }, 'peer link up')
      connection.onClose(reason => {
        if (this.connection !== connection) return
        this.connection = undefined
        this.lastError = errorText(reason)
        if (!this.closed) {
          this.r.log.info({ peer: this.hsmId, reason: this.lastError }, 'peer link down')
          this.scheduleDial()
        }
      })
      for (const wake of this.waiters) wake()
      this.waiters.clear()
      void this.r.sync(this)
    } catch (err) {
      this.lastError = errorText(err)
      this.r.log.debug({ peer: this.hsmId, url: this.endpoint, err: this.lastError, attempt: this.attempts }, 'peer link failed')
      this.scheduleDial()
    } finally {
      this.dialing = false
    }
  }

  private scheduleDial (): void {
    if (this.closed || this.timer !== undefined) return
    const { reconnectDelayMinMs, reconnectDelayMaxMs } = this.r.settings
    const ceiling = Math.min(reconnectDelayMaxMs, reconnectDelayMinMs * 2 ** Math.min(this.attempts, 30))
    this.attempts++
    const delay = ceiling / 2 + this.r.random() * ceiling / 2
    this.timer = setTimeout(() => {
      this.timer = undefined
      void this.dial()
    }, delay)
    this.timer.unref()
  }

  /** The link, now or once it comes up before `deadlineMs` (`Date.now()` scale); else undefined. */
  async whenConnected (deadlineMs: number): Promise<PeerConnection | undefined> {
    if (this.connection !== undefined || this.closed) return this.connection
    const remaining = deadlineMs - Date.now()
    if (remaining <= 0) return undefined
    await new Promise<void>(resolve => {
      const timer = setTimeout(() => { this.waiters.delete(wake); resolve() }, remaining)
      const wake = (): void => { clearTimeout(timer); resolve() }
      this.waiters.add(wake)
    })
    return this.connection
  }

  async close (): Promise<void> {
    this.closed = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    for (const wake of this.waiters) wake()
    this.waiters.clear()
    const connection = this.connection
    this.connection = undefined
    await connection?.close().catch(() => {})
  }

  status (): PeerLinkStatus {
    const s: PeerLinkStatus = { hsmId: this.hsmId, endpoint: this.endpoint, connected: this.connection !== undefined }
    if (this.lastSyncAtMs !== undefined) s.lastSyncAtMs = this.lastSyncAtMs
    if (this.lastError !== undefined) s.lastError = this.lastError
    return s
  }
}

class Replication implements ClusterReplicator {
  readonly ctx: HsmContext
  readonly settings: Settings
  readonly log: Logger
  readonly connect: PeerConnector
  readonly random: () => number
  private readonly peers = new Map<string, PeerLink>()
  /** The peerSyncApply calls of each peer, chained in order. */
  private readonly syncChains = new Map<string, { tail: Promise<void>, pending: number }>()
  private interval: NodeJS.Timeout | undefined
  private started = false
  private stopped = false

  constructor (ctx: HsmContext, options: ReplicatorOptions) {
    this.ctx = ctx
    const { logger, connect, random, ...rest } = options
    const settings = { ...replicationDefaults } as Settings
    for (const [name, value] of Object.entries(rest)) {
      if (value === undefined) continue
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new RangeError(`replication option ${name} must be a non-negative number, not ${String(value)}`)
      ;(settings as Record<string, number>)[name] = value
    }
    this.settings = settings
    this.log = (logger ?? pino({ level: 'silent' })).child({ ns: 'hsmlab:hsm:replication', hsmId: ctx.identity.hsmId })
    this.connect = connect ?? (async (o: ConnectOptions) => await HsmConnection.connect(o))
    this.random = random ?? Math.random
  }

  async start (): Promise<void> {
    if (this.started || this.stopped) return
    this.started = true
    this.peersChanged(this.ctx.peers())
    this.interval = setInterval(() => {
      for (const link of this.peers.values()) if (link.connection !== undefined) void this.sync(link)
    }, Math.max(1, this.settings.syncIntervalMs))
    this.interval.unref()
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    if (this.interval !== undefined) clearInterval(this.interval)
    const links = [...this.peers.values()]
    this.peers.clear()
    await Promise.all(links.map(async link => { await link.close() }))
  }

  peersChanged (peers: PeerAddress[]): void {
    if (!this.started || this.stopped) return
    const wanted = new Map<string, PeerAddress>()
    for (const peer of peers) if (peer.hsmId !== this.ctx.identity.hsmId) wanted.set(peer.hsmId, peer)
    for (const [hsmId, link] of this.peers) {
      const peer = wanted.get(hsmId)
      if (peer === undefined || peer.endpoint !== link.endpoint) {
        this.peers.delete(hsmId)
        void link.close()
        this.log.info({ peer: hsmId }, 'peer removed')
      }
    }
    for (const [hsmId, peer] of wanted) {
      if (this.peers.has(hsmId)) continue
      const link = new PeerLink(this, peer)
      this.peers.set(hsmId, link)
      this.log.info({ peer: hsmId, url: peer.endpoint }, 'peer added')
      void link.dial()
    }
  }

  async keyCreated (record: KeyRecord, minServers: number, timeoutMs: number): Promise<void> {
    const links = [...this.peers.values()]
    if (minServers <= 1) {
      if (links.length === 0) return
      // Nobody waits for the peers: mask and send once this turn of the event loop is over, so
      // that the reply to the request that made the key leaves first. A push that arrives after
      // a delete of the key finds its tombstone and is ignored.
      setImmediate(() => {
        let blob: Uint8Array
        try {
          blob = this.maskForPeers(record)
        } catch {
          return // logged; anti-entropy carries the key
        }
        for (const link of links) void this.push(link, record.handle, blob)
      })
      return
    }
    const blob = this.maskForPeers(record)
    const deadlineMs = Date.now() + timeoutMs
    const outcomes = links.map(async link => await this.push(link, record.handle, blob, deadlineMs))
    if (1 + links.length < minServers) {
      throw new WireError(ReturnCode.MIN_SERVERS_NOT_MET, `key ${record.handle} needs ${minServers} HSMs but the cluster has ${1 + links.length}`)
    }
    await new Promise<void>((resolve, reject) => {
      let servers = 1
      let settled = false
      let pending = outcomes.length
      const fail = (): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        reject(new WireError(ReturnCode.MIN_SERVERS_NOT_MET, `key ${record.handle} reached ${servers} of the ${minServers} HSMs required within ${timeoutMs} ms`))
      }
      const timer = setTimeout(fail, timeoutMs)
      for (const outcome of outcomes) {
        void outcome.then(ok => {
          pending--
          if (settled) return
          if (ok) servers++
          if (servers >= minServers) {
            settled = true
            clearTimeout(timer)
            resolve()
          } else if (pending === 0) {
            fail()
          }
        })
      }
    })
  }

  /** The key masked for peerPush; logs and throws RET_MIN_SERVERS_NOT_MET when it cannot be. */
  private maskForPeers (record: KeyRecord): Uint8Array {
    try {
      return maskKey(this.ctx, record)
    } catch (err) {
      this.log.error({ handle: record.handle, err: errorText(err) }, 'cannot mask a key for replication')
      throw new WireError(ReturnCode.MIN_SERVERS_NOT_MET, `key ${record.handle} could not be prepared for replication`, { cause: err })
    }
  }

  syncApplied (objects: Uint8Array[], deleteUsers: string[]): void {
    if (objects.length === 0 && deleteUsers.length === 0) return
    for (const link of this.peers.values()) {
      // A peer that is away misses it; the synchronisation task's next diff finds the difference.
      if (link.connection === undefined) continue
      // One at a time per peer, in order: a later version of a key must not be overtaken by an
      // earlier one (the push queue runs several at once).
      const chain = this.syncChains.get(link.hsmId) ?? { tail: Promise.resolve(), pending: 0 }
      if (chain.pending >= this.settings.pushQueueMax) continue
      chain.pending++
      chain.tail = chain.tail.then(async () => {
        const connection = link.connection
        if (connection === undefined || link.isClosed) return
        try {
          await connection.call('peerSyncApply', { objects, deleteUsers }, { timeoutMs: this.settings.requestTimeoutMs })
        } catch (err) {
          this.log.info({ peer: link.hsmId, err: errorText(err) }, 'peerSyncApply failed; the synchronisation task repairs it')
        }
      }).finally(() => { chain.pending-- })
      this.syncChains.set(link.hsmId, chain)
    }
  }

  keyDeleted (handle: number): void {
    for (const link of this.peers.values()) {
      if (link.connection === undefined) continue // anti-entropy tells it later
      if (link.queue.size >= this.settings.pushQueueMax) continue
      void link.queue.add(async () => {
        const connection = link.connection
        if (connection === undefined || link.isClosed) return
        try {
          await connection.call('peerDelete', { handle }, { timeoutMs: this.settings.requestTimeoutMs })
        } catch (err) {
          this.log.debug({ peer: link.hsmId, handle, err: errorText(err) }, 'peerDelete failed; anti-entropy will carry it')
        }
      })
    }
  }

  /** Sends one masked key to one peer; true when the peer stored or already had it. */
  private async push (link: PeerLink, handle: number, blob: Uint8Array, deadlineMs?: number): Promise<boolean> {
    if (link.queue.size >= this.settings.pushQueueMax) {
      this.log.warn({ peer: link.hsmId, handle }, 'push queue full; the key is left to anti-entropy')
      return false
    }
    return await link.queue.add(async () => {
      if (link.isClosed) return false
      const connection = deadlineMs === undefined ? link.connection : await link.whenConnected(deadlineMs)
      if (connection === undefined) return false
      const timeoutMs = deadlineMs === undefined
        ? this.settings.requestTimeoutMs
        : Math.max(1, Math.min(this.settings.requestTimeoutMs, deadlineMs - Date.now()))
      try {
        await connection.call('peerPush', { blob }, { timeoutMs })
        this.log.debug({ peer: link.hsmId, handle }, 'key pushed')
        return true
      } catch (err) {
        this.log.debug({ peer: link.hsmId, handle, err: errorText(err) }, 'peerPush failed; anti-entropy will carry it')
        return false
      }
    })
  }

  /** Runs an anti-entropy round with `link`, unless one is running; rounds that hit a bound repeat. */
  async sync (link: PeerLink): Promise<void> {
    if (link.syncing !== undefined) return await link.syncing
    link.syncing = (async () => {
      try {
        for (let round = 0; round < 1000; round++) {
          const more = await this.syncOnce(link)
          if (!more || link.isClosed || this.stopped) break
          await new Promise(resolve => setImmediate(resolve))
        }
      } catch (err) {
        this.log.debug({ peer: link.hsmId, err: errorText(err) }, 'anti-entropy round failed')
      } finally {
        link.syncing = undefined
      }
    })()
    await link.syncing
  }

  /** One round; true when a bound was hit and more work is left. */
  private async syncOnce (link: PeerLink): Promise<boolean> {
    const connection = link.connection
    if (connection === undefined || link.isClosed) return false
    const { requestTimeoutMs, tombstonesPerRoundMax, fetchesPerRoundMax, fetchConcurrency } = this.settings
    const ctx = this.ctx
    // A peer holding the same handles as this HSM answers `same` instead of its inventory.
    const inventory = await connection.call('peerInventory', { unlessSummary: inventorySummary(ctx.keys.values()) }, { timeoutMs: requestTimeoutMs })
    if (inventory.same === true) {
      link.lastSyncAtMs = Date.now()
      return false
    }
    let more = false

    const deleted = inventory.deleted.filter(handle => {
      const record = ctx.keys.get(handle)
      return record === undefined || !isTombstone(record)
    })
    if (deleted.length > tombstonesPerRoundMax) more = true
    const tombstoned = await ctx.keys.tombstoneCopies(deleted.slice(0, tombstonesPerRoundMax))
    if (tombstoned > 0) this.log.info({ peer: link.hsmId, count: tombstoned }, 'deletes caught up from peer')

    const missing = inventory.keys.filter(([handle]) => !ctx.keys.has(handle)).map(([handle]) => handle)
    if (missing.length > fetchesPerRoundMax) more = true
    const batch = missing.slice(0, fetchesPerRoundMax)
    let fetched = 0
    const worker = async (): Promise<void> => {
      for (let handle = batch.shift(); handle !== undefined; handle = batch.shift()) {
        if (link.isClosed || this.stopped || ctx.keys.has(handle)) continue
        try {
          const { blob } = await connection.call('peerFetch', { handle }, { timeoutMs: requestTimeoutMs })
          const { kind, payload } = openMasked(ctx, blob)
          if (kind !== 'key') continue
          if (await storeReplicatedKey(ctx, readMaskedKey(payload).record, link.hsmId)) fetched++
        } catch (err) {
          // Deleted there meanwhile (RET_INVALID_HANDLE), or the link dropped: the next round sees.
          this.log.debug({ peer: link.hsmId, handle, err: errorText(err) }, 'peerFetch failed')
          if (connection !== link.connection) return
        }
      }
    }
    await Promise.all(Array.from({ length: Math.max(1, fetchConcurrency) }, worker))
    if (fetched > 0) this.log.info({ peer: link.hsmId, count: fetched }, 'keys caught up from peer')
    link.lastSyncAtMs = Date.now()
    return more && connection === link.connection
  }

  links (): PeerLinkStatus[] {
    return [...this.peers.values()].map(link => link.status())
  }

  async syncNow (): Promise<void> {
    await Promise.all([...this.peers.values()].map(async link => { await this.sync(link) }))
  }
}

/**
 * The replicator of one HSM. `ctx` is read lazily (identity, keys, users, peers); the node calls
 * `start()` once it listens, `peersChanged` after every setPeers, `stop()` when it stops. The key
 * handlers call `keyCreated` and `keyDeleted`.
 */
export function createReplicator (ctx: HsmContext, options: ReplicatorOptions = {}): ClusterReplicator {
  return new Replication(ctx, options)
}
