/**
 * Building the clusters of a topology through the regions' control planes, the way a person who
 * follows the AWS documentation does it with the AWS CLI and CMU (reference F.7, G.1):
 *
 * - a new cluster: CreateCluster → UNINITIALIZED → CreateHsm → the HSM ACTIVE → sign the
 *   ClusterCsr with the lab's customer CA → InitializeCluster → INITIALIZED → activation with the
 *   client (`loginHSM PRECO admin password`, `changePswd` to the topology's password, the topology
 *   users created on every HSM) → ACTIVE → CreateHsm for the other HSMs, which the control plane
 *   restores from a backup of an existing HSM (so they have the users) → every HSM ACTIVE;
 * - a clone: a READY backup of its source → CopyBackupToRegion → the copy found in the clone's
 *   region with DescribeBackups (`sourceBackupIds`) and READY → CreateCluster with SourceBackupId
 *   → CreateHsm → ACTIVE (the backup's users, keys and lineage) → the other HSMs → ACTIVE.
 *
 * Every step first looks at what exists (the cluster id recorded in lab.json, its state, its
 * HSMs, the copies already made), so an `up` that was interrupted anywhere carries on, and an
 * `up` on a complete lab changes nothing. Independent clusters are built at once; a clone waits
 * only until its source is ACTIVE.
 */
import { createHash } from 'node:crypto'
import { HsmConnection } from '@hsmlab/client'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import type { Backup, Cluster, Hsm } from '@hsmlab/control-plane'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import { DEFAULT_ADMIN_NAME, DEFAULT_ADMIN_PASSWORD } from '@hsmlab/hsm'
import type { UserInfo } from '@hsmlab/protocol'
import { signClusterCsr } from './customer-ca.js'
import type { CustomerCa } from './customer-ca.js'
import { labDefaults } from './defaults.js'
import { LabError, LAB_ERR_ACTIVATION, LAB_ERR_CLUSTER, LAB_ERR_HSM_START } from './errors.js'
import { UNKNOWN_PASSWORD } from './lab-state.js'
import type { ClusterState, LabState, LabStateWriter } from './lab-state.js'
import type { TopologyCluster } from './topology.js'

/** A step of `up`, for the progress channel. */
export type BuildStep = 'cluster-created' | 'hsm-active' | 'initialized' | 'activated' | 'cluster-active' | 'backup-ready' | 'backup-copied' | 'cluster-ready'

/** What building needs. */
export interface BuildContext {
  lab: LabState
  writer: LabStateWriter
  /** The customer CA that signs each new cluster's CSR (made while the control planes start: asked for when a CSR needs it). */
  ca: () => Promise<CustomerCa>
  /** The API client of a region (once `regionReady` resolved for it). */
  apiOf: (region: string) => ControlPlaneClient
  /** Resolves once the control plane of `region` answers; rejects when it could not be started. @default at once */
  regionReady?: (region: string) => Promise<void>
  /** Resolves once every region's control plane knows where the others are, as a copy to another region needs. @default at once */
  regionsLinked?: () => Promise<void>
  /** @default labDefaults.stepTimeoutMs */
  stepTimeoutMs?: number
  /** @default labDefaults.apiPollIntervalMs */
  pollIntervalMs?: number
  progress?: (step: BuildStep, cluster: string, detail?: string) => void
}

/** One cluster as built. */
export interface BuiltCluster {
  record: ClusterState
  spec: TopologyCluster
  /** The cluster as DescribeClusters shows it at the end, every HSM ACTIVE. */
  cluster: Cluster
  /** True when this `up` created it. */
  created: boolean
  /** True when this `up` activated it (or finished its activation). */
  activated: boolean
  /** HSMs this `up` asked for (CreateHsm). */
  hsmsCreated: string[]
}

/** What a clone needs to know of its source once the source is ACTIVE. */
interface ActiveSource {
  record: ClusterState
  cluster: Cluster
  /**
   * When this `up` activated the source: the backups that existed once the topology users were
   * created, and whether the cluster was ACTIVE already by then. A backup made before the users
   * were all created lacks some of them, so the clone is made from a later one.
   */
  activation?: { backupsBefore: Set<string>, activeBefore: boolean }
}

/** A promise with its resolve and reject at hand. */
interface Deferred<T> {
  promise: Promise<T>
  resolve: (value: T) => void
  reject: (reason: unknown) => void
}

function deferred<T> (): Deferred<T> {
  let resolve: (value: T) => void = () => {}
  let reject: (reason: unknown) => void = () => {}
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
  // A source that fails is reported by its own build; its clones only follow.
  promise.catch(() => {})
  return { promise, resolve, reject }
}

/** A clone's failure because its source could not be built (the source's own error says why). */
class SourceFailed extends LabError {}

/** Thrown from a probe to stop waiting at once (the state will not come). */
class GiveUp extends Error {
  readonly error: LabError
  constructor (error: LabError) {
    super(error.message)
    this.error = error
  }
}

/** The deterministic subnet of an availability zone of a region (the lab has one VPC per region). */
export function subnetIdOf (availabilityZone: string): string {
  return `subnet-${createHash('sha256').update(`hsmlab\0${availabilityZone}`).digest('hex').slice(0, 17)}`
}

/** The availability zones a cluster of `hsms` HSMs is spread over: `<region>a`, `<region>b`, ... */
export function availabilityZonesOf (region: string, hsms: number): string[] {
  const count = Math.max(1, Math.min(hsms, labDefaults.availabilityZonesMax))
  return Array.from({ length: count }, (_, i) => `${region}${String.fromCharCode(97 + i)}`)
}

const HALTED = /^The HSM (could not be created|cannot be started)/

/** The HSMs of a cluster, as DescribeClusters lists them (in the order they were created). */
function hsmsOf (cluster: Cluster | undefined): Hsm[] {
  return (cluster?.Hsms ?? []).filter(h => h.State !== 'DELETED' && h.State !== 'DELETE_IN_PROGRESS')
}

/** True when the HSM answers a handshake at its endpoint as itself, a member of `clusterId`. */
async function answersAs (hsm: Hsm, clusterId: string, anchor: Uint8Array | undefined): Promise<boolean> {
  if (anchor === undefined || hsm.HsmlabEndpoint === undefined) return false
  try {
    const connection = await HsmConnection.connect({ url: hsm.HsmlabEndpoint, trustAnchor: anchor, expectedClusterId: clusterId, connectTimeoutMs: labDefaults.probeTimeoutMs })
    const ok = connection.hsmId === hsm.HsmId
    await connection.close()
    return ok
  } catch {
    return false
  }
}

/** Builds one cluster after another as their sources allow, all at once otherwise. */
export class ClusterBuilder {
  private readonly ctx: BuildContext
  private readonly stepTimeoutMs: number
  private readonly pollIntervalMs: number
  private readonly active = new Map<string, Deferred<ActiveSource>>()

  constructor (ctx: BuildContext) {
    this.ctx = ctx
    this.stepTimeoutMs = ctx.stepTimeoutMs ?? labDefaults.stepTimeoutMs
    this.pollIntervalMs = ctx.pollIntervalMs ?? labDefaults.apiPollIntervalMs
  }

  /** Builds every cluster; throws one error naming every cluster that failed. */
  async buildAll (jobs: Array<{ record: ClusterState, spec: TopologyCluster }>): Promise<BuiltCluster[]> {
    for (const { record } of jobs) this.active.set(`${record.region}/${record.name}`, deferred())
    const outcomes = await Promise.allSettled(jobs.map(async ({ record, spec }) => {
      const mine = this.active.get(`${record.region}/${record.name}`) as Deferred<ActiveSource>
      try {
        return await this.build(record, spec, source => { mine.resolve(source) })
      } catch (err) {
        mine.reject(err)
        throw err
      }
    }))
    const failures = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map(o => o.reason as Error)
    // A clone whose source failed says only that; the source's own error says why.
    const own = failures.filter(f => !(f instanceof SourceFailed))
    const shown = own.length > 0 ? own : failures
    if (shown.length === 1 && shown[0] instanceof LabError) throw shown[0]
    if (shown.length > 0) {
      const code = shown[0] instanceof LabError ? shown[0].code : LAB_ERR_CLUSTER
      throw new LabError(code, `some clusters could not be built:\n${shown.map(f => `- ${f.message}`).join('\n')}`, { cause: shown[0] })
    }
    return outcomes.map(o => (o as PromiseFulfilledResult<BuiltCluster>).value)
  }

  private where (record: ClusterState): string {
    return `cluster ${record.region}/${record.name}${record.id === null ? '' : ` (${record.id})`}`
  }

  private progress (step: BuildStep, record: ClusterState, detail?: string): void {
    this.ctx.progress?.(step, `${record.region}/${record.name}`, detail)
  }

  /** Runs one API call; its failure becomes LAB_ERR_CLUSTER naming the cluster and the step. */
  private async api<T> (record: ClusterState, step: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call()
    } catch (err) {
      throw new LabError(LAB_ERR_CLUSTER, `${this.where(record)}: ${step} failed: ${(err as Error).message}`, { cause: err })
    }
  }

  /**
   * Polls `probe` until it gives a value; a GiveUp ends the wait at once. The first polls come
   * quickly (most steps end within milliseconds of the call that started them), then every
   * `pollIntervalMs`.
   */
  private async until<T> (record: ClusterState, what: string, probe: () => Promise<T | undefined>, explain: () => string = () => '', code = LAB_ERR_CLUSTER): Promise<T> {
    const deadline = Date.now() + this.stepTimeoutMs
    let last = ''
    let delayMs = Math.min(labDefaults.apiPollFirstIntervalMs, this.pollIntervalMs)
    for (;;) {
      try {
        const value = await probe()
        if (value !== undefined) return value
      } catch (err) {
        if (err instanceof GiveUp) throw err.error
        last = (err as Error).message
      }
      if (Date.now() >= deadline) {
        const why = [explain(), last].filter(s => s !== '').join('; ')
        throw new LabError(code, `${this.where(record)}: ${what} did not happen within ${this.stepTimeoutMs} ms${why === '' ? '' : ` (${why})`}`)
      }
      await new Promise(resolve => setTimeout(resolve, delayMs))
      delayMs = Math.min(delayMs * 2, this.pollIntervalMs)
    }
  }

  private async describe (record: ClusterState): Promise<Cluster | undefined> {
    if (record.id === null) return undefined
    return await this.ctx.apiOf(record.region).getCluster(record.id)
  }

  /** Waits until the cluster is in one of `states`, and `also` holds if given. */
  private async waitCluster (record: ClusterState, states: string[], also: (c: Cluster) => boolean = () => true, what?: string): Promise<Cluster> {
    let seen: Cluster | undefined
    return await this.until(record, what ?? `reaching ${states.join(' or ')}`, async () => {
      seen = await this.describe(record)
      if (seen === undefined) throw new GiveUp(new LabError(LAB_ERR_CLUSTER, `${this.where(record)} is gone from its control plane`))
      if (seen.State === 'DELETED' || seen.State === 'DELETE_IN_PROGRESS') throw new GiveUp(new LabError(LAB_ERR_CLUSTER, `${this.where(record)} is ${seen.State}`))
      return seen.State !== undefined && states.includes(seen.State) && also(seen) ? seen : undefined
    }, () => seen === undefined ? '' : `it is ${seen.State ?? '?'}${seen.StateMessage === undefined ? '' : `: ${seen.StateMessage}`}`)
  }

  /** Waits until every HSM of the cluster (at least `count`) is ACTIVE; an HSM its control plane gave up on ends the wait. */
  async waitHsmsActive (record: ClusterState, count: number): Promise<Cluster> {
    let seen: Cluster | undefined
    let unanswered: string[] = []
    return await this.until(record, `every HSM (${count}) becoming ACTIVE`, async () => {
      seen = await this.describe(record)
      if (seen === undefined) throw new GiveUp(new LabError(LAB_ERR_CLUSTER, `${this.where(record)} is gone from its control plane`))
      const hsms = hsmsOf(seen)
      const halted = hsms.find(h => h.State === 'DEGRADED' && HALTED.test(h.StateMessage ?? ''))
      if (halted !== undefined) {
        throw new GiveUp(new LabError(LAB_ERR_HSM_START, `${this.where(record)}: HSM ${halted.HsmId} is DEGRADED: ${halted.StateMessage ?? ''}`))
      }
      if (hsms.length < count || !hsms.every(h => h.State === 'ACTIVE' && h.HsmlabEndpoint !== undefined)) return undefined
      // A control plane that just restarted lists an HSM it is still starting again as ACTIVE:
      // each must also answer a handshake as itself.
      const anchor = seen.HsmlabTrustAnchor === undefined ? undefined : decodeTrustAnchor(seen.HsmlabTrustAnchor)
      const answering = await Promise.all(hsms.map(async h => await answersAs(h, record.id as string, anchor)))
      unanswered = hsms.filter((_, i) => answering[i] !== true).map(h => h.HsmId)
      return unanswered.length === 0 ? seen : undefined
    }, () => [
      ...hsmsOf(seen).filter(h => h.State !== 'ACTIVE').map(h => `${h.HsmId} is ${h.State ?? '?'}${h.StateMessage === undefined ? '' : `: ${h.StateMessage}`}`),
      ...unanswered.map(id => `${id} is ACTIVE but does not answer`)
    ].join(', '), LAB_ERR_HSM_START)
  }

  private async save (): Promise<void> {
    await this.ctx.writer.save(this.ctx.lab)
  }

  /** CreateCluster (from a backup for a clone), recorded at once. */
  private async createCluster (record: ClusterState, spec: TopologyCluster, sourceBackupId?: string): Promise<Cluster> {
    const api = this.ctx.apiOf(record.region)
    const subnets = availabilityZonesOf(record.region, spec.hsms).map(subnetIdOf)
    const cluster = await this.api(record, 'CreateCluster', async () => await api.createCluster({
      HsmType: labDefaults.hsmType,
      SubnetIds: subnets,
      ...(sourceBackupId === undefined ? {} : { SourceBackupId: sourceBackupId }),
      TagList: [{ Key: 'hsmlab:cluster', Value: `${record.region}/${record.name}` }]
    }))
    record.id = cluster.ClusterId ?? null
    record.lineage = null
    record.activated = false
    record.hsms = []
    await this.save()
    this.progress('cluster-created', record, record.id ?? undefined)
    return cluster
  }

  /** CreateHsm for each HSM the cluster lacks, spread over its availability zones. */
  private async addHsms (record: ClusterState, spec: TopologyCluster, cluster: Cluster, upTo: number): Promise<string[]> {
    const api = this.ctx.apiOf(record.region)
    const zones = availabilityZonesOf(record.region, spec.hsms)
    const existing = hsmsOf(cluster).length
    const created: string[] = []
    await Promise.all(Array.from({ length: Math.max(0, upTo - existing) }, async (_, i) => {
      const zone = zones[(existing + i) % zones.length] as string
      const hsm = await this.api(record, `CreateHsm in ${zone}`, async () => await api.createHsm({ ClusterId: record.id as string, AvailabilityZone: zone }))
      created.push(hsm.HsmId)
    }))
    return created
  }

  /** Builds one cluster; `onActive` is called once it is ACTIVE (its clones may start). */
  private async build (record: ClusterState, spec: TopologyCluster, onActive: (source: ActiveSource) => void): Promise<BuiltCluster> {
    await this.ctx.regionReady?.(record.region)
    let cluster = await this.api(record, 'DescribeClusters', async () => await this.describe(record))
    let created = false
    // A cluster its control plane no longer knows (its data was removed) is made again.
    if (cluster === undefined || cluster.State === 'DELETED' || cluster.State === 'DELETE_IN_PROGRESS') cluster = undefined
    const hsmsCreated: string[] = []
    let activation: ActiveSource['activation']
    // The HSMs that an activated cluster lacks, asked for as soon as it is activated (see below).
    let adding: Promise<{ ids: string[] } | { error: unknown }> | undefined
    if (spec.cloneOf === undefined) {
      if (cluster === undefined) {
        await this.createCluster(record, spec)
        created = true
      }
      cluster = await this.waitCluster(record, ['UNINITIALIZED', 'INITIALIZE_IN_PROGRESS', 'INITIALIZED', 'ACTIVE', 'DEGRADED'])
      if (cluster.State === 'UNINITIALIZED') {
        if (hsmsOf(cluster).length === 0) hsmsCreated.push(...await this.addHsms(record, spec, cluster, 1))
        // The ClusterCsr appears once the first HSM is ACTIVE.
        cluster = await this.waitCluster(record, ['UNINITIALIZED', 'INITIALIZE_IN_PROGRESS', 'INITIALIZED', 'ACTIVE'],
          c => c.State !== 'UNINITIALIZED' || c.Certificates?.ClusterCsr !== undefined, 'the first HSM becoming ACTIVE with the cluster\'s CSR')
        this.progress('hsm-active', record)
        const csr = cluster.Certificates?.ClusterCsr
        if (cluster.State === 'UNINITIALIZED' && csr !== undefined) {
          const ca = await this.ctx.ca()
          let signed: string
          try {
            signed = signClusterCsr(ca, csr)
          } catch (err) {
            throw new LabError(LAB_ERR_CLUSTER, `${this.where(record)}: cannot sign its ClusterCsr: ${(err as Error).message}`, { cause: err })
          }
          const id = record.id as string
          await this.api(record, 'InitializeCluster', async () => await this.ctx.apiOf(record.region).initializeCluster({ ClusterId: id, SignedCert: signed, TrustAnchor: ca.certPem }))
        }
      }
      cluster = await this.waitCluster(record, ['INITIALIZED', 'ACTIVE', 'DEGRADED'])
      this.progress('initialized', record)
      if (spec.activate !== undefined && !record.activated) {
        activation = await this.activate(record, spec, cluster, spec.activate.admin)
        record.activated = true
        await this.save()
        this.progress('activated', record)
      }
      if (spec.activate !== undefined) {
        // The other HSMs now, while its control plane notices the activation: it restores each
        // from a fresh backup of a running HSM, which has the users already.
        adding = this.addHsms(record, spec, cluster, spec.hsms).then(ids => ({ ids }), (error: unknown) => ({ error }))
        cluster = await this.waitCluster(record, ['ACTIVE', 'DEGRADED'])
        this.progress('cluster-active', record)
        onActive({ record, cluster, ...(activation === undefined ? {} : { activation }) })
      }
    } else {
      const sourceKey = `${spec.cloneOf.region}/${spec.cloneOf.cluster}`
      if (cluster === undefined) {
        let source: ActiveSource
        try {
          source = await (this.active.get(sourceKey) as Deferred<ActiveSource>).promise
        } catch (err) {
          throw new SourceFailed(err instanceof LabError ? err.code : LAB_ERR_CLUSTER, `${this.where(record)}: its source ${sourceKey} could not be built`, { cause: err })
        }
        const backupId = await this.restorableBackup(record, source)
        await this.createCluster(record, spec, backupId)
        created = true
      }
      cluster = await this.waitCluster(record, ['UNINITIALIZED', 'ACTIVE', 'DEGRADED'])
      if (cluster.State === 'UNINITIALIZED' && hsmsOf(cluster).length === 0) {
        hsmsCreated.push(...await this.addHsms(record, spec, cluster, 1))
      }
      // A cluster made from a backup is ACTIVE once its first HSM restored the backup.
      cluster = await this.waitCluster(record, ['ACTIVE', 'DEGRADED'], undefined, 'its first HSM restoring the backup (the cluster ACTIVE)')
      this.progress('cluster-active', record)
      record.activated = true
      onActive({ record, cluster })
    }
    // The other HSMs: the control plane restores each from a backup of an HSM of the cluster.
    // Only an activated cluster's HSMs are restored with its users; an unactivated one's have its PRECO.
    const added = await (adding ?? this.addHsms(record, spec, cluster, spec.hsms).then(ids => ({ ids })))
    if ('error' in added) throw added.error
    hsmsCreated.push(...added.ids)
    cluster = await this.waitHsmsActive(record, spec.hsms)
    record.lineage = cluster.HsmlabLineage ?? record.lineage
    await this.save()
    this.progress('cluster-ready', record)
    return { record, spec, cluster, created, activated: activation !== undefined, hsmsCreated }
  }

  /**
   * The backup, in the clone's region, to create the clone from: a READY backup of the source
   * holding its users (copied to the clone's region when that is another one).
   */
  private async restorableBackup (record: ClusterState, source: ActiveSource): Promise<string> {
    const srcApi = this.ctx.apiOf(source.record.region)
    const srcId = source.record.id as string
    // A copy recorded by an interrupted `up` is used if it is still there.
    if (record.sourceBackupId !== undefined) {
      const known = await this.api(record, 'DescribeBackups', async () => await this.ctx.apiOf(record.region).getBackup(record.sourceBackupId as string))
      if (known !== undefined && (known.BackupState === 'READY' || known.BackupState === 'CREATE_IN_PROGRESS')) {
        return (await this.waitBackup(record, record.region, known.BackupId)).BackupId
      }
      delete record.sourceBackupId
    }
    const backupsOf = async (): Promise<Backup[]> => (await srcApi.describeBackups({ Filters: { clusterIds: [srcId] } })).Backups
    let backup: Backup
    const { activation } = source
    if (activation !== undefined && !activation.activeBefore) {
      // The control plane made (or is making) its activation backup after the users were created.
      backup = await this.until(record, `a backup of ${source.record.region}/${source.record.name} made at its activation`, async () => {
        const fresh = (await backupsOf()).filter(b => !activation.backupsBefore.has(b.BackupId) && b.BackupState !== 'DELETED')
        return fresh[0]
      })
    } else {
      const ready = activation === undefined ? (await this.api(record, 'DescribeBackups', backupsOf)).find(b => b.BackupState === 'READY') : undefined
      if (ready !== undefined) {
        backup = ready
      } else {
        // No backup is sure to hold every user (the cluster became ACTIVE before the lab had
        // created them all, or it has no backup): make one now (hsmlab's HsmlabCreateBackup).
        backup = await this.api(record, `HsmlabCreateBackup of ${srcId}`, async () => await srcApi.createBackup(srcId))
      }
    }
    backup = await this.waitBackup(record, source.record.region, backup.BackupId)
    this.progress('backup-ready', record, backup.BackupId)
    if (source.record.region === record.region) return backup.BackupId
    const dstApi = this.ctx.apiOf(record.region)
    let copy = (await this.api(record, 'DescribeBackups', async () => await dstApi.copiesOf(backup.BackupId))).find(b => b.BackupState !== 'DELETED')
    if (copy === undefined) {
      await this.ctx.regionsLinked?.()
      await this.api(record, `CopyBackupToRegion of ${backup.BackupId} to ${record.region}`, async () => await srcApi.copyBackupToRegion({ DestinationRegion: record.region, BackupId: backup.BackupId }))
      copy = await this.until(record, `the copy of ${backup.BackupId} appearing in ${record.region}`, async () => {
        return (await dstApi.copiesOf(backup.BackupId)).find(b => b.BackupState !== 'DELETED')
      })
    }
    record.sourceBackupId = copy.BackupId
    await this.save()
    copy = await this.waitBackup(record, record.region, copy.BackupId)
    this.progress('backup-copied', record, copy.BackupId)
    return copy.BackupId
  }

  /** Waits until a backup is READY; DELETED (a failed export or copy) ends the wait with its reason. */
  private async waitBackup (record: ClusterState, region: string, backupId: string): Promise<Backup> {
    const api = this.ctx.apiOf(region)
    let seen: Backup | undefined
    return await this.until(record, `backup ${backupId} in ${region} becoming READY`, async () => {
      seen = await api.getBackup(backupId)
      if (seen?.BackupState === 'DELETED') throw new GiveUp(new LabError(LAB_ERR_CLUSTER, `${this.where(record)}: backup ${backupId} in ${region} is DELETED: ${seen.StateMessage ?? 'no reason given'}`))
      return seen?.BackupState === 'READY' ? seen : undefined
    }, () => seen === undefined ? 'it is not listed' : `it is ${seen.BackupState ?? '?'}`)
  }

  /**
   * Activates the cluster on each of its HSMs, as with CMU (reference B.1): `loginHSM PRECO admin
   * password`, `changePswd PRECO admin <new>` (the PRECO becomes a CO), then `createUser` for
   * each topology user the HSM lacks. Safe to run again (an HSM whose admin is a CO already is
   * logged into with the new password). Then notes which backups exist and whether the cluster
   * was ACTIVE already: a clone must be made from a backup that holds the users.
   */
  private async activate (record: ClusterState, spec: TopologyCluster, cluster: Cluster, adminPassword: string): Promise<NonNullable<ActiveSource['activation']>> {
    // The passwords come from the topology given now, or from the lab's passwords file (lab-state.ts).
    if (adminPassword === UNKNOWN_PASSWORD || spec.users.some(u => u.password === UNKNOWN_PASSWORD)) {
      throw new LabError(LAB_ERR_ACTIVATION, `${this.where(record)} must be activated, but the lab no longer has its topology's passwords (its secrets/passwords.json is gone): run 'hsmlab up --topology FILE' with the topology the lab was made from`)
    }
    const anchorText = cluster.HsmlabTrustAnchor
    if (anchorText === undefined) throw new LabError(LAB_ERR_ACTIVATION, `${this.where(record)}: its control plane does not tell its trust anchor (HsmlabTrustAnchor)`)
    const anchor = decodeTrustAnchor(anchorText)
    const hsms = hsmsOf(cluster).filter(h => h.State === 'ACTIVE' && h.HsmlabEndpoint !== undefined)
    if (hsms.length === 0) throw new LabError(LAB_ERR_ACTIVATION, `${this.where(record)} has no ACTIVE HSM to activate`)
    const outcomes = await Promise.allSettled(hsms.map(async hsm => {
      const where = `${this.where(record)} HSM ${hsm.HsmId}`
      let connection: HsmConnection
      try {
        connection = await HsmConnection.connect({
          url: hsm.HsmlabEndpoint as string,
          trustAnchor: anchor,
          expectedClusterId: record.id as string,
          requestTimeoutMs: labDefaults.requestTimeoutMs
        })
      } catch (err) {
        throw new LabError(LAB_ERR_ACTIVATION, `${where}: cannot connect to ${hsm.HsmlabEndpoint ?? '?'}: ${(err as Error).message}`, { cause: err })
      }
      try {
        await activateHsm(connection, where, spec, adminPassword)
      } finally {
        await connection.close()
      }
    }))
    const failed = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map(o => o.reason as Error)
    if (failed.length === 1) throw failed[0] as Error
    if (failed.length > 1) throw new LabError(LAB_ERR_ACTIVATION, failed.map(f => f.message).join('\n'), { cause: failed[0] })
    const api = this.ctx.apiOf(record.region)
    const id = record.id as string
    // First the backups, then the state: a cluster still INITIALIZED now becomes ACTIVE later,
    // and its activation backup is then recorded after this list was taken, with every user.
    const backups = await this.api(record, 'DescribeBackups', async () => (await api.describeBackups({ Filters: { clusterIds: [id] } })).Backups)
    const now = await this.api(record, 'DescribeClusters', async () => await api.getCluster(id))
    return { backupsBefore: new Set(backups.map(b => b.BackupId)), activeBefore: now?.State !== 'INITIALIZED' }
  }
}

/** The activation steps on one HSM (see `ClusterBuilder.activate`). */
async function activateHsm (connection: HsmConnection, where: string, spec: TopologyCluster, adminPassword: string): Promise<void> {
  const step = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call()
    } catch (err) {
      throw new LabError(LAB_ERR_ACTIVATION, `${where}: ${what} failed: ${(err as Error).message}`, { cause: err })
    }
  }
  const { users } = await step('listUsers', async () => await connection.call('listUsers', {}))
  const find = (name: string): UserInfo | undefined => users.find(u => u.userName.toLowerCase() === name.toLowerCase())
  const admin = find(DEFAULT_ADMIN_NAME)
  if (admin === undefined) throw new LabError(LAB_ERR_ACTIVATION, `${where} has no user ${DEFAULT_ADMIN_NAME}`)
  if (admin.userType === 'PRECO') {
    await step(`loginHSM PRECO ${DEFAULT_ADMIN_NAME}`, async () => await connection.call('login', { userType: 'PRECO', userName: DEFAULT_ADMIN_NAME, password: DEFAULT_ADMIN_PASSWORD }))
    await step(`changePswd PRECO ${DEFAULT_ADMIN_NAME}`, async () => await connection.call('changePassword', { userType: 'PRECO', userName: DEFAULT_ADMIN_NAME, password: adminPassword }))
  } else {
    await step(`loginHSM CO ${DEFAULT_ADMIN_NAME} (with the topology's admin password)`, async () => await connection.call('login', { userType: 'CO', userName: DEFAULT_ADMIN_NAME, password: adminPassword }))
  }
  for (const user of spec.users) {
    const existing = find(user.name)
    if (existing !== undefined) {
      if (existing.userType !== user.type && !(user.type === 'CO' && existing.userType === 'PCO')) {
        throw new LabError(LAB_ERR_ACTIVATION, `${where} has a user ${existing.userName} of type ${existing.userType}, the topology wants a ${user.type}`)
      }
      continue
    }
    await step(`createUser ${user.type} ${user.name}`, async () => await connection.call('createUser', { userType: user.type, userName: user.name, password: user.password }))
  }
  await step('logoutHSM', async () => await connection.call('logout', {}))
}
