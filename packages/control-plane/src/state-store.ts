/**
 * The control plane's durable state: one JSON file (`state.json`) in the data directory, written
 * atomically (temporary file, fsync, rename, fsync of the directory) before any change is
 * acknowledged. Changes go through `transact`, which applies a function to a copy of the state,
 * writes the copy, and only then makes it current: a change that throws, or whose write fails,
 * leaves nothing behind. Transactions run one at a time.
 *
 * The file holds no secret: each cluster's trust-anchor secret key lives in the engine's keyring
 * (anchor-keyring.ts, `anchors.json`), out of reach of the API handlers, which all read this
 * state. It is written with mode 0600 all the same. Backup bytes live beside it in `backups/`,
 * HSM data directories in `hsms/`.
 *
 * The maps of records (clusters, HSMs, backups) are keyed by ids that requests name, so they
 * have no prototype, as loaded and after every change: a lookup of `constructor` or `__proto__`
 * finds nothing rather than a member of Object.
 */
import { mkdir, readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { takePidLock, writeFileAtomic } from '@hsmlab/process'
import type { ClockAnchor } from './clock.js'
import { LOCK_FILE_NAME, STATE_FILE_NAME } from './defaults.js'
import { ControlPlaneError, CP_ERR_DATA_DIR_LOCKED, CP_ERR_NO_SPACE, CP_ERR_STATE } from './errors.js'

export type ClusterState =
  | 'CREATE_IN_PROGRESS' | 'UNINITIALIZED' | 'INITIALIZE_IN_PROGRESS' | 'INITIALIZED' | 'ACTIVE' | 'UPDATE_IN_PROGRESS'
  | 'MODIFY_IN_PROGRESS' | 'ROLLBACK_IN_PROGRESS' | 'DELETE_IN_PROGRESS' | 'DELETED' | 'DEGRADED'
export type HsmState = 'CREATE_IN_PROGRESS' | 'ACTIVE' | 'DEGRADED' | 'DELETE_IN_PROGRESS' | 'DELETED'
export type BackupState = 'CREATE_IN_PROGRESS' | 'READY' | 'DELETED' | 'PENDING_DELETION'

/** One tag, as the API spells it. */
export interface Tag {
  Key: string
  Value: string
}

/** The certificates of a cluster (API `Certificates`), PEM-armoured text. */
export interface ClusterCertificates {
  ClusterCsr?: string
  HsmCertificate?: string
  AwsHardwareCertificate?: string
  ManufacturerHardwareCertificate?: string
  ClusterCertificate?: string
}

export interface ClusterRecord {
  clusterId: string
  /** Lab time. */
  createdAtMs: number
  hsmType: string
  mode?: 'FIPS' | 'NON_FIPS'
  networkType: 'IPV4' | 'DUALSTACK'
  state: ClusterState
  stateMessage?: string
  /** Availability zone → subnet. */
  subnetMapping: Record<string, string>
  vpcId: string
  securityGroup: string
  sourceBackupId?: string
  retentionDays: number
  tags: Tag[]
  /**
   * The trust anchor's public key (Ed25519), base64. Its secret key is in the engine's keyring
   * (anchor-keyring.ts), dropped once the cluster is DELETED.
   */
  anchorPublicKey: string
  /**
   * The public key of ClusterCsr (EC P-256, SPKI PEM), which InitializeCluster's SignedCert must
   * certify. Its private key is not kept: nothing signs with it once the CSR is made.
   */
  csrPublicKeyPem?: string
  /** ClusterCsr (PEM), shown once the cluster's first HSM is ACTIVE, while it is UNINITIALIZED. */
  csrPem?: string
  certificates: ClusterCertificates
  /** The customer's TrustAnchor given to InitializeCluster (stored, not used for trust). */
  customerTrustAnchor?: string
  /** The lineage of the cluster's HSMs, once one of them told it. */
  lineage?: string
  /** The next handle slot an HSM of this cluster gets (never reused). */
  nextSlot: number
  /** Version of the last peer list sent to the cluster's HSMs. */
  peersVersion: number
  /** Real time at which the current *_IN_PROGRESS state ends. */
  transitionAtRealMs?: number
  /** Lab time of the state DELETED. */
  deletedAtMs?: number
}

export interface HsmRecord {
  hsmId: string
  clusterId: string
  availabilityZone: string
  subnetId: string
  eniId: string
  eniIp: string
  hsmType: string
  state: HsmState
  stateMessage?: string
  slot: number
  /** Lab time. */
  createdAtMs: number
  /** The port it listens on, once it did. */
  port?: number
  /** The pid of its process, while one runs (or ran when the state was written). */
  pid?: number
  /** The backup it is restored from (none: the first HSM of a new cluster). */
  restoreFrom?: string
  /** True once its data directory holds a provisioned HSM (the ready line was seen once). */
  provisioned: boolean
  /** Unexpected exits since it was last ready. */
  failures: number
  /** True when the process must not be restarted (its data cannot be loaded). */
  halted?: boolean
  /** Lab time of the state DELETED. */
  deletedAtMs?: number
}

export type BackupReason = 'activation' | 'hsm-added' | 'hsm-removed' | 'daily' | 'requested' | 'copy'

export interface BackupRecord {
  backupId: string
  clusterId?: string
  state: BackupState
  /** Lab time (for a copy: the source backup's). */
  createdAtMs: number
  copiedAtMs?: number
  neverExpires: boolean
  sourceRegion?: string
  sourceBackup?: string
  sourceCluster?: string
  /** Lab time at which a PENDING_DELETION backup is deleted for good. */
  deleteAtMs?: number
  tags: Tag[]
  hsmType: string
  mode?: 'FIPS' | 'NON_FIPS'
  /** hsmlab extension: why a backup is DELETED (failed copy, interrupted export). */
  stateMessage?: string
  reason: BackupReason
  /** The HSM it is exported from (local backups). */
  sourceHsmId?: string
  /** Bytes, relative to the data directory, once READY. */
  file?: string
  sha256?: string
  sizeBytes?: number
  lineage?: string
  keyCount?: number
  userCount?: number
  /** The next free handle slot of the cluster when it was made; a cluster restored from it starts there. */
  nextSlot: number
  /**
   * The resource policy (PutResourcePolicy), as given: a JSON policy document. A copy of the
   * backup does not carry it (the copy is another resource), nor does a cluster made from it.
   */
  resourcePolicy?: string
  /** The ClusterCertificate of the cluster it was made from, which a cluster made from it shows again. */
  clusterCertificate?: string
  /** For a copy in progress. */
  copy?: { requestId: string, deadlineLabMs: number, attempts: number, lastError?: string }
  /** Lab time of the state DELETED. */
  deletedAtMs?: number
}

/**
 * hsmlab extension (HsmlabSetHsmRoutes): the endpoint through which `from` reaches an HSM instead
 * of the HSM's own, such as a fault proxy's listener in front of it. The lab sets them so that the
 * links between HSMs, and from the control plane to its HSMs, go through its fault proxy.
 */
export interface HsmRouteRecord {
  /** The HSM reached. */
  hsmId: string
  /** Who dials it: `control-plane`, or the id of another HSM of its cluster (in that HSM's peer list). */
  from: string
  /** `ws://host:port` to dial instead of the HSM's own endpoint. */
  endpoint: string
  /** The HSM endpoint the route leads to (`ws://EniIp:port`): the route is used only while the HSM is there. */
  upstream?: string
}

/** hsmlab extension (issue 12): what a synchronisation replica receives. */
export type SyncType = 'KEYS' | 'KEYS_AND_USERS'

/** The scope of a synchronisation task: it only grows (HsmlabAddSyncResources). */
export interface SyncScopeRecord {
  /** Every token key of the primary. */
  keysAll: boolean
  /** Every key of these users (by name), later ones included. */
  owners: string[]
  /** These keys, by their handle on the primary. */
  handles: number[]
  /** These users, by name (KEYS_AND_USERS replicas only). */
  users: string[]
}

/** One replica of a synchronisation task, as the primary's region keeps it. */
export interface SyncTaskReplicaRecord {
  clusterId: string
  region: string
  syncType: SyncType
  state: 'ASSOCIATED' | 'DISASSOCIATED'
  /** Lab time. */
  associatedAtMs: number
  /** Lab time; set for good once DISASSOCIATED. */
  disassociatedAtMs?: number
  /** True once the replica's region recorded the current `state` (POST /_hsmlab/sync/associate or /disassociate). */
  confirmed: boolean
}

/** hsmlab extension (issue 12): the synchronisation task of a primary cluster of this region. */
export interface SyncTaskRecord {
  syncTaskId: string
  primaryClusterId: string
  /** Lab time. */
  createdAtMs: number
  replicas: SyncTaskReplicaRecord[]
  scope: SyncScopeRecord
}

/**
 * hsmlab extension (issue 12), kept by the replica's region: a cluster of this region that is (or
 * was, DISASSOCIATED, kept forever) a replica of a primary cluster of another region.
 */
export interface SyncReplicaOfRecord {
  clusterId: string
  primaryClusterId: string
  primaryRegion: string
  syncType: SyncType
  state: 'ASSOCIATED' | 'DISASSOCIATED'
  /** Lab time. */
  associatedAtMs: number
  disassociatedAtMs?: number
  /** Version of the last synchronisation role sent to the cluster's HSMs (setSyncRole); it only grows. */
  roleVersion: number
}

/** Everything the control plane knows. */
export interface ControlPlaneState {
  format: 'hsmlab-control-plane/v1'
  region: string
  accountId: string
  clock?: ClockAnchor
  clusters: Record<string, ClusterRecord>
  hsms: Record<string, HsmRecord>
  backups: Record<string, BackupRecord>
  /** hsmlab extension: routes to HSMs (HsmlabSetHsmRoutes); absent in state files written before they existed. */
  hsmRoutes?: HsmRouteRecord[]
  /**
   * Source side of CopyBackupToRegion: the copy requests this region answered with a failure, by
   * request id, until the destination region confirmed it keeps nothing of them.
   */
  abandonedCopies?: Record<string, AbandonedCopyRecord>
  /** hsmlab extension (issue 12): synchronisation tasks by primary cluster id. The records of their resources are in sync-records.json. */
  syncTasks?: Record<string, SyncTaskRecord>
  /** hsmlab extension (issue 12): clusters of this region that are or were replicas, by cluster id. */
  syncReplicaOf?: Record<string, SyncReplicaOfRecord>
}

/** A copy request answered with a failure, whose destination must drop whatever it recorded. */
export interface AbandonedCopyRecord {
  /** The destination region. */
  region: string
  /** The source backup. */
  backupId: string
  /** Lab time of the failure answer. */
  atLabMs: number
}

/** Gives the maps of records that requests index no prototype (see the module comment). */
function withoutPrototypes (state: ControlPlaneState): ControlPlaneState {
  const bare = <T>(map: Record<string, T> | undefined): Record<string, T> => Object.assign(Object.create(null) as Record<string, T>, map)
  state.clusters = bare(state.clusters)
  state.hsms = bare(state.hsms)
  state.backups = bare(state.backups)
  if (state.abandonedCopies !== undefined) state.abandonedCopies = bare(state.abandonedCopies)
  if (state.syncTasks !== undefined) state.syncTasks = bare(state.syncTasks)
  if (state.syncReplicaOf !== undefined) state.syncReplicaOf = bare(state.syncReplicaOf)
  for (const cluster of Object.values(state.clusters)) cluster.subnetMapping = bare(cluster.subnetMapping)
  return state
}

const FORMAT = 'hsmlab-control-plane/v1'

/** The state file of one data directory. */
export class StateStore {
  readonly file: string
  private current: ControlPlaneState
  /** `current` as written: a transaction that leaves it unchanged needs no write. */
  private currentText: string
  private queue: Promise<unknown> = Promise.resolve()

  private constructor (file: string, state: ControlPlaneState) {
    this.file = file
    this.current = state
    this.currentText = JSON.stringify(state)
  }

  /** Reads the state of `dataDir`, or starts an empty one; refuses another region's or version's. */
  static async open (dataDir: string, region: string, accountId: string): Promise<StateStore> {
    const file = join(dataDir, STATE_FILE_NAME)
    let text: string | undefined
    try {
      text = await readFile(file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new ControlPlaneError(CP_ERR_STATE, `cannot read the state file ${file}: ${(err as Error).message}`, { cause: err })
      }
    }
    if (text === undefined) {
      const state = withoutPrototypes({ format: FORMAT, region, accountId, clusters: {}, hsms: {}, backups: {} })
      const store = new StateStore(file, state)
      await writeFileAtomic(file, JSON.stringify(state))
      return store
    }
    let state: ControlPlaneState
    try {
      state = JSON.parse(text) as ControlPlaneState
    } catch (err) {
      throw new ControlPlaneError(CP_ERR_STATE, `the state file ${file} is not JSON (${(err as Error).message}); restore it or start with an empty data directory`, { cause: err })
    }
    if (state.format !== FORMAT || typeof state.clusters !== 'object' || typeof state.hsms !== 'object' || typeof state.backups !== 'object') {
      throw new ControlPlaneError(CP_ERR_STATE, `the state file ${file} is not a ${FORMAT} state file`)
    }
    if (state.region !== region) {
      throw new ControlPlaneError(CP_ERR_STATE, `the data directory ${dirname(file)} belongs to region ${state.region}, not ${region}; use another directory for ${region}`)
    }
    return new StateStore(file, withoutPrototypes(state))
  }

  /** The current state; treat it as read-only (change it with `transact`). */
  get state (): Readonly<ControlPlaneState> {
    return this.current
  }

  /**
   * Applies `change` to a copy of the state and writes it; the copy becomes current once it is
   * durable. If `change` throws, nothing is written and the error is passed on.
   *
   * `after` is a write that the change refers to (the bytes of a backup it records READY), made
   * at the same time: the copy is written meanwhile, but becomes durable and current only once
   * `after` resolved; if `after` rejects, the transaction fails with its error.
   *
   * On a full disk the transaction fails with `CP_ERR_NO_SPACE`: the state stays what is on disk,
   * and the next transaction succeeds once there is space.
   */
  async transact<T> (change: (draft: ControlPlaneState) => T, options: { after?: Promise<unknown> } = {}): Promise<T> {
    // Awaited below, maybe after it settled: it must not count as an unhandled rejection meanwhile.
    options.after?.catch(() => {})
    const run = async (): Promise<T> => {
      // structuredClone gives every object Object's prototype back.
      const draft = withoutPrototypes(structuredClone(this.current))
      const result = change(draft)
      const text = JSON.stringify(draft)
      // Most passes of the reconcilers change nothing; a write (two fsyncs) for each would slow
      // every pass. A write ordered after `after` is always made, to keep that order.
      if (text === this.currentText && options.after === undefined) return result
      try {
        await writeFileAtomic(this.file, text, { renameAfter: options.after })
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code !== 'ENOSPC' && code !== 'EDQUOT') throw err
        const message = `the change could not be written to ${this.file}, the file system is full (${(err as Error).message}): ` +
          'nothing was changed; free space on it and retry'
        throw new ControlPlaneError(CP_ERR_NO_SPACE, message, { cause: err })
      }
      this.current = draft
      this.currentText = text
      return result
    }
    const next = this.queue.then(run, run)
    this.queue = next.catch(() => {})
    return await next
  }
}

/**
 * Takes the data directory for this process (`control-plane.pid`, or `holder.file`); throws
 * CP_ERR_DATA_DIR_LOCKED when another live process holds it. A lock left by a dead process is
 * taken over. Resolves with the function that releases it.
 */
export async function lockDataDir (dataDir: string, holder: { what: string, file: string } = { what: 'control plane', file: LOCK_FILE_NAME }): Promise<() => Promise<void>> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const file = join(dataDir, holder.file)
  let lock
  try {
    lock = await takePidLock(file)
  } catch (err) {
    throw new ControlPlaneError(CP_ERR_STATE, `cannot write ${file}: ${(err as Error).message}`, { cause: err })
  }
  if ('release' in lock) return lock.release
  if (lock.heldBy === undefined) throw new ControlPlaneError(CP_ERR_DATA_DIR_LOCKED, `cannot take the lock ${file}`)
  throw new ControlPlaneError(CP_ERR_DATA_DIR_LOCKED, `another ${holder.what} (pid ${lock.heldBy}) serves ${dataDir}; stop it first, or use another data directory`)
}
