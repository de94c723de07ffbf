/**
 * What a primary cluster's control plane and a replica's control plane say to each other about a
 * synchronisation task (issue 12), on internal paths (server.ts) that cross the lab's WAN links
 * (and so its fault proxy), like the copies of copy-protocol.ts:
 *
 * - `POST /_hsmlab/sync/inventory` `{primaryClusterId, primaryRegion, replicaClusterId, lineage?, check?}`
 *   → `{lineage, resources: SyncResource[]}`: what the replica cluster holds (one of its ACTIVE HSMs
 *   tells it). With `check`, before an association: whether the cluster may become a replica of
 *   that primary at all; without, the replica must be associated with that primary.
 * - `POST /_hsmlab/sync/associate` `{primaryClusterId, primaryRegion, replicaClusterId, syncType, lineage?}` → `{}`:
 *   record the association (idempotent) and make the cluster's HSMs read-only replicas.
 * - `POST /_hsmlab/sync/disassociate` `{primaryClusterId, primaryRegion, replicaClusterId, syncType}` → `{}`: for good
 *   (also when the association never reached the replica: its HSMs become read-only all the same).
 * - `POST /_hsmlab/sync/apply` `{primaryClusterId, replicaClusterId, objects: base64[], deleteKeys, deleteUsers}`
 *   → `{outcomes: SyncOutcome[]}`: insert or replace masked objects and delete resources on one
 *   ACTIVE HSM of the replica, which spreads them in its cluster.
 *
 * A refusal answers `{__type, message, code}` with a status: 400 `REFUSED` (an association
 * refused, the message says what is in the way), 404 (no such cluster), 409
 * `REPLICA_DISASSOCIATED` or `REPLICA_NOT_ASSOCIATED`, 503 `REPLICA_UNAVAILABLE` (no ACTIVE HSM).
 * Every body is checked here before it is used.
 */
import type { SyncOutcome, SyncResource } from '@hsmlab/protocol'
import { USER_TYPES } from '@hsmlab/protocol'
import type { SyncType } from './state-store.js'
import { fits, shapes } from './validation.js'

export const SYNC_INVENTORY_PATH = '/_hsmlab/sync/inventory'
export const SYNC_ASSOCIATE_PATH = '/_hsmlab/sync/associate'
export const SYNC_DISASSOCIATE_PATH = '/_hsmlab/sync/disassociate'
export const SYNC_APPLY_PATH = '/_hsmlab/sync/apply'

/**
 * The failure causes of a synchronisation record (stable codes, docs/control-plane.md "Records
 * and failure causes"): the control plane's own, then the outcome codes of the HSMs' syncApply.
 */
export const SYNC_FAILURE_CODES = [
  'REPLICA_UNREACHABLE', 'REPLICA_UNAVAILABLE', 'PRIMARY_UNAVAILABLE', 'REPLICA_NOT_ASSOCIATED', 'REPLICA_DISASSOCIATED',
  'HANDLE_TAKEN', 'OWNER_MISSING', 'LINEAGE_REFUSED', 'STORAGE_REFUSED', 'USER_OWNS_KEYS', 'NOT_A_REPLICA', 'INVALID_OBJECT'
] as const

/** Codes of the refusals of the internal paths (the `code` of their error bodies). */
export const SYNC_REFUSED = 'REFUSED'
export const SYNC_NOT_ASSOCIATED = 'REPLICA_NOT_ASSOCIATED'

const SYNC_TYPES: readonly SyncType[] = ['KEYS', 'KEYS_AND_USERS']

export interface SyncInventoryRequest { primaryClusterId: string, primaryRegion: string, replicaClusterId: string, lineage?: string, check?: boolean }
export interface SyncInventoryAnswer { lineage: string, resources: SyncResource[] }
export interface SyncAssociateRequest { primaryClusterId: string, primaryRegion: string, replicaClusterId: string, syncType: SyncType, lineage?: string }
export interface SyncDisassociateRequest { primaryClusterId: string, primaryRegion: string, replicaClusterId: string, syncType: SyncType }
export interface SyncApplyRequest { primaryClusterId: string, replicaClusterId: string, objects: string[], deleteKeys: number[], deleteUsers: string[] }
export interface SyncApplyAnswer { outcomes: SyncOutcome[] }

type Check = (v: Record<string, unknown>) => boolean

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const isClusterId = (v: unknown): boolean => typeof v === 'string' && fits(v, shapes.clusterId)
const isRegion = (v: unknown): boolean => typeof v === 'string' && fits(v, shapes.region)
const isName = (v: unknown): boolean => typeof v === 'string' && v.length > 0 && v.length <= 128
const isHandle = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
const optional = (v: unknown, test: (x: unknown) => boolean): boolean => v === undefined || test(v)
const listOf = (v: unknown, test: (x: unknown) => boolean, max: number): boolean => Array.isArray(v) && v.length <= max && v.every(test)

function guard<T> (check: Check): (value: unknown) => value is T {
  return (value: unknown): value is T => isObject(value) && check(value)
}

export const isSyncInventoryRequest = guard<SyncInventoryRequest>(v => isClusterId(v.primaryClusterId) && isRegion(v.primaryRegion) &&
  isClusterId(v.replicaClusterId) && optional(v.lineage, isName) && optional(v.check, x => typeof x === 'boolean'))

export const isSyncAssociateRequest = guard<SyncAssociateRequest>(v => isClusterId(v.primaryClusterId) && isRegion(v.primaryRegion) &&
  isClusterId(v.replicaClusterId) && SYNC_TYPES.includes(v.syncType as SyncType) && optional(v.lineage, isName))

export const isSyncDisassociateRequest = guard<SyncDisassociateRequest>(v => isClusterId(v.primaryClusterId) && isRegion(v.primaryRegion) &&
  isClusterId(v.replicaClusterId) && SYNC_TYPES.includes(v.syncType as SyncType))

/** An apply request; `objectsMax` bounds its lists (the protocol's batch limits). */
export function isSyncApplyRequest (value: unknown, objectsMax: number): value is SyncApplyRequest {
  return isObject(value) && isClusterId(value.primaryClusterId) && isClusterId(value.replicaClusterId) &&
    listOf(value.objects, x => typeof x === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(x), objectsMax) &&
    listOf(value.deleteKeys, isHandle, objectsMax) && listOf(value.deleteUsers, isName, objectsMax)
}

/** One resource of an inventory. */
export function isSyncResource (v: unknown): v is SyncResource {
  if (!isObject(v)) return false
  const digestOk = v.digest === null || (typeof v.digest === 'string' && /^[0-9a-f]{1,128}$/.test(v.digest))
  if (v.kind === 'key') return digestOk && isHandle(v.handle) && typeof v.owner === 'string'
  if (v.kind === 'user') return digestOk && isName(v.name) && (USER_TYPES as readonly unknown[]).includes(v.userType)
  return false
}

export const isSyncInventoryAnswer = guard<SyncInventoryAnswer>(v => typeof v.lineage === 'string' && Array.isArray(v.resources) && v.resources.every(isSyncResource))

/** One outcome of an apply. */
export function isSyncOutcome (v: unknown): v is SyncOutcome {
  return isObject(v) && (v.kind === 'key' || v.kind === 'user') && typeof v.ok === 'boolean' &&
    optional(v.handle, isHandle) && optional(v.name, isName) && optional(v.digest, x => typeof x === 'string') &&
    optional(v.code, x => typeof x === 'string') && optional(v.message, x => typeof x === 'string')
}

export const isSyncApplyAnswer = guard<SyncApplyAnswer>(v => Array.isArray(v.outcomes) && v.outcomes.every(isSyncOutcome))

/** The error body of an internal path: the API's shape plus a stable `code`. */
export function syncErrorBody (code: string, message: string): { __type: string, message: string, code: string } {
  return { __type: code === SYNC_REFUSED ? 'CloudHsmInvalidRequestException' : 'CloudHsmServiceException', message, code }
}

/** The `code` and `message` of an error body another region answered (or the raw text). */
export function readSyncError (body: Buffer): { code?: string, message: string } {
  const text = body.toString('utf8')
  try {
    const json = JSON.parse(text) as { code?: unknown, message?: unknown }
    return { ...(typeof json.code === 'string' ? { code: json.code } : {}), message: typeof json.message === 'string' ? json.message : text }
  } catch {
    return { message: text }
  }
}
