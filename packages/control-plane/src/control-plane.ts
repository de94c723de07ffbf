/**
 * One region's control plane: the cloudhsmv2 API (server.ts, api/), and the background side that
 * carries out what the API recorded, split by resource into reconcilers (reconcilers/) that share
 * one small runtime (tasks, wake-ups, the region-to-region client) and are handed their parts:
 *
 * - clusters (reconcilers/clusters.ts): timed transitions, activation, trust anchors of deleted ones;
 * - HSMs (reconcilers/hsms.ts): processes created, restored, restarted, deleted, through the
 *   supervisor (hsm-supervisor.ts or remote-hsm-supervisor.ts);
 * - backups (reconcilers/backups.ts) and copies (reconcilers/copies.ts): made, retained, deleted,
 *   copied to and from other regions; their files are backup-files.ts;
 * - peers (reconcilers/peers.ts): each HSM's signed peer list;
 * - synchronisation tasks (issue 12): the primary's side (reconcilers/sync-tasks.ts) and the
 *   replica's side (reconcilers/sync-replicas.ts), whose records are sync-records.ts.
 *
 * This file checks the options and wires the parts. Everything the reconcilers do is derived
 * from the state file, so a control plane killed at any moment picks up where it was: HSM
 * processes still running are adopted, the others restarted, copies resumed or ended.
 */
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { isIPv4 } from 'node:net'
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import { HSM_BIN_PATH } from '@hsmlab/hsm'
import type { LevelWithSilent } from 'pino'
import type { ApiContext, ApiSettings } from './api/context.js'
import { AnchorKeyring, moveLegacySecrets } from './anchor-keyring.js'
import { BackupFiles } from './backup-files.js'
import { LabClock } from './clock.js'
import { controlPlaneDefaults } from './defaults.js'
import type { ControlPlaneTuning } from './defaults.js'
import { ControlPlaneError, CP_ERR_INVALID_ARGUMENT, CP_ERR_LISTEN } from './errors.js'
import { HsmLinks, SyncSessions } from './hsm-links.js'
import { HsmSupervisor } from './hsm-supervisor.js'
import type { HsmExit, HsmProcesses } from './hsm-supervisor.js'
import { LOG_LEVELS, createLogger, forComponent } from './logger.js'
import type { Logger } from './logger.js'
import { BackupReconciler } from './reconcilers/backups.js'
import type { BackupMaker } from './reconcilers/backups.js'
import { ClusterReconciler } from './reconcilers/clusters.js'
import { CopyReconciler } from './reconcilers/copies.js'
import { HsmDirectory } from './reconcilers/hsm-directory.js'
import { HsmReconciler } from './reconcilers/hsms.js'
import { PeerReconciler } from './reconcilers/peers.js'
import { Runtime } from './reconcilers/runtime.js'
import { SyncReplicaReconciler } from './reconcilers/sync-replicas.js'
import { SyncTaskReconciler } from './reconcilers/sync-tasks.js'
import { readPeerSecretFile } from './peer-secret.js'
import { isRegionName, regionClient } from './regions.js'
import { RemoteHsmSupervisor, readHsmHostsFile } from './remote-hsm-supervisor.js'
import type { HsmHostEntry } from './remote-hsm-supervisor.js'
import { createApiServer } from './server.js'
import type { Credentials } from './sigv4.js'
import { StateStore, lockDataDir } from './state-store.js'
import { SyncRecords } from './sync-records.js'

export type { ControlPlaneTuning }

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
  /**
   * The installation's peer secret (peer-secret.ts; a file group and others cannot read): the
   * internal region-to-region paths then take only requests signed with it (403 otherwise), and
   * this control plane signs its own with it; the public API is not affected. Every control plane
   * of one installation must be given the same secret. Without it, the internal paths are signed
   * with `credentials` when given, and open otherwise.
   */
  peerSecretFile?: string
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

/**
 * The background side of a control plane: the reconcilers, one per resource, over the runtime
 * and the supervisor it is handed; one pass runs them in turn.
 */
class Reconcilers {
  readonly runtime: Runtime
  readonly supervisor: HsmProcesses
  readonly links: HsmLinks
  readonly clusters: ClusterReconciler
  readonly hsms: HsmReconciler
  readonly backups: BackupReconciler
  readonly copies: CopyReconciler
  readonly peers: PeerReconciler
  readonly syncTasks: SyncTaskReconciler
  readonly syncReplicas: SyncReplicaReconciler

  constructor (init: {
    store: StateStore, keyring: AnchorKeyring, clock: LabClock, tuning: ControlPlaneTuning, dataDir: string, region: string, root: Logger,
    runtime: Runtime, supervisor: HsmProcesses, links: HsmLinks, files: BackupFiles, records: SyncRecords
  }) {
    const { store, keyring, clock, tuning, dataDir, region, root, runtime, supervisor, links, files, records } = init
    this.runtime = runtime
    this.supervisor = supervisor
    this.links = links
    const log = forComponent(root, 'engine').child({ region })
    const shared = { store, clock, tuning, log, runtime }
    const directory = new HsmDirectory(store, supervisor)
    this.backups = new BackupReconciler({ ...shared, keyring, directory, links, files })
    this.copies = new CopyReconciler({ ...shared, log: forComponent(root, 'copier').child({ region }), files, region })
    this.peers = new PeerReconciler({ ...shared, keyring, directory, links })
    this.clusters = new ClusterReconciler({ ...shared, keyring, directory, links, backups: this.backups })
    this.hsms = new HsmReconciler({ ...shared, dataDir, supervisor, keyring, directory, links, files, backups: this.backups, peers: this.peers })
    const sync = new SyncSessions(links, keyring)
    const syncLog = forComponent(root, 'sync').child({ region })
    this.syncTasks = new SyncTaskReconciler({ ...shared, log: syncLog, directory, sync, records, region })
    this.syncReplicas = new SyncReplicaReconciler({ ...shared, log: syncLog, keyring, directory, links, sync, region })
  }

  /** One pass of every reconciler. */
  async pass (labNow: number): Promise<void> {
    await this.clusters.pass(labNow)
    await this.backups.pass(labNow)
    await this.hsms.pass(labNow)
    this.peers.pass()
    this.copies.pass(labNow)
    this.syncReplicas.pass()
    this.syncTasks.pass()
  }

  /** No more passes or tasks; the HSM processes stopped (or left running, to be adopted), the links closed. */
  async stop (stopHsms: boolean): Promise<void> {
    await this.runtime.stop()
    if (stopHsms) await this.supervisor.stopAll()
    else this.supervisor.detachAll()
    await this.links.closeAll()
    await this.syncTasks.records.flush()
  }
}

/** What the API handlers use: the state and a few services; never the keyring's secrets, the supervisor or the reconcilers themselves. */
function apiContext (init: {
  store: StateStore, clock: LabClock, settings: ApiSettings, keyring: AnchorKeyring, runtime: Runtime, backups: BackupMaker, peers: Pick<PeerReconciler, 'routeStatus'>,
  syncTasks: SyncTaskReconciler
}): ApiContext {
  const { store, clock, settings, keyring, runtime, backups, peers, syncTasks } = init
  return {
    store,
    clock,
    settings,
    kick: () => { runtime.kick() },
    regions: async () => await runtime.regionClient.regions(),
    regionFetch: async (region, request) => await runtime.regionClient.fetch(region, request),
    createTrustAnchor: async clusterId => await keyring.create(clusterId),
    dropTrustAnchor: async clusterId => { await keyring.remove([clusterId]) },
    requestBackup: async clusterId => await backups.make(clusterId, 'requested').then(b => b.backupId),
    hsmRouteStatus: route => peers.routeStatus(route),
    sync: {
      primaryInventory: async clusterId => await syncTasks.primaryInventory(clusterId),
      confirmNow: async (primary, replica) => await syncTasks.confirmNow(primary, replica),
      wake: primary => { syncTasks.wake(primary) },
      records: primary => syncTasks.records.list(primary)
    }
  }
}

/** The supervisor of a control plane's HSM processes: its own children, or (--hsm-hosts) each HSM on the host whose address it was given. */
function supervisorFor (init: {
  store: StateStore, tuning: ControlPlaneTuning, region: string, root: Logger, binPath: string, manufacturerKeyFile: string, hsmLogLevel: string,
  hsmHosts: HsmHostEntry[] | undefined, onExit: (hsmId: string, exit: HsmExit) => void
}): HsmProcesses {
  const { tuning } = init
  const supervision = {
    readyTimeoutMs: tuning.hsmReadyTimeoutMs,
    stopTimeoutMs: tuning.hsmStopTimeoutMs,
    log: forComponent(init.root, 'supervisor').child({ region: init.region }),
    onExit: init.onExit
  }
  return init.hsmHosts === undefined
    ? new HsmSupervisor({ ...supervision, binPath: init.binPath, manufacturerKeyFile: init.manufacturerKeyFile, logLevel: init.hsmLogLevel })
    : new RemoteHsmSupervisor({
      ...supervision,
      hosts: init.hsmHosts,
      addressOf: hsmId => init.store.state.hsms[hsmId]?.eniIp,
      requestTimeoutMs: tuning.hsmHostRequestTimeoutMs,
      waitMs: tuning.hsmHostWaitMs,
      unreachableMs: tuning.hsmHostUnreachableMs,
      retryMs: tuning.tickIntervalMs
    })
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
  let reconcilers: Reconcilers | undefined
  let server: Server | undefined
  try {
    const hsmHosts = options.hsmHostsFile === undefined ? undefined : await readHsmHostsFile(resolve(options.hsmHostsFile), options.region)
    // Read once, at start; the secret itself is never logged (only the file's path is named).
    const peerCredentials = options.peerSecretFile === undefined ? undefined : await readPeerSecretFile(resolve(options.peerSecretFile))
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
      regionRequestTimeoutMs: tuning.regionRequestTimeoutMs,
      syncReplicasMax: tuning.syncReplicasMax,
      syncRequestTimeoutMs: tuning.syncRequestTimeoutMs
    }
    const runtime = new Runtime({
      log,
      regionClient: regionClient({
        regionsFile: options.regionsFile === undefined ? undefined : resolve(options.regionsFile),
        credentials: peerCredentials ?? options.credentials,
        timeoutMs: tuning.regionRequestTimeoutMs
      })
    })
    // The supervisor reports exits to the HSM reconciler, made right after it.
    let hsms: HsmReconciler | undefined
    const supervisor = supervisorFor({
      store,
      tuning,
      region: options.region,
      root: logger,
      binPath: options.hsmBinPath ?? HSM_BIN_PATH,
      manufacturerKeyFile: resolve(options.manufacturerKeyFile),
      hsmLogLevel: options.hsmLogLevel ?? controlPlaneDefaults.hsmLogLevel,
      hsmHosts,
      // Recording the exit can fail (a full disk): the HSM is restarted all the same, since it is
      // still ACTIVE or DEGRADED with no process; what must not happen is an unhandled rejection,
      // which would end the control plane.
      onExit: (hsmId, exit) => {
        hsms?.exited(hsmId, exit).catch(err => { log.warn({ hsmId, err: (err as Error).message }, 'recording the exit of an HSM process failed') })
      }
    })
    const files = new BackupFiles(dataDir)
    const records = await SyncRecords.open(dataDir, err => { log.warn({ err: err.message }, 'the synchronisation records could not be written; trying again') })
    const parts = new Reconcilers({
      store, keyring, clock, tuning, dataDir, region: options.region, root: logger, runtime, supervisor, links: new HsmLinks(tuning.hsmRequestTimeoutMs), files, records
    })
    reconcilers = parts
    hsms = parts.hsms
    await parts.hsms.adopt()
    const apiServer = createApiServer({
      ctx: apiContext({ store, clock, settings, keyring, runtime, backups: parts.backups, peers: parts.peers, syncTasks: parts.syncTasks }),
      copies: parts.copies,
      sync: parts.syncReplicas,
      ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
      ...(peerCredentials === undefined ? {} : { peerCredentials }),
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
    runtime.start(async () => { await parts.pass(clock.now()) }, tuning.tickIntervalMs)
  } catch (err) {
    if (reconcilers !== undefined) await reconcilers.stop(false)
    server?.close()
    await release()
    throw err
  }
  const running = reconcilers
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
