/**
 * `hsmlab sync ...` as functions (docs/sync.md): the synchronisation tasks of the lab's clusters,
 * through the control plane of the primary's region (its Hsmlab*Sync* operations), with clusters
 * named as the lab names them (`us-east-1/primary`) instead of by id. Also the part of `hsmlab up`
 * that builds the tasks a topology declares, and the part of `hsmlab status` that shows them.
 */
import type { ControlPlaneClient } from '@hsmlab/control-plane'
import { LabError, LAB_ERR_CONTROL_PLANE, LAB_ERR_NO_LAB, LAB_ERR_NO_SYNC_TASK, LAB_ERR_SYNC, LAB_ERR_SYNC_SCOPE_ADD_ONLY, LAB_ERR_USAGE } from './errors.js'
import { LabLayout, readLabState } from './lab-state.js'
import type { ClusterState, ControlPlaneState, LabState } from './lab-state.js'
import { apiFor, labDir } from './lab.js'
import type { LabLocation } from './lab.js'
import { apiScopeOf, countsOf, missingScope, parseClusterRef, replicasJsonOf, scopeJsonOf, syncStatusJsonOf } from './sync-scope.js'
import type { ApiSyncResourceRecord, ApiSyncTask, ClusterNamer, SyncReplicaJson, SyncScope, SyncScopeJson, SyncStatus, SyncStatusJson, SyncTaskStatus, SyncType } from './sync-scope.js'

/** ControlPlaneClient's code for a request that got no answer (docs/errors.md), by its stable string: the package's index, which exports the constant, loads the whole control plane. */
const CP_ERR_HTTP = 'CP_ERR_HTTP'

/** Records per ListSyncResources page the lab asks for: the API's most, so that 10,000 records are one request. */
export const SYNC_LIST_PAGE_RECORDS_MAX = 10_000

/** The seed's sentence, said when resources are to be removed from a scope. */
export const SCOPE_ADD_ONLY_MESSAGE = 'You can only add resources to synchronize. Removing previously selected resources is not supported.'

/** The seed's list of what disassociating a replica does, said when `--yes` is missing. */
export const DISASSOCIATION_WARNING = `Disassociating a replica is irreversible. After disassociation:
  - the association between the primary and the replica cannot be re-established;
  - you cannot create keys and users in the replica;
  - the replica is removed from the synchronisation task but is not released (it keeps running);
  - the synchronised resources in the replica are retained but cannot be modified.`

/** The lab's clusters by id, for naming them in reports. */
export function clusterNamer (lab: LabState): ClusterNamer {
  const byId = new Map(lab.clusters.filter(c => c.id !== null).map(c => [c.id as string, { region: c.region, cluster: c.name }]))
  return id => byId.get(id)
}

/** What a sync command works on: the lab, the primary cluster and its region's control plane. */
interface SyncTarget {
  lab: LabState
  primary: ClusterState & { id: string }
  api: ControlPlaneClient
}

async function openLab (location: LabLocation): Promise<LabState> {
  const layout = new LabLayout(labDir(location))
  const lab = await readLabState(layout)
  if (lab === undefined) throw new LabError(LAB_ERR_NO_LAB, `there is no lab in ${layout.dir}; start one with 'hsmlab up'${location.dir === undefined ? '' : ` --dir ${location.dir}`}`)
  return lab
}

/** A cluster of the lab named REGION/CLUSTER, created (it has an id); LAB_ERR_USAGE when the lab has none of that name. */
function clusterOf (lab: LabState, ref: string, role: string): ClusterState & { id: string } {
  let parsed: { region: string, cluster: string }
  try { parsed = parseClusterRef(ref) } catch (err) { throw new LabError(LAB_ERR_USAGE, `${role}: ${(err as Error).message}`) }
  const record = lab.clusters.find(c => c.region === parsed.region && c.name === parsed.cluster)
  if (record === undefined) throw new LabError(LAB_ERR_USAGE, `${role}: the lab has no cluster '${ref}'; its clusters: ${lab.clusters.map(c => `${c.region}/${c.name}`).join(', ')}`)
  if (record.id === null) throw new LabError(LAB_ERR_SYNC, `${role}: cluster ${ref} has not been created yet: run 'hsmlab up'`)
  return record as ClusterState & { id: string }
}

async function targetOf (location: LabLocation, primaryRef: string): Promise<SyncTarget> {
  const lab = await openLab(location)
  const primary = clusterOf(lab, primaryRef, 'the primary')
  const cp = lab.controlPlanes.find(c => c.region === primary.region) as ControlPlaneState
  // No health probe first (its fetch alone costs a short command tens of milliseconds): a control
  // plane that does not answer fails the first call, which `calling` says so of.
  return { lab, primary, api: apiFor(cp) }
}

/** Runs one API call; a refusal or failure becomes LAB_ERR_SYNC with the control plane's words. */
async function calling<T> (what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (err) {
    if ((err as { code?: unknown }).code === CP_ERR_HTTP) throw new LabError(LAB_ERR_CONTROL_PLANE, `${what}: its control plane does not answer (run 'hsmlab up'): ${(err as Error).message}`, { cause: err })
    throw new LabError(LAB_ERR_SYNC, `${what}: ${(err as Error).message}`, { cause: err })
  }
}

/** The task of a primary; LAB_ERR_NO_SYNC_TASK when it has none. */
async function taskOf (target: SyncTarget, primaryRef: string): Promise<ApiSyncTask> {
  const tasks = await calling(`describing the synchronisation task of ${primaryRef}`, async () => await target.api.describeSyncTasks({ ClusterId: target.primary.id }))
  const task = tasks.find(t => t.PrimaryClusterId === target.primary.id)
  if (task === undefined) throw new LabError(LAB_ERR_NO_SYNC_TASK, `${primaryRef} (${target.primary.id}) is not the primary of a synchronisation task; make one with 'hsmlab sync create ${primaryRef} --replica REGION/CLUSTER --type KEYS|KEYS_AND_USERS'`)
  return task
}

/** A task as the sync commands print it (the status JSON without resources). */
export interface SyncTaskJson {
  primary: SyncStatusJson['primary']
  replicas: SyncReplicaJson[]
  scope: SyncScopeJson
}

export function taskJsonOf (task: ApiSyncTask, nameOf: ClusterNamer): SyncTaskJson {
  const { primary, replicas, scope } = syncStatusJsonOf(task, [], nameOf)
  return { primary, replicas, scope }
}

/** Options of the sync operations: where the lab is and which cluster is the primary (`region/cluster`). */
export interface SyncLocation extends LabLocation {
  primary: string
}

/** `hsmlab sync create`: a task with `primary` as its primary cluster, its replicas and its scope. */
export async function labSyncCreate (options: SyncLocation & { replicas: Array<{ cluster: string, type: SyncType }>, scope: SyncScope }): Promise<SyncTaskJson> {
  const target = await targetOf(options, options.primary)
  const replicas = options.replicas.map(r => {
    const replica = clusterOf(target.lab, r.cluster, 'the replica')
    return { ClusterId: replica.id, Region: replica.region, SyncType: r.type }
  })
  const task = await calling(`creating the synchronisation task of ${options.primary}`, async () =>
    await target.api.createSyncTask({ ClusterId: target.primary.id, Replicas: replicas, Scope: apiScopeOf(options.scope) }))
  return taskJsonOf(task, clusterNamer(target.lab))
}

/** `hsmlab sync add-replica`: associates one more replica with a task. */
export async function labSyncAddReplica (options: SyncLocation & { replica: string, type: SyncType }): Promise<SyncTaskJson> {
  const target = await targetOf(options, options.primary)
  const replica = clusterOf(target.lab, options.replica, 'the replica')
  const task = await calling(`associating ${options.replica} with the task of ${options.primary}`, async () =>
    await target.api.associateSyncReplica({ ClusterId: target.primary.id, ReplicaClusterId: replica.id, ReplicaRegion: replica.region, SyncType: options.type }))
  return taskJsonOf(task, clusterNamer(target.lab))
}

/** `hsmlab sync add-resources`: adds to a task's scope (a scope only grows). */
export async function labSyncAddResources (options: SyncLocation & { scope: SyncScope }): Promise<SyncTaskJson> {
  const target = await targetOf(options, options.primary)
  const task = await calling(`adding resources to the task of ${options.primary}`, async () =>
    await target.api.addSyncResources({ ClusterId: target.primary.id, Scope: apiScopeOf(options.scope) }))
  return taskJsonOf(task, clusterNamer(target.lab))
}

/** `hsmlab sync remove-resources`: always refused, as the seed says. */
export function labSyncRemoveResources (): never {
  throw new LabError(LAB_ERR_SYNC_SCOPE_ADD_ONLY, SCOPE_ADD_ONLY_MESSAGE)
}

/** `hsmlab sync remove-replica`: disassociates a replica, for good; `confirm` must be true. */
export async function labSyncRemoveReplica (options: SyncLocation & { replica: string, confirm: boolean }): Promise<SyncTaskJson> {
  if (!options.confirm) throw new LabError(LAB_ERR_USAGE, `${DISASSOCIATION_WARNING}\nConfirm with --yes.`)
  const target = await targetOf(options, options.primary)
  const replica = clusterOf(target.lab, options.replica, 'the replica')
  const task = await calling(`disassociating ${options.replica} from the task of ${options.primary}`, async () =>
    await target.api.disassociateSyncReplica({ ClusterId: target.primary.id, ReplicaClusterId: replica.id, Confirm: true }))
  return taskJsonOf(task, clusterNamer(target.lab))
}

/** Every record of a task that matches the filters, all pages. */
async function allRecords (api: ControlPlaneClient, input: { ClusterId: string, ReplicaClusterId?: string, Status?: SyncStatus }): Promise<ApiSyncResourceRecord[]> {
  return await api.allSyncResources({ ...input, MaxResults: SYNC_LIST_PAGE_RECORDS_MAX })
}

/** `hsmlab sync status`: the task of a primary and its records, filtered by replica and status. */
export async function labSyncStatus (options: SyncLocation & { replica?: string, status?: SyncStatus }): Promise<SyncStatusJson> {
  const target = await targetOf(options, options.primary)
  const replica = options.replica === undefined ? undefined : clusterOf(target.lab, options.replica, 'the replica')
  // The task and its records asked at once (one round trip less): the records need only the
  // primary's id; the task is checked once both answered.
  const listing = calling(`listing the synchronised resources of ${options.primary}`, async () => await allRecords(target.api, {
    ClusterId: target.primary.id,
    ...(replica === undefined ? {} : { ReplicaClusterId: replica.id }),
    ...(options.status === undefined ? {} : { Status: options.status })
  }))
  listing.catch(() => { /* the task's error, asked first, is the one said */ })
  const task = await taskOf(target, options.primary)
  if (replica !== undefined && !task.Replicas.some(r => r.ClusterId === replica.id)) {
    throw new LabError(LAB_ERR_SYNC, `${options.replica} (${replica.id}) is not a replica of the synchronisation task of ${options.primary}; its replicas: ${task.Replicas.map(r => r.ClusterId).join(', ')}`)
  }
  return syncStatusJsonOf(task, await listing, clusterNamer(target.lab))
}

/** The tasks whose primaries are in a region, as `hsmlab status` shows them; empty when the control plane has no sync service. */
export async function syncTasksOf (api: ControlPlaneClient, nameOf: ClusterNamer): Promise<Map<string, SyncTaskStatus[]>> {
  const out = new Map<string, SyncTaskStatus[]>()
  const tasks = await api.describeSyncTasks({})
  await Promise.all(tasks.map(async task => {
    const records = await allRecords(api, { ClusterId: task.PrimaryClusterId })
    const status: SyncTaskStatus = {
      id: task.SyncTaskId,
      replicas: replicasJsonOf(task, nameOf).map(r => ({ ...r, counts: countsOf(records.filter(x => x.ReplicaClusterId === r.clusterId)) })),
      scope: scopeJsonOf(task.Scope),
      counts: countsOf(records)
    }
    out.set(task.PrimaryClusterId, [...out.get(task.PrimaryClusterId) ?? [], status])
  }))
  return out
}

/**
 * Builds the tasks the topology declares, once every cluster is ACTIVE (`hsmlab up`): a task
 * that does not exist is created; one that does gains the replicas it lacks (not one that was
 * disassociated: that is for good) and the scope it lacks. Resolves with the primaries whose
 * task this call created or changed.
 */
export async function buildSyncTasks (lab: LabState, apiOf: (region: string) => ControlPlaneClient): Promise<string[]> {
  const changed: string[] = []
  await Promise.all(lab.topology.regions.flatMap(region => region.clusters.map(cluster => ({ region, cluster }))).map(async ({ region, cluster: spec }) => {
    if (spec.sync === undefined) return
    const name = `${region.name}/${spec.name}`
    const primary = lab.clusters.find(c => c.region === region.name && c.name === spec.name)
    if (primary?.id == null) return
    const primaryId = primary.id
    const replicas = spec.sync.replicas.map(r => {
      const record = lab.clusters.find(c => c.region === r.region && c.name === r.cluster)
      if (record?.id == null) throw new LabError(LAB_ERR_SYNC, `the replica ${r.region}/${r.cluster} of ${name} has not been created`)
      return { ClusterId: record.id, Region: r.region, SyncType: r.type }
    })
    const api = apiOf(region.name)
    const scope: SyncScope = {
      ...(spec.sync.keys === undefined ? {} : { keys: spec.sync.keys }),
      ...(spec.sync.users === undefined ? {} : { users: spec.sync.users })
    }
    await calling(`building the synchronisation task of ${name}`, async () => {
      const task = (await api.describeSyncTasks({ ClusterId: primaryId })).find(t => t.PrimaryClusterId === primaryId)
      if (task === undefined) {
        await api.createSyncTask({ ClusterId: primaryId, Replicas: replicas, Scope: apiScopeOf(scope) })
        changed.push(name)
        return
      }
      let did = false
      for (const r of replicas) {
        if (task.Replicas.some(x => x.ClusterId === r.ClusterId)) continue
        await api.associateSyncReplica({ ClusterId: primaryId, ReplicaClusterId: r.ClusterId, ReplicaRegion: r.Region, SyncType: r.SyncType })
        did = true
      }
      const missing = missingScope(task.Scope, scope)
      if (missing.keys !== undefined || missing.users !== undefined) {
        await api.addSyncResources({ ClusterId: primaryId, Scope: apiScopeOf(missing) })
        did = true
      }
      if (did) changed.push(name)
    })
  }))
  return changed
}
