/**
 * The records of synchronisation tasks (issue 12): one per resource and replica, with its status,
 * failure cause, attempts and times. A task of 10,000 resources must not rewrite a large file for
 * each resource, nor make every change of state.json (which every reconciler pass writes) carry
 * them; so they live in their own file, `sync-records.json`, in memory between writes. Changes are
 * made in memory and written in groups: `flush` writes the whole file (atomically, like the state)
 * at most once at a time, and once more afterwards if something changed meanwhile. A record is
 * what the service last knew; after a crash the service recomputes every difference between the
 * primary and its replicas, so a record written one group late is corrected on the next pass.
 *
 * Reads (HsmlabListSyncResources) come from memory: the records of a task are a Map of their own,
 * listed in a sorted order that is kept until the set of records changes.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '@hsmlab/process'
import { SYNC_RECORDS_FILE_NAME } from './defaults.js'
import { ControlPlaneError, CP_ERR_STATE } from './errors.js'

export type SyncStatus = 'SYNCHRONIZING' | 'SYNCHRONIZED' | 'FAILED'
export type SyncResourceType = 'KEY' | 'USER'

/** One record. Times are epoch seconds (lab clock), fractional. */
export interface SyncRecord {
  resourceId: string
  resourceType: SyncResourceType
  replicaClusterId: string
  status: SyncStatus
  failureCause: { code: string, message: string } | null
  lastAttemptAt: number | null
  lastSuccessAt: number | null
  attempts: number
}

const FORMAT = 'hsmlab-sync-records/v1'

/** As written: [replica, type, id, status, cause code, cause message, last attempt, last success, attempts]. */
type Row = [string, SyncResourceType, string, SyncStatus, string | null, string | null, number | null, number | null, number]

interface RecordsFile {
  format: typeof FORMAT
  tasks: Record<string, Row[]>
}

/** The key of a record inside its task. */
export function recordKey (replicaClusterId: string, resourceType: SyncResourceType, resourceId: string): string {
  return `${replicaClusterId}\0${resourceType}\0${resourceId}`
}

function compare (a: SyncRecord, b: SyncRecord): number {
  if (a.replicaClusterId !== b.replicaClusterId) return a.replicaClusterId < b.replicaClusterId ? -1 : 1
  if (a.resourceType !== b.resourceType) return a.resourceType < b.resourceType ? -1 : 1
  if (a.resourceType === 'KEY') return Number(a.resourceId) - Number(b.resourceId)
  return a.resourceId < b.resourceId ? -1 : a.resourceId > b.resourceId ? 1 : 0
}

/** The records of every task of this region, by primary cluster id. */
export class SyncRecords {
  readonly file: string
  private readonly tasks = new Map<string, Map<string, SyncRecord>>()
  /** Each task's records in listing order, until its set of records changes. */
  private readonly sorted = new Map<string, SyncRecord[]>()
  private dirty = false
  private writing: Promise<void> | undefined
  private timer: NodeJS.Timeout | undefined
  private readonly onError: (err: Error) => void

  private constructor (file: string, onError: (err: Error) => void) {
    this.file = file
    this.onError = onError
  }

  /** Reads `sync-records.json` of `dataDir` (none yet: no records). */
  static async open (dataDir: string, onError: (err: Error) => void = () => {}): Promise<SyncRecords> {
    const records = new SyncRecords(join(dataDir, SYNC_RECORDS_FILE_NAME), onError)
    let text: string | undefined
    try {
      text = await readFile(records.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new ControlPlaneError(CP_ERR_STATE, `cannot read ${records.file}: ${(err as Error).message}`, { cause: err })
    }
    if (text === undefined) return records
    let json: Partial<RecordsFile>
    try {
      json = JSON.parse(text) as Partial<RecordsFile>
    } catch (err) {
      throw new ControlPlaneError(CP_ERR_STATE, `the synchronisation records ${records.file} are not JSON (${(err as Error).message}); remove the file: the records are made again from the primary and its replicas`, { cause: err })
    }
    if (json.format !== FORMAT || typeof json.tasks !== 'object' || json.tasks === null) {
      throw new ControlPlaneError(CP_ERR_STATE, `${records.file} is not a ${FORMAT} file; remove it: the records are made again from the primary and its replicas`)
    }
    for (const [primary, rows] of Object.entries(json.tasks)) {
      const map = new Map<string, SyncRecord>()
      for (const [replicaClusterId, resourceType, resourceId, status, code, message, lastAttemptAt, lastSuccessAt, attempts] of rows) {
        map.set(recordKey(replicaClusterId, resourceType, resourceId), {
          replicaClusterId, resourceType, resourceId, status, failureCause: code === null ? null : { code, message: message ?? '' }, lastAttemptAt, lastSuccessAt, attempts
        })
      }
      records.tasks.set(primary, map)
    }
    return records
  }

  /** The record, if any (do not change it; use `set`). */
  get (primaryClusterId: string, key: string): SyncRecord | undefined {
    return this.tasks.get(primaryClusterId)?.get(key)
  }

  /** Every record of a task (a live view: do not change it or its records; use `set`, `remove`). */
  of (primaryClusterId: string): ReadonlyMap<string, SyncRecord> {
    return this.tasks.get(primaryClusterId) ?? new Map()
  }

  /** Sets a record; written with the next `flush`. */
  set (primaryClusterId: string, record: SyncRecord): void {
    let map = this.tasks.get(primaryClusterId)
    if (map === undefined) { map = new Map(); this.tasks.set(primaryClusterId, map) }
    const key = recordKey(record.replicaClusterId, record.resourceType, record.resourceId)
    const existing = map.get(key)
    if (existing === undefined) {
      this.sorted.delete(primaryClusterId)
      map.set(key, { ...record })
    } else {
      // Changed in place: the listing order (which holds the same objects) stays valid.
      Object.assign(existing, record)
    }
    this.dirty = true
  }

  /** Removes a record; written with the next `flush`. */
  remove (primaryClusterId: string, key: string): void {
    if (this.tasks.get(primaryClusterId)?.delete(key) === true) {
      this.sorted.delete(primaryClusterId)
      this.dirty = true
    }
  }

  /** The records of a task in listing order (replica, type, then handle or name). */
  list (primaryClusterId: string): readonly SyncRecord[] {
    let sorted = this.sorted.get(primaryClusterId)
    if (sorted === undefined) {
      sorted = [...this.of(primaryClusterId).values()].sort(compare)
      this.sorted.set(primaryClusterId, sorted)
    }
    return sorted
  }

  /**
   * Flushes within `delayMs`: the changes of that while go in one write, made after the work that
   * changed them (serializing thousands of records takes milliseconds of the event loop, which a
   * change on its way to a replica should not wait for).
   */
  flushSoon (delayMs: number): void {
    if (this.timer !== undefined || !this.dirty) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      void this.flush()
    }, delayMs)
    this.timer.unref()
  }

  /**
   * Writes the records if they changed: one write at a time; changes made during a write are
   * written by another one right after it. Resolves once what was changed before the call is on
   * disk. A failed write is reported to `onError` and tried again by the next flush.
   */
  async flush (): Promise<void> {
    if (this.timer !== undefined) { clearTimeout(this.timer); this.timer = undefined }
    while (this.writing !== undefined) await this.writing
    if (!this.dirty) return
    this.dirty = false
    const file: RecordsFile = { format: FORMAT, tasks: {} }
    for (const [primary, map] of this.tasks) {
      file.tasks[primary] = [...map.values()].map(r => [
        r.replicaClusterId, r.resourceType, r.resourceId, r.status, r.failureCause?.code ?? null, r.failureCause?.message ?? null, r.lastAttemptAt, r.lastSuccessAt, r.attempts
      ])
    }
    this.writing = writeFileAtomic(this.file, JSON.stringify(file)).catch((err: Error) => {
      this.dirty = true
      this.onError(err)
    }).finally(() => { this.writing = undefined })
    await this.writing
  }
}
