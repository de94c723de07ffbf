/**
 * hsmlab's synchronisation tasks (issue 12), served by the primary cluster's region: create a task,
 * describe tasks, associate and disassociate replicas, add resources to the scope (never remove
 * them), list the record of every resource on every replica. The handlers check the request
 * and the association rules, change the state, and tell the replica's region; the service
 * (reconcilers/sync-tasks.ts) carries the resources over.
 *
 * Association rules, each a CloudHsmInvalidRequestException whose message says what is in the way:
 * the replica is in the primary's region; it is of another lineage (not made from a backup of
 * the primary); it is the primary of a task, or a replica of another; it was disassociated from
 * this primary before (the association cannot be re-established); it holds a resource (in the
 * kinds its synchronisation type carries) that the primary does not; the task would have more
 * than `syncReplicasMax` replicas. See docs/control-plane.md.
 */
import type { SyncResource } from '@hsmlab/protocol'
import { randomResourceId } from '@hsmlab/hsm'
import type { ApiRequest, SyncResourceRecord, SyncTask } from '../api-types.js'
import { internalFailure, invalidRequest, notFound } from '../errors.js'
import type { SyncTaskRecord, SyncType } from '../state-store.js'
import { SYNC_INVENTORY_PATH, isSyncInventoryAnswer, readSyncError } from '../sync-protocol.js'
import type { SyncInventoryRequest } from '../sync-protocol.js'
import type { SyncRecord } from '../sync-records.js'
import { emptyScope, mergeScope, renderScope, scopeIsEmpty } from '../sync-scope.js'
import { clusterOf, page, readToken } from './common.js'
import type { ApiContext } from './context.js'

/** The seed's words: a scope only grows. */
export const REMOVE_RESOURCES_REFUSAL = 'Removing previously selected resources is not supported: the scope of a synchronisation task can only grow (HsmlabAddSyncResources)'

const seconds = (labMs: number): number => labMs / 1000
const iso = (labMs: number | undefined): string => new Date(labMs ?? 0).toISOString()

/** A task as the API shows it. */
export function renderSyncTask (task: SyncTaskRecord, region: string): SyncTask {
  return {
    SyncTaskId: task.syncTaskId,
    PrimaryClusterId: task.primaryClusterId,
    PrimaryRegion: region,
    CreatedAt: seconds(task.createdAtMs),
    Replicas: task.replicas.map(r => ({
      ClusterId: r.clusterId,
      Region: r.region,
      SyncType: r.syncType,
      State: r.state,
      AssociatedAt: seconds(r.associatedAtMs),
      ...(r.disassociatedAtMs === undefined ? {} : { DisassociatedAt: seconds(r.disassociatedAtMs) })
    })),
    Scope: renderScope(task.scope)
  }
}

function renderRecord (r: SyncRecord): SyncResourceRecord {
  return {
    ResourceId: r.resourceId,
    ResourceType: r.resourceType,
    ReplicaClusterId: r.replicaClusterId,
    Status: r.status,
    FailureCause: r.failureCause === null ? null : { Code: r.failureCause.code, Message: r.failureCause.message },
    LastAttemptAt: r.lastAttemptAt,
    LastSuccessAt: r.lastSuccessAt,
    Attempts: r.attempts
  }
}

/** The task of a primary cluster, or CloudHsmResourceNotFoundException. */
function taskOf (ctx: ApiContext, clusterId: string): SyncTaskRecord {
  clusterOf(ctx.store.state, clusterId)
  const task = ctx.store.state.syncTasks?.[clusterId]
  if (task === undefined) throw notFound(`Cluster ${clusterId} is not the primary of a synchronisation task in ${ctx.settings.region}; create one with HsmlabCreateSyncTask`)
  return task
}

/** A replica asked for, before it is recorded. */
interface ReplicaAsked { ClusterId: string, Region: string, SyncType: SyncType }

/**
 * Checks that `replica` may be associated with the primary `primaryClusterId` (its task, if any,
 * is `task`); throws the refusal. `primaryResources` is asked for once, when a replica needs it.
 */
async function checkAssociation (ctx: ApiContext, primaryClusterId: string, task: SyncTaskRecord | undefined, replica: ReplicaAsked, primaryResources: () => Promise<SyncResource[]>): Promise<void> {
  const { region } = ctx.settings
  const state = ctx.store.state
  if (replica.Region === region) {
    throw invalidRequest(`Replica ${replica.ClusterId} is in ${region}, the region of primary ${primaryClusterId}: a replica must be in another region`)
  }
  const earlier = task?.replicas.find(r => r.clusterId === replica.ClusterId)
  if (earlier?.state === 'DISASSOCIATED') {
    throw invalidRequest(`Replica ${replica.ClusterId} (${earlier.region}) was disassociated from primary ${primaryClusterId} at ${iso(earlier.disassociatedAtMs)}; the association cannot be re-established`)
  }
  if (earlier !== undefined) throw invalidRequest(`Cluster ${replica.ClusterId} (${earlier.region}) is already a replica of primary ${primaryClusterId}`)
  for (const other of Object.values(state.syncTasks ?? {})) {
    const there = other.replicas.find(r => r.clusterId === replica.ClusterId)
    if (other.primaryClusterId === primaryClusterId || there === undefined) continue
    throw invalidRequest(there.state === 'DISASSOCIATED'
      ? `Cluster ${replica.ClusterId} (${there.region}) was disassociated from primary ${other.primaryClusterId} at ${iso(there.disassociatedAtMs)}; a disassociated replica keeps its resources read-only and cannot be associated again`
      : `Cluster ${replica.ClusterId} (${there.region}) is already a replica of primary ${other.primaryClusterId} (task ${other.syncTaskId})`)
  }
  const regions = await ctx.regions()
  if (regions[replica.Region] === undefined) {
    throw invalidRequest(`Region ${replica.Region} is not available in this hsmlab installation (its regions: ${[region, ...Object.keys(regions).filter(r => r !== region)].join(', ')})`)
  }
  const lineage = state.clusters[primaryClusterId]?.lineage
  const body: SyncInventoryRequest = { primaryClusterId, primaryRegion: region, replicaClusterId: replica.ClusterId, check: true, ...(lineage === undefined ? {} : { lineage }) }
  let response
  try {
    response = await ctx.regionFetch(replica.Region, { method: 'POST', path: SYNC_INVENTORY_PATH, body, timeoutMs: ctx.settings.syncRequestTimeoutMs })
  } catch (err) {
    throw internalFailure(`Region ${replica.Region} of replica ${replica.ClusterId} cannot be reached to check the association: ${(err as Error).message}; try again`)
  }
  if (response.status === 404) throw notFound(readSyncError(response.body).message)
  if (response.status === 400) throw invalidRequest(readSyncError(response.body).message)
  if (response.status !== 200) throw invalidRequest(`Replica ${replica.ClusterId} cannot be checked now: ${readSyncError(response.body).message}`)
  let answer: unknown
  try { answer = JSON.parse(response.body.toString('utf8')) } catch { answer = undefined }
  if (!isSyncInventoryAnswer(answer)) throw internalFailure(`Region ${replica.Region} answered an inventory of ${replica.ClusterId} that is not one`)
  if (lineage !== undefined && answer.lineage !== '' && answer.lineage !== lineage) {
    throw invalidRequest(`Cluster ${replica.ClusterId} (${replica.Region}) is of another lineage (${answer.lineage}) than primary ${primaryClusterId} (${lineage}): a replica must be made from a backup of its primary`)
  }
  let onPrimary: SyncResource[]
  try {
    onPrimary = await primaryResources()
  } catch (err) {
    throw invalidRequest(`The resources of primary ${primaryClusterId} cannot be read now (${(err as Error).message}); try again once it has an ACTIVE HSM`)
  }
  const keys = new Set(onPrimary.flatMap(r => r.kind === 'key' ? [r.handle] : []))
  const users = new Set(onPrimary.flatMap(r => r.kind === 'user' ? [r.name] : []))
  const extra = answer.resources.filter(r => r.kind === 'key' ? !keys.has(r.handle) : replica.SyncType === 'KEYS_AND_USERS' && !users.has(r.name))
  if (extra.length > 0) {
    const named = extra.slice(0, 10).map(r => r.kind === 'key' ? `key ${r.handle} (owner ${r.owner})` : `user ${r.name} (${r.userType})`).join(', ')
    throw invalidRequest(`Replica ${replica.ClusterId} (${replica.Region}) holds ${extra.length} resource${extra.length === 1 ? '' : 's'} that primary ${primaryClusterId} does not: ` +
      `${named}${extra.length > 10 ? ', ...' : ''}; a replica must hold nothing the primary does not (delete them, or use a new clone of the primary)`)
  }
}

/** The primary's resources, asked for at most once per request. */
function onceInventory (ctx: ApiContext, clusterId: string): () => Promise<SyncResource[]> {
  let asked: Promise<SyncResource[]> | undefined
  return async () => { asked ??= ctx.sync.primaryInventory(clusterId); return await asked }
}

/** Tells the replicas' regions now (the service tries again if one does not answer). */
async function confirmAll (ctx: ApiContext, primaryClusterId: string, replicaIds: readonly string[]): Promise<void> {
  await Promise.all(replicaIds.map(async id => await ctx.sync.confirmNow(primaryClusterId, id).catch(() => false)))
  ctx.kick()
}

export async function hsmlabCreateSyncTask (ctx: ApiContext, req: ApiRequest<'HsmlabCreateSyncTask'>): Promise<unknown> {
  const state = ctx.store.state
  const cluster = clusterOf(state, req.ClusterId)
  if (cluster.state !== 'ACTIVE' && cluster.state !== 'DEGRADED') {
    throw invalidRequest(`Cluster ${cluster.clusterId} is ${cluster.state}: the primary of a synchronisation task must be ACTIVE`)
  }
  const existing = state.syncTasks?.[req.ClusterId]
  if (existing !== undefined) {
    throw invalidRequest(`Cluster ${req.ClusterId} is already the primary of synchronisation task ${existing.syncTaskId}; add replicas with HsmlabAssociateSyncReplica`)
  }
  const asReplica = state.syncReplicaOf?.[req.ClusterId]
  if (asReplica !== undefined) {
    throw invalidRequest(`Cluster ${req.ClusterId} is ${asReplica.state === 'ASSOCIATED' ? '' : 'a disassociated '}replica of primary ${asReplica.primaryClusterId} (${asReplica.primaryRegion}); a replica cannot be the primary of a task`)
  }
  const ids = req.Replicas.map(r => r.ClusterId)
  const twice = ids.find((id, i) => ids.indexOf(id) !== i)
  if (twice !== undefined) throw invalidRequest(`Replica ${twice} is given twice; give each replica once`)
  if (req.Replicas.length > ctx.settings.syncReplicasMax) {
    throw invalidRequest(`A synchronisation task has at most ${ctx.settings.syncReplicasMax} replicas; ${req.Replicas.length} were given`)
  }
  const inventory = onceInventory(ctx, req.ClusterId)
  for (const replica of req.Replicas) await checkAssociation(ctx, req.ClusterId, undefined, replica, inventory)
  const now = ctx.clock.now()
  const task = await ctx.store.transact(draft => {
    if (draft.syncTasks?.[req.ClusterId] !== undefined) throw invalidRequest(`Cluster ${req.ClusterId} is already the primary of a synchronisation task`)
    const record: SyncTaskRecord = {
      syncTaskId: randomResourceId('cluster').replace(/^cluster-/, 'sync-'),
      primaryClusterId: req.ClusterId,
      createdAtMs: now,
      replicas: req.Replicas.map(r => ({ clusterId: r.ClusterId, region: r.Region, syncType: r.SyncType, state: 'ASSOCIATED', associatedAtMs: now, confirmed: false })),
      scope: mergeScope(emptyScope(), req.Scope)
    }
    draft.syncTasks ??= Object.create(null) as Record<string, SyncTaskRecord>
    draft.syncTasks[req.ClusterId] = record
    return record
  })
  await confirmAll(ctx, req.ClusterId, ids)
  return { SyncTask: renderSyncTask(ctx.store.state.syncTasks?.[req.ClusterId] ?? task, ctx.settings.region) }
}

export async function hsmlabDescribeSyncTasks (ctx: ApiContext, req: ApiRequest<'HsmlabDescribeSyncTasks'>): Promise<unknown> {
  const tasks = Object.values(ctx.store.state.syncTasks ?? {})
    .filter(t => req.ClusterId === undefined || t.primaryClusterId === req.ClusterId)
    .sort((a, b) => a.createdAtMs - b.createdAtMs || a.primaryClusterId.localeCompare(b.primaryClusterId))
  return { SyncTasks: tasks.map(t => renderSyncTask(t, ctx.settings.region)) }
}

export async function hsmlabAssociateSyncReplica (ctx: ApiContext, req: ApiRequest<'HsmlabAssociateSyncReplica'>): Promise<unknown> {
  const task = taskOf(ctx, req.ClusterId)
  const associated = task.replicas.filter(r => r.state === 'ASSOCIATED').length
  const replica: ReplicaAsked = { ClusterId: req.ReplicaClusterId, Region: req.ReplicaRegion, SyncType: req.SyncType }
  // The rules that name the replica itself come first: they say more than the count.
  if (!task.replicas.some(r => r.clusterId === req.ReplicaClusterId) && associated >= ctx.settings.syncReplicasMax) {
    throw invalidRequest(`Synchronisation task ${task.syncTaskId} of ${req.ClusterId} has ${associated} replicas already, the most a task may have (${ctx.settings.syncReplicasMax}); disassociate one first`)
  }
  await checkAssociation(ctx, req.ClusterId, task, replica, onceInventory(ctx, req.ClusterId))
  await ctx.store.transact(draft => {
    const t = draft.syncTasks?.[req.ClusterId]
    if (t === undefined) throw notFound(`Cluster ${req.ClusterId} is no longer the primary of a synchronisation task`)
    if (t.replicas.some(r => r.clusterId === req.ReplicaClusterId)) throw invalidRequest(`Cluster ${req.ReplicaClusterId} is already a replica of primary ${req.ClusterId}`)
    if (t.replicas.filter(r => r.state === 'ASSOCIATED').length >= ctx.settings.syncReplicasMax) {
      throw invalidRequest(`Synchronisation task ${t.syncTaskId} has ${ctx.settings.syncReplicasMax} replicas already, the most a task may have`)
    }
    t.replicas.push({ clusterId: req.ReplicaClusterId, region: req.ReplicaRegion, syncType: req.SyncType, state: 'ASSOCIATED', associatedAtMs: ctx.clock.now(), confirmed: false })
  })
  await confirmAll(ctx, req.ClusterId, [req.ReplicaClusterId])
  return { SyncTask: renderSyncTask(taskOf(ctx, req.ClusterId), ctx.settings.region) }
}

export async function hsmlabDisassociateSyncReplica (ctx: ApiContext, req: ApiRequest<'HsmlabDisassociateSyncReplica'>): Promise<unknown> {
  const task = taskOf(ctx, req.ClusterId)
  const replica = task.replicas.find(r => r.clusterId === req.ReplicaClusterId)
  if (replica === undefined) throw notFound(`Cluster ${req.ReplicaClusterId} is not a replica of primary ${req.ClusterId}`)
  if (replica.state === 'DISASSOCIATED') {
    throw invalidRequest(`Replica ${req.ReplicaClusterId} was disassociated from primary ${req.ClusterId} at ${iso(replica.disassociatedAtMs)} already`)
  }
  if (req.Confirm !== true) {
    throw invalidRequest(`Disassociating replica ${req.ReplicaClusterId} from primary ${req.ClusterId} is irreversible: the association can never be re-established, ` +
      'the replica keeps its synchronised resources but they cannot be modified, and it cannot create keys or users. Send Confirm: true to proceed')
  }
  await ctx.store.transact(draft => {
    const r = draft.syncTasks?.[req.ClusterId]?.replicas.find(x => x.clusterId === req.ReplicaClusterId)
    if (r === undefined || r.state === 'DISASSOCIATED') return
    r.state = 'DISASSOCIATED'
    r.disassociatedAtMs = ctx.clock.now()
    r.confirmed = false
  })
  await confirmAll(ctx, req.ClusterId, [req.ReplicaClusterId])
  return { SyncTask: renderSyncTask(taskOf(ctx, req.ClusterId), ctx.settings.region) }
}

export async function hsmlabAddSyncResources (ctx: ApiContext, req: ApiRequest<'HsmlabAddSyncResources'>): Promise<unknown> {
  taskOf(ctx, req.ClusterId)
  if (scopeIsEmpty(req.Scope)) throw invalidRequest('Scope names no resource: give Keys (All, Owners or Handles) or Users')
  await ctx.store.transact(draft => {
    const t = draft.syncTasks?.[req.ClusterId]
    if (t !== undefined) t.scope = mergeScope(t.scope, req.Scope)
  })
  ctx.sync.wake(req.ClusterId)
  return { SyncTask: renderSyncTask(taskOf(ctx, req.ClusterId), ctx.settings.region) }
}

export async function hsmlabRemoveSyncResources (_ctx: ApiContext, _req: ApiRequest<'HsmlabRemoveSyncResources'>): Promise<unknown> {
  throw invalidRequest(REMOVE_RESOURCES_REFUSAL)
}

export async function hsmlabListSyncResources (ctx: ApiContext, req: ApiRequest<'HsmlabListSyncResources'>): Promise<unknown> {
  taskOf(ctx, req.ClusterId)
  const listing = `sync:${req.ClusterId}:${req.ReplicaClusterId ?? ''}:${req.Status ?? ''}:${req.ResourceType ?? ''}`
  const offset = readToken(req.NextToken, listing)
  const all = ctx.sync.records(req.ClusterId)
  const matches = req.ReplicaClusterId === undefined && req.Status === undefined && req.ResourceType === undefined
    ? all
    : all.filter(r => (req.ReplicaClusterId === undefined || r.replicaClusterId === req.ReplicaClusterId) &&
      (req.Status === undefined || r.status === req.Status) && (req.ResourceType === undefined || r.resourceType === req.ResourceType))
  const result = page(matches as SyncRecord[], offset, req.MaxResults ?? 1000, listing)
  return { Resources: result.items.map(renderRecord), ...(result.nextToken === undefined ? {} : { NextToken: result.nextToken }) }
}
