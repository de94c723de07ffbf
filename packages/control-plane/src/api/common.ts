/**
 * What several handlers share: lookups of clusters and backups, pagination tokens, tag rules,
 * filters, retention policies.
 */
import { invalidRequest, notFound, tagError } from '../errors.js'
import type { BackupRecord, ClusterRecord, ControlPlaneState, Tag } from '../state-store.js'

/** The cluster, or CloudHsmResourceNotFoundException. */
export function clusterOf (state: Readonly<ControlPlaneState>, clusterId: string): ClusterRecord {
  const cluster = state.clusters[clusterId]
  if (cluster === undefined) throw notFound(`Cluster ${clusterId} not found`)
  return cluster
}

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


/** Reads a NextToken made by `nextToken` for the same listing; CloudHsmInvalidRequestException otherwise. */
export function readToken (token: string | undefined, listing: string): number {
  if (token === undefined) return 0
  try {
    const json = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { l?: unknown, o?: unknown }
    if (json.l === listing && typeof json.o === 'number' && Number.isSafeInteger(json.o) && json.o >= 0) return json.o
  } catch {
    // Falls through to the error below.
  }
  throw invalidRequest(`The NextToken '${token}' is not valid for this request; use the NextToken of the previous response, unchanged`)
}

/** A page of `items` from `offset`, with the NextToken of the next page when there is one. */
export function page<T> (items: T[], offset: number, maxResults: number | undefined, listing: string): { items: T[], nextToken?: string } {
  const size = maxResults ?? items.length
  const slice = items.slice(offset, offset + size)
  const next = offset + size
  return next < items.length ? { items: slice, nextToken: Buffer.from(JSON.stringify({ l: listing, o: next })).toString('base64url') } : { items: slice }
}

/**
 * Tag rules beyond the model's shapes: no `aws:` keys (reserved), no key twice in one list.
 * Throws CloudHsmTagException.
 */
export function checkTags (tags: readonly Tag[] | undefined): Tag[] {
  if (tags === undefined) return []
  const seen = new Set<string>()
  for (const tag of tags) {
    if (tag.Key.toLowerCase().startsWith('aws:')) throw tagError(`Tag key '${tag.Key}' is not allowed: keys starting with 'aws:' are reserved for AWS use`)
    if (seen.has(tag.Key)) throw tagError(`Tag key '${tag.Key}' appears more than once in the TagList; each key may be given once`)
    seen.add(tag.Key)
  }
  return tags.map(t => ({ Key: t.Key, Value: t.Value }))
}

/** The days of a BackupRetentionPolicy (Type DAYS, Value "7" to "379"). */
export function retentionDays (policy: { Type?: string, Value?: string } | undefined): number | undefined {
  if (policy === undefined) return undefined
  if (policy.Type === undefined || policy.Value === undefined) {
    throw invalidRequest('BackupRetentionPolicy needs both Type (DAYS) and Value (a number of days from 7 to 379, as a string)')
  }
  const days = Number(policy.Value)
  if (!Number.isInteger(days) || days < 7 || days > 379) {
    throw invalidRequest(`Invalid backup retention period ${policy.Value}: use a value between 7 - 379 days`)
  }
  return days
}

/** Checks a Filters map: only `allowed` keys; returns it typed. */
export function checkFilters (filters: Record<string, string[]> | undefined, allowed: readonly string[]): Record<string, string[]> {
  // Keyed by names from the request: no prototype, so that `__proto__` is a key like any other.
  const out = Object.create(null) as Record<string, string[]>
  for (const [key, values] of Object.entries(filters ?? {})) {
    if (!allowed.includes(key)) throw invalidRequest(`Invalid filter '${key}': the filters of this operation are ${allowed.join(', ')}`)
    out[key] = values
  }
  return out
}

/** Checks each value of one filter against `test`. */
export function checkFilterValues (filters: Record<string, string[]>, key: string, test: (value: string) => boolean, what: string): void {
  for (const value of filters[key] ?? []) {
    if (!test(value)) throw invalidRequest(`Invalid value '${value}' for filter ${key}: ${what}`)
  }
}
