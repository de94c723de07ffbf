/**
 * One region's control plane: the cloudhsmv2 API (server.ts, api/), and the background loop that
 * carries out what the API recorded, driven by real events:
 *
 * - clusters: CREATE_IN_PROGRESS → UNINITIALIZED after a short delay; INITIALIZE_IN_PROGRESS →
 *   INITIALIZED; INITIALIZED → ACTIVE once no HSM of the cluster has a PRECO left (its listUsers,
 *   polled); a cluster made from a backup → ACTIVE once its first HSM restored the backup;
 *   DELETE_IN_PROGRESS → DELETED.
 * - HSMs: CreateHsm spawns a real `hsmlab-hsm` process from a provision file (a new cluster's
 *   first HSM), or restored from a backup (a clone's first HSM; any later HSM, from a fresh
 *   backup of an HSM of the cluster, which is how the service adds HSMs), → ACTIVE on its ready
 *   line; DeleteHsm stops the process (SIGTERM, then SIGKILL) → DELETED. After every change of a
 *   cluster's HSMs, each HSM gets the signed peer list. A process that dies is restarted on its
 *   data directory and port (DEGRADED meanwhile); one whose data cannot be loaded stays DEGRADED.
 * - backups: made at activation, when an HSM is added to or removed from a cluster, daily on
 *   the lab clock, and on request (HsmlabCreateBackup); PENDING_DELETION → DELETED after the
 *   window; retention purges (never a cluster's last backup, never a NeverExpires one); copies
 *   from other regions are fetched (backup-copier.ts).
 *
 * Everything the loop does is derived from the state file, so a control plane killed at any
 * moment picks up where it was: HSM processes still running are adopted, the others restarted,
 * copies resumed or ended.
 */
import { copyFile, mkdir, readdir, rm, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { isIPv4 } from 'node:net'
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import { HSM_BIN_PATH, randomResourceId, readBackupHeader, writeProvisionFile } from '@hsmlab/hsm'
import type { PeerAddress } from '@hsmlab/protocol'
import type { LevelWithSilent } from 'pino'
import type { ApiContext, ApiSettings, RegionRequest } from './api/context.js'
import { AnchorKeyring, moveLegacySecrets } from './anchor-keyring.js'
import { hsmEndpoint, hsmsOf } from './api/render.js'
import { CONTROL_PLANE_ROUTE_FROM } from './api/routes.js'
import { runCopy, storeBackupBytes } from './backup-copier.js'
import { DAY_MS, LabClock } from './clock.js'
import { controlPlaneDefaults } from './defaults.js'
import { ControlPlaneError, CP_ERR_BACKUP, CP_ERR_HSM, CP_ERR_INVALID_ARGUMENT, CP_ERR_LISTEN } from './errors.js'
import { HsmLinks } from './hsm-links.js'
import type { HsmAddress } from './hsm-links.js'
import { HsmStartError, HsmSupervisor, hsmPaths } from './hsm-supervisor.js'
import type { HsmExit, HsmProcesses } from './hsm-supervisor.js'
import { LOG_LEVELS, createLogger, forComponent } from './logger.js'
import type { Logger } from './logger.js'
import { isRegionName, readRegionsFile, sendRegionRequest } from './regions.js'
import type { RegionResponse } from './regions.js'
import { RemoteHsmSupervisor, readHsmHostsFile } from './remote-hsm-supervisor.js'
import type { HsmHostEntry } from './remote-hsm-supervisor.js'
import { createApiServer } from './server.js'
import type { Credentials } from './sigv4.js'
import { signRequest } from './sigv4.js'
import { StateStore, lockDataDir } from './state-store.js'
import type { AbandonedCopyRecord, BackupReason, BackupRecord, ClusterRecord, HsmRecord, HsmRouteRecord } from './state-store.js'

type NumericDefaults = { [K in keyof typeof controlPlaneDefaults as (typeof controlPlaneDefaults)[K] extends number ? K : never]: number }

/** Delays, limits and windows (see defaults.ts for each one's meaning, unit and default). */
export type ControlPlaneTuning = Omit<NumericDefaults, 'port' | 'clockSpeed'>

/** Options of `startControlPlane`. */
export interface ControlPlaneOptions {
  /** The region this control plane serves (`us-east-1`). */
  region: string
  /** Where it keeps its state, backups and HSM data directories. */
  dataDir: string
  /** Passed to the HSM processes it spawns (`--manufacturer-key-file`); the control plane never reads it. */
  manufacturerKeyFile: string
  /** @default '127.0.0.1' */
  host?: string
  /** @default 0 */
  port?: number
  /** JSON map region → control-plane endpoint, to reach the other regions; re-read on each use. */
  regionsFile?: string
  /** When set, every request must carry a valid SigV4 signature with this key pair. */
  credentials?: Credentials
  /** Lab seconds per real second. @default 1 */
  clockSpeed?: number
  /** @default '111122223333' */
  accountId?: string
  /** Log level of a logger made for it (ignored when `logger` is given). @default 'silent' */
  logLevel?: LevelWithSilent
  logger?: Logger
  /** `--log-level` of the HSM processes. @default 'warn' */
  hsmLogLevel?: string
  /** The HSM script to run. @default HSM_BIN_PATH of @hsmlab/hsm */
  hsmBinPath?: string
  /**
   * `per-hsm` (each HSM on its own 127.0.x.y; the default on Linux unless `hsmHost` is given) or
   * `shared` (all on `hsmHost`).
   */
  hsmAddressing?: 'per-hsm' | 'shared'
  /**
   * With `shared` addressing: the IPv4 address every HSM listens on and reports as its EniIp,
   * where clients reach it. Giving it makes `shared` the default addressing. It lets the API
   * listen on every interface (`host` 0.0.0.0) while the HSMs listen on one address clients can
   * reach (a container's address on its region's network). @default host
   */
  hsmHost?: string
  /**
   * A JSON list of HSM hosts (`[{"address", "availabilityZone", "url"}]`, remote-hsm-supervisor.ts):
   * each HSM is placed on a free host of its availability zone (its address is the HSM's EniIp)
   * and runs there, started and watched through the host's API, not as a child of the control
   * plane. Excludes `hsmAddressing` and `hsmHost`.
   */
  hsmHostsFile?: string
  /** Delays, limits and windows; see defaults.ts. */
  tuning?: Partial<ControlPlaneTuning>
}

/** A running control plane. */
export interface ControlPlane {
  region: string
  host: string
  port: number
  /** `http://host:port` — the endpoint for the AWS CLI and SDKs (`--endpoint-url`). */
  url: string
  dataDir: string
  /**
   * Stops it: no more requests, background work ends, its HSM processes are stopped gracefully
   * (unless `stopHsms` is false: they then run on, and the next control plane adopts them), the
   * state is on disk. Safe to call twice.
   */
  stop: (opts?: { stopHsms?: boolean }) => Promise<void>
}

const ACTIVE_HSM_MESSAGE = 'HSM created.'
/**
 * Least time between two activation checks of an INITIALIZED cluster (listUsers on its HSMs), in
 * milliseconds. Checks run on every tick, and sooner while someone describes the cluster.
 */
const ACTIVATION_POLL_MS = 50
const DAILY_RETRY_MS = 10_000

function backoff (base: number, max: number, failures: number): number {
  return Math.min(max, base * 2 ** Math.max(0, Math.min(failures - 1, 20)))
}

function bytes (base64: string): Uint8Array {
  return new Uint8Array(Buffer.from(base64, 'base64'))
}

async function exists (path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false)
}

async function nonEmptyDir (path: string): Promise<boolean> {
  return await readdir(path).then(entries => entries.length > 0, () => false)
}

class Engine {
  readonly store: StateStore
  readonly clock: LabClock
  readonly settings: ApiSettings
  readonly tuning: ControlPlaneTuning
  readonly dataDir: string
  readonly log: Logger
  readonly supervisor: HsmProcesses
  readonly links: HsmLinks
  readonly regionsFile: string | undefined
  readonly copierLog: Logger
  readonly credentials: Credentials | undefined
  /** The clusters' trust-anchor secret keys: used here, never handed to the API handlers (apiContext). */
  private readonly keyring: AnchorKeyring
  private readonly tasks = new Map<string, Promise<void>>()
  private readonly restartAt = new Map<string, number>()
  private readonly peersPushed = new Map<string, string>()
  /** The peer list each HSM last took (setPeers), for HsmlabDescribeHsmRoutes' `Delivered`. */
  private readonly peersDelivered = new Map<string, PeerAddress[]>()
  /** The routes of the state (HsmlabSetHsmRoutes) by `from->hsmId`, rebuilt when they change. */
  private routeIndex: { of: readonly HsmRouteRecord[] | undefined, byKey: Map<string, HsmRouteRecord> } = { of: undefined, byKey: new Map() }
  private readonly lastPoll = new Map<string, number>()
  private readonly abort = new AbortController()
  private timer: NodeJS.Timeout | undefined
  private running = false
  private again = false
  stopping = false

  constructor (init: {
    store: StateStore, keyring: AnchorKeyring, clock: LabClock, settings: ApiSettings, tuning: ControlPlaneTuning, dataDir: string, log: Logger, root: Logger,
    binPath: string, manufacturerKeyFile: string, hsmLogLevel: string, regionsFile?: string, credentials?: Credentials, hsmHosts?: HsmHostEntry[]
  }) {
    this.store = init.store
    this.keyring = init.keyring
    this.clock = init.clock
    this.settings = init.settings
    this.tuning = init.tuning
    this.dataDir = init.dataDir
    this.log = init.log
    this.regionsFile = init.regionsFile
    this.copierLog = forComponent(init.root, 'copier').child({ region: init.settings.region })
    this.credentials = init.credentials
    this.links = new HsmLinks(init.tuning.hsmRequestTimeoutMs)
    const supervision = {
      readyTimeoutMs: init.tuning.hsmReadyTimeoutMs,
      stopTimeoutMs: init.tuning.hsmStopTimeoutMs,
      log: forComponent(init.root, 'supervisor').child({ region: init.settings.region }),
      // Recording the exit can fail (a full disk): the HSM is restarted all the same, since it is
      // still ACTIVE or DEGRADED with no process; what must not happen is an unhandled rejection,
      // which would end the control plane.
      onExit: (hsmId: string, exit: HsmExit) => {
        this.hsmExited(hsmId, exit).catch(err => { this.log.warn({ hsmId, err: (err as Error).message }, 'recording the exit of an HSM process failed') })
      }
    }
    // Its own children, or (--hsm-hosts) each HSM on the host whose address it was given.
    this.supervisor = init.hsmHosts === undefined
      ? new HsmSupervisor({ ...supervision, binPath: init.binPath, manufacturerKeyFile: init.manufacturerKeyFile, logLevel: init.hsmLogLevel })
      : new RemoteHsmSupervisor({
        ...supervision,
        hosts: init.hsmHosts,
        addressOf: hsmId => this.store.state.hsms[hsmId]?.eniIp,
        requestTimeoutMs: init.tuning.hsmHostRequestTimeoutMs,
        waitMs: init.tuning.hsmHostWaitMs,
        unreachableMs: init.tuning.hsmHostUnreachableMs,
        retryMs: init.tuning.tickIntervalMs
      })
  }

  /** What the API handlers use. */
  apiContext (): ApiContext {
    return {
      store: this.store,
      clock: this.clock,
      settings: this.settings,
      kick: () => { this.kick() },
      regions: async () => await readRegionsFile(this.regionsFile),
      regionFetch: async (region, request) => await this.regionFetch(region, request),
      startCopy: (backupId, firstAnswer) => { this.startCopy(backupId, firstAnswer) },
      createTrustAnchor: async clusterId => await this.keyring.create(clusterId),
      dropTrustAnchor: async clusterId => { await this.keyring.remove([clusterId]) },
      requestBackup: async clusterId => await this.makeBackup(clusterId, 'requested').then(b => b.backupId),
      hsmRouteStatus: route => this.routeStatus(route)
    }
  }

  async regionFetch (region: string, request: RegionRequest): Promise<RegionResponse> {
    const regions = await readRegionsFile(this.regionsFile)
    const endpoint = regions[region]
    if (endpoint === undefined) throw new Error(`region ${region} is not in the regions file${this.regionsFile === undefined ? ' (none was given: --regions-file)' : ` ${this.regionsFile}`}`)
    const url = new URL(request.path, `${endpoint}/`)
    const body = request.body === undefined ? undefined : JSON.stringify(request.body)
    let headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' }
    if (this.credentials !== undefined) {
      headers = signRequest({ method: request.method, url, headers, body: body ?? '', region, credentials: this.credentials })
    }
    return await sendRegionRequest(url, { method: request.method, headers, ...(body === undefined ? {} : { body }), timeoutMs: request.timeoutMs ?? this.settings.regionRequestTimeoutMs })
  }

  /** Runs the copy recorded as `backupId` (once at a time); `firstAnswer` is its first attempt's answer, when already asked for. */
  startCopy (backupId: string, firstAnswer?: Promise<RegionResponse>): void {
    this.runTask(`copy:${backupId}`, async () => {
      await runCopy({
        store: this.store,
        clock: this.clock,
        dataDir: this.dataDir,
        regionFetch: async (region, request) => await this.regionFetch(region, request),
        log: this.copierLog,
        retryDelayMs: this.tuning.copyRetryDelayMs,
        retryDelayMaxMs: this.tuning.copyRetryDelayMaxMs
      }, backupId, this.abort.signal, firstAnswer)
    })
  }

  /** Adopts the HSM processes a previous control plane left running. */
  async adoptProcesses (): Promise<void> {
    await Promise.all(Object.values(this.store.state.hsms).map(async hsm => {
      if (hsm.pid === undefined || hsm.state === 'DELETED') return
      if (!await this.supervisor.adopt(hsm.hsmId, hsm.pid, hsmPaths(this.dataDir, hsm.hsmId), this.tuning.tickIntervalMs)) return
      if (hsm.state !== 'ACTIVE') {
        // Started by a control plane that died before it handled the HSM's ready line: nothing
        // would ever promote an adopted process, so stop it and let the restart path start it
        // again and mark it ACTIVE once ready. Its stores survive a SIGKILL by design.
        await this.supervisor.kill(hsm.hsmId)
      }
    }))
  }

  start (): void {
    this.timer = setInterval(() => { this.kick() }, this.tuning.tickIntervalMs)
    this.kick()
  }

  kick (): void {
    if (this.stopping) return
    if (this.running) { this.again = true; return }
    this.running = true
    setImmediate(() => {
      void this.reconcile().catch(err => { this.log.error({ err }, 'background pass failed') }).finally(() => {
        this.running = false
        if (this.again && !this.stopping) { this.again = false; this.kick() }
      })
    })
  }

  private runTask (key: string, work: () => Promise<void>): void {
    if (this.stopping || this.tasks.has(key)) return
    const task = work().catch(err => { this.log.warn({ task: key, err: (err as Error).message }, 'background task failed') })
      .finally(() => { this.tasks.delete(key); this.kick() })
    this.tasks.set(key, task)
  }

  async stop (stopHsms: boolean): Promise<void> {
    this.stopping = true
    if (this.timer !== undefined) clearInterval(this.timer)
    this.abort.abort()
    const tasks = Promise.allSettled([...this.tasks.values()])
    let deadline: NodeJS.Timeout | undefined
    await Promise.race([tasks, new Promise<void>(resolve => { deadline = setTimeout(resolve, 5_000) })])
    clearTimeout(deadline)
    if (stopHsms) await this.supervisor.stopAll()
    else this.supervisor.detachAll()
    await this.links.closeAll()
  }

  // ---------------------------------------------------------------- the background pass

  private async reconcile (): Promise<void> {
    if (this.stopping) return
    const realNow = Date.now()
    const labNow = this.clock.now()
    const state = this.store.state
    const keepMs = this.tuning.deletedRecordsKeptLabDays * DAY_MS

    // Timed cluster transitions, backup deletions and purges: one transaction when anything is due.
    const clustersDue = Object.values(state.clusters).filter(c => c.transitionAtRealMs !== undefined && c.transitionAtRealMs <= realNow &&
      (c.state === 'CREATE_IN_PROGRESS' || c.state === 'INITIALIZE_IN_PROGRESS' || c.state === 'DELETE_IN_PROGRESS'))
    const backupsToDelete = this.backupsToDelete(labNow)
    const pruneClusters = Object.values(state.clusters).filter(c => c.state === 'DELETED' && (c.deletedAtMs ?? labNow) + keepMs < labNow).map(c => c.clusterId)
    const pruneHsms = Object.values(state.hsms).filter(h => h.state === 'DELETED' && (h.deletedAtMs ?? labNow) + keepMs < labNow).map(h => h.hsmId)
    const pruneBackups = Object.values(state.backups).filter(b => b.state === 'DELETED' && (b.deletedAtMs ?? labNow) + keepMs < labNow).map(b => b.backupId)
    if (clustersDue.length + backupsToDelete.length + pruneClusters.length + pruneHsms.length + pruneBackups.length > 0) {
      const files: string[] = []
      await this.store.transact(draft => {
        for (const { clusterId } of clustersDue) {
          const c = draft.clusters[clusterId]
          if (c === undefined) continue
          delete c.transitionAtRealMs
          if (c.state === 'CREATE_IN_PROGRESS') {
            c.state = 'UNINITIALIZED'
            delete c.stateMessage
          } else if (c.state === 'INITIALIZE_IN_PROGRESS') {
            c.state = 'INITIALIZED'
            c.stateMessage = 'Cluster is initialized. Activate it: log in as the PRECO and change its password.'
          } else if (c.state === 'DELETE_IN_PROGRESS') {
            c.state = 'DELETED'
            c.stateMessage = 'The cluster has been deleted.'
            c.deletedAtMs = labNow
            delete c.csrPublicKeyPem
            delete c.csrPem
          }
          this.log.info({ clusterId, state: c.state }, 'cluster state changed')
        }
        for (const { backupId, reason } of backupsToDelete) {
          const b = draft.backups[backupId]
          if (b === undefined || b.state === 'DELETED') continue
          b.state = 'DELETED'
          b.stateMessage = reason
          b.deletedAtMs = labNow
          delete b.deleteAtMs
          if (b.file !== undefined) files.push(b.file)
          delete b.file
        }
        for (const id of pruneClusters) delete draft.clusters[id]
        for (const id of pruneHsms) delete draft.hsms[id]
        for (const id of pruneBackups) delete draft.backups[id]
      })
      await Promise.allSettled(files.map(async f => { await rm(join(this.dataDir, f), { force: true }) }))
      await Promise.allSettled(pruneHsms.map(async id => { await rm(hsmPaths(this.dataDir, id).dir, { recursive: true, force: true }) }))
    }

    // A DELETED cluster's trust anchor goes (it issues nothing more); a failure is tried again on the next pass.
    await this.dropDeletedAnchors(pruneClusters).catch(err => { this.log.warn({ err: (err as Error).message }, 'the keyring could not be written') })

    const now = this.store.state
    for (const hsm of Object.values(now.hsms)) {
      const key = `hsm:${hsm.hsmId}`
      if (hsm.state === 'CREATE_IN_PROGRESS' && hsm.halted !== true && (this.restartAt.get(hsm.hsmId) ?? 0) <= realNow) {
        this.runTask(key, async () => { await this.provisionHsm(hsm.hsmId) })
      } else if (hsm.state === 'DELETE_IN_PROGRESS') {
        this.runTask(key, async () => { await this.deleteHsm(hsm.hsmId) })
      } else if ((hsm.state === 'ACTIVE' || hsm.state === 'DEGRADED') && hsm.halted !== true &&
        this.supervisor.pidOf(hsm.hsmId) === undefined && (this.restartAt.get(hsm.hsmId) ?? 0) <= realNow) {
        this.runTask(key, async () => { await this.restartHsm(hsm.hsmId) })
      }
    }
    for (const cluster of Object.values(now.clusters)) {
      const active = this.runningHsms(cluster.clusterId)
      if (cluster.state === 'INITIALIZED' && active.length > 0 && (this.lastPoll.get(cluster.clusterId) ?? 0) + ACTIVATION_POLL_MS <= realNow) {
        this.lastPoll.set(cluster.clusterId, realNow)
        this.runTask(`activate:${cluster.clusterId}`, async () => { await this.pollActivation(cluster.clusterId) })
      }
      if (cluster.state === 'ACTIVE' && active.length > 0 && this.dailyBackupDue(cluster, labNow, realNow)) {
        this.runTask(`daily:${cluster.clusterId}`, async () => {
          const backup = await this.makeBackup(cluster.clusterId, 'daily')
          await backup.done
          // A failed daily backup is not tried again at once (the HSM may be busy or restarting).
          if (this.store.state.backups[backup.backupId]?.state === 'DELETED') this.lastPoll.set(`daily:${cluster.clusterId}`, Date.now())
        })
      }
      if (active.length > 0 && this.keyring.has(cluster.clusterId)) {
        if (active.some(h => this.peersPushed.get(h.hsmId) !== this.peerSetKey(h, active))) {
          this.runTask(`peers:${cluster.clusterId}`, async () => { await this.pushPeers(cluster.clusterId) })
        }
      }
    }
    // Copy requests this region answered with a failure: their destinations drop what they recorded.
    for (const [requestId, abandoned] of Object.entries(now.abandonedCopies ?? {})) {
      if ((this.lastPoll.get(`cancel:${requestId}`) ?? 0) + this.tuning.copyRetryDelayMaxMs > realNow) continue
      this.lastPoll.set(`cancel:${requestId}`, realNow)
      this.runTask(`cancel:${requestId}`, async () => { await this.cancelAbandonedCopy(requestId, abandoned, labNow) })
    }
    for (const backup of Object.values(now.backups)) {
      if (backup.state !== 'CREATE_IN_PROGRESS') continue
      if (backup.copy !== undefined) {
        this.startCopy(backup.backupId)
      } else {
        // A local backup left CREATE_IN_PROGRESS by a restart: export it again.
        this.runTask(`backup:${backup.backupId}`, async () => { await this.exportInto(backup.backupId) })
      }
    }
  }

  /**
   * Forgets the trust anchors of clusters that are DELETED or were just pruned. An anchor without
   * a record stays otherwise: a cluster being created has its anchor before its record.
   */
  private async dropDeletedAnchors (pruned: readonly string[]): Promise<void> {
    const clusters = this.store.state.clusters
    await this.keyring.remove(this.keyring.clusterIds().filter(id => clusters[id]?.state === 'DELETED' || pruned.includes(id)))
  }

  /**
   * Tells the destination of a copy request answered with a failure to drop what it recorded of
   * it; once it answered, the request is forgotten (tried again on later passes until then, for
   * as long as DELETED records are kept).
   */
  private async cancelAbandonedCopy (requestId: string, abandoned: AbandonedCopyRecord, labNow: number): Promise<void> {
    const forget = async (): Promise<void> => {
      this.lastPoll.delete(`cancel:${requestId}`)
      await this.store.transact(draft => { if (draft.abandonedCopies !== undefined) delete draft.abandonedCopies[requestId] })
    }
    if (labNow > abandoned.atLabMs + this.tuning.deletedRecordsKeptLabDays * DAY_MS) {
      this.log.warn({ requestId, region: abandoned.region }, 'the destination of a failed copy request never answered its cancellation; giving up')
      await forget()
      return
    }
    const response = await this.regionFetch(abandoned.region, { method: 'POST', path: `/_hsmlab/copies/${encodeURIComponent(requestId)}/cancel` })
    if (response.status !== 200) throw new Error(`${abandoned.region} answered ${response.status} to the cancellation of copy request ${requestId}`)
    this.log.info({ requestId, region: abandoned.region, answer: response.body.toString('utf8') }, 'failed copy request cancelled in its destination')
    await forget()
  }

  private backupsToDelete (labNow: number): Array<{ backupId: string, reason: string }> {
    const state = this.store.state
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
    if ((this.lastPoll.get(`daily:${cluster.clusterId}`) ?? 0) + DAILY_RETRY_MS > realNow) return false
    // The first one a day after the cluster was created, as the service's: a clone, which has no
    // backup of its own yet, is not backed up the moment it is ACTIVE (while its HSMs are added).
    let latest = cluster.createdAtMs
    for (const b of Object.values(this.store.state.backups)) {
      if (b.clusterId === cluster.clusterId && b.state !== 'DELETED' && b.createdAtMs > latest) latest = b.createdAtMs
    }
    return labNow - latest >= this.tuning.backupIntervalLabSeconds * 1000
  }

  // ---------------------------------------------------------------- HSM helpers

  /**
   * Where `from` (`control-plane` or an HSM id) reaches `hsm` through a route (HsmlabSetHsmRoutes),
   * or undefined for its own endpoint: no route, or the HSM is no longer where the route leads.
   */
  private routeOf (from: string, hsm: HsmRecord): string | undefined {
    const routes = this.store.state.hsmRoutes
    if (routes === undefined || routes.length === 0) return undefined
    if (this.routeIndex.of !== routes) this.routeIndex = { of: routes, byKey: new Map(routes.map(r => [`${r.from}->${r.hsmId}`, r])) }
    const route = this.routeIndex.byKey.get(`${from}->${hsm.hsmId}`)
    const direct = hsmEndpoint(hsm)
    if (route === undefined || direct === undefined || (route.upstream !== undefined && route.upstream !== direct)) return undefined
    return route.endpoint
  }

  /** HsmlabDescribeHsmRoutes: whether a route is in use, and whether its `from` has it. */
  routeStatus (route: HsmRouteRecord): { inUse: boolean, delivered: boolean } {
    const hsm = this.store.state.hsms[route.hsmId]
    const inUse = hsm !== undefined && this.routeOf(route.from, hsm) === route.endpoint
    if (route.from === CONTROL_PLANE_ROUTE_FROM) return { inUse, delivered: inUse }
    const delivered = this.peersDelivered.get(route.from)?.some(p => p.hsmId === route.hsmId && p.endpoint === route.endpoint) ?? false
    return { inUse, delivered: inUse && delivered }
  }

  private addressOf (hsm: HsmRecord): HsmAddress | undefined {
    const cluster = this.store.state.clusters[hsm.clusterId]
    const url = this.routeOf(CONTROL_PLANE_ROUTE_FROM, hsm) ?? hsmEndpoint(hsm)
    if (cluster === undefined || url === undefined) return undefined
    return { hsmId: hsm.hsmId, clusterId: hsm.clusterId, url, anchorPublicKey: bytes(cluster.anchorPublicKey) }
  }

  /** The ACTIVE HSMs of a cluster whose process runs. */
  private runningHsms (clusterId: string): HsmRecord[] {
    return hsmsOf(this.store.state, clusterId).filter(h => h.state === 'ACTIVE' && h.port !== undefined && this.supervisor.pidOf(h.hsmId) !== undefined)
  }

  /** The peer list `target` gets: every running HSM of its cluster, each where `target` reaches it (a route, else its own endpoint). */
  private peersFor (target: HsmRecord, hsms: HsmRecord[]): PeerAddress[] {
    return hsms.map(h => ({ hsmId: h.hsmId, endpoint: (h.hsmId === target.hsmId ? undefined : this.routeOf(target.hsmId, h)) ?? hsmEndpoint(h) ?? '' }))
  }

  private peerSetKey (target: HsmRecord, hsms: HsmRecord[]): string {
    return this.peersFor(target, hsms).map(p => `${p.hsmId}@${p.endpoint}`).sort().join(',')
  }

  private async hsmExited (hsmId: string, exit: HsmExit): Promise<void> {
    this.links.drop(hsmId)
    if (this.stopping) return
    const how = exit.signal !== null ? `killed by ${exit.signal}` : exit.code !== null ? `exit code ${exit.code}` : 'it is gone'
    this.log.warn({ hsmId, code: exit.code, signal: exit.signal, log: exit.logTail }, 'HSM process exited unexpectedly')
    const failures = await this.store.transact(draft => {
      const hsm = draft.hsms[hsmId]
      if (hsm === undefined || (hsm.state !== 'ACTIVE' && hsm.state !== 'DEGRADED')) return undefined
      hsm.state = 'DEGRADED'
      hsm.stateMessage = `The HSM process exited unexpectedly (${how}); it is being restarted.`
      hsm.failures += 1
      delete hsm.pid
      return hsm.failures
    })
    if (failures !== undefined) this.restartAt.set(hsmId, Date.now() + backoff(this.tuning.hsmRestartDelayMs, this.tuning.hsmRestartDelayMaxMs, failures))
    this.kick()
  }

  /** Starts an HSM process and records its pid as soon as it exists. */
  private async startProcess (hsm: HsmRecord, provision: boolean, port: number): Promise<{ pid: number, port: number }> {
    const paths = hsmPaths(this.dataDir, hsm.hsmId)
    return await this.supervisor.start(hsm.hsmId, paths, { host: hsm.eniIp, port }, provision, async pid => {
      await this.store.transact(draft => {
        const h = draft.hsms[hsm.hsmId]
        if (h !== undefined) h.pid = pid
      })
    })
  }

  /** Handles a failure to start: halts the HSM (its data or backup cannot be loaded) or schedules a retry. */
  private async startFailed (hsmId: string, err: unknown, creating: boolean): Promise<void> {
    const exitCode = err instanceof HsmStartError ? err.exitCode : undefined
    const restoreFrom = this.store.state.hsms[hsmId]?.restoreFrom
    // The HSM names the file it was given to restore; the API's user knows the backup.
    const message = restoreFrom === undefined
      ? (err as Error).message
      : (err as Error).message.replaceAll(`the backup file ${resolve(hsmPaths(this.dataDir, hsmId).restoreFile)}`, `backup ${restoreFrom}`)
    this.log.warn({ hsmId, exitCode, err: message }, 'HSM process failed to start')
    const failures = await this.store.transact(draft => {
      const hsm = draft.hsms[hsmId]
      if (hsm === undefined) return 0
      delete hsm.pid
      hsm.failures += 1
      const give = exitCode === 2 || (creating && hsm.failures >= 3)
      if (give) {
        hsm.state = 'DEGRADED'
        hsm.halted = true
        hsm.stateMessage = `${creating ? 'The HSM could not be created' : 'The HSM cannot be started'}: ${message}`.slice(0, 1000)
        // A cluster waiting for its first HSM to restore its source backup says why it stays UNINITIALIZED.
        const cluster = draft.clusters[hsm.clusterId]
        if (creating && cluster?.state === 'UNINITIALIZED' && cluster.sourceBackupId !== undefined && restoreFrom === cluster.sourceBackupId) {
          cluster.stateMessage = `Backup ${restoreFrom} could not be restored: ${message}`.slice(0, 1000)
        }
      } else if (!creating) {
        hsm.state = 'DEGRADED'
        hsm.stateMessage = `The HSM process failed to start (attempt ${hsm.failures}); retrying: ${message}`.slice(0, 1000)
      }
      return hsm.failures
    })
    this.restartAt.set(hsmId, Date.now() + backoff(this.tuning.hsmRestartDelayMs, this.tuning.hsmRestartDelayMaxMs, failures))
  }

  /**
   * After a ready line: the HSM ACTIVE, once it told what only it can: its lineage (getHsmInfo)
   * and, for a cluster that has none yet, its certificates. A new HSM of a cluster whose lineage
   * is known, restored from the cluster's backup, has that lineage: it is ACTIVE at once, and the
   * link to it opens with its peer list, right after. A restarted one is asked, through its
   * route if it has one, so that the link is open again for what comes next.
   */
  private async afterReady (hsmId: string, ran: { pid: number, port: number }, provisioned: boolean): Promise<void> {
    const known = this.store.state.hsms[hsmId]
    if (known === undefined) return
    const cluster = this.store.state.clusters[known.clusterId]
    const askCertificates = cluster !== undefined && cluster.certificates.HsmCertificate === undefined
    const askInfo = askCertificates || (cluster !== undefined && (cluster.lineage === undefined || known.state !== 'CREATE_IN_PROGRESS'))
    let lineage: string | undefined
    const certificates: Record<string, string> = {}
    if (askInfo) {
      // Its port is recorded before it is asked, so a control plane that dies meanwhile adopts it where it listens.
      const first = await this.store.transact(draft => {
        const h = draft.hsms[hsmId]
        if (h === undefined) return undefined
        h.pid = ran.pid
        h.port = ran.port
        return { ...h }
      })
      if (first === undefined) return
      const address = this.addressOf(first)
      if (address !== undefined) {
        try {
          const certificate = async (certType: number): Promise<string> => (await this.links.call(address, 'getCertificate', { certType })).pem
          const [info, manufacturer, hsmCertificate, aws] = await Promise.all([
            this.links.call(address, 'getHsmInfo', {}),
            ...(askCertificates ? [certificate(2), certificate(8), certificate(16)] : [])
          ])
          lineage = info.lineage
          if (manufacturer !== undefined && hsmCertificate !== undefined && aws !== undefined) {
            certificates.ManufacturerHardwareCertificate = manufacturer
            certificates.HsmCertificate = hsmCertificate
            certificates.AwsHardwareCertificate = aws
          }
        } catch (err) {
          this.log.warn({ hsmId, err: (err as Error).message }, 'the HSM is ready but did not answer getHsmInfo/getCertificate')
        }
      }
    }
    await this.store.transact(draft => {
      const h = draft.hsms[hsmId]
      if (h === undefined) return
      h.pid = ran.pid
      h.port = ran.port
      if (h.state === 'CREATE_IN_PROGRESS' || h.state === 'DEGRADED') {
        h.state = 'ACTIVE'
        h.stateMessage = ACTIVE_HSM_MESSAGE
      }
      h.provisioned = h.provisioned || provisioned
      h.failures = 0
      const c = draft.clusters[h.clusterId]
      if (c === undefined) return
      if (lineage !== undefined) c.lineage ??= lineage
      for (const [k, v] of Object.entries(certificates)) (c.certificates as Record<string, string>)[k] ??= v
      if (c.state === 'UNINITIALIZED' && c.sourceBackupId !== undefined) {
        c.state = 'ACTIVE'
        delete c.stateMessage
        this.log.info({ clusterId: c.clusterId, from: c.sourceBackupId }, 'cluster restored from its backup: ACTIVE')
      } else if (c.state === 'UNINITIALIZED' && c.certificates.ClusterCsr === undefined) {
        if (c.csrPem !== undefined) c.certificates.ClusterCsr = c.csrPem
      }
    })
    this.restartAt.delete(hsmId)
    this.log.info({ hsmId, pid: ran.pid, port: ran.port }, 'HSM ACTIVE')
  }

  /** Where a new HSM's content comes from: nothing (a new cluster), a backup, or not decidable yet. */
  private async restoreSourceFor (hsm: HsmRecord): Promise<{ backupId?: string, wait?: boolean }> {
    const state = this.store.state
    const cluster = state.clusters[hsm.clusterId]
    if (cluster === undefined) throw new ControlPlaneError(CP_ERR_HSM, `cluster ${hsm.clusterId} is gone`)
    if (cluster.state === 'UNINITIALIZED') return cluster.sourceBackupId === undefined ? {} : { backupId: cluster.sourceBackupId }
    const others = hsmsOf(state, cluster.clusterId).filter(h => h.hsmId !== hsm.hsmId)
    const running = this.runningHsms(cluster.clusterId).filter(h => h.hsmId !== hsm.hsmId)
    const source = running[0]
    if (source !== undefined) {
      const backup = await this.makeBackup(cluster.clusterId, 'hsm-added', source.hsmId)
      await backup.done
      const made = this.store.state.backups[backup.backupId]
      if (made?.state !== 'READY') throw new ControlPlaneError(CP_ERR_BACKUP, `the backup of ${source.hsmId} to restore onto ${hsm.hsmId} failed: ${made?.stateMessage ?? 'unknown reason'}`)
      return { backupId: backup.backupId }
    }
    if (others.some(h => h.state === 'CREATE_IN_PROGRESS' || ((h.state === 'ACTIVE' || h.state === 'DEGRADED') && h.halted !== true))) return { wait: true }
    const latest = Object.values(state.backups)
      .filter(b => (b.clusterId === cluster.clusterId || b.backupId === cluster.sourceBackupId) && (b.state === 'READY' || b.state === 'PENDING_DELETION') && b.file !== undefined)
      .sort((a, b) => b.createdAtMs - a.createdAtMs)[0]
    if (latest === undefined) throw new ControlPlaneError(CP_ERR_BACKUP, `cluster ${cluster.clusterId} has no HSM and no backup to restore a new HSM from`)
    return { backupId: latest.backupId }
  }

  private async provisionHsm (hsmId: string): Promise<void> {
    let hsm = this.store.state.hsms[hsmId]
    if (hsm === undefined || hsm.state !== 'CREATE_IN_PROGRESS') return
    const cluster = this.store.state.clusters[hsm.clusterId]
    const paths = hsmPaths(this.dataDir, hsmId)
    // A process a previous control plane started and did not see ready: start over.
    if (this.supervisor.pidOf(hsmId) !== undefined) await this.supervisor.kill(hsmId)
    try {
      if (cluster === undefined || cluster.state === 'DELETED') throw new ControlPlaneError(CP_ERR_HSM, `cluster ${hsm.clusterId} can no longer take HSMs`)
      if (!this.keyring.has(cluster.clusterId)) {
        throw new ControlPlaneError(CP_ERR_HSM, `the keyring ${this.keyring.file} holds no trust anchor for cluster ${cluster.clusterId}, so no HSM identity can be issued; restore the file from a copy of the data directory`)
      }
      let provision = await exists(paths.provisionFile)
      if (!provision && !(await nonEmptyDir(paths.dataDir))) {
        let restoreFrom = hsm.restoreFrom
        if (restoreFrom === undefined) {
          const decision = await this.restoreSourceFor(hsm)
          if (decision.wait === true) {
            this.restartAt.set(hsmId, Date.now() + 250)
            return
          }
          restoreFrom = decision.backupId
          if (restoreFrom !== undefined) {
            const chosen = restoreFrom
            await this.store.transact(draft => { const h = draft.hsms[hsmId]; if (h !== undefined) h.restoreFrom = chosen })
          }
        }
        await mkdir(paths.dir, { recursive: true, mode: 0o700 })
        if (restoreFrom !== undefined) {
          const backup = this.store.state.backups[restoreFrom]
          if (backup?.file === undefined || backup.state === 'DELETED') {
            throw new HsmStartError(`backup ${restoreFrom} to restore is no longer available (${backup?.state ?? 'unknown'})`, 2)
          }
          await copyFile(join(this.dataDir, backup.file), paths.restoreFile)
        }
        const issued = this.keyring.issueIdentity(hsm.clusterId, hsmId)
        await writeProvisionFile(paths.provisionFile, {
          hsmId,
          clusterId: hsm.clusterId,
          slot: hsm.slot,
          anchorPublicKey: bytes(cluster.anchorPublicKey),
          identitySecretKey: issued.identity.secretKey,
          certificate: issued.certificate,
          ...(restoreFrom === undefined ? {} : { backupFile: resolve(paths.restoreFile) })
        })
        provision = true
      }
      hsm = this.store.state.hsms[hsmId]
      if (hsm === undefined || hsm.state !== 'CREATE_IN_PROGRESS') return
      const ran = await this.startProcess(hsm, provision, hsm.port ?? 0)
      await this.afterReady(hsmId, ran, true)
      await rm(paths.restoreFile, { force: true })
    } catch (err) {
      await this.startFailed(hsmId, err, true)
    }
  }

  private async restartHsm (hsmId: string): Promise<void> {
    const hsm = this.store.state.hsms[hsmId]
    if (hsm === undefined || (hsm.state !== 'ACTIVE' && hsm.state !== 'DEGRADED') || hsm.halted === true) return
    const paths = hsmPaths(this.dataDir, hsmId)
    const provision = await exists(paths.provisionFile)
    try {
      let ran
      try {
        ran = await this.startProcess(hsm, provision, hsm.port ?? 0)
      } catch (err) {
        // Its port was taken meanwhile: take another one (the peers hear of it).
        if (hsm.port !== undefined && err instanceof HsmStartError && err.exitCode === 1 && /HSM_ERR_LISTEN|EADDRINUSE/.test(err.message)) {
          ran = await this.startProcess(hsm, provision, 0)
        } else {
          throw err
        }
      }
      await this.afterReady(hsmId, ran, provision)
    } catch (err) {
      await this.startFailed(hsmId, err, false)
    }
  }

  private async deleteHsm (hsmId: string): Promise<void> {
    const hsm = this.store.state.hsms[hsmId]
    if (hsm === undefined || hsm.state !== 'DELETE_IN_PROGRESS') return
    const cluster = this.store.state.clusters[hsm.clusterId]
    // Removing an HSM from an active cluster makes a backup first (of this HSM, while it runs).
    if (cluster?.state === 'ACTIVE' && this.supervisor.pidOf(hsmId) !== undefined && hsm.port !== undefined) {
      try {
        const backup = await this.makeBackup(hsm.clusterId, 'hsm-removed', hsmId)
        await backup.done
      } catch (err) {
        this.log.warn({ hsmId, err: (err as Error).message }, 'no backup could be made before the HSM was deleted')
      }
    }
    const paths = hsmPaths(this.dataDir, hsmId)
    if (this.supervisor.pidOf(hsmId) === undefined && hsm.pid !== undefined) await this.supervisor.adopt(hsmId, hsm.pid, paths, 50)
    await this.supervisor.stop(hsmId)
    // Before it is DELETED, so that a failure (its host does not answer) is tried again.
    await this.supervisor.removeData(hsmId, paths)
    this.links.drop(hsmId)
    this.peersPushed.delete(hsmId)
    this.peersDelivered.delete(hsmId)
    this.restartAt.delete(hsmId)
    await this.store.transact(draft => {
      const h = draft.hsms[hsmId]
      if (h === undefined) return
      h.state = 'DELETED'
      h.stateMessage = 'The HSM has been deleted.'
      h.deletedAtMs = this.clock.now()
      delete h.pid
    })
    this.log.info({ hsmId }, 'HSM DELETED')
  }

  private async pollActivation (clusterId: string): Promise<void> {
    const hsms = this.runningHsms(clusterId)
    if (hsms.length === 0) return
    for (const hsm of hsms) {
      const address = this.addressOf(hsm)
      if (address === undefined) return
      const { users } = await this.links.call(address, 'listUsers', {})
      if (users.some(u => u.userType === 'PRECO')) return
    }
    const activated = await this.store.transact(draft => {
      const c = draft.clusters[clusterId]
      if (c?.state !== 'INITIALIZED') return false
      c.state = 'ACTIVE'
      delete c.stateMessage
      return true
    })
    if (activated) {
      this.log.info({ clusterId }, 'cluster ACTIVE: the PRECO changed its password')
      await this.makeBackup(clusterId, 'activation')
    }
  }

  private async pushPeers (clusterId: string): Promise<void> {
    const cluster = this.store.state.clusters[clusterId]
    const active = this.runningHsms(clusterId)
    if (cluster === undefined || !this.keyring.has(clusterId) || active.length === 0) return
    const targets = active.filter(h => this.peersPushed.get(h.hsmId) !== this.peerSetKey(h, active))
    if (targets.length === 0) return
    // A version is recorded before any HSM sees it, so it is never used twice.
    const version = await this.store.transact(draft => {
      const c = draft.clusters[clusterId]
      if (c === undefined) return 0
      c.peersVersion = Math.max(c.peersVersion + 1, Date.now())
      return c.peersVersion
    })
    await Promise.all(targets.map(async hsm => {
      const address = this.addressOf(hsm)
      if (address === undefined) return
      // Each HSM gets its own list: its routes (HsmlabSetHsmRoutes) decide where it reaches each peer.
      const peers = this.peersFor(hsm, active)
      const setKey = this.peerSetKey(hsm, active)
      try {
        await this.links.call(address, 'setPeers', { peers, version, signature: this.keyring.signPeers(clusterId, hsm.hsmId, peers, version) })
        this.peersPushed.set(hsm.hsmId, setKey)
        this.peersDelivered.set(hsm.hsmId, peers)
      } catch (err) {
        const stored = /stored version (\d+)/.exec((err as Error).message)
        if (stored !== null) {
          const seen = Number(stored[1])
          await this.store.transact(draft => { const c = draft.clusters[clusterId]; if (c !== undefined) c.peersVersion = Math.max(c.peersVersion, seen) })
        }
        this.log.warn({ hsmId: hsm.hsmId, err: (err as Error).message }, 'the HSM did not take its peer list; trying again')
      }
    }))
    this.log.info({ clusterId, version, peers: active.length, targets: targets.length }, 'peer lists sent')
  }

  // ---------------------------------------------------------------- backups

  /** Records a new backup of a cluster (CREATE_IN_PROGRESS) and exports it in the background. */
  async makeBackup (clusterId: string, reason: BackupReason, fromHsmId?: string): Promise<{ backupId: string, done: Promise<void> }> {
    const backupId = await this.store.transact(draft => {
      const cluster = draft.clusters[clusterId]
      if (cluster === undefined) throw new ControlPlaneError(CP_ERR_BACKUP, `cluster ${clusterId} is gone`)
      const record: BackupRecord = {
        backupId: randomResourceId('backup'),
        clusterId,
        state: 'CREATE_IN_PROGRESS',
        createdAtMs: this.clock.now(),
        neverExpires: false,
        tags: [],
        hsmType: cluster.hsmType,
        ...(cluster.mode === undefined ? {} : { mode: cluster.mode }),
        reason,
        ...(fromHsmId === undefined ? {} : { sourceHsmId: fromHsmId }),
        nextSlot: cluster.nextSlot
      }
      draft.backups[record.backupId] = record
      return record.backupId
    })
    let settle: () => void = () => {}
    const done = new Promise<void>(resolve => { settle = resolve })
    const key = `backup:${backupId}`
    if (this.tasks.has(key) || this.stopping) {
      settle()
    } else {
      const task = this.exportInto(backupId).catch(err => { this.log.warn({ backupId, err: (err as Error).message }, 'backup failed') })
        .finally(() => { this.tasks.delete(key); settle(); this.kick() })
      this.tasks.set(key, task)
    }
    this.log.info({ clusterId, backupId, reason }, 'backup started')
    return { backupId, done }
  }

  /** Exports a backup from an HSM of its cluster into the backup record; DELETED with the reason on failure. */
  private async exportInto (backupId: string): Promise<void> {
    const backup = this.store.state.backups[backupId]
    if (backup?.state !== 'CREATE_IN_PROGRESS' || backup.clusterId === undefined) return
    const clusterId = backup.clusterId
    try {
      const cluster = this.store.state.clusters[clusterId]
      if (cluster === undefined || !this.keyring.has(clusterId)) throw new ControlPlaneError(CP_ERR_BACKUP, `cluster ${clusterId} is deleted`)
      const preferred = backup.sourceHsmId === undefined ? undefined : this.store.state.hsms[backup.sourceHsmId]
      const source = preferred !== undefined && (preferred.state === 'ACTIVE' || preferred.state === 'DELETE_IN_PROGRESS') && this.supervisor.pidOf(preferred.hsmId) !== undefined
        ? preferred
        : this.runningHsms(clusterId)[0]
      const address = source === undefined ? undefined : this.addressOf(source)
      if (source === undefined || address === undefined) throw new ControlPlaneError(CP_ERR_BACKUP, `no HSM of cluster ${clusterId} is running to make the backup`)
      const requestedAtMs = Date.now()
      const signature = this.keyring.signBackupRequest(clusterId, source.hsmId, requestedAtMs)
      const result = await this.links.call(address, 'exportBackup', { requestedAtMs, signature })
      const header = readBackupHeader(result.backup)
      const stored = await storeBackupBytes(this.dataDir, backupId, result.backup)
      await this.store.transact(draft => {
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
      this.log.info({ backupId, clusterId, hsmId: source.hsmId, keys: result.keyCount, users: result.userCount }, 'backup READY')
    } catch (err) {
      const message = (err as Error).message
      await this.store.transact(draft => {
        const b = draft.backups[backupId]
        if (b === undefined || b.state !== 'CREATE_IN_PROGRESS') return
        b.state = 'DELETED'
        b.stateMessage = `The backup could not be made: ${message}`.slice(0, 1000)
        b.deletedAtMs = this.clock.now()
      })
      throw err
    }
  }
}

/** The HSM addressing of a control plane: as given; else `shared` with `hsmHost` or off Linux, `per-hsm` otherwise. */
function addressingOf (options: ControlPlaneOptions): 'per-hsm' | 'shared' | 'hosts' {
  if (options.hsmHostsFile !== undefined) return 'hosts'
  return options.hsmAddressing ?? (options.hsmHost === undefined && process.platform === 'linux' ? 'per-hsm' : 'shared')
}

function checkOptions (options: ControlPlaneOptions): void {
  const fail = (message: string): never => { throw new ControlPlaneError(CP_ERR_INVALID_ARGUMENT, message) }
  if (!isRegionName(options.region)) fail(`'${options.region}' is not a region name (like us-east-1, us-gov-west-1)`)
  if (options.dataDir === '') fail('dataDir is required')
  if (options.manufacturerKeyFile === '') fail('manufacturerKeyFile is required')
  if (options.clockSpeed !== undefined && !(Number.isFinite(options.clockSpeed) && options.clockSpeed > 0)) fail(`clockSpeed must be a positive number, not ${options.clockSpeed}`)
  if (options.port !== undefined && !(Number.isInteger(options.port) && options.port >= 0 && options.port <= 65535)) fail(`port must be 0 to 65535, not ${options.port}`)
  if (options.hsmHostsFile !== undefined) {
    if (options.hsmHost !== undefined || options.hsmAddressing !== undefined) fail('hsmHostsFile places each HSM at its host\'s address: give neither hsmHost nor hsmAddressing with it')
  } else if (options.hsmHost !== undefined) {
    if (options.hsmAddressing === 'per-hsm') fail('hsmHost applies to shared addressing only; per-hsm addressing picks each HSM\'s own loopback address')
    if (!isIPv4(options.hsmHost) || options.hsmHost === '0.0.0.0') fail(`hsmHost must be an IPv4 address clients can reach (it is each HSM's EniIp), not '${options.hsmHost}'`)
  } else if (addressingOf(options) === 'shared' && ['0.0.0.0', '::'].includes(options.host ?? controlPlaneDefaults.host)) {
    fail(`with shared addressing and host ${options.host ?? ''} (every interface), give hsmHost: the address the HSMs listen on and clients reach`)
  }
  if (options.accountId !== undefined && !/^\d{12}$/.test(options.accountId)) fail(`accountId must be 12 digits, not '${options.accountId}'`)
  if (options.logLevel !== undefined && !LOG_LEVELS.includes(options.logLevel)) fail(`logLevel must be one of ${LOG_LEVELS.join(', ')}`)
  for (const [k, v] of Object.entries(options.tuning ?? {})) {
    if (!(k in controlPlaneDefaults)) fail(`unknown tuning option ${k}`)
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) fail(`tuning option ${k} must be a number ≥ 0, not ${String(v)}`)
  }
}

/** Starts a control plane for one region and resolves once its API listens. */
export async function startControlPlane (options: ControlPlaneOptions): Promise<ControlPlane> {
  checkOptions(options)
  const dataDir = resolve(options.dataDir)
  const host = options.host ?? controlPlaneDefaults.host
  const accountId = options.accountId ?? controlPlaneDefaults.accountId
  const logger = options.logger ?? createLogger(options.logLevel ?? 'silent')
  const log = forComponent(logger, 'engine').child({ region: options.region })
  const tuning: ControlPlaneTuning = { ...(controlPlaneDefaults as unknown as ControlPlaneTuning), ...options.tuning }
  const release = await lockDataDir(dataDir)
  let engine: Engine | undefined
  let server: Server | undefined
  try {
    const hsmHosts = options.hsmHostsFile === undefined ? undefined : await readHsmHostsFile(resolve(options.hsmHostsFile), options.region)
    await mkdir(join(dataDir, 'hsms'), { recursive: true, mode: 0o700 })
    await mkdir(join(dataDir, 'backups'), { recursive: true, mode: 0o700 })
    const store = await StateStore.open(dataDir, options.region, accountId)
    const keyring = await AnchorKeyring.open(dataDir)
    await moveLegacySecrets(store, keyring)
    const clock = LabClock.anchored(store.state.clock, options.clockSpeed ?? controlPlaneDefaults.clockSpeed)
    await store.transact(draft => { draft.clock = clock.toJSON() })
    const settings: ApiSettings = {
      region: options.region,
      accountId: store.state.accountId,
      host,
      hsmHost: options.hsmHost ?? host,
      hsmAddressing: addressingOf(options),
      hsmHosts: hsmHosts ?? [],
      clustersMax: tuning.clustersMax,
      hsmsMax: tuning.hsmsMax,
      hsmsPerClusterMax: tuning.hsmsPerClusterMax,
      tagsPerResourceMax: tuning.tagsPerResourceMax,
      backupRetentionDays: tuning.backupRetentionDays,
      backupDeletionWindowDays: tuning.backupDeletionWindowDays,
      copyRetryWindowLabSeconds: tuning.copyRetryWindowLabSeconds,
      clusterCreateDelayMs: tuning.clusterCreateDelayMs,
      clusterInitializeDelayMs: tuning.clusterInitializeDelayMs,
      clusterDeleteDelayMs: tuning.clusterDeleteDelayMs,
      regionRequestTimeoutMs: tuning.regionRequestTimeoutMs
    }
    engine = new Engine({
      store,
      keyring,
      clock,
      settings,
      tuning,
      dataDir,
      log,
      root: logger,
      binPath: options.hsmBinPath ?? HSM_BIN_PATH,
      manufacturerKeyFile: resolve(options.manufacturerKeyFile),
      hsmLogLevel: options.hsmLogLevel ?? controlPlaneDefaults.hsmLogLevel,
      ...(options.regionsFile === undefined ? {} : { regionsFile: resolve(options.regionsFile) }),
      ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
      ...(hsmHosts === undefined ? {} : { hsmHosts })
    })
    await engine.adoptProcesses()
    const apiServer = createApiServer({
      ctx: engine.apiContext(),
      dataDir,
      ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
      skewMs: tuning.signatureSkewMs,
      bodyBytesMax: tuning.requestBodyBytesMax,
      requestHeadersTimeoutMs: tuning.requestHeadersTimeoutMs,
      requestReceiveTimeoutMs: tuning.requestReceiveTimeoutMs,
      log: forComponent(logger, 'server')
    })
    server = apiServer
    await new Promise<void>((resolveListen, reject) => {
      apiServer.once('error', err => { reject(new ControlPlaneError(CP_ERR_LISTEN, `cannot listen on ${host}:${options.port ?? 0}: ${err.message}`, { cause: err })) })
      apiServer.listen(options.port ?? controlPlaneDefaults.port, host, () => { resolveListen() })
    })
    engine.start()
  } catch (err) {
    if (engine !== undefined) await engine.stop(false)
    server?.close()
    await release()
    throw err
  }
  const running = engine
  const listening = server
  const port = (listening.address() as AddressInfo).port
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  log.info({ url }, 'control plane listening')
  let stopped: Promise<void> | undefined
  return {
    region: options.region,
    host,
    port,
    url,
    dataDir,
    stop: async (opts = {}) => {
      stopped ??= (async () => {
        const closed = new Promise<void>(resolveClose => { listening.close(() => { resolveClose() }) })
        listening.closeAllConnections()
        await running.stop(opts.stopHsms ?? true)
        await closed
        await release()
        log.info('control plane stopped')
      })()
      await stopped
    }
  }
}
