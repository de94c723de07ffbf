/**
 * One HSM: loads its data directory (storage key unsealed with the manufacturer key, then the
 * `meta`, `users` and `keys` stores), builds the `HsmContext` the handlers share (with the key
 * table over the `keys` store), starts the
 * replicator and listens. `stop()` undoes all of it, in the reverse order.
 */
import { resolve } from 'node:path'
import { ReturnCode, WireError } from '@hsmlab/protocol'
import type { HandlerTable, HsmContext, HsmLimits, Replicator, Session } from './context.js'
import { lockDataDir, openDataStores, readIdentity, readStorageKey } from './data-dir.js'
import type { DataStores } from './data-dir.js'
import { buildCertificates } from './certificates.js'
import { ClusterCertificateBook } from './cluster-certificates.js'
import { hsmDefaults } from './defaults.js'
import { HsmError, HSM_ERR_INVALID_ARGUMENT } from './errors.js'
import { deriveBackupKey } from './backup.js'
import { createBackupHandlers } from './handlers/backup-handlers.js'
import { createInfoHandlers } from './handlers/info-handlers.js'
import { cryptoHandlers } from './handlers/crypto-handlers.js'
import { keyHandlers } from './handlers/key-handlers.js'
import { maskedObjectHandlers } from './handlers/masked-object-handlers.js'
import { peerHandlers } from './handlers/peer-handlers.js'
import { createQuorumHandlers } from './handlers/quorum-handlers.js'
import { createSyncHandlers } from './handlers/sync-handlers.js'
import { createUserHandlers } from './handlers/user-handlers.js'
import { KeyTable } from './key-table.js'
import { QuorumTable } from './quorum-table.js'
import { forComponent, silentLogger } from './logger.js'
import type { Logger } from './logger.js'
import { PeerBook } from './peers.js'
import { createReplicator } from './replication.js'
import type { ReplicatorOptions } from './replication.js'
import { HsmServer } from './server.js'
import { SyncChangeFeed, keyChangeRefs, observeStore, userChangeRefs } from './sync-feed.js'
import type { FeedLookups } from './sync-feed.js'
import { warmSyncDigests } from './sync-digest.js'
import { SyncRoleBook } from './sync-role.js'
import { UserTombstones } from './user-tombstones.js'
import PQueue from 'p-queue'

/** Options of `startHsm`. */
export interface StartHsmOptions {
  /** A directory `provisionHsm` made. */
  dataDir: string
  /** The installation's manufacturer key (it unseals `storage.key`). */
  manufacturerKey: Uint8Array
  /** @default '127.0.0.1' */
  host?: string
  /** @default 0 (any free port; read `HsmNode.port`) */
  port?: number
  /** @default keysMax 3300, usersMax 1024, loginFailuresMax 5 */
  limits?: Partial<HsmLimits>
  /** Root logger; the node logs under `hsmlab:hsm:*` children. @default silent */
  logger?: Logger
  /** @default hsmDefaults.heartbeatIntervalMs (30000) */
  heartbeatIntervalMs?: number
  /** @default hsmDefaults.handshakeTimeoutMs (5000) */
  handshakeTimeoutMs?: number
  /** @default hsmDefaults.headersTimeoutMs (10000) */
  headersTimeoutMs?: number
  /** @default hsmDefaults.requestsInFlightMax (1024) */
  requestsInFlightMax?: number
  /** @default hsmDefaults.connectionsMax (4096) */
  connectionsMax?: number
  /** @default hsmDefaults.frameBytesMax (16 MiB) */
  frameBytesMax?: number
  /** @default hsmDefaults.stopTimeoutMs (5000) */
  stopTimeoutMs?: number
  /** scrypt cost of password verifiers made by createUser and changePassword. @default hsmDefaults.passwordHashCost (4096) */
  passwordHashCost?: number
  /** Make store writes durable before answering. @default true */
  syncWrites?: boolean
  /** Options of the key replicator (intervals, backoff, bounds); see `replicationDefaults`. */
  replication?: Omit<ReplicatorOptions, 'logger'>
  /** Changes the synchronisation change sequence keeps (syncChanges). @default hsmDefaults.syncChangesRetainedMax (65536) */
  syncChangesRetainedMax?: number
}

/** A running HSM. */
export interface HsmNode {
  readonly hsmId: string
  readonly clusterId: string
  readonly host: string
  /** The port actually bound. */
  readonly port: number
  /** `ws://host:port`. */
  readonly url: string
  /** Stops listening, lets requests in processing finish, closes connections, stores and replication. Safe to call twice. */
  stop: () => Promise<void>
}

function checkLimit (name: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new HsmError(HSM_ERR_INVALID_ARGUMENT, `${name} must be an integer of at least ${min}, not ${value}`)
  }
  return value
}

/** The limits of an HSM, defaults filled in and checked. */
export function resolveLimits (limits: Partial<HsmLimits> = {}): HsmLimits {
  return {
    keysMax: checkLimit('keysMax', limits.keysMax ?? hsmDefaults.keysMax, 0),
    usersMax: checkLimit('usersMax', limits.usersMax ?? hsmDefaults.usersMax, 2),
    loginFailuresMax: checkLimit('loginFailuresMax', limits.loginFailuresMax ?? hsmDefaults.loginFailuresMax, 1)
  }
}

/**
 * The handle allocator of one HSM: `slot * 262144 + n`, `n` one above the highest `n` any key or
 * tombstone of this slot ever had (6 at first), so a handle is never given out twice. The store
 * is scanned on every call (a few thousand entries at most) so that keys of this slot arriving
 * by replication or restore are respected too.
 */
export function handleAllocator (stores: Pick<DataStores, 'keys'>, slot: number): () => number {
  const per = hsmDefaults.handlesPerSlot
  const base = slot * per
  let next = hsmDefaults.firstHandleIndex
  return () => {
    let n = next
    for (const key of stores.keys.values()) {
      const index = key.handle - base
      if (index >= n && index < per) n = index + 1
    }
    if (n >= per) throw new WireError(ReturnCode.KEY_LIMIT, `slot ${slot} has no handle left`)
    next = n + 1
    return base + n
  }
}

/** Loads an HSM's data directory and starts serving it. */
export async function startHsm (opts: StartHsmOptions): Promise<HsmNode> {
  const rootLogger = opts.logger ?? silentLogger()
  const log = forComponent(rootLogger, 'node')
  const limits = resolveLimits(opts.limits)
  const dataDir = resolve(opts.dataDir)
  const storageKey = await readStorageKey(dataDir, opts.manufacturerKey)
  const unlock = await lockDataDir(dataDir)
  let stores: DataStores
  try {
    // Provisioned (it has a storage key), so every store must exist: one whose files were all
    // deleted is refused rather than served empty (no users, not even the CO).
    stores = await openDataStores(dataDir, storageKey, { syncWrites: opts.syncWrites, create: false })
  } catch (err) {
    await unlock()
    throw err
  }
  let replicator: Replicator | undefined
  let server: HsmServer | undefined
  try {
    const identity = readIdentity(stores.meta, dataDir)
    const peerBook = new PeerBook(stores.meta, identity.hsmId)
    const sessions = new Set<Session>()
    // User changes run one at a time per HSM (see HsmContext.runExclusive).
    const exclusive = new PQueue({ concurrency: 1 })
    let late: Replicator | undefined
    // Every durable change of a key or user, by whoever made it, enters the change sequence that
    // syncChanges reads: the stores everything writes through are observed ones.
    const feed = new SyncChangeFeed(opts.syncChangesRetainedMax ?? hsmDefaults.syncChangesRetainedMax)
    const lookups: FeedLookups = {
      userName: userId => stores.users.get(String(userId))?.userName,
      keysSharedWith: userId => {
        const handles: number[] = []
        for (const key of stores.keys.values()) if (!('deleted' in key) && key.sharedWith.includes(userId)) handles.push(key.handle)
        return handles
      }
    }
    const users = observeStore(stores.users, (changes, before) => { feed.record(userChangeRefs(lookups, changes, before)) })
    const keys = observeStore(stores.keys, (changes, before) => { feed.record(keyChangeRefs(lookups, changes, before)) })
    const roles = new SyncRoleBook(stores.meta)
    const ctx: HsmContext = {
      identity,
      limits,
      users,
      keys: new KeyTable({ store: keys, nextHandle: handleAllocator(stores, identity.slot), keysMax: limits.keysMax, sessions }),
      sessions,
      syncRole: () => roles.current(),
      userTombstones: new UserTombstones(stores.meta),
      get replicator (): Replicator {
        if (late === undefined) throw new Error('the replicator is used before it was created')
        return late
      },
      peers: () => peerBook.list(),
      runExclusive: async <T>(task: () => Promise<T>): Promise<T> => await exclusive.add(task)
    }
    replicator = createReplicator(ctx, { ...opts.replication, logger: rootLogger })
    late = replicator

    const quorum = new QuorumTable(stores.meta)
    const clusterCertificates = new ClusterCertificateBook(stores.meta)
    const handlers: HandlerTable = {
      ...createUserHandlers({ passwordHashCost: opts.passwordHashCost, quorum }),
      ...createQuorumHandlers(quorum),
      ...createInfoHandlers({ certificates: buildCertificates(identity, opts.manufacturerKey), clusterCertificates, peerBook }),
      ...keyHandlers,
      ...cryptoHandlers,
      ...maskedObjectHandlers,
      ...peerHandlers,
      ...createBackupHandlers({ backupKey: deriveBackupKey(opts.manufacturerKey), quorum, clusterCertificates }),
      ...createSyncHandlers({ feed, roles })
    }
    const host = opts.host ?? hsmDefaults.host
    server = new HsmServer({
      ctx,
      sessions,
      handlers,
      logger: forComponent(rootLogger, 'server'),
      host,
      port: opts.port ?? hsmDefaults.port,
      frameBytesMax: opts.frameBytesMax ?? hsmDefaults.frameBytesMax,
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? hsmDefaults.handshakeTimeoutMs,
      headersTimeoutMs: opts.headersTimeoutMs ?? hsmDefaults.headersTimeoutMs,
      heartbeatIntervalMs: opts.heartbeatIntervalMs ?? hsmDefaults.heartbeatIntervalMs,
      requestsInFlightMax: opts.requestsInFlightMax ?? hsmDefaults.requestsInFlightMax,
      connectionsMax: opts.connectionsMax ?? hsmDefaults.connectionsMax,
      // Quorum tokens and 2FA challenges belong to a session: they go with its connection.
      onSessionEnd: session => { quorum.endSession(session.id) }
    })
    const bound = await server.listen()
    await replicator.start()
    const stopWarming = warmSyncDigests(ctx)
    const url = `ws://${bound.host.includes(':') ? `[${bound.host}]` : bound.host}:${bound.port}`
    log.info({ hsmId: identity.hsmId, clusterId: identity.clusterId, url }, 'HSM listening')

    const running = server
    const runningReplicator = replicator
    let stopping: Promise<void> | undefined
    const stop = async (): Promise<void> => {
      stopping ??= (async () => {
        log.info({ hsmId: identity.hsmId }, 'HSM stopping')
        // Long polls answer now (with what they have) instead of holding the stop up.
        feed.close()
        stopWarming()
        await running.close(opts.stopTimeoutMs ?? hsmDefaults.stopTimeoutMs)
        await runningReplicator.stop()
        // Closing a store waits for the writes it already accepted.
        await closeStores(stores)
        await unlock()
        log.info({ hsmId: identity.hsmId }, 'HSM stopped')
      })()
      await stopping
    }
    return { hsmId: identity.hsmId, clusterId: identity.clusterId, host: bound.host, port: bound.port, url, stop }
  } catch (err) {
    await server?.close(0)
    await replicator?.stop().catch(() => {})
    await closeStores(stores)
    await unlock()
    throw err
  }
}

async function closeStores (stores: DataStores): Promise<void> {
  await Promise.allSettled([stores.meta.close(), stores.users.close(), stores.keys.close()])
}
