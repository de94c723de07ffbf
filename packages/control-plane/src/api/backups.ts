/**
 * Backup operations: DescribeBackups, DeleteBackup, RestoreBackup, ModifyBackupAttributes,
 * CopyBackupToRegion, and hsmlab's extension HsmlabCreateBackup (reference F.5, F.7); and the
 * two internal endpoints other regions' control planes call during a copy.
 *
 * A copy (reference F.6): the source region checks the request, asks the destination region to
 * record a new backup (CREATE_IN_PROGRESS, no cluster, no retention, CopyTimestamp and Source*),
 * which it does durably before it answers, and only then answers the caller with
 * `{DestinationBackup: {CreateTimestamp, SourceBackup, SourceCluster, SourceRegion}}`. The
 * destination asks the source for the bytes as soon as the record request arrives, and stores
 * them once the record is durable (backup-copier.ts).
 *
 * A copy request that answered failure leaves nothing behind. The source answers
 * CloudHsmInternalFailureException only once it recorded the request as abandoned
 * (`abandonedCopies`, durably); from then on it refuses the bytes to that request (410), which
 * the destination takes as the end of the copy, and it tells the destination to drop whatever it
 * recorded (`POST /_hsmlab/copies/<request id>/cancel`, tried again until the destination
 * answers). So a copy the destination recorded before it became unreachable (killed after its
 * record was durable, before its answer arrived) is removed, not made READY, once it is back.
 */
import { createHash, randomUUID } from 'node:crypto'
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { randomResourceId } from '@hsmlab/hsm'
import { DAY_MS } from '../clock.js'
import { ApiError, internalFailure, invalidRequest, notFound } from '../errors.js'
import type { ApiErrorType } from '../errors.js'
import { isRestricted, partitionOf } from '../regions.js'
import type { RegionResponse } from '../regions.js'
import type { AbandonedCopyRecord, BackupRecord, BackupState, ControlPlaneState, Tag } from '../state-store.js'
import { fits, shapes } from '../validation.js'
import { clusterOf } from './clusters.js'
import { checkFilterValues, checkFilters, checkTags, page, readToken } from './common.js'
import type { ApiRequest } from '../api-types.js'
import type { ApiContext } from './context.js'
import { renderBackup } from './render.js'

export const BACKUP_STATES: readonly BackupState[] = ['CREATE_IN_PROGRESS', 'READY', 'DELETED', 'PENDING_DELETION']

/**
 * The backup id of a SourceBackupId (an id or a backup ARN); an ARN must name this region and
 * account (a backup of another region must be copied here first).
 */
export function backupIdOf (idOrArn: string, region: string, accountId: string): string {
  const match = /^arn:(aws(?:-us-gov)?):cloudhsm:([^:]+):(\d{12}):backup\/(backup-[2-7a-zA-Z]{11,16})$/.exec(idOrArn)
  if (match === null) return idOrArn
  const [, , arnRegion = '', arnAccount = '', id = ''] = match
  if (arnRegion !== region) {
    throw invalidRequest(`Backup ${id} is in region ${arnRegion}: copy it to ${region} with CopyBackupToRegion, then create the cluster from the copy`)
  }
  if (arnAccount !== accountId) throw notFound(`Backup ${idOrArn} not found: it is not shared with account ${accountId}`)
  return id
}

/** The backup, or CloudHsmResourceNotFoundException. */
export function backupOf (state: Readonly<ControlPlaneState>, backupId: string): BackupRecord {
  const backup = state.backups[backupId]
  if (backup === undefined) throw notFound(`Backup ${backupId} not found`)
  return backup
}

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

/** Why a copy from `from` to `to` is not allowed (reference F.7), or undefined. */
export function copyRefusal (from: string, to: string): string | undefined {
  if (from === to) return `The destination region ${to} is the backup's own region; copy it to another region`
  if (partitionOf(from) !== partitionOf(to)) {
    const kind = (r: string): string => isRestricted(r) ? 'a restricted region' : 'a standard region'
    return `Backups cannot be copied between AWS restricted regions and standard regions (${from} is ${kind(from)}, ${to} is ${kind(to)})`
  }
  return undefined
}

/** What the source region asks the destination region to record (`POST /_hsmlab/copies`). */
export interface CopyRequest {
  requestId: string
  sourceRegion: string
  sourceBackup: string
  sourceCluster?: string
  createdAtMs: number
  hsmType: string
  mode?: 'FIPS' | 'NON_FIPS'
  tags: Tag[]
  nextSlot: number
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
    nextSlot: source.nextSlot
  }
  let lastError = ''
  let done = false
  for (let attempt = 0; attempt < 3 && !done; attempt++) {
    if (attempt > 0) await new Promise(resolve => setTimeout(resolve, 200 * 2 ** attempt))
    let response: RegionResponse
    try {
      response = await ctx.regionFetch(req.DestinationRegion, { method: 'POST', path: '/_hsmlab/copies', body: copy })
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
    const response = await ctx.regionFetch(region, { method: 'GET', path: `/_hsmlab/copies/${encodeURIComponent(requestId)}` })
    return response.status === 200
  } catch {
    return false
  }
}

function isCopyRequest (value: unknown): value is CopyRequest {
  const v = value as Partial<CopyRequest> | null
  return typeof v === 'object' && v !== null && typeof v.requestId === 'string' && typeof v.sourceRegion === 'string' &&
    typeof v.sourceBackup === 'string' && fits(v.sourceBackup, shapes.backupId) && typeof v.createdAtMs === 'number' &&
    typeof v.hsmType === 'string' && Array.isArray(v.tags) && typeof v.nextSlot === 'number' &&
    (v.sourceCluster === undefined || typeof v.sourceCluster === 'string') &&
    (v.mode === undefined || v.mode === 'FIPS' || v.mode === 'NON_FIPS') &&
    // Each tag an object: a null one made the record's tags throw, and the answer a 500.
    v.tags.every(t => typeof t === 'object' && t !== null && typeof t.Key === 'string' && typeof t.Value === 'string')
}

/** `POST /_hsmlab/copies`: records a copy in this (the destination) region, durably, and answers its id. */
export async function receiveCopy (ctx: ApiContext, body: unknown): Promise<{ BackupId: string }> {
  if (!isCopyRequest(body)) throw invalidRequest('not a copy request')
  const refusal = copyRefusal(body.sourceRegion, ctx.settings.region)
  if (refusal !== undefined) throw invalidRequest(refusal)
  // Ask the source for the bytes now, while the record is written: the copy's first attempt
  // takes this answer (the bytes are stored only once the record is durable). A repeated request
  // for a copy already recorded asks nothing.
  const recordedBefore = Object.values(ctx.store.state.backups).some(b => b.copy?.requestId === body.requestId)
  const firstAnswer = recordedBefore ? undefined : ctx.regionFetch(body.sourceRegion, { method: 'GET', path: backupBytesPath(body.sourceBackup, body.requestId) })
  // Read by the copy; when the record fails there is no copy, and nothing to report.
  firstAnswer?.catch(() => {})
  const backupId = await ctx.store.transact(draft => {
    const existing = Object.values(draft.backups).find(b => b.copy?.requestId === body.requestId)
    if (existing !== undefined) return existing.backupId
    const now = ctx.clock.now()
    const record: BackupRecord = {
      backupId: randomResourceId('backup'),
      state: 'CREATE_IN_PROGRESS',
      createdAtMs: body.createdAtMs,
      copiedAtMs: now,
      neverExpires: false,
      sourceRegion: body.sourceRegion,
      sourceBackup: body.sourceBackup,
      ...(body.sourceCluster === undefined ? {} : { sourceCluster: body.sourceCluster }),
      tags: body.tags.map(t => ({ Key: String(t.Key), Value: String(t.Value) })),
      hsmType: body.hsmType,
      ...(body.mode === undefined ? {} : { mode: body.mode }),
      reason: 'copy',
      nextSlot: body.nextSlot,
      copy: { requestId: body.requestId, deadlineLabMs: now + ctx.settings.copyRetryWindowLabSeconds * 1000, attempts: 0 }
    }
    draft.backups[record.backupId] = record
    return record.backupId
  })
  ctx.startCopy(backupId, firstAnswer)
  return { BackupId: backupId }
}

/** `GET /_hsmlab/copies/<request id>`: whether a copy request was recorded here (200) or not (404). */
export function copyRecorded (ctx: ApiContext, requestId: string): { status: number, body: unknown } {
  const backup = Object.values(ctx.store.state.backups).find(b => b.copy?.requestId === requestId)
  return backup === undefined ? { status: 404, body: { message: 'no such copy request' } } : { status: 200, body: { BackupId: backup.backupId } }
}

/** The path of `GET /_hsmlab/backups/<id>?copy=<request id>`, which another region's copy asks for a backup's bytes. */
export function backupBytesPath (backupId: string, requestId: string): string {
  return `/_hsmlab/backups/${backupId}?copy=${encodeURIComponent(requestId)}`
}

/** The status `GET /_hsmlab/backups/<id>?copy=<request id>` answers to a copy request the source answered with a failure: the copy ends. */
export const COPY_ABANDONED_STATUS = 410

/**
 * `POST /_hsmlab/copies/<request id>/cancel`, from the source region of a copy request it answered
 * with a failure: drops what this (the destination) region recorded of it, whatever its state;
 * a cluster created from it meanwhile keeps it. Answers whether anything was dropped.
 */
export async function cancelCopy (ctx: ApiContext, dataDir: string, requestId: string): Promise<{ dropped: string[] }> {
  const dropped = await ctx.store.transact(draft => {
    const out: string[] = []
    for (const backup of Object.values(draft.backups)) {
      if (backup.copy?.requestId !== requestId) continue
      if (Object.values(draft.clusters).some(c => c.sourceBackupId === backup.backupId && c.state !== 'DELETED')) continue
      delete draft.backups[backup.backupId]
      out.push(backup.backupId)
    }
    return out
  })
  await Promise.all(dropped.map(async id => { await rm(join(dataDir, 'backups', `${id}.backup`), { force: true }) }))
  return { dropped }
}

/** The status `GET /_hsmlab/backups/<id>` answers when the stored bytes are damaged: a copy of them fails for good. */
export const BACKUP_DAMAGED_STATUS = 422

/** What a backup file was when its bytes were last found to match their SHA-256. */
interface VerifiedFile {
  sha256: string
  size: number
  mtimeMs: number
  ctimeMs: number
  ino: number
}

/**
 * Backup files whose bytes were found to match `sha256` (read and hashed, or written from bytes
 * just hashed), by absolute path, with their stat at that moment; the newest last. A file whose
 * stat has not changed since is served without hashing it whole again.
 */
const verifiedFiles = new Map<string, VerifiedFile>()
const VERIFIED_FILES_MAX = 4096

/** The stat fields that tell a changed file. */
interface FileStat { size: number, mtimeMs: number, ctimeMs: number, ino: number }

/** Remembers that the file at `path` (absolute), as `stat` describes it, holds bytes of SHA-256 `sha256`. */
export function rememberVerifiedFile (path: string, stat: FileStat, sha256: string): void {
  verifiedFiles.delete(path)
  verifiedFiles.set(path, { sha256, size: stat.size, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs, ino: stat.ino })
  if (verifiedFiles.size > VERIFIED_FILES_MAX) {
    const oldest = verifiedFiles.keys().next()
    if (oldest.done !== true) verifiedFiles.delete(oldest.value)
  }
}

function verifiedUnchanged (path: string, stat: FileStat, sha256: string): boolean {
  const v = verifiedFiles.get(path)
  return v !== undefined && v.sha256 === sha256 && v.size === stat.size && v.mtimeMs === stat.mtimeMs && v.ctimeMs === stat.ctimeMs && v.ino === stat.ino
}

/**
 * `GET /_hsmlab/backups/<id>`: the bytes of a backup that has them (READY or PENDING_DELETION);
 * 409 while it is being made (ask again), 404 when it is unknown or DELETED, 422 when its stored
 * bytes are not the ones it was made with (give up).
 *
 * The bytes are hashed whole only when the file changed (size, mtime, ctime or inode) since they
 * were last found to match the SHA-256 recorded when the backup was made; a change that leaves
 * all of these as they were is still caught by the destination, which checks the bytes it gets
 * against that SHA-256 (sent along, `x-hsmlab-sha256`).
 */
export async function backupBytes (ctx: ApiContext, dataDir: string, backupId: string, requestId?: string): Promise<{ status: number, body: Uint8Array | unknown, sha256?: string }> {
  const abandoned = requestId === undefined ? undefined : ctx.store.state.abandonedCopies?.[requestId]
  if (abandoned !== undefined) {
    return { status: COPY_ABANDONED_STATUS, body: { __type: 'CloudHsmInvalidRequestException', message: `The copy request ${requestId ?? ''} of backup ${abandoned.backupId} to ${abandoned.region} was answered with a failure in ${ctx.settings.region}; nothing of it is to be kept` } }
  }
  const backup = ctx.store.state.backups[backupId]
  if (backup === undefined || backup.state === 'DELETED') {
    return { status: 404, body: { __type: 'CloudHsmResourceNotFoundException', message: `Backup ${backupId} not found${backup === undefined ? '' : ' (it is DELETED)'}` } }
  }
  if (backup.file === undefined || backup.state === 'CREATE_IN_PROGRESS') {
    return { status: 409, body: { __type: 'CloudHsmInvalidRequestException', message: `Backup ${backupId} is in state ${backup.state}; ask again later` } }
  }
  const path = resolve(dataDir, backup.file)
  const { sha256 } = backup
  // Read synchronously: a backup is read from the page cache in well under a millisecond per
  // megabyte (less than hashing it takes, which every request did before), while a read through
  // the thread pool (open, stat, reads, close) waits for a turn of the event loop at each step.
  let bytes: Buffer
  let stat: FileStat
  const fd = openSync(path, 'r')
  try {
    // The stat before the bytes: a change made while they are read shows in the next stat.
    stat = fstatSync(fd)
    bytes = readFileSync(fd)
  } finally {
    closeSync(fd)
  }
  if (sha256 !== undefined && !verifiedUnchanged(path, stat, sha256)) {
    // Bytes changed on disk since the backup was made can never be copied: say so (422, which
    // the destination does not retry) rather than send them for the destination to find damaged.
    if (createHash('sha256').update(bytes).digest('hex') !== sha256) {
      verifiedFiles.delete(path)
      return {
        status: BACKUP_DAMAGED_STATUS,
        body: { __type: 'CloudHsmInvalidRequestException', message: `Backup ${backupId} cannot be copied: its stored bytes (${backup.file}) no longer match the SHA-256 recorded when it was made; they were changed or damaged` }
      }
    }
    rememberVerifiedFile(path, stat, sha256)
  }
  return { status: 200, body: bytes, ...(sha256 === undefined ? {} : { sha256 }) }
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
