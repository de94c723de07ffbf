/**
 * `hsmlab up`, `status`, `down` and `backup` as functions (the bin only parses arguments and
 * prints).
 *
 * `labUp` turns a topology into running processes through control planes: per lab one
 * manufacturer key and one customer CA; per region one control plane (started detached, or left
 * alone when it runs and answers), which starts and supervises its region's HSMs; then each
 * cluster is built through the cloudhsmv2 API (cluster-builder.ts), clones once their sources
 * are ACTIVE; last, the CMU and KMU configuration files. Running it again starts only what is
 * missing and waits until every HSM is ACTIVE. See docs/lab.md.
 */
import { channel } from 'node:diagnostics_channel'
import { access, chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join, relative, resolve, sep } from 'node:path'
import { performance } from 'node:perf_hooks'
import { HsmConnection, writeCmuConfig } from '@hsmlab/client'
import type { ServerConfig } from '@hsmlab/client'
import { CONTROL_PLANE_BIN_PATH, ControlPlaneClient } from '@hsmlab/control-plane'
import type { Backup, Cluster, Hsm } from '@hsmlab/control-plane'
import { ROOT_FILE_NAMES, decodeTrustAnchor, standInRoots } from '@hsmlab/crypto'
import { createManufacturerKey, readManufacturerKey, writeManufacturerKey } from '@hsmlab/hsm'
import { writeFileAtomic } from '@hsmlab/process'
import { ClusterBuilder } from './cluster-builder.js'
import type { BuildStep, BuiltCluster } from './cluster-builder.js'
import { createCustomerCa } from './customer-ca.js'
import type { CustomerCa } from './customer-ca.js'
import { DEFAULT_TOPOLOGY_PATH, labDefaults } from './defaults.js'
import {
  LabError, LAB_ERR_BACKUP, LAB_ERR_CONTROL_PLANE, LAB_ERR_NO_LAB, LAB_ERR_STATE, LAB_ERR_TOPOLOGY_CHANGED, LAB_ERR_USAGE
} from './errors.js'
import { LAB_STATE_FORMAT, LabLayout, LabStateWriter, UNKNOWN_PASSWORD, acquireLabLock, readLabState } from './lab-state.js'
import type { ClusterState, ControlPlaneState, FaultProxyState, HsmSeen, LabState } from './lab-state.js'
import { findLabProcesses, isLabProcess, killProcess, launchControlPlane, stopProcess, waitGone, waitUntilReaped } from './launcher.js'
import type { LabProcess } from './launcher.js'
import { clientEndpointsOf, ensureFaultProxy, faultEndpointOf, faultLayerActive, faultProxyAnswers, faultProxyRecord, reconcileFaultLayer, stopFaultProxy, writeRegionsFiles } from './fault-layer.js'
import type { FaultLayerOptions } from './fault-layer.js'
import { applyFaultAt, faultViewAt } from './faults.js'
import type { LabFault } from './fault-vocabulary.js'
import { clustersOf, readTopology } from './topology.js'
import type { Topology } from './topology.js'

/**
 * Progress of `labUp`, published on `node:diagnostics_channel` for tests and the bench:
 * `{ step, elapsedMs, region?, cluster?, detail? }`; step one of locked, control-plane (a control
 * plane answers), the cluster steps of cluster-builder.ts (cluster-created, hsm-active,
 * initialized, activated, cluster-active, backup-ready, backup-copied, cluster-ready), done.
 */
export const UP_CHANNEL = 'hsmlab:lab:up'
const upChannel = channel(UP_CHANNEL)

/** One message of `UP_CHANNEL`. */
export interface UpProgress {
  step: 'locked' | 'control-plane' | BuildStep | 'done'
  elapsedMs: number
  /** `region` for control-plane steps, `region/cluster` for cluster steps. */
  what?: string
  detail?: string
}

/** Where a lab lives: `dir` (default `.hsmlab`) resolved against `cwd` (default the process's). */
export interface LabLocation {
  /** @default labDefaults.dir */
  dir?: string
  /** @default process.cwd() */
  cwd?: string
}

/** Options of `labUp`. */
export interface LabUpOptions extends LabLocation {
  /** A topology file; without it, the lab's recorded topology, or the default lab for a new one. */
  topologyFile?: string
  /** `--log-level` of the control planes and their HSMs. @default labDefaults.logLevel */
  logLevel?: string
  /** @default labDefaults.readyTimeoutMs */
  readyTimeoutMs?: number
  /** @default labDefaults.stepTimeoutMs */
  stepTimeoutMs?: number
  /** @default labDefaults.transitionDelayMs */
  transitionDelayMs?: number
  /** @default labDefaults.apiPollIntervalMs */
  pollIntervalMs?: number
  /** The control-plane bin to start. @default CONTROL_PLANE_BIN_PATH of @hsmlab/control-plane */
  controlPlaneBinPath?: string
  /**
   * Control planes that run elsewhere, region → endpoint (`{"us-east-1": "http://cp-us-east-1:8080"}`):
   * the lab uses them instead of starting its own (it waits up to `readyTimeoutMs` for each to
   * answer), and remembers them in lab.json, so a later `up`, `status` or `backup` uses them too.
   * The lab never stops them. Each must already have what the lab would give its own: a regions
   * file naming every region, the same manufacturer key file for all, quotas the topology fits in.
   */
  controlPlanes?: Record<string, string>
  /**
   * Route every link of the lab through its fault proxy (docs/lab.md "Faults"). Given, it is
   * recorded: `false` stops the fault proxy and makes every link direct, `true` brings them back.
   * @default true for a new lab, else what the lab recorded
   */
  faults?: boolean
  /**
   * How long a copy of a backup to another region may keep trying to fetch it, in lab seconds
   * (the control planes' `--copy-retry-window-seconds`); recorded, and given to the control planes
   * when they start. @default the control plane's, 60
   */
  copyRetryWindowSeconds?: number
  /**
   * A fault proxy that runs elsewhere, its API's URL (`http://fault-proxy:8474`, as in the Docker
   * lab): the lab uses it instead of starting its own (it waits up to `readyTimeoutMs` for it to
   * answer) and remembers it in lab.json. It must reach every HSM and control plane, and be
   * reached by them and by the clients at the URL's host name: the lab makes the links there on
   * 0.0.0.0 (keeping the port of a link of the same name it already has, such as the client links
   * the Docker lab's docker/fault-proxy.json gives fixed, published ports), and gives the control
   * planes, elsewhere too, their routes through it. The lab never stops it.
   */
  faultProxy?: string
  /** Seed of the fault proxy's random draws, when this call starts it. @default the lab's recorded seed, else a random one (printed and recorded) */
  seed?: number
  /** The fault proxy bin to start. @default FAULT_PROXY_BIN_PATH of @hsmlab/fault-proxy */
  faultProxyBinPath?: string
}

/**
 * State of one HSM in `hsmlab status`: its control plane's HsmState (CREATE_IN_PROGRESS, ACTIVE,
 * DEGRADED, DELETE_IN_PROGRESS); or, when its control plane does not answer, what the lab sees:
 * ACTIVE (answers a handshake as itself), DEGRADED (runs but does not answer), DOWN (does not run).
 */
export type HsmRunState = 'CREATE_IN_PROGRESS' | 'ACTIVE' | 'DEGRADED' | 'DELETE_IN_PROGRESS' | 'DOWN'

/** One HSM in the status report. */
export interface HsmStatus {
  id: string
  /** Pid of its process, or null when it does not run (or runs elsewhere: `up --fault-proxy`). */
  pid: number | null
  state: HsmRunState
  /**
   * `ws://<ENI IP>:<port>`, where CMU and KMU reach it: its client link in the fault proxy (on the
   * HSM's own address, another port), or, without a fault layer, the HSM itself.
   */
  endpoint: string
  /** `ws://<ENI IP>:<port>` where the HSM itself listens (the same as `endpoint` without a fault layer). */
  directEndpoint: string
  /** Its server id in the cluster's CMU configuration. */
  server: number
  /** The server name CMU prints (`server 0(<name>)`): its ENI IP, as AWS's `configure` writes it. */
  name: string
  availabilityZone: string | null
  /** Why it is not ACTIVE, as its control plane says. */
  stateMessage?: string
  dataDir: string
  log: string
}

/** One cluster in the status report. */
export interface ClusterStatus {
  /** Its ClusterId; null until it is created. */
  id: string | null
  name: string
  region: string
  /** Its ClusterState as its control plane tells it; UNKNOWN when the control plane does not answer or does not know it. */
  state: string
  stateMessage?: string
  /** True once it is activated (ACTIVE, or the lab activated it); a clone is from the start. */
  activated: boolean
  lineage: string | null
  /** For a clone: `<region>/<cluster>` of its source, and the backup it was created from. */
  cloneOf: string | null
  sourceBackupId: string | null
  cmuConfig: string
  /** The trust anchor file (the configurations' CAfile for this cluster's HSMs). */
  trustAnchor: string
  hsms: HsmStatus[]
}

/** A region's control plane in the status report. */
export interface ControlPlaneStatus {
  /** `http://127.0.0.1:<port>` (or the endpoint given to `up --control-plane`): `--endpoint-url` of the AWS CLI. */
  endpoint: string
  /** Pid of its process, or null when it does not run (for one that runs elsewhere: its pid there, in its own pid namespace). */
  pid: number | null
  state: 'RUNNING' | 'DOWN'
  dataDir: string
  log: string
}

/** One region in the status report. */
export interface RegionStatus {
  name: string
  /** Its control plane; null until it first started. */
  controlPlane: ControlPlaneStatus | null
  clusters: ClusterStatus[]
}

/** The fault layer in the status report. */
export interface FaultsStatus {
  /** `http://127.0.0.1:<port>`: the Toxiproxy-compatible API of the lab's fault proxy; null without one. */
  endpoint: string | null
  /** The seed of its random draws (replay a run with `hsmlab up --seed N`); null without one. */
  seed: number | null
  /** Pid of its process, or null when it does not run. */
  pid: number | null
  /** RUNNING when it answers; DOWN when it does not; NONE for a lab without a fault layer. */
  state: 'RUNNING' | 'DOWN' | 'NONE'
  /** Its log; null for one that runs elsewhere. */
  log: string | null
}

/** `hsmlab status --json`: the shape of DESIGN.md's contract, with a few more fields. */
export interface LabStatus {
  dir: string
  /** RUNNING: every control plane answers and every HSM is ACTIVE; STOPPED: nothing runs; PARTIAL: anything between. */
  state: 'RUNNING' | 'PARTIAL' | 'STOPPED'
  /** The fault layer: its fault proxy's API (Toxiproxy's), null without one (`--no-faults`) or before it first started. */
  faults: FaultsStatus
  regions: RegionStatus[]
  /** The configuration KMU reads by default. */
  kmuConfig: string
  /** CMU configurations listing one HSM of a source cluster then one of its clone, by `"<region>/<source>-><region>/<clone>"`. */
  cmuConfigs: Record<string, string>
}

/** What `labUp` did. */
export interface LabUpResult {
  dir: string
  /** Regions whose control plane this call started (the others were running). */
  started: string[]
  /** Clusters this call created (`region/cluster`). */
  created: string[]
  /** Clusters this call activated (`region/cluster`). */
  activated: string[]
  /** HSMs this call asked for (CreateHsm). */
  hsmsCreated: number
  /** True when this call started the fault proxy (then the topology's faults were set). */
  faultProxyStarted: boolean
  /** The faults of the topology this call set. */
  faultsApplied: LabFault[]
  /** From the call to every HSM ACTIVE and the configurations written, in milliseconds. */
  elapsedMs: number
  topology: Topology
  status: LabStatus
}

/** What `labDown` did. */
export interface LabDownResult {
  dir: string
  /** False when DIR held no lab. */
  found: boolean
  /** Every process that ran: `terminated` stopped on SIGTERM (an HSM: by its control plane), `killed` needed SIGKILL. */
  stopped: Array<{ kind: 'control-plane' | 'hsm' | 'fault-proxy', region: string, pid: number, how: 'terminated' | 'killed' }>
  /** Control planes that run elsewhere (`up --control-plane`), left as they are: stop them as they were started. */
  leftRunning: Array<{ region: string, endpoint: string }>
  purged: boolean
}

/** The absolute lab directory of a location. */
export function labDir (location: LabLocation = {}): string {
  return resolve(location.cwd ?? process.cwd(), location.dir ?? labDefaults.dir)
}

async function exists (path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}

/**
 * Whether a given topology is the lab's: the same regions, clusters and users, and the same
 * passwords where the lab still has them (`b`'s unknown ones are taken from `a`).
 */
function sameTopology (a: Topology, b: Topology): boolean {
  const known = (password: string, other: string): string => other === UNKNOWN_PASSWORD ? UNKNOWN_PASSWORD : password
  const like = (t: Topology, other: Topology): string => JSON.stringify(t.regions.map((region, r) => ({
    ...region,
    clusters: region.clusters.map((cluster, k) => {
      const peer = other.regions[r]?.clusters[k]
      return {
        ...cluster,
        ...(cluster.activate === undefined ? {} : { activate: { admin: known(cluster.activate.admin, peer?.activate?.admin ?? '') } }),
        users: cluster.users.map((user, u) => ({ ...user, password: known(user.password, peer?.users[u]?.password ?? '') }))
      }
    })
  })))
  return like(a, b) === like(b, b)
}

function endpointOf (cp: ControlPlaneState): string {
  return cp.endpoint ?? `http://127.0.0.1:${cp.port}`
}

function apiFor (cp: ControlPlaneState): ControlPlaneClient {
  return new ControlPlaneClient({ endpoint: endpointOf(cp), region: cp.region, timeoutMs: labDefaults.apiRequestTimeoutMs })
}

/**
 * Asks a control plane's `GET /_hsmlab/health`: its pid when it answers as the control plane of
 * `cp.region`, and, when the lab started it, as the recorded process; otherwise why not. One that
 * runs elsewhere answers with its pid in its own pid namespace, which is not compared.
 */
async function healthOf (cp: ControlPlaneState, timeoutMs: number = labDefaults.probeTimeoutMs): Promise<{ pid: number } | { problem: string }> {
  if (cp.endpoint === undefined && (cp.port === 0 || cp.pid === null)) return { problem: 'not started' }
  try {
    const response = await fetch(`${endpointOf(cp)}/_hsmlab/health`, { signal: AbortSignal.timeout(timeoutMs) })
    const body = await response.json() as { region?: unknown, pid?: unknown }
    if (!response.ok || typeof body.pid !== 'number') return { problem: `it answered HTTP ${response.status} without a pid` }
    if (body.region !== cp.region) return { problem: `it is the control plane of ${String(body.region)}` }
    if (cp.endpoint === undefined && body.pid !== cp.pid) return { problem: `it is another process (pid ${body.pid})` }
    return { pid: body.pid }
  } catch (err) {
    const cause = (err as { cause?: { code?: unknown } }).cause
    return { problem: typeof cause?.code === 'string' ? cause.code : (err as Error).message }
  }
}

/** True when the control plane answers as the region's (and, when the lab started it, as the recorded process). */
async function answers (cp: ControlPlaneState, timeoutMs: number = labDefaults.probeTimeoutMs): Promise<boolean> {
  return 'pid' in await healthOf(cp, timeoutMs)
}

/** Waits until a control plane that runs elsewhere answers as its region's; resolves with its pid there. */
async function awaitExternalControlPlane (cp: ControlPlaneState, options: LabUpOptions): Promise<number> {
  const timeoutMs = options.readyTimeoutMs ?? labDefaults.readyTimeoutMs
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const health = await healthOf(cp)
    if ('pid' in health) return health.pid
    if (performance.now() >= deadline) {
      throw new LabError(LAB_ERR_CONTROL_PLANE, `the control plane of ${cp.region} at ${endpointOf(cp)} did not answer GET /_hsmlab/health as ${cp.region}'s within ${timeoutMs / 1000} s (${health.problem}); start it first, or give 'hsmlab up --control-plane ${cp.region}=URL' its endpoint`)
    }
    await new Promise(resolveWait => setTimeout(resolveWait, labDefaults.externalPollIntervalMs))
  }
}

/**
 * Records the control planes that run elsewhere (`labUp`'s `controlPlanes`) in the lab's state:
 * each must be a region of the topology, an http(s) URL, and not a region whose control plane
 * this lab started itself (its HSMs and data are the lab's).
 */
function recordExternalControlPlanes (lab: LabState, given: Record<string, string>, dir: string): void {
  for (const [region, endpoint] of Object.entries(given)) {
    const cp = lab.controlPlanes.find(c => c.region === region)
    if (cp === undefined) {
      throw new LabError(LAB_ERR_USAGE, `--control-plane names region ${region}, which the lab's topology does not have (its regions: ${lab.controlPlanes.map(c => c.region).join(', ')})`)
    }
    let url: URL | undefined
    try { url = new URL(endpoint) } catch { url = undefined }
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.search !== '') {
      throw new LabError(LAB_ERR_USAGE, `--control-plane ${region}=${endpoint}: the endpoint must be an http:// or https:// URL with no path (like http://cp-${region}:8080)`)
    }
    if (cp.endpoint === undefined && cp.port !== 0) {
      throw new LabError(LAB_ERR_USAGE, `the lab in ${dir} runs its own control plane for ${region}; it cannot switch to one that runs elsewhere: 'hsmlab down --purge' it first, or use another --dir`)
    }
    cp.endpoint = url.origin
    cp.pid = null
  }
}

/** Records the fault proxy that runs elsewhere (`--fault-proxy URL`); refuses a lab that runs its own. */
function recordExternalFaultProxy (fp: FaultProxyState, endpoint: string, dir: string): void {
  let url: URL | undefined
  try { url = new URL(endpoint) } catch { url = undefined }
  if (url === undefined || url.protocol !== 'http:' || url.pathname !== '/' || url.search !== '') {
    throw new LabError(LAB_ERR_USAGE, `--fault-proxy ${endpoint}: the endpoint must be an http:// URL with no path (like http://fault-proxy:8474)`)
  }
  if (!fp.enabled) throw new LabError(LAB_ERR_USAGE, `the lab in ${dir} runs without a fault proxy ('--no-faults'); give --faults with --fault-proxy`)
  if (fp.endpoint === undefined && fp.port !== 0) {
    throw new LabError(LAB_ERR_USAGE, `the lab in ${dir} runs its own fault proxy; it cannot switch to one that runs elsewhere: 'hsmlab down --purge' it first, or use another --dir`)
  }
  fp.endpoint = url.origin
  fp.pid = null
}

async function loadOrCreateManufacturerKey (layout: LabLayout): Promise<void> {
  if (!await exists(layout.manufacturerKeyFile)) await writeManufacturerKey(layout.manufacturerKeyFile, createManufacturerKey())
  await writeStandInRoots(layout)
}

/**
 * The stand-in AWS CloudHSM and manufacturer roots that every HSM certificate of this
 * installation chains to, where a user following the guide's "Verify the identity and
 * authenticity of your cluster's HSM" finds them (the guide downloads AWS's and the manufacturer's).
 */
async function writeStandInRoots (layout: LabLayout): Promise<void> {
  const roots = standInRoots(await readManufacturerKey(layout.manufacturerKeyFile))
  await mkdir(layout.rootsDir, { recursive: true })
  for (const [which, name] of Object.entries(ROOT_FILE_NAMES) as Array<[keyof typeof ROOT_FILE_NAMES, string]>) {
    const file = join(layout.rootsDir, name)
    if (!await exists(file)) await writeFile(file, roots[which].certPem)
  }
}

async function loadOrCreateCa (layout: LabLayout): Promise<CustomerCa> {
  if (await exists(layout.caKeyFile) && await exists(layout.caCertFile)) {
    try {
      return { keyPem: await readFile(layout.caKeyFile, 'utf8'), certPem: await readFile(layout.caCertFile, 'utf8') }
    } catch (err) {
      throw new LabError(LAB_ERR_STATE, `cannot read the lab's customer CA in ${layout.caDir}: ${(err as Error).message}`, { cause: err })
    }
  }
  const ca = createCustomerCa()
  await mkdir(layout.caDir, { recursive: true })
  await writeFileAtomic(layout.caKeyFile, ca.keyPem)
  await chmod(layout.caKeyFile, 0o600)
  await writeFileAtomic(layout.caCertFile, ca.certPem, { mode: 0o644 })
  return ca
}

/** The lab's records for a topology: one control plane per region, one cluster per cluster. */
function recordsFor (lab: LabState): void {
  for (const region of lab.topology.regions) {
    if (!lab.controlPlanes.some(cp => cp.region === region.name)) lab.controlPlanes.push({ region: region.name, port: 0, pid: null })
  }
  for (const { region, cluster } of clustersOf(lab.topology)) {
    if (!lab.clusters.some(c => c.region === region.name && c.name === cluster.name)) {
      lab.clusters.push({ region: region.name, name: cluster.name, id: null, lineage: null, activated: false, hsms: [] })
    }
  }
}

/**
 * Makes sure the control plane of `cp.region` runs and answers: left alone when it does, killed
 * when it runs but does not answer (it hangs), started otherwise, on its recorded port when that
 * is free. Resolves true when it started one.
 */
async function ensureControlPlane (layout: LabLayout, lab: LabState, cp: ControlPlaneState, writer: LabStateWriter, options: LabUpOptions): Promise<boolean> {
  const root = layout.controlPlaneDir(cp.region)
  if (cp.endpoint !== undefined) return false
  if (cp.pid !== null && await isLabProcess(cp.pid, root)) {
    if (await answers(cp)) return false
    // Its HSMs run on: the next control plane adopts them.
    try { process.kill(cp.pid, 'SIGKILL') } catch { /* gone meanwhile */ }
    await waitGone(cp.pid, labDefaults.stopTimeoutMs)
  }
  // A control plane killed a moment ago may not have been collected yet; its pid still holds the data directory's lock.
  if (cp.pid !== null && !await waitUntilReaped(cp.pid, labDefaults.stopTimeoutMs)) {
    throw new LabError(LAB_ERR_CONTROL_PLANE, `the previous control plane of ${cp.region} (pid ${cp.pid}) exited but was not collected for ${labDefaults.stopTimeoutMs} ms; it still holds its data directory; try again later`)
  }
  await mkdir(root, { recursive: true })
  const region = lab.topology.regions.find(r => r.name === cp.region)
  const hsms = region?.clusters.reduce((n, c) => n + c.hsms, 0) ?? 0
  const launch = async (port: number): Promise<void> => {
    const ready = await launchControlPlane({
      binPath: options.controlPlaneBinPath ?? CONTROL_PLANE_BIN_PATH,
      region: cp.region,
      dataDir: layout.controlPlaneDataDir(cp.region),
      host: '127.0.0.1',
      port,
      manufacturerKeyFile: layout.manufacturerKeyFile,
      // Its own regions file: the other regions through its WAN links of the fault proxy.
      regionsFile: layout.regionRegionsFile(cp.region),
      stdoutFile: layout.controlPlaneStdoutFile(cp.region),
      logFile: layout.controlPlaneLogFile(cp.region),
      logLevel: options.logLevel,
      transitionDelayMs: options.transitionDelayMs,
      clustersMax: Math.max(labDefaults.clustersPerRegionMin, region?.clusters.length ?? 0),
      hsmsMax: Math.max(labDefaults.hsmsPerRegionMin, hsms),
      readyTimeoutMs: options.readyTimeoutMs,
      ...(lab.copyRetryWindowSeconds === undefined ? {} : { copyRetryWindowSeconds: lab.copyRetryWindowSeconds }),
      onSpawn: async pid => { cp.pid = pid; await writer.save(lab) }
    })
    cp.pid = ready.pid
    cp.port = ready.port
    cp.startedAt = new Date().toISOString()
  }
  try {
    await launch(cp.port)
  } catch (err) {
    // The recorded port was taken by someone else meanwhile: take any port (regions.json is rewritten).
    if (cp.port === 0 || !/EADDRINUSE|CP_ERR_LISTEN/.test((err as Error).message)) throw err
    await launch(0)
  }
  await writer.save(lab)
  return true
}

/**
 * The CMU configuration entry of one HSM: where clients reach it (its client link in the fault
 * proxy, `routed`, which listens on the HSM's own address; else the HSM itself), named by its
 * ENI address as AWS's `configure` writes it.
 */
function serverOf (hsm: Hsm, caFile: string, routed: ReadonlyMap<string, string>): ServerConfig {
  const url = new URL(routed.get(hsm.HsmId) ?? hsm.HsmlabEndpoint ?? 'ws://0.0.0.0:0')
  return { name: hsm.EniIp ?? url.hostname, hostname: url.hostname, port: Number(url.port), caFile, enabled: true }
}

/** Every HSM of a cluster, as DescribeClusters lists them (its CMU configuration's order). */
function liveHsms (cluster: Cluster | undefined): Hsm[] {
  return (cluster?.Hsms ?? []).filter(h => h.State !== 'DELETED')
}

/** Writes each cluster's trust anchor and CMU configuration, the KMU configuration, and the source→clone configurations. */
async function writeConfigurations (layout: LabLayout, lab: LabState, clusters: Map<ClusterState, Cluster>, routed: ReadonlyMap<string, string>): Promise<void> {
  await Promise.all([...clusters].map(async ([record, cluster]) => {
    await mkdir(layout.clusterDir(record.region, record.name), { recursive: true })
    if (cluster.HsmlabTrustAnchor !== undefined) await writeFile(layout.trustAnchorFile(record.region, record.name), cluster.HsmlabTrustAnchor)
    const caFile = layout.trustAnchorFile(record.region, record.name)
    await writeCmuConfig(layout.cmuConfig(record.region, record.name), liveHsms(cluster).map(h => serverOf(h, caFile, routed)))
  }))
  const first = lab.clusters[0]
  const firstCluster = first === undefined ? undefined : clusters.get(first)
  if (first !== undefined && firstCluster !== undefined) {
    await writeCmuConfig(layout.kmuConfig, liveHsms(firstCluster).map(h => serverOf(h, layout.trustAnchorFile(first.region, first.name), routed)))
  }
  // A clone's HSMs have certificates from the clone's own trust anchor (its control plane makes
  // one per cluster), so each server names its own cluster's CAfile.
  await Promise.all(crossPairs(lab).map(async ({ source, clone }) => {
    const s = liveHsms(clusters.get(source))[0]
    const c = liveHsms(clusters.get(clone))[0]
    if (s === undefined || c === undefined) return
    await writeCmuConfig(layout.crossConfig(source, clone), [
      serverOf(s, layout.trustAnchorFile(source.region, source.name), routed),
      serverOf(c, layout.trustAnchorFile(clone.region, clone.name), routed)
    ])
  }))
}

/** Every (source, clone) pair of the lab's topology. */
function crossPairs (lab: LabState): Array<{ source: ClusterState, clone: ClusterState }> {
  const pairs: Array<{ source: ClusterState, clone: ClusterState }> = []
  for (const { region, cluster } of clustersOf(lab.topology)) {
    if (cluster.cloneOf === undefined) continue
    const { region: sourceRegion, cluster: sourceName } = cluster.cloneOf
    const clone = lab.clusters.find(c => c.region === region.name && c.name === cluster.name)
    const source = lab.clusters.find(c => c.region === sourceRegion && c.name === sourceName)
    if (clone !== undefined && source !== undefined) pairs.push({ source, clone })
  }
  return pairs
}

/** The `cmuConfigs` key of a source and its clone: `<region>/<source>-><region>/<clone>`. */
export function crossConfigKey (source: { region: string, name: string }, clone: { region: string, name: string }): string {
  return `${source.region}/${source.name}->${clone.region}/${clone.name}`
}

/**
 * Work `labUp` starts now and asks for later, perhaps never (when a phase before fails). Its
 * failure is held as a value instead of thrown where it happened, and thrown by `result()`: the
 * phases decide in one place, at the end of the build, which failure is the cause. This is the one
 * place a rejection waits to be reported; none is dropped.
 */
interface Background<T> {
  /** Resolves or rejects as the work did. */
  result: () => Promise<T>
  /** Resolves once the work ended, either way. */
  settled: () => Promise<void>
}

function background<T> (work: Promise<T>): Background<T> {
  const outcome = work.then(value => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }))
  return {
    result: async () => {
      const o = await outcome
      if (!o.ok) throw o.error
      return o.value
    },
    settled: async () => { await outcome }
  }
}

/** Publishes `labUp`'s progress on UP_CHANNEL, with the time since `startedAt`. */
type Progress = (step: UpProgress['step'], what?: string, detail?: string) => void

function progressFrom (startedAt: number): Progress {
  return (step, what, detail) => {
    if (!upChannel.hasSubscribers) return
    const message: UpProgress = { step, elapsedMs: performance.now() - startedAt }
    if (what !== undefined) message.what = what
    if (detail !== undefined) message.detail = detail
    upChannel.publish(message)
  }
}

/** The topology file `up` was given, checked: a bad one is refused before anything is created or started. */
async function givenTopology (options: LabUpOptions): Promise<Topology | undefined> {
  if (options.topologyFile === undefined) return undefined
  return await readTopology(resolve(options.cwd ?? process.cwd(), options.topologyFile), options.topologyFile)
}

/**
 * The lab to bring up: the one recorded in DIR (refusing another topology; taking the faults and
 * the passwords of the given one), or a new one from the given topology or the default lab.
 * `faultsChanged`: the topology brings other faults than the lab recorded.
 */
async function openLab (layout: LabLayout, given: Topology | undefined, options: LabUpOptions): Promise<{ lab: LabState, faultsChanged: boolean }> {
  const state = await readLabState(layout)
  let faultsChanged = false
  let lab: LabState
  if (state !== undefined) {
    if (given !== undefined && !sameTopology(given, state.topology)) {
      throw new LabError(LAB_ERR_TOPOLOGY_CHANGED, `the lab in ${layout.dir} was made from another topology; run 'hsmlab up' without --topology to start it again, or 'hsmlab down --purge' first to make a new lab from ${options.topologyFile ?? 'this topology'}`)
    }
    // The faults a topology declares are no part of what the lab is made of: another list is recorded, and set now.
    if (given !== undefined && JSON.stringify(given.faults ?? []) !== JSON.stringify(state.topology.faults ?? [])) {
      if (given.faults === undefined) delete state.topology.faults
      else state.topology.faults = given.faults
      faultsChanged = true
    }
    // The given topology brings every password, also those the lab no longer has.
    if (given !== undefined) state.topology = { ...given, ...(state.topology.faults === undefined ? {} : { faults: state.topology.faults }) }
    lab = state
  } else {
    const topology = given ?? await readTopology(DEFAULT_TOPOLOGY_PATH)
    lab = { format: LAB_STATE_FORMAT, createdAt: new Date().toISOString(), topology, controlPlanes: [], clusters: [] }
  }
  recordsFor(lab)
  recordExternalControlPlanes(lab, options.controlPlanes ?? {}, layout.dir)
  return { lab, faultsChanged }
}

/** The manufacturer key and the customer CA, loaded or made. */
async function labSecrets (layout: LabLayout): Promise<CustomerCa> {
  const [, ca] = await Promise.all([loadOrCreateManufacturerKey(layout), loadOrCreateCa(layout)])
  return ca
}

/** Records the fault proxy to use (the lab's, or one elsewhere) and the copy window; returns the fault layer's options. */
function prepareFaultLayer (layout: LabLayout, lab: LabState, options: LabUpOptions): FaultLayerOptions {
  const faultProxy = faultProxyRecord(lab, options.faults)
  if (options.faultProxy !== undefined) recordExternalFaultProxy(faultProxy, options.faultProxy, layout.dir)
  if (options.copyRetryWindowSeconds !== undefined) lab.copyRetryWindowSeconds = options.copyRetryWindowSeconds
  return {
    ...(options.seed === undefined ? {} : { seed: options.seed }),
    ...(options.logLevel === undefined ? {} : { logLevel: options.logLevel }),
    ...(options.readyTimeoutMs === undefined ? {} : { readyTimeoutMs: options.readyTimeoutMs }),
    ...(options.stepTimeoutMs === undefined ? {} : { routesTimeoutMs: options.stepTimeoutMs }),
    ...(options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs }),
    ...(options.faultProxyBinPath === undefined ? {} : { binPath: options.faultProxyBinPath })
  }
}

/** The control planes starting: each region's (true: started by this `up`), their API clients once they answer, and the pids of those that run elsewhere. */
interface ControlPlanes {
  starting: Map<string, Promise<boolean>>
  apis: Map<string, ControlPlaneClient>
  externalPids: Map<string, number>
}

/** Starts every control plane at once (those that run elsewhere: waits until they answer). */
function startControlPlanes (layout: LabLayout, lab: LabState, writer: LabStateWriter, options: LabUpOptions, progress: Progress): ControlPlanes {
  const planes: ControlPlanes = { starting: new Map(), apis: new Map(), externalPids: new Map() }
  for (const cp of lab.controlPlanes) {
    planes.starting.set(cp.region, (async () => {
      if (cp.endpoint !== undefined) planes.externalPids.set(cp.region, await awaitExternalControlPlane(cp, options))
      const startedNow = await ensureControlPlane(layout, lab, cp, writer, options)
      planes.apis.set(cp.region, apiFor(cp))
      progress('control-plane', cp.region)
      return startedNow
    })())
  }
  return planes
}

/**
 * Starts the fault proxy (the control planes reach their HSMs through it once the lab gave them
 * routes, at the end). One with links to make again starts with the control planes: the HSMs they
 * restart reach their peers through it. A new lab's is first needed at the end: it starts once the
 * control planes answer, which they do sooner without it on a small machine. True: started now.
 */
async function startFaultLayer (layout: LabLayout, lab: LabState, writer: LabStateWriter, options: FaultLayerOptions, planes: ControlPlanes): Promise<boolean> {
  if (lab.faultProxy === undefined || lab.faultProxy.links.length === 0) await Promise.allSettled(planes.starting.values())
  return await ensureFaultProxy(layout, lab, writer, options)
}

/** What linking the regions found. */
interface Linked {
  /** The regions whose control plane this `up` started. */
  started: string[]
  faultProxyStarted: boolean
  /** Region → control-plane endpoint. */
  regionsMap: Record<string, string>
}

/**
 * Once every control plane answers (and the fault proxy said whether its links run), tells each
 * where the others are, which only a copy to another region needs.
 */
async function linkRegions (layout: LabLayout, lab: LabState, planes: ControlPlanes, faultLayer: Background<boolean>): Promise<Linked> {
  const regions = lab.controlPlanes.map(cp => cp.region)
  const outcomes = await Promise.allSettled(regions.map(async region => await planes.starting.get(region)))
  const failed = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map(o => o.reason as Error)
  if (failed.length === 1) throw failed[0] as Error
  if (failed.length > 1) throw new LabError(LAB_ERR_CONTROL_PLANE, `some control planes could not be started:\n${failed.map(f => `- ${f.message}`).join('\n')}`, { cause: failed[0] })
  const started = regions.filter((_, i) => (outcomes[i] as PromiseFulfilledResult<boolean>).value)
  const faultProxyStarted = await faultLayer.result()
  const regionsMap = Object.fromEntries(lab.controlPlanes.map(cp => [cp.region, endpointOf(cp)]))
  await writeFileAtomic(layout.regionsFile, JSON.stringify(regionsMap, null, 2) + '\n', { mode: 0o644 })
  // Each control plane's own regions file: through its WAN links when they run (a fault proxy
  // started just now makes them again at the end), else direct.
  await writeRegionsFiles(layout, lab, regionsMap, faultLayerActive(lab) && !faultProxyStarted ? lab.faultProxy?.links ?? [] : [])
  return { started, faultProxyStarted, regionsMap }
}

/** Builds every cluster through the API: a region's as soon as its control plane answers. */
async function buildClusters (lab: LabState, writer: LabStateWriter, secrets: Background<CustomerCa>, planes: ControlPlanes, linked: Background<Linked>,
  options: LabUpOptions, progress: Progress): Promise<BuiltCluster[]> {
  const builder = new ClusterBuilder({
    lab,
    writer,
    ca: secrets.result,
    apiOf: region => planes.apis.get(region) as ControlPlaneClient,
    regionReady: async region => { await Promise.all([planes.starting.get(region), secrets.result()]) },
    regionsLinked: async () => { await linked.result() },
    ...(options.stepTimeoutMs === undefined ? {} : { stepTimeoutMs: options.stepTimeoutMs }),
    ...(options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs }),
    progress: (step, what, detail) => { progress(step, what, detail) }
  })
  const jobs = clustersOf(lab.topology).map(({ region, cluster: spec }) => ({
    record: lab.clusters.find(c => c.region === region.name && c.name === spec.name) as ClusterState,
    spec
  }))
  return await builder.buildAll(jobs)
}

/**
 * Every link through the fault proxy; meanwhile the configuration files, from the addresses the
 * HSMs have now and their client links. Resolves with each cluster as DescribeClusters shows it.
 */
async function routeLinks (layout: LabLayout, lab: LabState, writer: LabStateWriter, built: BuiltCluster[], linked: Linked, planes: ControlPlanes,
  options: FaultLayerOptions): Promise<Map<ClusterState, Cluster>> {
  const described = new Map<ClusterState, Cluster>(built.map(b => [b.record, b.cluster]))
  for (const b of built) b.record.hsms = liveHsms(b.cluster).map(seenOf)
  await reconcileFaultLayer(layout, lab, writer, described, linked.regionsMap, region => planes.apis.get(region) as ControlPlaneClient, options, async links => {
    await writeConfigurations(layout, lab, described, links.clientEndpoints)
  })
  return described
}

/**
 * The topology's faults, once every HSM took its routed peer list: set by the `up` that starts the
 * fault proxy (a running one keeps what was set or healed since), or when the topology brings
 * other ones. Resolves with those set.
 */
async function applyTopologyFaults (lab: LabState, writer: LabStateWriter, due: boolean): Promise<LabFault[]> {
  const faults = faultLayerActive(lab) && due ? lab.topology.faults ?? [] : []
  await writer.save(lab)
  if (faults.length > 0) {
    const view = await faultViewAt(faultEndpointOf(lab) ?? '')
    for (const fault of faults) await applyFaultAt(view, fault)
  }
  return faults
}

/**
 * Starts the lab in DIR, or what of it is not running; resolves once every control plane
 * answers, every cluster is built (clones included), every HSM is ACTIVE and the configuration
 * files are written. The phases below run in this order; the control planes, the fault proxy,
 * the secrets and the cluster builds overlap, each build waiting for what it needs.
 */
export async function labUp (options: LabUpOptions = {}): Promise<LabUpResult> {
  const startedAt = performance.now()
  const progress = progressFrom(startedAt)
  const layout = new LabLayout(labDir(options))
  const given = await givenTopology(options)
  const release = await acquireLabLock(layout)
  progress('locked')
  try {
    const { lab, faultsChanged } = await openLab(layout, given, options)
    const writer = new LabStateWriter(layout)
    // lab.json exists before anything else the lab makes, so that `down --purge` can always clean up.
    await writer.save(lab)
    // The manufacturer key and the customer CA, while the control planes start: the first to need
    // them are a cluster's first HSM and its CSR, whose builds wait for them.
    const secrets = background(labSecrets(layout))
    const faultOptions = prepareFaultLayer(layout, lab, options)
    const planes = startControlPlanes(layout, lab, writer, options, progress)
    const faultLayer = background(startFaultLayer(layout, lab, writer, faultOptions, planes))
    const linked = background(linkRegions(layout, lab, planes, faultLayer))
    const building = background(buildClusters(lab, writer, secrets, planes, linked, options, progress))

    // The key or CA that could not be made, or a control plane or fault proxy that could not be
    // started, is the cause: the clusters' failures only follow from it.
    await building.settled()
    await secrets.result()
    const linkedRegions = await linked.result()
    const built = await building.result()

    const described = await routeLinks(layout, lab, writer, built, linkedRegions, planes, faultOptions)
    const faultsApplied = await applyTopologyFaults(lab, writer, linkedRegions.faultProxyStarted || faultsChanged)
    const elapsedMs = performance.now() - startedAt
    progress('done')
    // Everything answered a moment ago: the report is made from what the lab just saw, not probed again.
    const status = reportOf(layout, lab, new Map(lab.controlPlanes.map(cp => [cp.region, { running: true, clusters: described, pid: planes.externalPids.get(cp.region) }])), faultsStatusOf(layout, lab, true))
    return {
      dir: layout.dir,
      started: linkedRegions.started,
      created: built.filter(b => b.created).map(b => `${b.record.region}/${b.record.name}`),
      activated: built.filter(b => b.activated).map(b => `${b.record.region}/${b.record.name}`),
      hsmsCreated: built.reduce((n, b) => n + b.hsmsCreated.length, 0),
      faultProxyStarted: linkedRegions.faultProxyStarted,
      faultsApplied,
      elapsedMs,
      topology: lab.topology,
      status
    }
  } finally {
    await release()
  }
}

function seenOf (hsm: Hsm): HsmSeen {
  return { id: hsm.HsmId, pid: hsm.HsmlabPid ?? null, endpoint: hsm.HsmlabEndpoint ?? '' }
}

/** What the lab knows of one region: whether its control plane answers, and its clusters as it describes them. */
interface RegionView {
  running: boolean
  /** The pid its control plane answered with (for one that runs elsewhere; the lab's own are recorded). */
  pid?: number | undefined
  clusters: Map<ClusterState, Cluster>
  /** When the control plane does not answer: each HSM as probed directly. */
  probed?: Map<string, { pid: number | null, state: HsmRunState }>
}

function hsmStatusOf (layout: LabLayout, record: ClusterState, hsm: Hsm, server: number, routed: ReadonlyMap<string, string>): HsmStatus {
  const endpoint = hsm.HsmlabEndpoint ?? ''
  const status: HsmStatus = {
    id: hsm.HsmId,
    pid: hsm.HsmlabPid ?? null,
    state: (hsm.State ?? 'DOWN') as HsmRunState,
    endpoint: routed.get(hsm.HsmId) ?? endpoint,
    directEndpoint: endpoint,
    server,
    name: hsm.EniIp ?? '',
    availabilityZone: hsm.AvailabilityZone ?? null,
    dataDir: layout.hsmDataDir(record.region, hsm.HsmId),
    log: layout.hsmLogFile(record.region, hsm.HsmId)
  }
  if (hsm.StateMessage !== undefined && hsm.State !== 'ACTIVE') status.stateMessage = hsm.StateMessage
  return status
}

/** The fault layer's part of the status report; `running` when its fault proxy answers. */
function faultsStatusOf (layout: LabLayout, lab: LabState, running: boolean): FaultsStatus {
  const fp = lab.faultProxy
  const endpoint = lab.faultProxy === undefined || !faultLayerActive(lab) ? undefined : faultEndpointOf(lab)
  if (fp === undefined || endpoint === undefined) return { endpoint: null, seed: null, pid: null, state: 'NONE', log: null }
  // One that runs elsewhere has no pid or log of the lab's.
  const external = fp.endpoint !== undefined
  return { endpoint, seed: fp.seed, pid: running && !external ? fp.pid : null, state: running ? 'RUNNING' : 'DOWN', log: external ? null : layout.faultProxyLogFile }
}

/** The status report from what is known of each region and of the fault proxy. */
function reportOf (layout: LabLayout, lab: LabState, views: Map<string, RegionView>, faults: FaultsStatus): LabStatus {
  const routed = clientEndpointsOf(lab)
  const specOf = new Map(clustersOf(lab.topology).map(({ region, cluster }) => [`${region.name}/${cluster.name}`, cluster]))
  const regions = lab.topology.regions.map((region): RegionStatus => {
    const cp = lab.controlPlanes.find(c => c.region === region.name)
    const view = views.get(region.name)
    const controlPlane: ControlPlaneStatus | null = cp === undefined || (cp.port === 0 && cp.endpoint === undefined)
      ? null
      : {
          endpoint: endpointOf(cp),
          pid: view?.running === true ? (view.pid ?? cp.pid) : null,
          state: view?.running === true ? 'RUNNING' : 'DOWN',
          dataDir: layout.controlPlaneDataDir(cp.region),
          log: layout.controlPlaneLogFile(cp.region)
        }
    const clusters = lab.clusters.filter(c => c.region === region.name).map((record): ClusterStatus => {
      const spec = specOf.get(`${record.region}/${record.name}`)
      const described = view?.clusters.get(record)
      const cloneOf = spec?.cloneOf === undefined ? null : `${spec.cloneOf.region}/${spec.cloneOf.cluster}`
      const files = { cmuConfig: layout.cmuConfig(record.region, record.name), trustAnchor: layout.trustAnchorFile(record.region, record.name) }
      if (described !== undefined) {
        const state = described.State ?? 'UNKNOWN'
        return {
          id: record.id,
          name: record.name,
          region: record.region,
          state,
          ...(described.StateMessage === undefined ? {} : { stateMessage: described.StateMessage }),
          activated: state === 'ACTIVE' || record.activated,
          lineage: described.HsmlabLineage ?? record.lineage,
          cloneOf,
          sourceBackupId: described.SourceBackupId ?? null,
          ...files,
          hsms: liveHsms(described).map((h, i) => hsmStatusOf(layout, record, h, i, routed))
        }
      }
      // Not described: its control plane does not answer, or does not know it (yet).
      return {
        id: record.id,
        name: record.name,
        region: record.region,
        state: 'UNKNOWN',
        stateMessage: view?.running === true
          ? (record.id === null ? 'not created yet: run hsmlab up' : `its control plane does not know ${record.id}: run hsmlab up`)
          : `the control plane of ${record.region} does not answer: run hsmlab up`,
        activated: record.activated,
        lineage: record.lineage,
        cloneOf,
        sourceBackupId: record.sourceBackupId ?? null,
        ...files,
        hsms: record.hsms.map((h, i): HsmStatus => {
          const probe = view?.probed?.get(h.id)
          const url = h.endpoint === '' ? undefined : new URL(h.endpoint)
          return {
            id: h.id,
            pid: probe?.pid ?? null,
            state: probe?.state ?? 'DOWN',
            endpoint: routed.get(h.id) ?? h.endpoint,
            directEndpoint: h.endpoint,
            server: i,
            name: url?.hostname ?? '',
            availabilityZone: null,
            dataDir: layout.hsmDataDir(record.region, h.id),
            log: layout.hsmLogFile(record.region, h.id)
          }
        })
      }
    })
    return { name: region.name, controlPlane, clusters }
  })
  const cmuConfigs: Record<string, string> = {}
  for (const { source, clone } of crossPairs(lab)) {
    if (source.id !== null && clone.id !== null) cmuConfigs[crossConfigKey(source, clone)] = layout.crossConfig(source, clone)
  }
  const hsms = regions.flatMap(r => r.clusters).flatMap(c => c.hsms)
  const planes = regions.map(r => r.controlPlane)
  const complete = regions.flatMap(r => r.clusters).every(c => {
    const spec = specOf.get(`${c.region}/${c.name}`)
    return c.state !== 'UNKNOWN' && c.hsms.length >= (spec?.hsms ?? 0)
  })
  const everything = planes.every(p => p?.state === 'RUNNING') && complete && hsms.every(h => h.state === 'ACTIVE') && faults.state !== 'DOWN'
  const nothing = planes.every(p => p?.state !== 'RUNNING') && hsms.every(h => h.pid === null) && faults.state !== 'RUNNING'
  return {
    dir: layout.dir,
    state: everything ? 'RUNNING' : nothing ? 'STOPPED' : 'PARTIAL',
    faults,
    regions,
    kmuConfig: layout.kmuConfig,
    cmuConfigs
  }
}

/**
 * Probes one HSM whose control plane does not answer: does it run, does it answer a handshake as
 * itself. An HSM of a control plane that runs elsewhere is not a process the lab can look at: it
 * is ACTIVE when it answers as itself, DOWN otherwise.
 */
async function probeHsm (layout: LabLayout, record: ClusterState, hsm: HsmSeen, anchor: Uint8Array | undefined, external: boolean): Promise<{ pid: number | null, state: HsmRunState }> {
  if (!external && (hsm.pid === null || !await isLabProcess(hsm.pid, layout.controlPlaneDir(record.region)))) return { pid: null, state: 'DOWN' }
  const failed = { pid: external ? null : hsm.pid, state: external ? 'DOWN' : 'DEGRADED' } as const
  if (anchor === undefined || record.id === null || hsm.endpoint === '') return failed
  try {
    const connection = await HsmConnection.connect({ url: hsm.endpoint, trustAnchor: anchor, expectedClusterId: record.id, connectTimeoutMs: labDefaults.probeTimeoutMs })
    const ok = connection.hsmId === hsm.id
    await connection.close()
    return ok ? { pid: hsm.pid, state: 'ACTIVE' } : failed
  } catch {
    return failed
  }
}

/** Every cluster a region's control plane describes (all pages). */
async function describeAll (api: ControlPlaneClient): Promise<Cluster[]> {
  const clusters: Cluster[] = []
  let token: string | undefined
  do {
    const page = await api.describeClusters(token === undefined ? {} : { NextToken: token })
    clusters.push(...page.Clusters)
    token = page.NextToken
  } while (token !== undefined)
  return clusters
}

async function viewOf (layout: LabLayout, lab: LabState, cp: ControlPlaneState): Promise<RegionView> {
  const records = lab.clusters.filter(c => c.region === cp.region)
  const external = cp.endpoint !== undefined
  const health = external || await isLabProcess(cp.pid, layout.controlPlaneDir(cp.region)) ? await healthOf(cp) : undefined
  if (health !== undefined && 'pid' in health) {
    try {
      const all = await describeAll(apiFor(cp))
      const clusters = new Map<ClusterState, Cluster>()
      for (const record of records) {
        const found = all.find(c => c.ClusterId === record.id && c.State !== 'DELETED')
        if (found !== undefined) clusters.set(record, found)
      }
      return { running: true, clusters, pid: health.pid }
    } catch {
      // It stopped answering meanwhile: probe its HSMs as below.
    }
  }
  const probed = new Map<string, { pid: number | null, state: HsmRunState }>()
  await Promise.all(records.map(async record => {
    const anchor = await readFile(layout.trustAnchorFile(record.region, record.name), 'utf8').then(decodeTrustAnchor).catch(() => undefined)
    await Promise.all(record.hsms.map(async h => { probed.set(h.id, await probeHsm(layout, record, h, anchor, external)) }))
  }))
  return { running: false, clusters: new Map(), probed }
}

/** What runs in the lab in DIR, asked now; throws `LAB_ERR_NO_LAB` when DIR holds no lab. */
export async function labStatus (location: LabLocation = {}): Promise<LabStatus> {
  const layout = new LabLayout(labDir(location))
  const lab = await readLabState(layout)
  if (lab === undefined) throw new LabError(LAB_ERR_NO_LAB, `there is no lab in ${layout.dir}; start one with 'hsmlab up'${location.dir === undefined ? '' : ` --dir ${location.dir}`}`)
  const [views, faultRunning] = await Promise.all([
    Promise.all(lab.controlPlanes.map(async cp => [cp.region, await viewOf(layout, lab, cp)] as const)).then(entries => new Map(entries)),
    lab.faultProxy !== undefined && faultLayerActive(lab) ? faultProxyAnswers(layout, lab.faultProxy) : Promise.resolve(false)
  ])
  return reportOf(layout, lab, views, faultsStatusOf(layout, lab, faultRunning))
}

/** Options of `labDown`. */
export interface LabDownOptions extends LabLocation {
  /** Also delete the lab directory (every HSM's data, the backups, keys and logs). @default false */
  purge?: boolean
  /** How long a control plane may take to stop its HSMs and exit after SIGTERM before SIGKILL, in milliseconds. @default labDefaults.controlPlaneStopTimeoutMs */
  stopTimeoutMs?: number
}

/**
 * Stops every process of the lab in DIR: each control plane gets SIGTERM (it stops its HSMs),
 * SIGKILL after a deadline; then every process of the lab still there (an HSM whose control plane
 * was gone already gets SIGTERM first) is killed. Idempotent.
 */
export async function labDown (options: LabDownOptions = {}): Promise<LabDownResult> {
  const layout = new LabLayout(labDir(options))
  const result: LabDownResult = { dir: layout.dir, found: false, stopped: [], leftRunning: [], purged: false }
  // Without lab.json there is nothing of ours to stop, and --purge does not remove a directory it did not make.
  if (!await exists(layout.stateFile)) return result
  result.found = true
  const release = await acquireLabLock(layout)
  let released = false
  try {
    let lab: LabState | undefined
    let unreadable: unknown
    try {
      lab = await readLabState(layout)
    } catch (err) {
      // A state file that cannot be read names no region: what runs is still found and stopped
      // below, --purge still removes it, and without --purge the error is reported after that.
      unreadable = err
    }
    if (lab !== undefined) {
      const writer = new LabStateWriter(layout)
      await Promise.all(lab.controlPlanes.map(async cp => {
        if (cp.endpoint !== undefined) {
          result.leftRunning.push({ region: cp.region, endpoint: cp.endpoint })
          return
        }
        const root = layout.controlPlaneDir(cp.region)
        const planeDataDir = layout.controlPlaneDataDir(cp.region)
        const kindOf = (p: LabProcess): 'control-plane' | 'hsm' => p.dataDir === planeDataDir ? 'control-plane' : 'hsm'
        const before = await findLabProcesses(root)
        const plane = before.find(p => kindOf(p) === 'control-plane')
        if (plane !== undefined) {
          const how = await stopProcess(plane.pid, options.stopTimeoutMs ?? labDefaults.controlPlaneStopTimeoutMs)
          if (how !== 'gone') result.stopped.push({ kind: 'control-plane', region: cp.region, pid: plane.pid, how })
        }
        const after = await findLabProcesses(root)
        for (const p of before) {
          if (p !== plane && !after.some(q => q.pid === p.pid)) result.stopped.push({ kind: 'hsm', region: cp.region, pid: p.pid, how: 'terminated' })
        }
        await Promise.all(after.map(async p => {
          if (plane !== undefined || kindOf(p) === 'control-plane') {
            // A straggler of a control plane that stopped (or was killed): nothing else will stop it.
            await killProcess(p.pid)
            result.stopped.push({ kind: kindOf(p), region: cp.region, pid: p.pid, how: 'killed' })
          } else {
            // An HSM whose control plane was gone already (killed): it may still stop gracefully.
            const how = await stopProcess(p.pid, labDefaults.stopTimeoutMs)
            if (how !== 'gone') result.stopped.push({ kind: 'hsm', region: cp.region, pid: p.pid, how })
          }
        }))
        cp.pid = null
      }))
      for (const cluster of lab.clusters) for (const hsm of cluster.hsms) hsm.pid = null
      // Last the fault proxy, once nothing sends through it any more.
      const faultProxy = await stopFaultProxy(layout, lab)
      if (faultProxy !== undefined) result.stopped.push({ kind: 'fault-proxy', region: '', pid: faultProxy.pid, how: faultProxy.how })
      if (lab.faultProxy !== undefined) lab.faultProxy.pid = null
      await writer.save(lab)
    }
    // Whatever else of the lab still runs (a lab.json that cannot be read, one of an older
    // format whose HSMs the lab started itself): every process serving a directory in DIR.
    await Promise.all((await findLabProcesses(layout.dir)).map(async p => {
      const how = await stopProcess(p.pid, labDefaults.stopTimeoutMs)
      const region = relative(layout.dir, p.dataDir).split(sep)[0] ?? ''
      const kind = p.dataDir === layout.faultProxyConfigFile ? 'fault-proxy' : p.dataDir === layout.controlPlaneDataDir(region) ? 'control-plane' : 'hsm'
      if (how !== 'gone') result.stopped.push({ kind, region: kind === 'fault-proxy' ? '' : region, pid: p.pid, how })
    }))
    if (unreadable !== undefined && options.purge !== true) throw unreadable as Error
    if (options.purge === true) {
      await rm(layout.dir, { recursive: true, force: true })
      released = true
      result.purged = true
    }
  } finally {
    if (!released) await release()
  }
  return result
}

/** Options of `labBackup`. */
export interface LabBackupOptions extends LabLocation {
  /** `<region>/<cluster>` of the lab. */
  cluster: string
  /** How long to wait for the backup to be READY, in milliseconds. @default labDefaults.stepTimeoutMs */
  timeoutMs?: number
}

/**
 * Makes a backup of one cluster now, with the control plane's extension operation
 * `HsmlabCreateBackup` (AWS makes backups only on its own schedule), and resolves once it is
 * READY.
 */
export async function labBackup (options: LabBackupOptions): Promise<Backup> {
  const layout = new LabLayout(labDir(options))
  const lab = await readLabState(layout)
  if (lab === undefined) throw new LabError(LAB_ERR_NO_LAB, `there is no lab in ${layout.dir}; start one with 'hsmlab up'`)
  const [regionName, clusterName, ...rest] = options.cluster.split('/')
  const record = rest.length === 0 ? lab.clusters.find(c => c.region === regionName && c.name === clusterName) : undefined
  if (record === undefined) {
    throw new LabError(LAB_ERR_USAGE, `the lab has no cluster '${options.cluster}'; its clusters: ${lab.clusters.map(c => `${c.region}/${c.name}`).join(', ')}`)
  }
  const cp = lab.controlPlanes.find(c => c.region === record.region)
  if (record.id === null || cp === undefined) throw new LabError(LAB_ERR_BACKUP, `cluster ${options.cluster} has not been created yet: run 'hsmlab up'`)
  if (!await answers(cp)) throw new LabError(LAB_ERR_CONTROL_PLANE, `the control plane of ${record.region} does not answer: run 'hsmlab up'`)
  const api = apiFor(cp)
  let backup: Backup
  try {
    backup = await api.createBackup(record.id)
    backup = await api.waitForBackup(backup.BackupId, ['READY', 'DELETED'], { timeoutMs: options.timeoutMs ?? labDefaults.stepTimeoutMs, intervalMs: labDefaults.apiPollIntervalMs })
  } catch (err) {
    throw new LabError(LAB_ERR_BACKUP, `backup of ${options.cluster} (${record.id}): ${(err as Error).message}`, { cause: err })
  }
  if (backup.BackupState !== 'READY') throw new LabError(LAB_ERR_BACKUP, `backup ${backup.BackupId} of ${options.cluster} failed: ${backup.StateMessage ?? backup.BackupState ?? 'unknown state'}`)
  return backup
}
