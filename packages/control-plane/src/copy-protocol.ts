/**
 * What two regions' control planes say to each other about a copy (CopyBackupToRegion), on the
 * internal paths (server.ts): which copies are allowed, the request the source sends the
 * destination, the paths, and the statuses that end a copy. The source side (api/backups.ts,
 * reconcilers/copies.ts) and the destination side (reconcilers/copies.ts) both use it; neither
 * imports the other.
 */
import type { Tag } from './state-store.js'
import { fits, shapes } from './validation.js'
import { isRestricted, partitionOf } from './regions.js'

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
  /** The ClusterCertificate of the source backup's cluster (a cluster made from the copy shows it). */
  clusterCertificate?: string
}

/** True when a body another region sent is a whole copy request. */
export function isCopyRequest (value: unknown): value is CopyRequest {
  const v = value as Partial<CopyRequest> | null
  return typeof v === 'object' && v !== null && typeof v.requestId === 'string' && typeof v.sourceRegion === 'string' &&
    typeof v.sourceBackup === 'string' && fits(v.sourceBackup, shapes.backupId) && typeof v.createdAtMs === 'number' &&
    typeof v.hsmType === 'string' && Array.isArray(v.tags) && typeof v.nextSlot === 'number' &&
    (v.sourceCluster === undefined || typeof v.sourceCluster === 'string') &&
    (v.clusterCertificate === undefined || typeof v.clusterCertificate === 'string') &&
    (v.mode === undefined || v.mode === 'FIPS' || v.mode === 'NON_FIPS') &&
    // Each tag an object: a null one made the record's tags throw, and the answer a 500.
    v.tags.every(t => typeof t === 'object' && t !== null && typeof t.Key === 'string' && typeof t.Value === 'string')
}

/** `POST`: the source asks the destination to record a copy. */
export const COPIES_PATH = '/_hsmlab/copies'

/** `GET /_hsmlab/copies/<request id>`: whether the destination recorded a copy request (200) or not (404). */
export function copyRecordedPath (requestId: string): string {
  return `${COPIES_PATH}/${encodeURIComponent(requestId)}`
}

/** `POST /_hsmlab/copies/<request id>/cancel`: the source tells the destination to drop a copy it answered with a failure. */
export function copyCancelPath (requestId: string): string {
  return `${COPIES_PATH}/${encodeURIComponent(requestId)}/cancel`
}

/** The path of `GET /_hsmlab/backups/<id>?copy=<request id>`, which another region's copy asks for a backup's bytes. */
export function backupBytesPath (backupId: string, requestId: string): string {
  return `/_hsmlab/backups/${backupId}?copy=${encodeURIComponent(requestId)}`
}

/** The status `GET /_hsmlab/backups/<id>?copy=<request id>` answers to a copy request the source answered with a failure: the copy ends. */
export const COPY_ABANDONED_STATUS = 410

/** The status `GET /_hsmlab/backups/<id>` answers when the stored bytes are damaged: a copy of them fails for good. */
export const BACKUP_DAMAGED_STATUS = 422
