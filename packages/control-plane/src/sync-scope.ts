/**
 * The scope of a synchronisation task (issue 12): which resources of the primary reach its
 * replicas. Keys by handle, every key of an owner (`Owners`: a key made later by that owner is in
 * scope by itself), or all keys; users by name, for KEYS_AND_USERS replicas only. A scope only
 * grows: `mergeScope` is a union, and nothing takes a resource out again.
 */
import type { SyncResource } from '@hsmlab/protocol'
import type { SyncScopeRecord, SyncType } from './state-store.js'

/** The scope as the API spells it. */
export interface SyncScope {
  Keys?: { All?: boolean, Owners?: string[], Handles?: number[] }
  Users?: string[]
}

/** An empty scope. */
export function emptyScope (): SyncScopeRecord {
  return { keysAll: false, owners: [], handles: [], users: [] }
}

/** `into` with every resource of `added` (the scope only grows); sorted and without repeats. */
export function mergeScope (into: SyncScopeRecord, added: SyncScope | undefined): SyncScopeRecord {
  const unique = <T>(items: T[], order: (a: T, b: T) => number): T[] => [...new Set(items)].sort(order)
  return {
    keysAll: into.keysAll || added?.Keys?.All === true,
    owners: unique([...into.owners, ...(added?.Keys?.Owners ?? [])], (a, b) => a.localeCompare(b)),
    handles: unique([...into.handles, ...(added?.Keys?.Handles ?? [])], (a, b) => a - b),
    users: unique([...into.users, ...(added?.Users ?? [])], (a, b) => a.localeCompare(b))
  }
}

/** True when `added` names no resource at all. */
export function scopeIsEmpty (added: SyncScope | undefined): boolean {
  return added?.Keys?.All !== true && (added?.Keys?.Owners ?? []).length === 0 && (added?.Keys?.Handles ?? []).length === 0 && (added?.Users ?? []).length === 0
}

/** The scope as the API answers it: only the parts that hold something. */
export function renderScope (scope: SyncScopeRecord): SyncScope {
  const keys: NonNullable<SyncScope['Keys']> = {
    ...(scope.keysAll ? { All: true } : {}),
    ...(scope.owners.length > 0 ? { Owners: scope.owners } : {}),
    ...(scope.handles.length > 0 ? { Handles: scope.handles } : {})
  }
  return { ...(Object.keys(keys).length > 0 ? { Keys: keys } : {}), ...(scope.users.length > 0 ? { Users: scope.users } : {}) }
}

/** A scope made fast to ask: sets instead of lists. */
export interface ScopeMatcher {
  /** True when the resource is in scope for a replica of `syncType`. */
  has: (resource: Pick<SyncResource, 'kind'> & { handle?: number, owner?: string, name?: string }, syncType: SyncType) => boolean
}

/** The matcher of a scope. */
export function scopeMatcher (scope: SyncScopeRecord): ScopeMatcher {
  const owners = new Set(scope.owners)
  const handles = new Set(scope.handles)
  const users = new Set(scope.users)
  return {
    has: (resource, syncType) => {
      if (resource.kind === 'key') {
        return scope.keysAll || (resource.handle !== undefined && handles.has(resource.handle)) || (resource.owner !== undefined && owners.has(resource.owner))
      }
      return syncType === 'KEYS_AND_USERS' && resource.name !== undefined && users.has(resource.name)
    }
  }
}

/** The key of a resource in maps: `k:<handle>` or `u:<name>`. */
export function resourceKey (resource: { kind: 'key' | 'user', handle?: number, name?: string }): string {
  return resource.kind === 'key' ? `k:${resource.handle ?? -1}` : `u:${resource.name ?? ''}`
}
