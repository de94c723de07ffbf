/**
 * Backup operations: DescribeBackups, DeleteBackup, RestoreBackup, ModifyBackupAttributes,
 * CopyBackupToRegion (its source side, up to the answer), and hsmlab's extension
 * HsmlabCreateBackup (reference F.5, F.7).
 *
 * A copy (reference F.6): the source region checks the request, asks the destination region to
 * record a new backup (CREATE_IN_PROGRESS, no cluster, no retention, CopyTimestamp and Source*),
 * which it does durably before it answers, and only then answers the caller with
 * `{DestinationBackup: {CreateTimestamp, SourceBackup, SourceCluster, SourceRegion}}`. The
 * destination asks the source for the bytes as soon as the record request arrives, and stores
 * them once the record is durable (reconcilers/copies.ts, which serves the internal paths of both
 * sides; copy-protocol.ts is what the two regions say).
 *
 * A copy request that answered failure leaves nothing behind. The source answers
 * CloudHsmInternalFailureException only once it recorded the request as abandoned
 * (`abandonedCopies`, durably); from then on it refuses the bytes to that request (410), which
 * the destination takes as the end of the copy, and it tells the destination to drop whatever it
 * recorded (`POST /_hsmlab/copies/<request id>/cancel`, tried again until the destination
 * answers). So a copy the destination recorded before it became unreachable (killed after its
 * record was durable, before its answer arrived) is removed, not made READY, once it is back.
 */
import { randomUUID } from 'node:crypto'
import { DAY_MS } from '../clock.js'
import { COPIES_PATH, copyRecordedPath, copyRefusal } from '../copy-protocol.js'
import type { CopyRequest } from '../copy-protocol.js'
import { ApiError, internalFailure, invalidRequest } from '../errors.js'
import type { ApiErrorType } from '../errors.js'
import type { RegionResponse } from '../regions.js'
import type { AbandonedCopyRecord, BackupState } from '../state-store.js'
import { fits, shapes } from '../validation.js'
import { backupOf, checkFilterValues, checkFilters, checkTags, clusterOf, page, readToken } from './common.js'
import type { ApiRequest } from '../api-types.js'
import type { ApiContext } from './context.js'
import { renderBackup } from './render.js'

export const BACKUP_STATES: readonly BackupState[] = ['CREATE_IN_PROGRESS', 'READY', 'DELETED', 'PENDING_DELETION']

export async function describeBackups (ctx: ApiContext, req: ApiRequest<'DescribeBackups'>): Promise<unknown> {
  const filters = checkFilters(req.Filters, ['backupIds', 'sourceBackupIds', 'clusterIds', 'states', 'neverExpires'])
  const idRule = 'backup- followed by 11 to 16 characters of [2-7a-zA-Z]'
  checkFilterValues(filters, 'backupIds', v => fits(v, shapes.backupId), `a backup id is ${idRule}`)
  checkFilterValues(filters, 'sourceBackupIds', v => fits(v, shapes.backupId), `a backup id is ${idRule}`)
  checkFilterValues(filters, 'clusterIds', v => fits(v, shapes.clusterId), 'a cluster id is cluster- followed by 11 to 16 characters of [2-7a-zA-Z]')
  checkFilterValues(filters, 'states', v => (BACKUP_STATES as readonly string[]).includes(v), `a state is one of ${BACKUP_STATES.join(', ')}`)
  checkFilterValues(filters, 'neverExpires', v => v === 'true' || v === 'false', 'use true or false')
  const offset = readToken(req.NextToken, 'backups')
  const neverExpires = filters.neverExpires
  const matches = req.Shared === true
    // hsmlab has one account: nobody shares backups with it.
    ? []
    : Object.values(ctx.store.state.backups)
      .filter(b => filters.backupIds === undefined || filters.backupIds.includes(b.backupId))
      .filter(b => filters.sourceBackupIds === undefined || (b.sourceBackup !== undefined && filters.sourceBackupIds.includes(b.sourceBackup)))
      .filter(b => filters.clusterIds === undefined || (b.clusterId !== undefined && filters.clusterIds.includes(b.clusterId)))
      .filter(b => filters.states === undefined || filters.states.includes(b.state))
      .filter(b => neverExpires === undefined ||
        (neverExpires.includes('true') && b.neverExpires) ||
        (neverExpires.includes('false') && !b.neverExpires && b.clusterId !== undefined))
      .sort((a, b) => (a.createdAtMs - b.createdAtMs || a.backupId.localeCompare(b.backupId)) * (req.SortAscending === true ? 1 : -1))
  const result = page(matches, offset, req.MaxResults, 'backups')
  const { region, accountId } = ctx.settings
  return { Backups: result.items.map(b => renderBackup(b, region, accountId)), ...(result.nextToken === undefined ? {} : { NextToken: result.nextToken }) }
}

export async function deleteBackup (ctx: ApiContext, req: ApiRequest<'DeleteBackup'>): Promise<unknown> {
  const backup = await ctx.store.transact(draft => {
    const backup = backupOf(draft, req.BackupId)
    if (backup.state !== 'READY') throw invalidRequest(`Backup ${backup.backupId} is in state ${backup.state}: only a READY backup can be deleted`)
    backup.state = 'PENDING_DELETION'
    backup.deleteAtMs = ctx.clock.now() + ctx.settings.backupDeletionWindowDays * DAY_MS
    return backup
  })
  ctx.kick()
  return { Backup: renderBackup(backup, ctx.settings.region, ctx.settings.accountId) }
}

export async function restoreBackup (ctx: ApiContext, req: ApiRequest<'RestoreBackup'>): Promise<unknown> {
  const backup = await ctx.store.transact(draft => {
    const backup = backupOf(draft, req.BackupId)
    if (backup.state !== 'PENDING_DELETION') throw invalidRequest(`Backup ${backup.backupId} is in state ${backup.state}: only a backup in PENDING_DELETION can be restored`)
    backup.state = 'READY'
    delete backup.deleteAtMs
    return backup
  })
  ctx.kick()
  return { Backup: renderBackup(backup, ctx.settings.region, ctx.settings.accountId) }
}

export async function modifyBackupAttributes (ctx: ApiContext, req: ApiRequest<'ModifyBackupAttributes'>): Promise<unknown> {
  const backup = await ctx.store.transact(draft => {
    const backup = backupOf(draft, req.BackupId)
    if (backup.state === 'DELETED') throw invalidRequest(`Backup ${backup.backupId} is in state DELETED: its attributes can no longer be changed`)
    backup.neverExpires = req.NeverExpires
    return backup
  })
  return { Backup: renderBackup(backup, ctx.settings.region, ctx.settings.accountId) }
}

export async function copyBackupToRegion (ctx: ApiContext, req: ApiRequest<'CopyBackupToRegion'>): Promise<unknown> {
  const tags = req.TagList === undefined ? undefined : checkTags(req.TagList)
  const { region } = ctx.settings
  const source = backupOf(ctx.store.state, req.BackupId)
  if (source.state === 'DELETED') throw invalidRequest(`Backup ${source.backupId} is in state DELETED and cannot be copied`)
  const refusal = copyRefusal(region, req.DestinationRegion)
  if (refusal !== undefined) throw invalidRequest(refusal)
  const regions = await ctx.regions()
  if (regions[req.DestinationRegion] === undefined) {
    throw invalidRequest(`Region ${req.DestinationRegion} is not available in this hsmlab installation (its regions: ${[region, ...Object.keys(regions).filter(r => r !== region)].join(', ')})`)
  }
  const sourceCluster = source.clusterId ?? source.sourceCluster
  const copy: CopyRequest = {
    requestId: randomUUID(),
    sourceRegion: region,
    sourceBackup: source.backupId,
    ...(sourceCluster === undefined ? {} : { sourceCluster }),
    createdAtMs: source.createdAtMs,
    hsmType: source.hsmType,
    ...(source.mode === undefined ? {} : { mode: source.mode }),
    tags: tags ?? source.tags,
    nextSlot: source.nextSlot,
    ...(source.clusterCertificate === undefined ? {} : { clusterCertificate: source.clusterCertificate })
  }
  let lastError = ''
  let done = false
  for (let attempt = 0; attempt < 3 && !done; attempt++) {
    if (attempt > 0) await new Promise(resolve => setTimeout(resolve, 200 * 2 ** attempt))
    let response: RegionResponse
    try {
      response = await ctx.regionFetch(req.DestinationRegion, { method: 'POST', path: COPIES_PATH, body: copy })
    } catch (err) {
      lastError = (err as Error).message
      // The request may have been recorded before the connection failed.
      done = await recorded(ctx, req.DestinationRegion, copy.requestId)
      continue
    }
    if (response.status === 200) { done = true; break }
    const text = response.body.toString('utf8')
    let type: ApiErrorType = 'CloudHsmInternalFailureException'
    let message = text
    try {
      const json = JSON.parse(text) as { __type?: ApiErrorType, message?: string }
      if (json.__type !== undefined) type = json.__type
      if (json.message !== undefined) message = json.message
    } catch { /* not JSON */ }
    if (response.status < 500) throw new ApiError(type, `Region ${req.DestinationRegion} refused the copy: ${message}`, response.status)
    lastError = `${response.status} ${message}`
  }
  if (!done) {
    // Before the failure is answered: the destination may have recorded the copy before it became
    // unreachable; the request is abandoned for good, and what it left there is removed.
    await ctx.store.transact(draft => {
      draft.abandonedCopies ??= Object.create(null) as Record<string, AbandonedCopyRecord>
      draft.abandonedCopies[copy.requestId] = { region: req.DestinationRegion, backupId: source.backupId, atLabMs: ctx.clock.now() }
    })
    ctx.kick()
    throw internalFailure(`Region ${req.DestinationRegion} cannot be reached to copy backup ${source.backupId}: ${lastError}; try again (nothing of this request is kept)`)
  }
  return {
    DestinationBackup: {
      CreateTimestamp: source.createdAtMs / 1000,
      SourceBackup: source.backupId,
      SourceCluster: sourceCluster,
      SourceRegion: region
    }
  }
}

// After a failed attempt, asks the destination whether the copy was recorded after all.
async function recorded (ctx: ApiContext, region: string, requestId: string): Promise<boolean> {
  try {
    const response = await ctx.regionFetch(region, { method: 'GET', path: copyRecordedPath(requestId) })
    return response.status === 200
  } catch {
    return false
  }
}

export async function hsmlabCreateBackup (ctx: ApiContext, req: ApiRequest<'HsmlabCreateBackup'>): Promise<unknown> {
  const state = ctx.store.state
  const cluster = clusterOf(state, req.ClusterId)
  if (cluster.state !== 'ACTIVE' && cluster.state !== 'DEGRADED') {
    throw invalidRequest(`Cluster ${cluster.clusterId} is in state ${cluster.state}: HsmlabCreateBackup needs it to be ACTIVE or DEGRADED`)
  }
  if (!Object.values(state.hsms).some(h => h.clusterId === cluster.clusterId && h.state === 'ACTIVE')) {
    throw invalidRequest(`Cluster ${cluster.clusterId} has no ACTIVE HSM to make a backup from`)
  }
  const backupId = await ctx.requestBackup(cluster.clusterId)
  return { Backup: renderBackup(backupOf(ctx.store.state, backupId), ctx.settings.region, ctx.settings.accountId) }
}
