/**
 * The layout of an HSM's data directory, shared by provisioning and by the running node:
 *
 * - `storage.key`: the HSM's storage key, sealed under the manufacturer key (written last at
 *   provisioning, so its presence means "provisioned");
 * - `meta.{wal,snap,manifest}`: the HSM's identity and its peer list (`MetaRecord`);
 * - `users.{wal,snap,manifest}`: `UserRecord` by user id;
 * - `keys.{wal,snap,manifest}`: `KeyRecord | KeyTombstone`, written by the key handlers and
 *   replication (each store's manifest says how far its WAL and snapshot got, see @hsmlab/store);
 * - `hsm.pid`: the pid of the process serving the directory, while it runs: two processes
 *   writing one store would each append to its WAL and leave it unreadable.
 *
 * Each store is sealed under its own key derived from the storage key, so that one store's file
 * put in the place of another's fails authentication instead of loading.
 */
import { open as fsOpen, mkdir, readFile, rename, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { CryptoError, deriveKey, open, seal } from '@hsmlab/crypto'
import { takePidLock } from '@hsmlab/process'
import type { PeerAddress, SyncRole, UserType } from '@hsmlab/protocol'
import { openStore } from '@hsmlab/store'
import type { Store } from '@hsmlab/store'
import type { HsmIdentity, KeyRecord, KeyTombstone, UserRecord } from './context.js'
import { HsmError, HSM_ERR_DATA_DIR_LOCKED, HSM_ERR_NOT_PROVISIONED, HSM_ERR_STORAGE_KEY, HSM_ERR_STORE_LOAD } from './errors.js'

/** The file naming the process that serves the directory. */
export const LOCK_FILE = 'hsm.pid'

/** The file holding the sealed storage key. */
export const STORAGE_KEY_FILE = 'storage.key'

/** The stores of a data directory, by file stem. */
export const STORE_NAMES = ['meta', 'users', 'keys'] as const
export type StoreName = typeof STORE_NAMES[number]

/** Id of the identity record in the meta store. */
export const META_IDENTITY = 'identity'
/** Id of the peer-list record in the meta store. */
export const META_PEERS = 'peers'
/** Id of the quorum settings (`QuorumSettings`) in the meta store. */
export const META_QUORUM = 'quorum'
/** Id of the synchronisation role (`SyncRoleRecord`) in the meta store. */
export const META_SYNC_ROLE = 'sync-role'
/** Id of the cluster certificate and customer CA (`ClusterCertificatesRecord`) in the meta store. */
export const META_CLUSTER_CERTIFICATES = 'cluster-certificates'
/** Prefix of the ids of user deletion tombstones (`DeletedUserRecord`, by lowercase name) in the meta store. */
export const META_DELETED_USER_PREFIX = 'deleted-user:'

/** The peer list the lab last set, with the version and signature it came with. */
export interface PeerList {
  peers: PeerAddress[]
  version: number
  signature: Uint8Array
}

/**
 * The synchronisation role the control plane last set (setSyncRole), with the version and the
 * trust anchor's signature it came with: kept in the sealed meta store, so it survives a restart
 * and a changed byte makes the store refuse to load, like the peer list.
 */
export interface SyncRoleRecord {
  kind: 'sync-role'
  role: SyncRole
  primaryClusterId?: string
  version: number
  signature: Uint8Array
}

/**
 * The certificates InitializeCluster gave the cluster, as the HSM holds them (getCert 8 and 4):
 * the cluster certificate the customer's CA signed (SignedCert) and that CA's certificate
 * (TrustAnchor), PEM, exactly as given.
 */
export interface ClusterCertificates {
  clusterCertificate: string
  trustAnchor: string
}

/**
 * A user deleteUser deleted on this HSM (user-tombstones.ts): users are not replicated inside a
 * cluster, so a user absent here may be one this HSM never received; only this record says that
 * the cluster really deleted it (a synchronisation task carries only such deletions).
 */
export interface DeletedUserRecord {
  kind: 'deleted-user'
  userName: string
  userType: UserType
  deletedAtMs: number
}

/** What the meta store holds. */
export type MetaRecord = { kind: 'identity', identity: HsmIdentity } | ({ kind: 'peers' } & PeerList) | QuorumSettings | SyncRoleRecord |
  ({ kind: 'cluster-certificates' } & ClusterCertificates) | DeletedUserRecord

/** The quorum minimum values (M) of this HSM by service, set by setMValue; a service not named has M = 1. */
export interface QuorumSettings {
  kind: 'quorum'
  mValues: Record<number, number>
}

/** The opened stores of one HSM. */
export interface DataStores {
  meta: Store<MetaRecord>
  users: Store<UserRecord>
  keys: Store<KeyRecord | KeyTombstone>
}

/** Store options that tests and the bench may change. */
export interface DataStoreOptions {
  /** Passed to every store. @default true */
  syncWrites?: boolean
  /**
   * Create stores that have no files. Only provisioning does: a provisioned HSM's stores must
   * exist, so one whose files were all deleted is refused instead of opening empty. @default true
   */
  create?: boolean
}

/** True once `dir` holds a sealed storage key. */
export async function hasStorageKey (dir: string): Promise<boolean> {
  return await exists(join(dir, STORAGE_KEY_FILE))
}

/** Names of store files present in `dir` (`users.wal`, ...). */
export async function storeFilesIn (dir: string): Promise<string[]> {
  const found: string[] = []
  for (const name of STORE_NAMES) {
    for (const ext of ['wal', 'snap', 'manifest']) {
      if (await exists(join(dir, `${name}.${ext}`))) found.push(`${name}.${ext}`)
    }
  }
  return found
}

async function exists (path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}

/** Writes a file atomically and durably: temporary file, fsync, rename, fsync of the directory. */
export async function writeFileDurably (dir: string, name: string, data: Uint8Array | string, mode = 0o600): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const tmp = join(dir, `.${name}.tmp-${process.pid}`)
  const file = await fsOpen(tmp, 'w', mode)
  try {
    await file.writeFile(data)
    await file.sync()
  } finally {
    await file.close()
  }
  await rename(tmp, join(dir, name))
  const dirHandle = await fsOpen(dir, 'r')
  try {
    await dirHandle.sync()
  } finally {
    await dirHandle.close()
  }
}

/** Seals the storage key under the manufacturer key into `storage.key`. */
export async function writeStorageKey (dir: string, manufacturerKey: Uint8Array, storageKey: Uint8Array): Promise<void> {
  await writeFileDurably(dir, STORAGE_KEY_FILE, seal(manufacturerKey, storageKey))
}

/** Reads and unseals `storage.key`; throws `HSM_ERR_NOT_PROVISIONED` or `HSM_ERR_STORAGE_KEY`. */
export async function readStorageKey (dir: string, manufacturerKey: Uint8Array): Promise<Uint8Array> {
  const path = join(dir, STORAGE_KEY_FILE)
  let sealed: Uint8Array
  try {
    sealed = new Uint8Array(await readFile(path))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new HsmError(HSM_ERR_NOT_PROVISIONED, `${dir} is not the data directory of a provisioned HSM (${path} is missing); provision it first`, { cause: err })
    }
    throw new HsmError(HSM_ERR_STORAGE_KEY, `cannot read ${path}: ${(err as Error).message}`, { cause: err })
  }
  try {
    return open(manufacturerKey, sealed)
  } catch (err) {
    if (err instanceof CryptoError) {
      throw new HsmError(HSM_ERR_STORAGE_KEY, `${path} cannot be unsealed: it was sealed under another manufacturer key, or the file was changed (${err.message})`, { cause: err })
    }
    throw err
  }
}

/** Opens the three stores; on failure closes what was opened and throws `HSM_ERR_STORE_LOAD` naming the file. */
export async function openDataStores (dir: string, storageKey: Uint8Array, options: DataStoreOptions = {}): Promise<DataStores> {
  const opened: Array<Store<unknown>> = []
  const openOne = async <V>(name: StoreName): Promise<Store<V>> => {
    try {
      const store = await openStore<V>({ dir, name, key: deriveKey(storageKey, `store/${name}`), ...options })
      opened.push(store)
      return store
    } catch (err) {
      const code = (err as { code?: unknown }).code
      const reason = err instanceof Error ? err.message : String(err)
      throw new HsmError(HSM_ERR_STORE_LOAD, `the ${name} store of ${dir} refused to load${typeof code === 'string' ? ` [${code}]` : ''}: ${reason}`, { cause: err })
    }
  }
  try {
    const meta = await openOne<MetaRecord>('meta')
    const users = await openOne<UserRecord>('users')
    const keys = await openOne<KeyRecord | KeyTombstone>('keys')
    return { meta, users, keys }
  } catch (err) {
    await Promise.allSettled(opened.map(async s => { await s.close() }))
    throw err
  }
}

/** The identity record of an opened meta store; throws `HSM_ERR_NOT_PROVISIONED` without one. */
export function readIdentity (meta: Store<MetaRecord>, dir: string): HsmIdentity {
  const record = meta.get(META_IDENTITY)
  if (record?.kind !== 'identity') {
    throw new HsmError(HSM_ERR_NOT_PROVISIONED, `the meta store in ${dir} holds no HSM identity: provisioning did not finish; remove the directory and provision it again`)
  }
  return record.identity
}

/** The peer list of an opened meta store, if the lab ever set one. */
export function readPeerList (meta: Store<MetaRecord>): PeerList | undefined {
  const record = meta.get(META_PEERS)
  if (record?.kind !== 'peers') return undefined
  return { peers: record.peers, version: record.version, signature: record.signature }
}

/**
 * Marks `dir` as served by this process (`hsm.pid`, created exclusively). A lock left by a
 * process that is gone (killed with SIGKILL, say) is taken over; one held by a live process
 * throws `HSM_ERR_DATA_DIR_LOCKED`. Resolves with the function that releases it.
 */
export async function lockDataDir (dir: string): Promise<() => Promise<void>> {
  const path = join(dir, LOCK_FILE)
  const lock = await takePidLock(path, 0o600)
  if ('heldBy' in lock) {
    throw new HsmError(HSM_ERR_DATA_DIR_LOCKED, `${dir} is already served by process ${lock.heldBy ?? '(unknown)'} (see ${path}); stop that process first`)
  }
  return lock.release
}
