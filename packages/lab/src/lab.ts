/**
 * `hsmlab up`, `status` and `down` as functions (the bin only parses arguments and prints).
 *
 * `labUp` turns a topology into running HSMs: per lab one manufacturer key; per cluster its
 * secrets (trust anchor, masking key) made once; per HSM a data directory provisioned once and a
 * detached process started when it is not already running, all HSMs at once. As each HSM answers,
 * it is activated if its cluster is to be (PRECO password change, topology users); once a
 * cluster's HSMs all run, the lab signs the cluster's peer list and pushes it to each of them (so
 * replication finds its peers, and a restarted HSM catches up). Last, it writes the CMU and KMU
 * configuration files. Running it again starts only what is missing. See docs/lab.md.
 */
import { channel } from 'node:diagnostics_channel'
import { access, chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { HsmConnection, writeCmuConfig } from '@hsmlab/client'
import type { ServerConfig } from '@hsmlab/client'
import { decodeTrustAnchor, encodeTrustAnchor } from '@hsmlab/crypto'
import {
  DEFAULT_ADMIN_NAME, DEFAULT_ADMIN_PASSWORD, HSM_BIN_PATH, createClusterSecrets, createManufacturerKey, provisionHsm,
  randomResourceId, readManufacturerKey, signPeers, writeManufacturerKey
} from '@hsmlab/hsm'
import type { ClusterSecrets } from '@hsmlab/hsm'
import type { PeerAddress, UserInfo } from '@hsmlab/protocol'
import { DEFAULT_TOPOLOGY_PATH, labDefaults } from './defaults.js'
import {
  LabError, LAB_ERR_ACTIVATION, LAB_ERR_HSM_START, LAB_ERR_NO_LAB, LAB_ERR_PEERS, LAB_ERR_STATE, LAB_ERR_TOPOLOGY_CHANGED
} from './errors.js'
import { LAB_STATE_FORMAT, LabLayout, LabStateWriter, acquireLabLock, readLabState, writeFileAtomically } from './lab-state.js'
import type { Addressing, ClusterState, HsmState, LabState } from './lab-state.js'
import { isHsmProcess, isProcessAlive, launchHsm, stopProcess, waitUntilReaped } from './launcher.js'
import { checkBuildable, clustersOf, readTopology } from './topology.js'
import type { Topology, TopologyCluster } from './topology.js'

/**
 * Progress of `labUp`, published on `node:diagnostics_channel` for tests and the bench:
 * `{ step, elapsedMs, hsm? }` with step one of locked, prepared, provisioned, ready, connected,
 * activated, peers, done (`hsm` is `region/cluster/server` for per-HSM steps).
 */
export const UP_CHANNEL = 'hsmlab:lab:up'
const upChannel = channel(UP_CHANNEL)

/** One message of `UP_CHANNEL`. */
export interface UpProgress {
  step: 'locked' | 'prepared' | 'provisioned' | 'ready' | 'connected' | 'activated' | 'peers' | 'done'
  elapsedMs: number
  hsm?: string
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
  /** `--log-level` of the HSMs. @default labDefaults.hsmLogLevel */
  logLevel?: string
  /** @default labDefaults.readyTimeoutMs */
  readyTimeoutMs?: number
  /** The HSM bin to start. @default HSM_BIN_PATH of @hsmlab/hsm */
  hsmBinPath?: string
}

/** State of one HSM in `hsmlab status` (DESIGN.md): ACTIVE answers; DEGRADED runs but does not answer; DOWN does not run. */
export type HsmRunState = 'ACTIVE' | 'DEGRADED' | 'DOWN'

/**
 * State of one cluster: INITIALIZED (every HSM up, not activated: a PRECO remains), ACTIVE
 * (every HSM up, activated), DEGRADED (at least one HSM not answering).
 */
export type ClusterRunState = 'INITIALIZED' | 'ACTIVE' | 'DEGRADED'

/** One HSM in the status report. */
export interface HsmStatus {
  id: string
  /** Its server id in the cluster's CMU configuration. */
  server: number
  /** Pid of its process, or null when it does not run. */
  pid: number | null
  state: HsmRunState
  endpoint: string
  /** The server name CMU prints (`server 0(<name>)`). */
  name: string
  dataDir: string
  log: string
}

/** One cluster in the status report. */
export interface ClusterStatus {
  id: string
  name: string
  region: string
  state: ClusterRunState
  /** True when no HSM that answers still has its PRECO (or, when none answers, the lab activated it). */
  activated: boolean
  lineage: string
  cmuConfig: string
  /** The trust anchor file (the configurations' CAfile). */
  trustAnchor: string
  hsms: HsmStatus[]
}

/** One region in the status report. */
export interface RegionStatus {
  name: string
  /** The region's control plane; null until the control plane exists. */
  controlPlane: { endpoint: string, pid: number } | null
  clusters: ClusterStatus[]
}

/** `hsmlab status --json`: the shape of DESIGN.md's contract, with a few more fields. */
export interface LabStatus {
  dir: string
  /** RUNNING: every HSM ACTIVE; STOPPED: none; PARTIAL: anything between. */
  state: 'RUNNING' | 'PARTIAL' | 'STOPPED'
  /** The fault layer's endpoint; null until the fault layer exists. */
  faults: { endpoint: string | null }
  regions: RegionStatus[]
  /** The configuration KMU reads by default. */
  kmuConfig: string
  /** CMU configurations spanning a source cluster and its clone (`"<source>-><clone>"`); none until clones exist. */
  cmuConfigs: Record<string, string>
}

/** What `labUp` did. */
export interface LabUpResult {
  dir: string
  /** HSMs started by this call (the others were running). */
  started: Array<{ region: string, cluster: string, server: number, hsmId: string }>
  /** Clusters activated by this call (`region/cluster`). */
  activated: string[]
  /** From the call to every HSM ready, peers pushed and configurations written, in milliseconds. */
  elapsedMs: number
  topology: Topology
  status: LabStatus
}

/** What `labDown` did. */
export interface LabDownResult {
  dir: string
  /** False when DIR held no lab. */
  found: boolean
  stopped: Array<{ region: string, cluster: string, server: number, hsmId: string, pid: number, how: 'terminated' | 'killed' }>
  purged: boolean
}

/** The absolute lab directory of a location. */
export function labDir (location: LabLocation = {}): string {
  return resolve(location.cwd ?? process.cwd(), location.dir ?? labDefaults.dir)
}

function endpointOf (hsm: HsmState): string {
  return `ws://${hsm.host}:${hsm.port}`
}

function serverNameOf (addressing: Addressing, hsm: HsmState): string {
  return addressing === 'loopback' ? hsm.host : hsm.id
}

async function exists (path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}

/** True when this system lets a process bind loopback addresses other than 127.0.0.1 (Linux does, macOS does not without aliases). */
async function canBindLoopbackAliases (): Promise<boolean> {
  return await new Promise(resolve => {
    const server = createServer()
    server.once('error', () => { resolve(false) })
    server.listen(0, '127.0.1.1', () => { server.close(() => { resolve(true) }) })
  })
}

/** The address of server `index` of the lab's `ordinal`-th cluster (both from 0). */
function addressFor (addressing: Addressing, ordinal: number, index: number): string {
  return addressing === 'loopback' ? `127.0.${ordinal + 1}.${index + 1}` : '127.0.0.1'
}

interface StoredSecrets {
  clusterId: string
  lineage: string
  maskingKey: string
  anchor: { publicKey: string, secretKey: string }
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64')
const unb64 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64'))

async function loadOrCreateSecrets (layout: LabLayout, region: string, cluster: string): Promise<ClusterSecrets> {
  const file = layout.clusterSecretsFile(region, cluster)
  await mkdir(layout.clusterDir(region, cluster), { recursive: true })
  let secrets: ClusterSecrets
  if (await exists(file)) {
    try {
      const s = JSON.parse(await readFile(file, 'utf8')) as StoredSecrets
      secrets = { clusterId: s.clusterId, lineage: s.lineage, maskingKey: unb64(s.maskingKey), anchor: { publicKey: unb64(s.anchor.publicKey), secretKey: unb64(s.anchor.secretKey) } }
    } catch (err) {
      throw new LabError(LAB_ERR_STATE, `cannot read the secrets of cluster ${region}/${cluster} from ${file}: ${(err as Error).message}`, { cause: err })
    }
  } else {
    secrets = createClusterSecrets()
    const stored: StoredSecrets = {
      clusterId: secrets.clusterId,
      lineage: secrets.lineage,
      maskingKey: b64(secrets.maskingKey),
      anchor: { publicKey: b64(secrets.anchor.publicKey), secretKey: b64(secrets.anchor.secretKey) }
    }
    await writeFileAtomically(file, JSON.stringify(stored, null, 2) + '\n', 0o600)
    await chmod(file, 0o600)
  }
  // The public half, as the CAfile of the configurations; rewritten each time, it costs nothing.
  await writeFile(layout.trustAnchorFile(region, cluster), encodeTrustAnchor(secrets.anchor.publicKey))
  return secrets
}

async function loadOrCreateManufacturerKey (layout: LabLayout): Promise<Uint8Array> {
  if (await exists(layout.manufacturerKeyFile)) return await readManufacturerKey(layout.manufacturerKeyFile)
  const key = createManufacturerKey()
  await writeManufacturerKey(layout.manufacturerKeyFile, key)
  return key
}

function sameTopology (a: Topology, b: Topology): boolean {
  return JSON.stringify(a.regions) === JSON.stringify(b.regions)
}

function describeHsm (cluster: ClusterState, hsm: HsmState): string {
  return `HSM ${hsm.id} (${cluster.region}/${cluster.name} server ${hsm.index})`
}

/** Runs `task` on every item at once; throws one error naming every failure once all have settled. */
async function allOrReport<T, R> (items: T[], task: (item: T) => Promise<R>, code: string, what: string): Promise<R[]> {
  const outcomes = await Promise.allSettled(items.map(task))
  const failures = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map(o => o.reason as Error)
  if (failures.length === 1 && failures[0] instanceof LabError) throw failures[0]
  if (failures.length > 0) {
    throw new LabError(code, `${what}:\n${failures.map(f => `- ${f.message}`).join('\n')}`, { cause: failures[0] })
  }
  return outcomes.map(o => (o as PromiseFulfilledResult<R>).value)
}

/** Connects to one HSM of the lab, checked against its cluster's trust anchor. */
async function connectTo (cluster: ClusterState, hsm: HsmState, anchor: Uint8Array, timeoutMs: number): Promise<HsmConnection> {
  return await HsmConnection.connect({
    url: endpointOf(hsm),
    trustAnchor: anchor,
    expectedClusterId: cluster.id,
    connectTimeoutMs: timeoutMs,
    requestTimeoutMs: labDefaults.requestTimeoutMs
  })
}

/**
 * Activates one HSM the way a person does with CMU (reference B.1): `loginHSM PRECO admin
 * password`, `changePswd PRECO admin <new>` (the PRECO becomes a CO), then, as that CO,
 * `createUser` for each topology user it does not have yet. Safe to run again.
 */
async function activateHsm (connection: HsmConnection, cluster: ClusterState, hsm: HsmState, spec: TopologyCluster, adminPassword: string): Promise<void> {
  const where = describeHsm(cluster, hsm)
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
  if (admin === undefined) throw new LabError(LAB_ERR_ACTIVATION, `${where} has no user ${DEFAULT_ADMIN_NAME}; its data directory is not that of a cluster the lab made`)
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

/**
 * Starts the lab in DIR, or what of it is not running; resolves once every HSM is ready, every
 * cluster's peers are pushed, the clusters to activate are activated and the configuration files
 * are written.
 */
export async function labUp (options: LabUpOptions = {}): Promise<LabUpResult> {
  const startedAt = performance.now()
  const layout = new LabLayout(labDir(options))
  const binPath = options.hsmBinPath ?? HSM_BIN_PATH
  // A bad topology is refused before anything is created or started.
  let topology: Topology | undefined
  if (options.topologyFile !== undefined) {
    topology = await readTopology(resolve(options.cwd ?? process.cwd(), options.topologyFile), options.topologyFile)
    checkBuildable(topology)
  }
  const progress = (step: UpProgress['step'], cluster?: ClusterState, hsm?: HsmState): void => {
    if (!upChannel.hasSubscribers) return
    const message: UpProgress = { step, elapsedMs: performance.now() - startedAt }
    if (cluster !== undefined && hsm !== undefined) message.hsm = `${cluster.region}/${cluster.name}/${hsm.index}`
    upChannel.publish(message)
  }
  const release = await acquireLabLock(layout)
  progress('locked')
  try {
    let state = await readLabState(layout)
    if (state !== undefined) {
      if (topology !== undefined && !sameTopology(topology, state.topology)) {
        throw new LabError(LAB_ERR_TOPOLOGY_CHANGED, `the lab in ${layout.dir} was made from another topology; run 'hsmlab up' without --topology to start it again, or 'hsmlab down --purge' first to make a new lab from ${options.topologyFile ?? 'this topology'}`)
      }
      topology = state.topology
    } else {
      topology ??= await readTopology(DEFAULT_TOPOLOGY_PATH)
      state = {
        format: LAB_STATE_FORMAT,
        createdAt: new Date().toISOString(),
        addressing: await canBindLoopbackAliases() ? 'loopback' : 'localhost',
        topology,
        clusters: []
      }
    }
    checkBuildable(topology)
    const lab: LabState = state
    const writer = new LabStateWriter(layout)
    // lab.json exists before anything else the lab makes, so that `down --purge` can always clean up.
    await writer.save(lab)
    const manufacturerKey = await loadOrCreateManufacturerKey(layout)

    // Secrets and records of every cluster and HSM, before any process exists.
    const secretsOf = new Map<ClusterState, ClusterSecrets>()
    const specOf = new Map<ClusterState, TopologyCluster>()
    for (const [ordinal, { region, cluster: spec }] of clustersOf(topology).entries()) {
      const secrets = await loadOrCreateSecrets(layout, region.name, spec.name)
      let cluster = lab.clusters.find(c => c.region === region.name && c.name === spec.name)
      if (cluster === undefined) {
        cluster = { region: region.name, name: spec.name, id: secrets.clusterId, lineage: secrets.lineage, activated: false, peersVersion: 0, hsms: [] }
        lab.clusters.push(cluster)
      }
      for (let index = cluster.hsms.length; index < spec.hsms; index++) {
        cluster.hsms.push({ index, id: randomResourceId('hsm'), host: addressFor(lab.addressing, ordinal, index), port: 0, pid: null })
      }
      secretsOf.set(cluster, secrets)
      specOf.set(cluster, spec)
    }
    await writer.save(lab)
    progress('prepared')

    /**
     * A connection to the HSM if its process runs and answers as itself; otherwise undefined,
     * after killing a process of ours that runs but does not answer (it hangs).
     */
    const connectIfRunning = async (cluster: ClusterState, hsm: HsmState): Promise<HsmConnection | undefined> => {
      if (hsm.pid === null || hsm.port === 0 || !isProcessAlive(hsm.pid)) return undefined
      const secrets = secretsOf.get(cluster) as ClusterSecrets
      try {
        const connection = await connectTo(cluster, hsm, secrets.anchor.publicKey, labDefaults.probeTimeoutMs)
        if (connection.hsmId === hsm.id) return connection
        await connection.close()
      } catch {
        // Not answering: see below.
      }
      if (await isHsmProcess(hsm.pid, layout.dataDir(cluster.region, cluster.name, hsm.index))) await stopProcess(hsm.pid, 0)
      return undefined
    }

    // An HSM that does not run: provisioned if new, then started.
    const started: LabUpResult['started'] = []
    const provisionedNow = new Set<HsmState>()
    const start = async (cluster: ClusterState, hsm: HsmState): Promise<void> => {
      const secrets = secretsOf.get(cluster) as ClusterSecrets
      const dataDir = layout.dataDir(cluster.region, cluster.name, hsm.index)
      // The previous process may have died so recently that nobody collected it yet; its pid
      // still holds the data directory's lock until then.
      if (hsm.pid !== null && !await waitUntilReaped(hsm.pid, labDefaults.stopTimeoutMs)) {
        throw new LabError(LAB_ERR_HSM_START, `the previous process of ${describeHsm(cluster, hsm)} (pid ${hsm.pid}) exited but its parent has not collected it for ${labDefaults.stopTimeoutMs} ms; it still holds the data directory; try again later`)
      }
      if (!await exists(dataDir)) {
        // Provision beside the final place and rename, so a data directory is whole or absent.
        const partial = `${dataDir}.partial`
        await rm(partial, { recursive: true, force: true })
        try {
          await provisionHsm({ dataDir: partial, manufacturerKey, hsmId: hsm.id, slot: hsm.index, cluster: secrets, label: `${cluster.region}/${cluster.name}/${hsm.index}` })
        } catch (err) {
          throw new LabError(LAB_ERR_HSM_START, `cannot provision ${describeHsm(cluster, hsm)} in ${partial}: ${(err as Error).message}`, { cause: err })
        }
        await rename(partial, dataDir)
        provisionedNow.add(hsm)
        progress('provisioned', cluster, hsm)
      }
      const launch = async (port: number): Promise<void> => {
        const ready = await launchHsm({
          binPath,
          dataDir,
          host: hsm.host,
          port,
          manufacturerKeyFile: layout.manufacturerKeyFile,
          stdoutFile: layout.stdoutFile(cluster.region, cluster.name, hsm.index),
          logFile: layout.logFile(cluster.region, cluster.name, hsm.index),
          logLevel: options.logLevel,
          readyTimeoutMs: options.readyTimeoutMs,
          what: describeHsm(cluster, hsm),
          onSpawn: async pid => { hsm.pid = pid; await writer.save(lab) }
        })
        // The data directory is the truth about which HSM this is.
        hsm.id = ready.hsmId
        hsm.pid = ready.pid
        hsm.port = ready.port
        hsm.startedAt = new Date().toISOString()
      }
      try {
        await launch(hsm.port)
      } catch (err) {
        // The recorded port was taken by someone else meanwhile: take any port (the configuration files are rewritten below).
        if (hsm.port === 0 || !/EADDRINUSE|address already in use|HSM_ERR_LISTEN/i.test((err as Error).message)) throw err
        await launch(0)
      }
      started.push({ region: cluster.region, cluster: cluster.name, server: hsm.index, hsmId: hsm.id })
      progress('ready', cluster, hsm)
    }
    // Each HSM on its own pipeline: started if it does not run, connected, activated if its
    // cluster is to be; the peer lists go out once every HSM of a cluster has its address.
    // Activation comes before the peers so that it does not compete with replication for the CPU.
    const connections = new Map<HsmState, HsmConnection>()
    const hasPreco = new Map<HsmState, boolean>()
    const activating = lab.clusters.filter(cluster => specOf.get(cluster)?.activate !== undefined && !cluster.activated)
    const pipeline = async (cluster: ClusterState, hsm: HsmState): Promise<void> => {
      const secrets = secretsOf.get(cluster) as ClusterSecrets
      const spec = specOf.get(cluster) as TopologyCluster
      let connection = await connectIfRunning(cluster, hsm)
      if (connection === undefined) {
        await start(cluster, hsm)
        try {
          connection = await connectTo(cluster, hsm, secrets.anchor.publicKey, labDefaults.probeTimeoutMs)
        } catch (err) {
          throw new LabError(LAB_ERR_HSM_START, `${describeHsm(cluster, hsm)} started but does not answer: ${(err as Error).message}`, { cause: err })
        }
      }
      connections.set(hsm, connection)
      progress('connected', cluster, hsm)
      // An HSM provisioned now in a cluster activated earlier (its data directory was deleted) is activated too.
      if (spec.activate !== undefined && (activating.includes(cluster) || provisionedNow.has(hsm))) {
        await activateHsm(connection, cluster, hsm, spec, spec.activate.admin)
        hasPreco.set(hsm, false)
        progress('activated', cluster, hsm)
      } else {
        const { users } = await connection.call('listUsers', {})
        hasPreco.set(hsm, users.some(u => u.userType === 'PRECO'))
      }
    }
    const activated: string[] = []
    try {
      const all = lab.clusters.flatMap(cluster => cluster.hsms.map(hsm => ({ cluster, hsm })))
      try {
        await allOrReport(all, async ({ cluster, hsm }) => { await pipeline(cluster, hsm) }, LAB_ERR_HSM_START, 'some HSMs could not be started or activated')
      } finally {
        await writer.save(lab)
      }
      for (const cluster of activating) {
        cluster.activated = true
        activated.push(`${cluster.region}/${cluster.name}`)
      }
      await Promise.all(lab.clusters.map(async cluster => {
        const secrets = secretsOf.get(cluster) as ClusterSecrets
        // A version is never used twice: it is recorded before any HSM sees it.
        cluster.peersVersion += 1
        const version = cluster.peersVersion
        await writer.save(lab)
        const peers: PeerAddress[] = cluster.hsms.map(h => ({ hsmId: h.id, endpoint: endpointOf(h) }))
        await allOrReport(cluster.hsms, async hsm => {
          try {
            await (connections.get(hsm) as HsmConnection).call('setPeers', { peers, version, signature: signPeers(secrets.anchor.secretKey, hsm.id, peers, version) })
          } catch (err) {
            throw new LabError(LAB_ERR_PEERS, `${describeHsm(cluster, hsm)} did not take its peer list: ${(err as Error).message}`, { cause: err })
          }
        }, LAB_ERR_PEERS, `cluster ${cluster.region}/${cluster.name}: peers could not be set`)
      }))
      progress('peers')
    } finally {
      await Promise.allSettled([...connections.values()].map(async c => { await c.close() }))
    }

    // The configuration files, from the addresses the HSMs have now.
    await Promise.all(lab.clusters.map(async cluster => {
      await writeCmuConfig(layout.cmuConfig(cluster.region, cluster.name), serverConfigs(layout, lab, cluster))
    }))
    const first = lab.clusters[0]
    if (first !== undefined) await writeCmuConfig(layout.kmuConfig, serverConfigs(layout, lab, first))
    await writer.save(lab)
    const elapsedMs = performance.now() - startedAt
    progress('done')
    // Every HSM answered a moment ago: the report is made from what the lab just saw, not probed again.
    const status = reportOf(layout, lab, new Map(lab.clusters.flatMap(cluster => cluster.hsms.map(hsm => [hsm, {
      status: hsmStatus(layout, lab, cluster, hsm, hsm.pid, 'ACTIVE'),
      preco: hasPreco.get(hsm)
    }]))))
    return { dir: layout.dir, started, activated, elapsedMs, topology, status }
  } finally {
    await release()
  }
}

function serverConfigs (layout: LabLayout, lab: LabState, cluster: ClusterState): ServerConfig[] {
  return cluster.hsms.map(hsm => ({
    name: serverNameOf(lab.addressing, hsm),
    hostname: hsm.host,
    port: hsm.port,
    caFile: layout.trustAnchorFile(cluster.region, cluster.name),
    enabled: true
  }))
}

/** What the status probe learnt about one HSM. */
interface Inspection {
  status: HsmStatus
  /** Whether it still has its PRECO; undefined when it did not answer. */
  preco: boolean | undefined
}

function hsmStatus (layout: LabLayout, lab: LabState, cluster: ClusterState, hsm: HsmState, pid: number | null, state: HsmRunState): HsmStatus {
  // The contract's fields first, in DESIGN.md's order.
  return {
    id: hsm.id,
    pid,
    state,
    endpoint: endpointOf(hsm),
    server: hsm.index,
    name: serverNameOf(lab.addressing, hsm),
    dataDir: layout.dataDir(cluster.region, cluster.name, hsm.index),
    log: layout.logFile(cluster.region, cluster.name, hsm.index)
  }
}

/** Probes one HSM: is its process alive, does it answer as itself, does it still have its PRECO. */
async function inspectHsm (layout: LabLayout, lab: LabState, cluster: ClusterState, hsm: HsmState, anchor: Uint8Array | undefined): Promise<Inspection> {
  const alive = hsm.port !== 0 && await isHsmProcess(hsm.pid, layout.dataDir(cluster.region, cluster.name, hsm.index))
  if (!alive || anchor === undefined) return { status: hsmStatus(layout, lab, cluster, hsm, null, 'DOWN'), preco: undefined }
  const degraded: Inspection = { status: hsmStatus(layout, lab, cluster, hsm, hsm.pid, 'DEGRADED'), preco: undefined }
  try {
    const connection = await connectTo(cluster, hsm, anchor, labDefaults.probeTimeoutMs)
    try {
      if (connection.hsmId !== hsm.id) return degraded
      const { users } = await connection.call('listUsers', {}, { timeoutMs: labDefaults.probeTimeoutMs })
      return { status: hsmStatus(layout, lab, cluster, hsm, hsm.pid, 'ACTIVE'), preco: users.some(u => u.userType === 'PRECO') }
    } finally {
      await connection.close()
    }
  } catch {
    return degraded
  }
}

/** The status report from what is known of each HSM. */
function reportOf (layout: LabLayout, lab: LabState, seen: Map<HsmState, Inspection>): LabStatus {
  const clusterStatuses = lab.clusters.map((cluster): ClusterStatus => {
    const inspections = cluster.hsms.map(hsm => seen.get(hsm) ?? { status: hsmStatus(layout, lab, cluster, hsm, null, 'DOWN'), preco: undefined })
    const answering = inspections.filter(i => i.preco !== undefined)
    const activated = answering.length > 0 ? answering.every(i => i.preco === false) : cluster.activated
    const allUp = inspections.every(i => i.status.state === 'ACTIVE')
    return {
      id: cluster.id,
      name: cluster.name,
      state: !allUp ? 'DEGRADED' : activated ? 'ACTIVE' : 'INITIALIZED',
      lineage: cluster.lineage,
      cmuConfig: layout.cmuConfig(cluster.region, cluster.name),
      region: cluster.region,
      activated,
      trustAnchor: layout.trustAnchorFile(cluster.region, cluster.name),
      hsms: inspections.map(i => i.status)
    }
  })
  const hsms = clusterStatuses.flatMap(c => c.hsms)
  const up = hsms.filter(h => h.state === 'ACTIVE').length
  return {
    dir: layout.dir,
    state: up === hsms.length && up > 0 ? 'RUNNING' : up === 0 ? 'STOPPED' : 'PARTIAL',
    faults: { endpoint: null },
    regions: lab.topology.regions.map(region => ({
      name: region.name,
      controlPlane: null,
      clusters: clusterStatuses.filter(c => c.region === region.name)
    })),
    kmuConfig: layout.kmuConfig,
    cmuConfigs: {}
  }
}

async function statusOf (layout: LabLayout, lab: LabState): Promise<LabStatus> {
  const seen = new Map<HsmState, Inspection>()
  await Promise.all(lab.clusters.map(async cluster => {
    const anchor = await readFile(layout.trustAnchorFile(cluster.region, cluster.name), 'utf8').then(decodeTrustAnchor).catch(() => undefined)
    await Promise.all(cluster.hsms.map(async hsm => { seen.set(hsm, await inspectHsm(layout, lab, cluster, hsm, anchor)) }))
  }))
  return reportOf(layout, lab, seen)
}

/** What runs in the lab in DIR, probed now; throws `LAB_ERR_NO_LAB` when DIR holds no lab. */
export async function labStatus (location: LabLocation = {}): Promise<LabStatus> {
  const layout = new LabLayout(labDir(location))
  const state = await readLabState(layout)
  if (state === undefined) throw new LabError(LAB_ERR_NO_LAB, `there is no lab in ${layout.dir}; start one with 'hsmlab up'${location.dir === undefined ? '' : ` --dir ${location.dir}`}`)
  return await statusOf(layout, state)
}

/** Options of `labDown`. */
export interface LabDownOptions extends LabLocation {
  /** Also delete the lab directory (every HSM's data, keys and logs). @default false */
  purge?: boolean
  /** How long each process may take to exit after SIGTERM before SIGKILL, in milliseconds. @default labDefaults.stopTimeoutMs */
  stopTimeoutMs?: number
}

/** Stops every process of the lab in DIR (SIGTERM, then SIGKILL after a deadline); idempotent. */
export async function labDown (options: LabDownOptions = {}): Promise<LabDownResult> {
  const layout = new LabLayout(labDir(options))
  const result: LabDownResult = { dir: layout.dir, found: false, stopped: [], purged: false }
  // Without lab.json there is nothing of ours to stop, and --purge does not remove a directory it did not make.
  if (!await exists(layout.stateFile)) return result
  result.found = true
  const release = await acquireLabLock(layout)
  let released = false
  try {
    let lab: LabState | undefined
    try {
      lab = await readLabState(layout)
    } catch (err) {
      // A state file that cannot be read stops nothing, but --purge may still remove it.
      if (options.purge !== true) throw err
    }
    if (lab !== undefined) {
      const writer = new LabStateWriter(layout)
      const all = lab.clusters.flatMap(cluster => cluster.hsms.map(hsm => ({ cluster, hsm })))
      await Promise.all(all.map(async ({ cluster, hsm }) => {
        const pid = hsm.pid
        if (pid === null) return
        if (await isHsmProcess(pid, layout.dataDir(cluster.region, cluster.name, hsm.index))) {
          const how = await stopProcess(pid, options.stopTimeoutMs ?? labDefaults.stopTimeoutMs)
          if (how !== 'gone') result.stopped.push({ region: cluster.region, cluster: cluster.name, server: hsm.index, hsmId: hsm.id, pid, how })
        }
        hsm.pid = null
      }))
      await writer.save(lab)
    }
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
