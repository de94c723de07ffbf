/**
 * The backups of this region's clusters: made (CREATE_IN_PROGRESS, exported from an HSM of the
 * cluster, then READY; DELETED with the reason when the export fails) at activation, when an HSM
 * is added to or removed from a cluster, daily on the lab clock, and on request
 * (HsmlabCreateBackup); PENDING_DELETION → DELETED after the deletion window; retention purges
 * (never a cluster's last backup, never a NeverExpires one); DELETED records pruned after
 * `deletedRecordsKeptLabDays`. An export a restart interrupted is made again. Copies from and to
 * other regions are reconcilers/copies.ts; the bytes are backup-files.ts.
 */
import { randomResourceId, readBackupHeader } from '@hsmlab/hsm'
import type { AnchorKeyring } from '../anchor-keyring.js'
import type { BackupFiles } from '../backup-files.js'
import { DAY_MS } from '../clock.js'
import { ControlPlaneError, CP_ERR_BACKUP } from '../errors.js'
import type { HsmCaller } from '../hsm-links.js'
import type { BackupReason, BackupRecord, ClusterRecord } from '../state-store.js'
import type { HsmDirectory } from './hsm-directory.js'
import type { ReconcilerComponents } from './runtime.js'

/** Least real time between a failed daily backup of a cluster and the next attempt, in milliseconds. */
const DAILY_RETRY_MS = 10_000

/** A backup just recorded: its id, and when its export ended (READY or DELETED). */
export interface BackupStarted {
  backupId: string
  done: Promise<void>
}

/** What other reconcilers ask of the backups: a new backup of a cluster. */
export interface BackupMaker {
  make: (clusterId: string, reason: BackupReason, fromHsmId?: string) => Promise<BackupStarted>
}

/** Backups of this region's clusters. */
export class BackupReconciler implements BackupMaker {
  private readonly c: ReconcilerComponents
  private readonly keyring: Pick<AnchorKeyring, 'has' | 'signBackupRequest'>
  private readonly directory: HsmDirectory
  private readonly links: HsmCaller
  private readonly files: BackupFiles
  /** Real time before which no daily backup of a cluster is tried again (one failed). */
  private readonly dailyRetryAt = new Map<string, number>()

  constructor (components: ReconcilerComponents & { keyring: Pick<AnchorKeyring, 'has' | 'signBackupRequest'>, directory: HsmDirectory, links: HsmCaller, files: BackupFiles }) {
    this.c = components
    this.keyring = components.keyring
    this.directory = components.directory
    this.links = components.links
    this.files = components.files
  }

  /** One pass: deletions and purges due, daily backups due, exports to make again. */
  async pass (labNow: number): Promise<void> {
    const { store } = this.c
    const keepMs = this.c.tuning.deletedRecordsKeptLabDays * DAY_MS
    const toDelete = this.backupsToDelete(labNow)
    const prune = Object.values(store.state.backups).filter(b => b.state === 'DELETED' && (b.deletedAtMs ?? labNow) + keepMs < labNow).map(b => b.backupId)
    if (toDelete.length + prune.length > 0) {
      const files: string[] = []
      await store.transact(draft => {
        for (const { backupId, reason } of toDelete) {
          const b = draft.backups[backupId]
          if (b === undefined || b.state === 'DELETED') continue
          b.state = 'DELETED'
          b.stateMessage = reason
          b.deletedAtMs = labNow
          delete b.deleteAtMs
          if (b.file !== undefined) files.push(b.file)
          delete b.file
        }
        for (const id of prune) delete draft.backups[id]
      })
      await Promise.allSettled(files.map(async f => { await this.files.remove(f) }))
    }
    const realNow = this.c.runtime.realNow()
    for (const cluster of Object.values(store.state.clusters)) {
      if (cluster.state === 'ACTIVE' && this.directory.running(cluster.clusterId).length > 0 && this.dailyBackupDue(cluster, labNow, realNow)) {
        void this.c.runtime.run(`daily:${cluster.clusterId}`, async () => {
          const backup = await this.make(cluster.clusterId, 'daily')
          await backup.done
          // A failed daily backup is not tried again at once (the HSM may be busy or restarting).
          if (store.state.backups[backup.backupId]?.state === 'DELETED') this.dailyRetryAt.set(cluster.clusterId, this.c.runtime.realNow() + DAILY_RETRY_MS)
        })
      }
    }
    for (const backup of Object.values(store.state.backups)) {
      // A local backup left CREATE_IN_PROGRESS by a restart: export it again (copies are reconcilers/copies.ts).
      if (backup.state === 'CREATE_IN_PROGRESS' && backup.copy === undefined) void this.c.runtime.run(`backup:${backup.backupId}`, async () => { await this.exportInto(backup.backupId) })
    }
  }

  /** Records a new backup of a cluster (CREATE_IN_PROGRESS) and exports it in the background. */
  async make (clusterId: string, reason: BackupReason, fromHsmId?: string): Promise<BackupStarted> {
    const { store, clock, log, runtime } = this.c
    const backupId = await store.transact(draft => {
      const cluster = draft.clusters[clusterId]
      if (cluster === undefined) throw new ControlPlaneError(CP_ERR_BACKUP, `cluster ${clusterId} is gone`)
      const record: BackupRecord = {
        backupId: randomResourceId('backup'),
        clusterId,
        state: 'CREATE_IN_PROGRESS',
        createdAtMs: clock.now(),
        neverExpires: false,
        tags: [],
        hsmType: cluster.hsmType,
        ...(cluster.mode === undefined ? {} : { mode: cluster.mode }),
        reason,
        ...(fromHsmId === undefined ? {} : { sourceHsmId: fromHsmId }),
        nextSlot: cluster.nextSlot,
        ...(cluster.certificates.ClusterCertificate === undefined ? {} : { clusterCertificate: cluster.certificates.ClusterCertificate })
      }
      draft.backups[record.backupId] = record
      return record.backupId
    })
    const task = runtime.run(`backup:${backupId}`, async () => {
      await this.exportInto(backupId).catch(err => { log.warn({ backupId, err: (err as Error).message }, 'backup failed') })
    })
    log.info({ clusterId, backupId, reason }, 'backup started')
    return { backupId, done: task ?? Promise.resolve() }
  }

  /** Exports a backup from an HSM of its cluster into the backup record; DELETED with the reason on failure. */
  private async exportInto (backupId: string): Promise<void> {
    const { store, clock, log } = this.c
    const backup = store.state.backups[backupId]
    if (backup?.state !== 'CREATE_IN_PROGRESS' || backup.clusterId === undefined) return
    const clusterId = backup.clusterId
    try {
      const cluster = store.state.clusters[clusterId]
      if (cluster === undefined || !this.keyring.has(clusterId)) throw new ControlPlaneError(CP_ERR_BACKUP, `cluster ${clusterId} is deleted`)
      const preferred = backup.sourceHsmId === undefined ? undefined : store.state.hsms[backup.sourceHsmId]
      const source = preferred !== undefined && (preferred.state === 'ACTIVE' || preferred.state === 'DELETE_IN_PROGRESS') && this.directory.runs(preferred.hsmId)
        ? preferred
        : this.directory.running(clusterId)[0]
      const address = source === undefined ? undefined : this.directory.addressOf(source)
      if (source === undefined || address === undefined) throw new ControlPlaneError(CP_ERR_BACKUP, `no HSM of cluster ${clusterId} is running to make the backup`)
      // Real time: the HSM checks the signed request against its own clock.
      const requestedAtMs = Date.now()
      const signature = this.keyring.signBackupRequest(clusterId, source.hsmId, requestedAtMs)
      const result = await this.links.call(address, 'exportBackup', { requestedAtMs, signature })
      const header = readBackupHeader(result.backup)
      const stored = await this.files.store(backupId, result.backup)
      await store.transact(draft => {
        const b = draft.backups[backupId]
        if (b === undefined || b.state !== 'CREATE_IN_PROGRESS') return
        b.state = 'READY'
        b.file = stored.file
        b.sha256 = stored.sha256
        b.sizeBytes = result.backup.length
        b.lineage = header.lineage
        b.keyCount = result.keyCount
        b.userCount = result.userCount
        b.sourceHsmId = source.hsmId
        const c = draft.clusters[clusterId]
        if (c !== undefined) c.lineage ??= header.lineage
      })
      log.info({ backupId, clusterId, hsmId: source.hsmId, keys: result.keyCount, users: result.userCount }, 'backup READY')
    } catch (err) {
      const message = (err as Error).message
      await store.transact(draft => {
        const b = draft.backups[backupId]
        if (b === undefined || b.state !== 'CREATE_IN_PROGRESS') return
        b.state = 'DELETED'
        b.stateMessage = `The backup could not be made: ${message}`.slice(0, 1000)
        b.deletedAtMs = clock.now()
      })
      throw err
    }
  }

  private backupsToDelete (labNow: number): Array<{ backupId: string, reason: string }> {
    const state = this.c.store.state
    const out: Array<{ backupId: string, reason: string }> = []
    for (const b of Object.values(state.backups)) {
      if (b.state === 'PENDING_DELETION' && b.deleteAtMs !== undefined && b.deleteAtMs <= labNow) {
        out.push({ backupId: b.backupId, reason: 'Deleted after its deletion window.' })
      }
    }
    for (const cluster of Object.values(state.clusters)) {
      const own = Object.values(state.backups).filter(b => b.clusterId === cluster.clusterId && b.state !== 'DELETED' && b.state !== 'CREATE_IN_PROGRESS')
      const newest = own.reduce<BackupRecord | undefined>((n, b) => n === undefined || b.createdAtMs > n.createdAtMs ? b : n, undefined)
      const cutoff = labNow - cluster.retentionDays * DAY_MS
      for (const b of own) {
        if (b === newest || b.neverExpires || b.state !== 'READY' || b.createdAtMs >= cutoff) continue
        out.push({ backupId: b.backupId, reason: `Deleted by the cluster's backup retention policy (${cluster.retentionDays} days).` })
      }
    }
    return out
  }

  private dailyBackupDue (cluster: ClusterRecord, labNow: number, realNow: number): boolean {
    if ((this.dailyRetryAt.get(cluster.clusterId) ?? 0) > realNow) return false
    // The first one a day after the cluster was created, as the service's: a clone, which has no
    // backup of its own yet, is not backed up the moment it is ACTIVE (while its HSMs are added).
    let latest = cluster.createdAtMs
    for (const b of Object.values(this.c.store.state.backups)) {
      if (b.clusterId === cluster.clusterId && b.state !== 'DELETED' && b.createdAtMs > latest) latest = b.createdAtMs
    }
    return labNow - latest >= this.c.tuning.backupIntervalLabSeconds * 1000
  }
}
