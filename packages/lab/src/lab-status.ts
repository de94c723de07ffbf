/**
 * `hsmlab status` as a function: what runs in the lab, asked now of each region's control plane,
 * or, where one does not answer, of its HSMs directly; and the report made from it, which
 * `labUp` also returns. See docs/lab.md.
 */
import { readFile } from 'node:fs/promises'
import { HsmConnection } from '@hsmlab/client'
import type { Cluster, ControlPlaneClient, Hsm } from '@hsmlab/control-plane'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import { clientStatusOf } from './client-daemons.js'
import { labDefaults } from './defaults.js'
import { LabError, LAB_ERR_NO_LAB } from './errors.js'
import { LabLayout, readLabState } from './lab-state.js'
import type { ClusterState, ControlPlaneState, HsmSeen, LabState } from './lab-state.js'
import { isLabProcess } from './launcher.js'
import { consoleStatusOf } from './console-process.js'
import type { ConsoleStatus } from './console-process.js'
import { clientEndpointsOf, faultEndpointOf, faultLayerActive, faultProxyAnswers } from './fault-layer.js'
import { clustersOf } from './topology.js'
import { clusterNamer, syncTasksOf } from './sync.js'
import type { SyncTaskStatus } from './sync-scope.js'
import { apiFor, crossPairs, endpointOf, healthOf, labDir, liveHsms } from './lab.js'
import type { ClusterStatus, ControlPlaneStatus, FaultsStatus, HsmRunState, HsmStatus, LabLocation, LabStatus, RegionStatus } from './lab.js'

/** The `cmuConfigs` key of a source and its clone: `<region>/<source>-><region>/<clone>`. */
export function crossConfigKey (source: { region: string, name: string }, clone: { region: string, name: string }): string {
  return `${source.region}/${source.name}->${clone.region}/${clone.name}`
}

/** What the lab knows of one region: whether its control plane answers, and its clusters as it describes them. */
interface RegionView {
  running: boolean
  /** The pid its control plane answered with (for one that runs elsewhere; the lab's own are recorded). */
  pid?: number | undefined
  clusters: Map<ClusterState, Cluster>
  /** When the control plane does not answer: each HSM as probed directly. */
  probed?: Map<string, { pid: number | null, state: HsmRunState }>
  /** The synchronisation tasks of its region's primaries, by primary cluster id. */
  syncTasks?: Map<string, SyncTaskStatus[]>
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
export function faultsStatusOf (layout: LabLayout, lab: LabState, running: boolean): FaultsStatus {
  const fp = lab.faultProxy
  const endpoint = lab.faultProxy === undefined || !faultLayerActive(lab) ? undefined : faultEndpointOf(lab)
  if (fp === undefined || endpoint === undefined) return { endpoint: null, seed: null, pid: null, state: 'NONE', log: null }
  // One that runs elsewhere has no pid or log of the lab's.
  const external = fp.endpoint !== undefined
  return { endpoint, seed: fp.seed, pid: running && !external ? fp.pid : null, state: running ? 'RUNNING' : 'DOWN', log: external ? null : layout.faultProxyLogFile }
}

/** The status report from what is known of each region and of the fault proxy. */
export function reportOf (layout: LabLayout, lab: LabState, views: Map<string, RegionView>, faults: FaultsStatus, consoleStatus?: ConsoleStatus): LabStatus {
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
      const files = { cmuConfig: layout.cmuConfig(record.region, record.name), trustAnchor: layout.trustAnchorFile(record.region, record.name), client: clientStatusOf(layout, lab, record) }
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
          hsms: liveHsms(described).map((h, i) => hsmStatusOf(layout, record, h, i, routed)),
          syncTasks: record.id === null ? [] : view?.syncTasks?.get(record.id) ?? []
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
        }),
        syncTasks: []
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
    cmuConfigs,
    console: consoleStatus ?? { endpoint: null, url: null, pid: null, state: 'NONE' }
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

/**
 * The synchronisation tasks of a region's primaries; none when its control plane has no
 * synchronisation service or cannot say now (the clusters' report does not wait on it).
 */
export async function syncTasksIn (api: ControlPlaneClient, lab: LabState): Promise<Map<string, SyncTaskStatus[]>> {
  try {
    return await syncTasksOf(api, clusterNamer(lab))
  } catch {
    return new Map()
  }
}

async function viewOf (layout: LabLayout, lab: LabState, cp: ControlPlaneState): Promise<RegionView> {
  const records = lab.clusters.filter(c => c.region === cp.region)
  const external = cp.endpoint !== undefined
  const health = external || await isLabProcess(cp.pid, layout.controlPlaneDir(cp.region)) ? await healthOf(cp) : undefined
  if (health !== undefined && 'pid' in health) {
    try {
      const api = apiFor(cp)
      const [all, syncTasks] = await Promise.all([describeAll(api), syncTasksIn(api, lab)])
      const clusters = new Map<ClusterState, Cluster>()
      for (const record of records) {
        const found = all.find(c => c.ClusterId === record.id && c.State !== 'DELETED')
        if (found !== undefined) clusters.set(record, found)
      }
      return { running: true, clusters, pid: health.pid, syncTasks }
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
  const [views, faultRunning, consoleStatus] = await Promise.all([
    Promise.all(lab.controlPlanes.map(async cp => [cp.region, await viewOf(layout, lab, cp)] as const)).then(entries => new Map(entries)),
    lab.faultProxy !== undefined && faultLayerActive(lab) ? faultProxyAnswers(layout, lab.faultProxy) : Promise.resolve(false),
    consoleStatusOf(layout, lab)
  ])
  return reportOf(layout, lab, views, faultsStatusOf(layout, lab, faultRunning), consoleStatus)
}
