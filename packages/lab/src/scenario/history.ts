/**
 * The history of a scenario run: every operation the workload invoked, and how it ended — `ok`
 * (acknowledged), `failed` (the system said no, with a cause: nothing was written, or for a
 * fan-out, what was written is listed), or `unknown` (no answer: timed out or the connection was
 * lost; it may or may not have taken effect). The checkers read it; nothing else in it is
 * interpreted.
 *
 * `History` records in memory and, when given a file, appends each event as one JSON line the
 * moment it happens (`{"event":"invoke",...}` then `{"event":"complete",...}`), so that a run
 * that crashed still leaves what it did, and tests can watch a run from outside.
 */
import { appendFileSync } from 'node:fs'
import type { WorkloadOpName } from './scenario-file.js'

export type Outcome = 'ok' | 'failed' | 'unknown'

/** One operation of the workload. Fields are set when they apply to the operation. */
export interface OperationRecord {
  /** Sequence number in the run, from 1. */
  id: number
  /** `<stream>#<client>`. */
  client: string
  op: WorkloadOpName
  /** The cluster it works on (`<region>/<cluster>`); for syncKey and syncUser the source. */
  cluster: string
  /** syncKey, syncUser: the destination cluster; copyBackup: the destination region. */
  to?: string
  /** Milliseconds since the run started. */
  invokedAtMs: number
  completedAtMs?: number
  outcome: 'invoked' | Outcome
  /** Why it failed, or why its outcome is unknown. */
  cause?: string
  /** For an operation sent to several HSMs: why each one that did not succeed did not. */
  causes?: Array<{ target: string, cause: string }>

  /** The HSM (server id in its cluster) it was sent to; for syncs, the source HSM. */
  server?: number
  /** syncKey, syncUser: the destination HSMs (server ids). */
  destinationServers?: number[]
  /** createUser: the HSMs that acknowledged it (when not all did). */
  okServers?: number[]
  /** createKey, syncKey: the key's label. */
  label?: string
  /** createKey: AES key size. */
  sizeBytes?: number
  /** createKey: the crypto user it was created as (the key's owner). */
  owner?: string
  /** createUser, syncUser: the user. */
  userName?: string
  userType?: 'CU' | 'CO'
  /** createUser: its password, so the checkers can prove it is whole by logging in. */
  password?: string
  /** createKey: the handle the HSM answered; syncKey: the key's handle on the source. */
  handle?: number
  /** syncKey: the handle the destination answered. */
  destinationHandle?: number
  /** syncKey, syncUser: the operation that created the key or user. */
  sourceOp?: number
  /** createBackup: the backup made; copyBackup: the backup copied. */
  backupId?: string
}

/** What `History.invoke` takes: the record without its id, times and outcome. */
export type Invocation = Omit<OperationRecord, 'id' | 'invokedAtMs' | 'completedAtMs' | 'outcome' | 'cause' | 'causes'>

/** Records a run's operations; see the module comment. */
export class History {
  readonly records: OperationRecord[] = []
  private readonly startedAt: number
  private readonly file: string | undefined

  constructor (options: { file?: string, startedAt?: number } = {}) {
    this.file = options.file
    this.startedAt = options.startedAt ?? performance.now()
  }

  /** Milliseconds since the run started. */
  now (): number {
    return Math.round((performance.now() - this.startedAt) * 1000) / 1000
  }

  /** Records that an operation is about to be sent; returns its record, to complete later. */
  invoke (invocation: Invocation): OperationRecord {
    const record: OperationRecord = { id: this.records.length + 1, ...invocation, invokedAtMs: this.now(), outcome: 'invoked' }
    this.records.push(record)
    this.write({ event: 'invoke', ...record })
    return record
  }

  /** Records how an operation ended, with what it returned (`fields`). */
  complete (record: OperationRecord, outcome: Outcome, fields: Partial<OperationRecord> = {}): void {
    if (record.outcome !== 'invoked') return
    Object.assign(record, fields)
    record.outcome = outcome
    record.completedAtMs = this.now()
    this.write({ event: 'complete', ...record })
  }

  /** Notes something that happened around the operations (a fault, a kill, a phase) in the history file. */
  note (what: string): void {
    this.write({ event: 'note', atMs: this.now(), what })
  }

  /** Operations that never completed (the run ended first) become unknown. */
  closeOpen (cause: string): void {
    for (const record of this.records) if (record.outcome === 'invoked') this.complete(record, 'unknown', { cause })
  }

  /** Counts by outcome. */
  counts (): Record<'invoked' | Outcome, number> {
    const counts = { invoked: 0, ok: 0, failed: 0, unknown: 0 }
    for (const r of this.records) counts[r.outcome]++
    return counts
  }

  private write (event: Record<string, unknown>): void {
    if (this.file === undefined) return
    // Synchronous on purpose: a line is on disk before the operation goes on, even if the run dies.
    const { password: _password, ...safe } = event
    appendFileSync(this.file, JSON.stringify(safe) + '\n')
  }
}
