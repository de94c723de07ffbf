/**
 * `hsmlab up` as a function (the bin only parses arguments and prints); the types it shares with
 * `status`, `down` and `backup` are in lab.ts.
 *
 * `labUp` turns a topology into running processes through control planes: per lab one
 * manufacturer key and one customer CA; per region one control plane (started detached, or left
 * alone when it runs and answers), which starts and supervises its region's HSMs; then each
 * cluster is built through the cloudhsmv2 API (cluster-builder.ts), clones once their sources
 * are ACTIVE; last, the CMU and KMU configuration files. Running it again starts only what is
 * missing and waits until every HSM is ACTIVE. See docs/lab.md.
 */
import { channel } from 'node:diagnostics_channel'
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { writeCmuConfig } from '@hsmlab/client'
import type { ServerConfig } from '@hsmlab/client'
import { CONTROL_PLANE_BIN_PATH, ensurePeerSecretFile } from '@hsmlab/control-plane'
import type { Cluster, ControlPlaneClient, Hsm } from '@hsmlab/control-plane'
import { ROOT_FILE_NAMES, standInRoots } from '@hsmlab/crypto'
import { createManufacturerKey, readManufacturerKey, writeManufacturerKey } from '@hsmlab/hsm'
import { writeFileAtomic } from '@hsmlab/process'
import { ClusterBuilder } from './cluster-builder.js'
import { ensureClientDaemons } from './client-daemons.js'
import type { BuildStep, BuiltCluster } from './cluster-builder.js'
import { createCustomerCa } from './customer-ca.js'
import type { CustomerCa } from './customer-ca.js'
import { DEFAULT_TOPOLOGY_PATH, labDefaults } from './defaults.js'
import { LabError, LAB_ERR_CONTROL_PLANE, LAB_ERR_STATE, LAB_ERR_TOPOLOGY_CHANGED, LAB_ERR_USAGE } from './errors.js'
import { LAB_STATE_FORMAT, LabLayout, LabStateWriter, UNKNOWN_PASSWORD, acquireLabLock, readLabState } from './lab-state.js'
import type { ClusterState, ControlPlaneState, FaultProxyState, HsmSeen, LabState } from './lab-state.js'
import { isLabProcess, launchControlPlane, stopProcess, waitGone, waitUntilReaped } from './launcher.js'
import { ensureFaultProxy, faultEndpointOf, faultLayerActive, faultProxyRecord, reconcileFaultLayer, writeRegionsFiles } from './fault-layer.js'
import type { FaultLayerOptions } from './fault-layer.js'
import { applyFaultAt, faultViewAt, recordFault } from './faults.js'
import { ensureConsole } from './console-process.js'
import type { LabFault } from './fault-vocabulary.js'
import { clustersOf, readTopology } from './topology.js'
import type { Topology } from './topology.js'
import { answers, apiFor, crossPairs, endpointOf, exists, healthOf, labDir, liveHsms } from './lab.js'
import type { LabUpOptions, LabUpResult } from './lab.js'
import { faultsStatusOf, reportOf, syncTasksIn } from './lab-status.js'
import { buildSyncTasks } from './sync.js'
import type { SyncTaskStatus } from './sync-scope.js'

/**
 * Progress of `labUp`, published on `node:diagnostics_channel` for tests and the bench:
 * `{ step, elapsedMs, region?, cluster?, detail? }`; step one of locked, control-plane (a control
 * plane answers), the cluster steps of cluster-builder.ts (cluster-created, hsm-active,
 * initialized, activated, cluster-active, backup-ready, backup-copied, cluster-ready), sync-tasks
 * (the topology's synchronisation tasks built; `detail` the primaries whose task changed),
 * routed (every link made, the control planes routed through them, the configuration files
 * written), client-daemons (every cluster's daemon ready), done.
 */
export const UP_CHANNEL = 'hsmlab:lab:up'
const upChannel = channel(UP_CHANNEL)

/** One message of `UP_CHANNEL`. */
export interface UpProgress {
  step: 'locked' | 'control-plane' | BuildStep | 'routed' | 'sync-tasks' | 'client-daemons' | 'done'
  elapsedMs: number
  /** `region` for control-plane steps, `region/cluster` for cluster steps. */
  what?: string
  detail?: string
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
  // The internal region-to-region paths of the lab's control planes take only requests signed
  // with this (made once, kept: control planes that run on keep theirs).
  await ensurePeerSecretFile(layout.peerSecretFile)
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
      peerSecretFile: layout.peerSecretFile,
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
  options: FaultLayerOptions, configured: (daemons: Background<void>) => void): Promise<Map<ClusterState, Cluster>> {
  const described = new Map<ClusterState, Cluster>(built.map(b => [b.record, b.cluster]))
  for (const b of built) b.record.hsms = liveHsms(b.cluster).map(seenOf)
  await reconcileFaultLayer(layout, lab, writer, described, linked.regionsMap, region => planes.apis.get(region) as ControlPlaneClient, options, async links => {
    await writeConfigurations(layout, lab, described, links.clientEndpoints)
    // The client daemons start on the configurations just written while the control planes take
    // their routes (a few hundred ms): their start (a Node process, its imports, a connection to
    // each HSM over its client link, which exists by now) is then off the end of `up`.
    configured(background(startClientDaemons(layout, lab)))
  })
  return described
}

/**
 * The client daemons of every cluster (issue 16). A lab whose control planes run elsewhere (the
 * Docker lab's one-shot `up`) starts no process that would outlive it: there the client daemon is
 * a service of its own (docker-compose.yml `app`).
 */
async function startClientDaemons (layout: LabLayout, lab: LabState): Promise<void> {
  if (lab.controlPlanes.some(cp => cp.endpoint !== undefined)) return
  await ensureClientDaemons(layout, lab)
}

/**
 * The topology's synchronisation tasks, once every cluster is ACTIVE and every link runs (the
 * association is checked over the WAN links): built, or completed, through the primaries' control
 * planes; the control planes then synchronise by themselves, which `up` does not wait for.
 * Resolves with every region's tasks, for the report.
 */
async function syncPhase (lab: LabState, planes: ControlPlanes, progress: Progress): Promise<Map<string, SyncTaskStatus[]>> {
  const apiOf = (region: string): ControlPlaneClient => planes.apis.get(region) as ControlPlaneClient
  if (clustersOf(lab.topology).some(({ cluster }) => cluster.sync !== undefined)) {
    const changed = await buildSyncTasks(lab, apiOf)
    progress('sync-tasks', undefined, changed.join(', '))
  }
  const tasks = new Map<string, SyncTaskStatus[]>()
  for (const each of await Promise.all(lab.controlPlanes.map(async cp => await syncTasksIn(apiOf(cp.region), lab)))) {
    for (const [id, list] of each) tasks.set(id, list)
  }
  return tasks
}

/**
 * The topology's faults, once every HSM took its routed peer list: set by the `up` that starts the
 * fault proxy (a running one keeps what was set or healed since), or when the topology brings
 * other ones. Resolves with those set.
 */
async function applyTopologyFaults (layout: LabLayout, lab: LabState, writer: LabStateWriter, due: boolean): Promise<LabFault[]> {
  const faults = faultLayerActive(lab) && due ? lab.topology.faults ?? [] : []
  await writer.save(lab)
  if (faults.length > 0) {
    const view = await faultViewAt(faultEndpointOf(lab) ?? '')
    for (const fault of faults) {
      const { links } = await applyFaultAt(view, fault)
      await recordFault({ dir: layout.dir }, { atMs: Date.now(), source: 'topology', action: 'apply', fault, links })
    }
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
  // A failed `up` stops the console it started: the console is started early, in the background,
  // and would otherwise come up after `up` has failed and outlive the lab (or its removed folder).
  let consoleStartedHere: (() => Promise<void>) | undefined
  try {
    const { lab, faultsChanged } = await openLab(layout, given, options)
    const writer = new LabStateWriter(layout)
    // lab.json exists before anything else the lab makes, so that `down --purge` can always clean up.
    await writer.save(lab)
    // The manufacturer key and the customer CA, while the control planes start: the first to need
    // them are a cluster's first HSM and its CSR, whose builds wait for them.
    const secrets = background(labSecrets(layout))
    const faultOptions = prepareFaultLayer(layout, lab, options)
    if (options.clients !== undefined) lab.clients = { enabled: options.clients }
    const planes = startControlPlanes(layout, lab, writer, options, progress)
    const faultLayer = background(startFaultLayer(layout, lab, writer, faultOptions, planes))
    const linked = background(linkRegions(layout, lab, planes, faultLayer))
    const building = background(buildClusters(lab, writer, secrets, planes, linked, options, progress))
    // The console reads the lab as it comes up; it is ready long before the clusters are.
    const consoleUp = background(ensureConsole(layout, lab, writer, {
      ...(options.console === undefined ? {} : { enabled: options.console }),
      ...(options.logLevel === undefined ? {} : { logLevel: options.logLevel }),
      ...(options.readyTimeoutMs === undefined ? {} : { readyTimeoutMs: options.readyTimeoutMs })
    }))
    const consoleBefore = lab.console?.pid ?? null
    consoleStartedHere = async () => {
      await consoleUp.settled()
      const pid = lab.console?.pid ?? null
      if (pid === null || pid === consoleBefore || lab.console === undefined) return
      await stopProcess(pid, labDefaults.stopTimeoutMs)
      lab.console.pid = null
      await writer.save(lab)
    }

    // The key or CA that could not be made, or a control plane or fault proxy that could not be
    // started, is the cause: the clusters' failures only follow from it.
    await building.settled()
    await secrets.result()
    const linkedRegions = await linked.result()
    const built = await building.result()

    let daemons: Background<void> = background(Promise.resolve())
    const described = await routeLinks(layout, lab, writer, built, linkedRegions, planes, faultOptions, started => { daemons = started })
    progress('routed')
    // The daemons keep starting while the synchronisation tasks are built: neither needs the other.
    const syncTasks = await syncPhase(lab, planes, progress)
    await daemons.result()
    progress('client-daemons')
    const faultsApplied = await applyTopologyFaults(layout, lab, writer, linkedRegions.faultProxyStarted || faultsChanged)
    const consoleStatus = await consoleUp.result()
    const elapsedMs = performance.now() - startedAt
    progress('done')
    // Everything answered a moment ago: the report is made from what the lab just saw, not probed again.
    const status = reportOf(layout, lab, new Map(lab.controlPlanes.map(cp => [cp.region, { running: true, clusters: described, pid: planes.externalPids.get(cp.region), syncTasks }])), faultsStatusOf(layout, lab, true), consoleStatus)
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
  } catch (err) {
    await consoleStartedHere?.().catch(() => undefined)
    throw err
  } finally {
    await release()
  }
}

function seenOf (hsm: Hsm): HsmSeen {
  return { id: hsm.HsmId, pid: hsm.HsmlabPid ?? null, endpoint: hsm.HsmlabEndpoint ?? '' }
}
