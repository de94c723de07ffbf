/**
 * What `hsmlab up`, `status`, `down` and `backup` share: their public types (options, results,
 * the status report) and the small helpers each of them needs (where the lab lives, how a control
 * plane is reached and asked whether it answers). The operations themselves: lab-up.ts,
 * lab-status.ts, lab-admin.ts (down and backup). See docs/lab.md.
 */
import { access } from 'node:fs/promises'
import { resolve } from 'node:path'
// The client alone (not the package's index, which loads the whole control plane): `hsmlab sync
// status` and `hsmlab status` start in tens of milliseconds instead of hundreds.
import { ControlPlaneClient } from '@hsmlab/control-plane/client'
import type { Cluster, Hsm } from '@hsmlab/control-plane'
import type { ClientStatus } from './client-daemons.js'
import { labDefaults } from './defaults.js'
import type { ClusterState, ControlPlaneState, LabState } from './lab-state.js'
import type { LabFault } from './fault-vocabulary.js'
import type { SyncTaskStatus } from './sync-scope.js'
import type { ConsoleStatus } from './console-process.js'
import type { Topology } from './topology.js'

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
  /** Run the web console (docs/console.md); given, it is recorded (`--no-console`: false). @default the lab's recorded choice, else true */
  console?: boolean
  /** Run a client daemon per cluster (docs/pkcs11.md); given, it is recorded (`--no-clients`: false). @default the lab's recorded choice, else true */
  clients?: boolean
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
  /** Its client daemon and the PKCS#11 library: the socket, the module, and the environment an application sets (docs/pkcs11.md). */
  client: ClientStatus
  hsms: HsmStatus[]
  /**
   * The synchronisation task whose primary this cluster is (docs/sync.md), with its records
   * counted by status; empty for any other cluster, and when its control plane does not answer.
   */
  syncTasks: SyncTaskStatus[]
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
  /** The web console: its endpoint, the URL with its token, its pid (docs/console.md). */
  console: ConsoleStatus
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
  stopped: Array<{ kind: 'control-plane' | 'hsm' | 'fault-proxy' | 'client-daemon' | 'console', region: string, pid: number, how: 'terminated' | 'killed' }>
  /** Control planes that run elsewhere (`up --control-plane`), left as they are: stop them as they were started. */
  leftRunning: Array<{ region: string, endpoint: string }>
  purged: boolean
}

/** The absolute lab directory of a location. */
export function labDir (location: LabLocation = {}): string {
  return resolve(location.cwd ?? process.cwd(), location.dir ?? labDefaults.dir)
}

export async function exists (path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}

export function endpointOf (cp: ControlPlaneState): string {
  return cp.endpoint ?? `http://127.0.0.1:${cp.port}`
}

export function apiFor (cp: ControlPlaneState): ControlPlaneClient {
  return new ControlPlaneClient({ endpoint: endpointOf(cp), region: cp.region, timeoutMs: labDefaults.apiRequestTimeoutMs })
}

/**
 * Asks a control plane's `GET /_hsmlab/health`: its pid when it answers as the control plane of
 * `cp.region`, and, when the lab started it, as the recorded process; otherwise why not. One that
 * runs elsewhere answers with its pid in its own pid namespace, which is not compared.
 */
export async function healthOf (cp: ControlPlaneState, timeoutMs: number = labDefaults.probeTimeoutMs): Promise<{ pid: number } | { problem: string }> {
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
export async function answers (cp: ControlPlaneState, timeoutMs: number = labDefaults.probeTimeoutMs): Promise<boolean> {
  return 'pid' in await healthOf(cp, timeoutMs)
}

/** Every HSM of a cluster, as DescribeClusters lists them (its CMU configuration's order). */
export function liveHsms (cluster: Cluster | undefined): Hsm[] {
  return (cluster?.Hsms ?? []).filter(h => h.State !== 'DELETED')
}

/**
 * Every (source, clone) pair of the lab's topology (its clusters listed here, not with topology.ts's
 * clustersOf: this module is on the path of `hsmlab sync`, which need not load the topology checks).
 */
export function crossPairs (lab: LabState): Array<{ source: ClusterState, clone: ClusterState }> {
  const pairs: Array<{ source: ClusterState, clone: ClusterState }> = []
  for (const { region, cluster } of lab.topology.regions.flatMap(region => region.clusters.map(cluster => ({ region, cluster })))) {
    if (cluster.cloneOf === undefined) continue
    const { region: sourceRegion, cluster: sourceName } = cluster.cloneOf
    const clone = lab.clusters.find(c => c.region === region.name && c.name === cluster.name)
    const source = lab.clusters.find(c => c.region === sourceRegion && c.name === sourceName)
    if (clone !== undefined && source !== undefined) pairs.push({ source, clone })
  }
  return pairs
}
