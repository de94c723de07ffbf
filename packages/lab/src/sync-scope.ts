/**
 * The words of synchronisation tasks (issue 12, seed 003) as the lab spells them, defined once for
 * the command line (`hsmlab sync ... --keys all --users alice`), the topology (`"sync": { "keys":
 * "all", "users": ["alice"] }`) and the control plane's API (`Scope: { Keys: { All: true }, Users:
 * ["alice"] }`), and the pure mapping of the API's answers to `hsmlab sync status --json`, whose
 * shape is a contract for scripts (docs/sync.md).
 *
 * The API's shapes are the control plane's own (`ApiSync*` here).
 */
import type { SyncResourceRecord, SyncScope as SyncScopeApi, SyncTask } from '@hsmlab/control-plane'

/** A replica's synchronisation type: token keys only, or also the users in scope. */
export type SyncType = 'KEYS' | 'KEYS_AND_USERS'
export const SYNC_TYPES: readonly SyncType[] = ['KEYS', 'KEYS_AND_USERS']

/** The most replicas a synchronisation task has (issue 12: "up to 3"). */
export const SYNC_REPLICAS_MAX = 3

/** A record's synchronisation status. */
export type SyncStatus = 'SYNCHRONIZING' | 'SYNCHRONIZED' | 'FAILED'
export const SYNC_STATUSES: readonly SyncStatus[] = ['SYNCHRONIZING', 'SYNCHRONIZED', 'FAILED']

/** Keys in scope: all of them, every key of some owners (later keys of theirs join by themselves), some handles. */
export interface SyncKeys {
  all: boolean
  owners: string[]
  handles: number[]
}

/** A scope as the lab holds it: what the command line or the topology asked to add. */
export interface SyncScope {
  keys?: SyncKeys
  users?: string[]
}

/** The control plane's API shapes (its `SyncScope`, `SyncTask`, `SyncResourceRecord`), under the names this module maps from. */
export type ApiSyncScope = SyncScopeApi
export type ApiSyncTask = SyncTask
export type ApiSyncResourceRecord = SyncResourceRecord

// Reference B.2: user names of 1 to 31 letters, digits or _ (as the topology's users).
const USER_NAME = /^[A-Za-z0-9_]{1,31}$/
// A key handle as CMU and KMU print it: a whole number from 1 (handles are 32-bit on the HSMs).
const HANDLE_MAX = 0xffff_ffff
const OWNER_PREFIX = 'owner:'

/** What `--keys` and the topology's `keys` accept, for messages. */
export const KEYS_SYNTAX = `"all", "owner:NAME" (every key of the user NAME, later ones too) or key handles (like 7,12); several owners and handles can be listed together`

/**
 * One item of a key scope (`all`, `owner:NAME`, a handle), added to `keys`; a string saying what is
 * wrong when it is none of them.
 */
function addKeyItem (keys: SyncKeys, item: unknown): string | undefined {
  if (typeof item === 'number' || (typeof item === 'string' && /^\d+$/.test(item.trim()))) {
    const handle = Number(item)
    if (!Number.isSafeInteger(handle) || handle < 1 || handle > HANDLE_MAX) return `${JSON.stringify(item)} is not a key handle (a whole number from 1 to ${HANDLE_MAX})`
    if (!keys.handles.includes(handle)) keys.handles.push(handle)
    return undefined
  }
  if (typeof item !== 'string') return `${JSON.stringify(item) ?? String(item)} is not ${KEYS_SYNTAX}`
  const text = item.trim()
  if (text === 'all') { keys.all = true; return undefined }
  if (text.startsWith(OWNER_PREFIX)) {
    const owner = text.slice(OWNER_PREFIX.length)
    if (!USER_NAME.test(owner)) return `"${text}" does not name a user: owner:NAME, NAME of 1 to 31 letters, digits or _`
    if (!keys.owners.some(o => o.toLowerCase() === owner.toLowerCase())) keys.owners.push(owner)
    return undefined
  }
  return `"${text}" is not ${KEYS_SYNTAX}`
}

/**
 * The keys of a scope from the command line (`all`, `owner:alice`, `7,12,owner:bob`) or a topology
 * (`"all"`, `"owner:alice"`, `[7, 12, "owner:bob"]`); throws an Error saying what is wrong.
 */
export function parseSyncKeys (value: unknown): SyncKeys {
  // The normal form itself (`{ "all": true, "owners": [], "handles": [] }`): what a checked
  // topology holds, written again by those that pass it on (lab.json, a scenario's lab).
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const { all, owners, handles, ...rest } = value as Record<string, unknown>
    if (Object.keys(rest).length > 0 || typeof all !== 'boolean' || !Array.isArray(owners) || !Array.isArray(handles)) {
      throw new Error(`must be ${KEYS_SYNTAX}, or { "all": boolean, "owners": [names], "handles": [handles] }`)
    }
    return parseSyncKeys([...(all ? ['all'] : []), ...owners.map(o => `${OWNER_PREFIX}${String(o)}`), ...(handles as unknown[])])
  }
  const keys: SyncKeys = { all: false, owners: [], handles: [] }
  const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : [value]
  if (items.length === 0 || (typeof value === 'string' && value.trim() === '')) throw new Error(`names no key: give ${KEYS_SYNTAX}`)
  for (const item of items) {
    const problem = addKeyItem(keys, item)
    if (problem !== undefined) throw new Error(problem)
  }
  return keys
}

/** The users of a scope from the command line (`alice,bob`) or a topology (`["alice", "bob"]`); throws an Error saying what is wrong. */
export function parseSyncUsers (value: unknown): string[] {
  const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',').map(s => s.trim()) : undefined
  if (items === undefined) throw new Error('must be user names (like alice,bob)')
  if (items.length === 0 || (typeof value === 'string' && value.trim() === '')) throw new Error('names no user')
  const users: string[] = []
  for (const item of items) {
    if (typeof item !== 'string' || !USER_NAME.test(item)) throw new Error(`${JSON.stringify(item) ?? String(item)} is not a user name (1 to 31 letters, digits or _)`)
    if (!users.some(u => u.toLowerCase() === item.toLowerCase())) users.push(item)
  }
  return users
}

/** A synchronisation type from the command line or a topology; throws an Error saying what is wrong. */
export function parseSyncType (value: unknown): SyncType {
  if (typeof value === 'string' && (SYNC_TYPES as readonly string[]).includes(value)) return value as SyncType
  throw new Error(`must be ${SYNC_TYPES.join(' or ')}, not ${JSON.stringify(value) ?? String(value)}`)
}

/** A status filter of `hsmlab sync status --status`; throws an Error saying what is wrong. */
export function parseSyncStatus (value: string): SyncStatus {
  const upper = value.toUpperCase()
  if ((SYNC_STATUSES as readonly string[]).includes(upper)) return upper as SyncStatus
  throw new Error(`must be one of ${SYNC_STATUSES.join(', ')}, not '${value}'`)
}

/** A `REGION/CLUSTER` reference; throws an Error saying what is wrong. */
export function parseClusterRef (text: string): { region: string, cluster: string } {
  const parts = text.split('/')
  if (parts.length !== 2 || parts[0] === '' || parts[1] === '') throw new Error(`'${text}' does not name a cluster as REGION/CLUSTER (like us-east-1/primary)`)
  return { region: parts[0] as string, cluster: parts[1] as string }
}

/** The API's `Scope` of a lab scope (fields left out when empty, as the API's optional fields are). */
export function apiScopeOf (scope: SyncScope): ApiSyncScope {
  const out: ApiSyncScope = {}
  if (scope.keys !== undefined) {
    const keys: NonNullable<ApiSyncScope['Keys']> = {}
    if (scope.keys.all) keys.All = true
    if (scope.keys.owners.length > 0) keys.Owners = [...scope.keys.owners]
    if (scope.keys.handles.length > 0) keys.Handles = [...scope.keys.handles]
    out.Keys = keys
  }
  if (scope.users !== undefined && scope.users.length > 0) out.Users = [...scope.users]
  return out
}

/** The scope in `hsmlab sync status --json` and `hsmlab status --json`: every field present. */
export interface SyncScopeJson {
  keys: { all: boolean, owners: string[], handles: number[] }
  users: string[]
}

export function scopeJsonOf (scope: ApiSyncScope): SyncScopeJson {
  return {
    keys: { all: scope.Keys?.All === true, owners: [...scope.Keys?.Owners ?? []], handles: [...scope.Keys?.Handles ?? []] },
    users: [...scope.Users ?? []]
  }
}

/**
 * What the lab's scope adds to a task's: empty when the task already holds all of it (the lab's
 * `up` adds only what is missing; a scope only grows).
 */
export function missingScope (task: ApiSyncScope, wanted: SyncScope): SyncScope {
  const out: SyncScope = {}
  if (wanted.keys !== undefined) {
    const has = task.Keys ?? {}
    const keys: SyncKeys = {
      all: wanted.keys.all && has.All !== true,
      owners: wanted.keys.owners.filter(o => !(has.Owners ?? []).some(h => h.toLowerCase() === o.toLowerCase())),
      handles: wanted.keys.handles.filter(h => !(has.Handles ?? []).includes(h))
    }
    if (keys.all || keys.owners.length > 0 || keys.handles.length > 0) out.keys = keys
  }
  const users = (wanted.users ?? []).filter(u => !(task.Users ?? []).some(h => h.toLowerCase() === u.toLowerCase()))
  if (users.length > 0) out.users = users
  return out
}

/** A cluster of the lab by id: its region and name; undefined for one the lab did not make. */
export type ClusterNamer = (clusterId: string) => { region: string, cluster: string } | undefined

/** One replica in the JSON of `hsmlab sync status` and `hsmlab status`. */
export interface SyncReplicaJson {
  region: string
  /** Its name in the lab; null for a cluster the lab did not make. */
  cluster: string | null
  clusterId: string
  type: SyncType
  state: 'ASSOCIATED' | 'DISASSOCIATED'
}

/** One record in `hsmlab sync status --json`. */
export interface SyncResourceJson {
  /** A key: its handle on the primary (decimal); a user: its name. */
  resourceId: string
  resourceType: 'KEY' | 'USER'
  replicaClusterId: string
  status: SyncStatus
  failureCause: { code: string, message: string } | null
  /** ISO 8601 times; null before the first attempt or success. */
  lastAttemptAt: string | null
  lastSuccessAt: string | null
  attempts: number
}

/** `hsmlab sync status --json` (issue 12): a contract for scripts, exactly these keys. */
export interface SyncStatusJson {
  primary: { region: string, cluster: string | null, clusterId: string }
  replicas: SyncReplicaJson[]
  scope: SyncScopeJson
  resources: SyncResourceJson[]
}

/** An epoch-seconds time of the API as ISO 8601 (null stays null). */
function isoOf (seconds: number | null): string | null {
  return seconds === null ? null : new Date(seconds * 1000).toISOString()
}

/**
 * `isoOf` remembering what it made: the records of one batch share their times (an attempt, an
 * apply), so 10,000 records hold a few hundred different times, not 20,000.
 */
function isoMemo (): (seconds: number | null) => string | null {
  const made = new Map<number, string>()
  return seconds => {
    if (seconds === null) return null
    let iso = made.get(seconds)
    if (iso === undefined) { iso = new Date(seconds * 1000).toISOString(); made.set(seconds, iso) }
    return iso
  }
}

export function replicasJsonOf (task: ApiSyncTask, nameOf: ClusterNamer): SyncReplicaJson[] {
  return task.Replicas.map(r => ({ region: r.Region, cluster: nameOf(r.ClusterId)?.cluster ?? null, clusterId: r.ClusterId, type: r.SyncType, state: r.State }))
}

export function resourceJsonOf (r: ApiSyncResourceRecord, iso: (seconds: number | null) => string | null = isoOf): SyncResourceJson {
  return {
    resourceId: r.ResourceId,
    resourceType: r.ResourceType,
    replicaClusterId: r.ReplicaClusterId,
    status: r.Status,
    failureCause: r.FailureCause === null ? null : { code: r.FailureCause.Code, message: r.FailureCause.Message },
    lastAttemptAt: iso(r.LastAttemptAt),
    lastSuccessAt: iso(r.LastSuccessAt),
    attempts: r.Attempts
  }
}

/** `hsmlab sync status --json` from a task and its records as the API lists them. */
export function syncStatusJsonOf (task: ApiSyncTask, records: readonly ApiSyncResourceRecord[], nameOf: ClusterNamer): SyncStatusJson {
  const iso = isoMemo()
  return {
    primary: { region: task.PrimaryRegion, cluster: nameOf(task.PrimaryClusterId)?.cluster ?? null, clusterId: task.PrimaryClusterId },
    replicas: replicasJsonOf(task, nameOf),
    scope: scopeJsonOf(task.Scope),
    resources: records.map(r => resourceJsonOf(r, iso))
  }
}

/** Records counted by status. */
export type SyncCounts = Record<SyncStatus, number>

export function countsOf (records: readonly { Status: SyncStatus }[]): SyncCounts {
  const counts: SyncCounts = { SYNCHRONIZING: 0, SYNCHRONIZED: 0, FAILED: 0 }
  for (const r of records) counts[r.Status]++
  return counts
}

/** A scope in one line, for people: `keys: all; users: alice`. */
export function describeScope (scope: SyncScopeJson): string {
  const keys = scope.keys.all ? ['all'] : [...scope.keys.owners.map(o => `owner:${o}`), ...scope.keys.handles.map(String)]
  return `keys: ${keys.length === 0 ? 'none' : keys.join(',')}; users: ${scope.users.length === 0 ? 'none' : scope.users.join(',')}`
}

/** A primary's task in `hsmlab status --json` (`syncTasks` of its cluster). */
export interface SyncTaskStatus {
  id: string
  replicas: Array<SyncReplicaJson & { counts: SyncCounts }>
  scope: SyncScopeJson
  /** Every record of the task counted by status. */
  counts: SyncCounts
}
