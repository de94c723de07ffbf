/**
 * The synchronisation service (issue 12), on the primary cluster's control plane: for each task,
 *
 * - a watch of one ACTIVE HSM of the primary (`syncChanges`, a long poll in a session elevated by
 *   `syncHello`) keeps a view of every resource there with its digest: a full list first, then
 *   the changes as they happen; each change wakes the pushers at once;
 * - a pusher per ASSOCIATED replica compares the view with what the replica holds (its
 *   inventory, asked of the replica's control plane over the WAN link, then kept up to date from
 *   the outcomes of what was applied) and sends the differences in scope: masked objects
 *   (`syncExtract` on the primary's HSM) and deletions, to `POST /_hsmlab/sync/apply` of the
 *   replica's region, in batches of bounded size. Anti-entropy over digests, not a log: after a
 *   failure, a restart or a cut, the inventory is asked again and the difference recomputed, so
 *   nothing is lost or applied twice (applying is idempotent on the HSM);
 * - the records (sync-records.ts): every resource in scope on every replica, SYNCHRONIZING while
 *   a change is on its way, SYNCHRONIZED once the replica holds it, FAILED with a cause when an
 *   attempt failed (the WAN request has a deadline, `syncRequestTimeoutMs`, so a replica region
 *   cut off fails them within seconds). Failed resources are tried again after a delay growing
 *   from `syncRetryDelayMs` by `syncRetryFactor` up to `syncRetryDelayMaxMs`, per replica for
 *   failures of the whole replica, per resource for the replica's refusal of one resource;
 * - the replica's region is told of associations and disassociations until it confirmed them.
 *
 * Deletions: a key the replica holds and the watched HSM does not is carried as a deletion only
 * when that HSM holds its tombstone (syncChanges lists them); a user likewise, only when deleteUser
 * deleted it on that HSM (its user tombstone; users are not replicated inside a cluster at all,
 * so an HSM that was away when a user was made never gets it), and no other reachable HSM of the
 * primary still holds it (asked before the deletion is sent; held back with backoff otherwise). The primary's HSMs converge by
 * in-cluster replication, so the watched HSM may lack a key another HSM of the primary made and
 * acknowledged: after a restart, or when the watch moves to another HSM because its own was
 * killed. Carrying that absence as a deletion would tombstone the key on the replica for good
 * (handles are never reused, and the replica's HSMs spread tombstones among themselves), and
 * the key, once the primary's HSMs caught up, would be refused HANDLE_TAKEN forever. Everything
 * else the watch sees is settled enough to carry: a key (or change) it reports is durable on that
 * HSM and reaches its peers by replication; a creation undone later (minServers not met) is
 * a tombstone, carried as a deletion then.
 *
 * Nothing here is needed to restart: the tasks are in the state, the views are rebuilt from the
 * HSMs, the records corrected by the first comparison.
 */
import type { SyncExtractedObject, SyncOutcome, SyncResource } from '@hsmlab/protocol'
import { SYNC_BATCH_KEYS_MAX, SYNC_BATCH_USERS_MAX } from '@hsmlab/protocol'
import type { HsmAddress, SyncHsmCaller } from '../hsm-links.js'
import type { RegionResponse } from '../regions.js'
import type { SyncTaskRecord, SyncTaskReplicaRecord } from '../state-store.js'
import { SYNC_APPLY_PATH, SYNC_ASSOCIATE_PATH, SYNC_DISASSOCIATE_PATH, SYNC_INVENTORY_PATH, SYNC_NOT_ASSOCIATED, isSyncApplyAnswer, isSyncInventoryAnswer, readSyncError } from '../sync-protocol.js'
import type { SyncApplyRequest, SyncAssociateRequest, SyncDisassociateRequest, SyncInventoryRequest } from '../sync-protocol.js'
import { recordKey } from '../sync-records.js'
import type { SyncRecord, SyncRecords, SyncResourceType } from '../sync-records.js'
import { resourceKey, scopeMatcher } from '../sync-scope.js'
import type { HsmDirectory } from './hsm-directory.js'
import type { ReconcilerComponents } from './runtime.js'

/** A failure cause of a record. */
export interface SyncCause { code: string, message: string }

/** What the primary's HSM holds, as the watch last heard it. */
class PrimaryView {
  hsmId: string | undefined
  epoch: string | undefined
  seq = 0
  ready = false
  failures = 0
  readonly resources = new Map<string, SyncResource>()
  /**
   * The handles the HSM holds tombstones of. Only these are deletions to carry: a key missing
   * from `resources` and not here is one the HSM has not received yet (see "Deletions" below).
   */
  readonly deletedKeys = new Set<number>()
  /**
   * The users (lowercase names) deleteUser deleted on the HSM. Users are not replicated inside a
   * cluster: one missing from `resources` and not here is one the HSM never received.
   */
  readonly deletedUsers = new Set<string>()
  /** Masked objects extracted (or being extracted) by resource, with the view's digest they were asked at; shared by the pushers. */
  readonly extracted = new Map<string, { digest: string | null, object: Promise<SyncExtractedObject | undefined> }>()
}

/** What one replica holds (as far as this control plane knows), and how its attempts went. */
class ReplicaView {
  /** The replica's resources: from its inventory, then kept up to date from what it applied. */
  known: Map<string, SyncResource> | undefined
  /** True after a failure: `known` may be wrong, the inventory is asked again before the next attempt. */
  stale = true
  /** When the inventory was last asked (real time). */
  inventoryAtRealMs = 0
  failures = 0
  nextAttemptAtRealMs = 0
  cause: SyncCause | undefined
  woken = true
  wake: (() => void) | undefined
  /** Per resource refused by the replica: consecutive failures and when to try it again. */
  readonly retries = new Map<string, { failures: number, atRealMs: number }>()
  /** Confirmation of the association or disassociation to the replica's region. */
  confirmFailures = 0
  nextConfirmAtRealMs = 0
}

/** One difference to carry to a replica. */
interface Change { key: string, type: SyncResourceType, id: string, resource: SyncResource, deletion: boolean }

const keyOf = (r: SyncResource): string => resourceKey(r.kind === 'key' ? { kind: 'key', handle: r.handle } : { kind: 'user', name: r.name })
const typeOf = (r: SyncResource): SyncResourceType => r.kind === 'key' ? 'KEY' : 'USER'
const idOf = (r: SyncResource): string => r.kind === 'key' ? String(r.handle) : r.name

async function sleep (ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return
  await new Promise<void>(resolve => {
    const timer = setTimeout(done, ms)
    function done (): void {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done)
  })
}

/** The synchronisation tasks whose primary is in this region. */
export class SyncTaskReconciler {
  private readonly c: ReconcilerComponents
  private readonly directory: HsmDirectory
  private readonly sync: SyncHsmCaller
  readonly records: SyncRecords
  private readonly region: string
  private readonly primaries = new Map<string, PrimaryView>()
  private readonly replicas = new Map<string, ReplicaView>()
  private readonly confirming = new Map<string, Promise<void>>()

  constructor (components: ReconcilerComponents & { directory: HsmDirectory, sync: SyncHsmCaller, records: SyncRecords, region: string }) {
    this.c = components
    this.directory = components.directory
    this.sync = components.sync
    this.records = components.records
    this.region = components.region
  }

  /** The delay before attempt `failures + 1` after `failures` failures in a row. */
  retryDelayMs (failures: number): number {
    const { syncRetryDelayMs, syncRetryFactor, syncRetryDelayMaxMs } = this.c.tuning
    return Math.min(syncRetryDelayMaxMs, syncRetryDelayMs * Math.max(1, syncRetryFactor) ** Math.max(0, Math.min(failures - 1, 30)))
  }

  /** One pass: watches, pushers and confirmations that should run do. */
  pass (): void {
    const now = this.c.runtime.realNow()
    for (const task of Object.values(this.c.store.state.syncTasks ?? {})) {
      const primary = task.primaryClusterId
      if (task.replicas.some(r => r.state === 'ASSOCIATED')) void this.c.runtime.run(`sync-watch:${primary}`, async () => { await this.watch(primary) })
      for (const replica of task.replicas) {
        const view = this.replicaView(primary, replica.clusterId)
        if (!replica.confirmed && now >= view.nextConfirmAtRealMs) {
          void this.c.runtime.run(`sync-confirm:${primary}:${replica.clusterId}`, async () => { await this.confirm(primary, replica.clusterId) })
        }
        if (replica.state === 'ASSOCIATED' && replica.confirmed) {
          void this.c.runtime.run(`sync-push:${primary}:${replica.clusterId}`, async () => { await this.push(primary, replica.clusterId) })
        }
        if (replica.state === 'DISASSOCIATED') this.markDisassociated(primary, replica)
      }
    }
  }

  /** Every resource on the primary's HSM (HsmlabAssociateSyncReplica compares it with a replica's). */
  async primaryInventory (primaryClusterId: string): Promise<SyncResource[]> {
    const view = this.primaries.get(primaryClusterId)
    if (view?.ready === true) return [...view.resources.values()]
    const address = this.primaryAddress(primaryClusterId, undefined)
    if (address === undefined) throw new Error(`cluster ${primaryClusterId} has no ACTIVE HSM`)
    const changes = await this.sync.call(address, 'syncChanges', { waitMs: 0 })
    return changes.resources.filter(r => r.digest !== null)
  }

  /** Tells the replica's region of an association or disassociation now; resolves whether it confirmed. */
  async confirmNow (primaryClusterId: string, replicaClusterId: string): Promise<boolean> {
    await this.confirm(primaryClusterId, replicaClusterId)
    return this.replicaOf(primaryClusterId, replicaClusterId)?.confirmed === true
  }

  /** Wakes the pushers of a task (its scope grew). */
  wake (primaryClusterId: string): void {
    for (const [key, view] of this.replicas) {
      if (key.startsWith(`${primaryClusterId}:`)) { view.woken = true; view.wake?.() }
    }
  }

  private replicaView (primary: string, replica: string): ReplicaView {
    const key = `${primary}:${replica}`
    let view = this.replicas.get(key)
    if (view === undefined) { view = new ReplicaView(); this.replicas.set(key, view) }
    return view
  }

  private replicaOf (primary: string, replica: string): SyncTaskReplicaRecord | undefined {
    return this.c.store.state.syncTasks?.[primary]?.replicas.find(r => r.clusterId === replica)
  }

  private primaryAddress (primary: string, prefer: string | undefined): HsmAddress | undefined {
    const running = this.directory.running(primary)
    const hsm = running.find(h => h.hsmId === prefer) ?? running[0]
    return hsm === undefined ? undefined : this.directory.addressOf(hsm)
  }

  // ------------------------------------------------------------------ the watch

  private async watch (primary: string): Promise<void> {
    const { runtime, tuning, log } = this.c
    const signal = runtime.signal
    let view = this.primaries.get(primary)
    if (view === undefined) { view = new PrimaryView(); this.primaries.set(primary, view) }
    while (!signal.aborted) {
      const task = this.c.store.state.syncTasks?.[primary]
      if (task === undefined || !task.replicas.some(r => r.state === 'ASSOCIATED')) return
      const address = this.primaryAddress(primary, view.hsmId)
      if (address === undefined) {
        view.failures++
        await sleep(this.retryDelayMs(view.failures), signal)
        continue
      }
      const same = address.hsmId === view.hsmId && view.epoch !== undefined
      const waitMs = same && view.ready ? tuning.syncWatchWaitMs : 0
      try {
        const asked = this.sync.call(address, 'syncChanges', same ? { epoch: view.epoch, sinceSeq: view.seq, waitMs } : { waitMs: 0 }, waitMs + tuning.hsmRequestTimeoutMs)
        const changes = await raceAbort(asked, signal)
        if (changes === undefined) return
        view.hsmId = address.hsmId
        if (changes.full) {
          view.resources.clear()
          view.extracted.clear()
          view.deletedKeys.clear()
          for (const handle of changes.deletedKeys ?? []) view.deletedKeys.add(handle)
          view.deletedUsers.clear()
          for (const name of changes.deletedUsers ?? []) view.deletedUsers.add(name.toLowerCase())
        }
        for (const r of changes.resources) {
          view.extracted.delete(keyOf(r))
          if (r.digest === null) view.resources.delete(keyOf(r))
          else view.resources.set(keyOf(r), r)
          if (r.kind === 'key') {
            if (r.digest === null) view.deletedKeys.add(r.handle)
            else view.deletedKeys.delete(r.handle)
          } else {
            // A user the HSM held and no longer holds: deleteUser deleted it there.
            if (r.digest === null) view.deletedUsers.add(r.name.toLowerCase())
            else view.deletedUsers.delete(r.name.toLowerCase())
          }
        }
        view.epoch = changes.epoch
        view.seq = changes.seq
        view.failures = 0
        if (!view.ready || changes.full || changes.resources.length > 0) {
          view.ready = true
          this.wake(primary)
        }
      } catch (err) {
        view.failures++
        log.debug({ primary, hsmId: address.hsmId, err: (err as Error).message }, 'watching the primary for changes failed; trying again')
        await sleep(this.retryDelayMs(view.failures), signal)
      }
    }
  }

  // ------------------------------------------------------------------ the pushers

  private async push (primary: string, replicaId: string): Promise<void> {
    const { runtime } = this.c
    const signal = runtime.signal
    const view = this.replicaView(primary, replicaId)
    while (!signal.aborted) {
      const task = this.c.store.state.syncTasks?.[primary]
      const replica = task?.replicas.find(r => r.clusterId === replicaId)
      if (task === undefined || replica === undefined || replica.state !== 'ASSOCIATED' || !replica.confirmed) return
      if (this.primaries.get(primary)?.ready !== true || !view.woken) {
        // Nothing to compare yet, or nothing new: wait for the watch (which wakes the pushers
        // once it knows the primary, and at each change), or for the next retry.
        view.woken = false
        await this.waitForWake(view, this.c.tuning.syncWatchWaitMs, signal)
        continue
      }
      view.woken = false
      const next = await this.round(task, replica, view)
      if (next === 0) {
        view.woken = true
        // Again at once, but after whatever else waits on the event loop.
        await new Promise(resolve => setImmediate(resolve))
        continue
      }
      await this.waitForWake(view, next, signal)
    }
  }

  /** Waits until the view is woken, `ms` passed, or the runtime stops; a retry that is due wakes it too. */
  private async waitForWake (view: ReplicaView, ms: number, signal: AbortSignal): Promise<void> {
    if (view.woken || signal.aborted) return
    await new Promise<void>(resolve => {
      const timer = setTimeout(() => { view.woken = true; done() }, ms)
      function done (): void {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        view.wake = undefined
        resolve()
      }
      view.wake = done
      signal.addEventListener('abort', done)
    })
  }

  /**
   * One comparison of the primary with a replica, and one attempt to carry the differences that
   * are due. Resolves with how long to wait before the next one when nothing else happens
   * (0: again now).
   */
  private async round (task: SyncTaskRecord, replica: SyncTaskReplicaRecord, view: ReplicaView): Promise<number> {
    const { clock, runtime, tuning } = this.c
    const primary = task.primaryClusterId
    const pv = this.primaries.get(primary)
    if (pv === undefined) return tuning.syncWatchWaitMs
    const now = runtime.realNow()
    // The whole replica failed a moment ago: new differences are FAILED with its cause at once, not left SYNCHRONIZING.
    if (view.cause !== undefined && now < view.nextAttemptAtRealMs) {
      this.updateRecords(task, replica, pv, view, view.cause)
      this.records.flushSoon(this.c.tuning.syncRecordsFlushDelayMs)
      return view.nextAttemptAtRealMs - now
    }
    const attemptAt = clock.now() / 1000
    // The records an attempt is made for count it once, whether it fails at the inventory or later.
    const counted = new Set<string>()
    if (now - view.inventoryAtRealMs >= tuning.syncResyncIntervalMs) view.stale = true
    if (view.known === undefined || view.stale) {
      // What is known of the replica may be wrong (a failed or cut attempt): it is asked again
      // first; the differences as far as they are known now are what this attempt is for.
      const believed = view.known !== undefined
      const pending = this.updateRecords(task, replica, pv, view, undefined).filter(ch => (view.retries.get(ch.key)?.atRealMs ?? 0) <= now)
      // The first comparison (nothing known yet) is no attempt to carry anything.
      if (believed) this.countAttempt(primary, replica, pending, attemptAt, counted)
      const inventory = await this.inventory(task, replica)
      if ('cause' in inventory) {
        this.failReplica(task, replica, view, inventory.cause)
        return this.retryDelayMs(view.failures)
      }
      view.known = inventory.known
      view.stale = false
      view.inventoryAtRealMs = now
    }
    const changes = this.updateRecords(task, replica, pv, view, undefined)
    const due = changes.filter(ch => (view.retries.get(ch.key)?.atRealMs ?? 0) <= now)
    if (due.length === 0) {
      view.failures = 0
      view.cause = undefined
      this.records.flushSoon(this.c.tuning.syncRecordsFlushDelayMs)
      const nextRetry = Math.min(...changes.map(ch => view.retries.get(ch.key)?.atRealMs ?? Infinity))
      return Number.isFinite(nextRetry) ? Math.max(1, nextRetry - now) : tuning.syncWatchWaitMs
    }
    this.countAttempt(primary, replica, due, attemptAt, counted)
    const carryStart = performance.now()
    const outcome = await this.carry(task, replica, view, pv, due)
    this.records.flushSoon(this.c.tuning.syncRecordsFlushDelayMs)
    this.c.log.debug({ primary, replica: replica.clusterId, changes: due.length, ms: Math.round((performance.now() - carryStart) * 10) / 10, failed: outcome?.code }, 'differences carried')
    if (outcome !== undefined) {
      this.failReplica(task, replica, view, outcome)
      return this.retryDelayMs(view.failures)
    }
    view.failures = 0
    view.cause = undefined
    return 0
  }

  /** Counts an attempt, once, in the records of these changes. */
  private countAttempt (primary: string, replica: SyncTaskReplicaRecord, changes: Change[], attemptAt: number, counted: Set<string>): void {
    for (const ch of changes) {
      const key = recordKey(replica.clusterId, ch.type, ch.id)
      if (counted.has(key)) continue
      counted.add(key)
      const record = this.records.get(primary, key) ?? blank(replica.clusterId, ch.type, ch.id)
      this.records.set(primary, { ...record, attempts: record.attempts + 1, lastAttemptAt: attemptAt })
    }
  }

  /** Asks the replica's region what the replica holds. */
  private async inventory (task: SyncTaskRecord, replica: SyncTaskReplicaRecord): Promise<{ known: Map<string, SyncResource> } | { cause: SyncCause }> {
    const body: SyncInventoryRequest = { primaryClusterId: task.primaryClusterId, primaryRegion: this.region, replicaClusterId: replica.clusterId }
    const answer = await this.ask(task.primaryClusterId, replica, SYNC_INVENTORY_PATH, body)
    if ('cause' in answer) return answer
    if (!isSyncInventoryAnswer(answer.json)) return { cause: { code: 'REPLICA_UNAVAILABLE', message: `${replica.region} answered an inventory of ${replica.clusterId} that is not one` } }
    return { known: new Map(answer.json.resources.map(r => [keyOf(r), r])) }
  }

  /** One request to the replica's region; a failure is a cause. */
  private async ask (primary: string, replica: SyncTaskReplicaRecord, path: string, body: unknown, timeoutMs = this.c.tuning.syncRequestTimeoutMs): Promise<{ json: unknown } | { cause: SyncCause }> {
    let response: RegionResponse
    try {
      response = await this.c.runtime.regionClient.fetch(replica.region, { method: 'POST', path, body, timeoutMs })
    } catch (err) {
      return { cause: { code: 'REPLICA_UNREACHABLE', message: `The region ${replica.region} of replica ${replica.clusterId} cannot be reached: ${(err as Error).message}` } }
    }
    if (response.status !== 200) {
      const error = readSyncError(response.body)
      if (error.code === SYNC_NOT_ASSOCIATED) {
        // The replica's region lost or never got the association: tell it again.
        await this.c.store.transact(draft => {
          const r = draft.syncTasks?.[primary]?.replicas.find(x => x.clusterId === replica.clusterId)
          if (r !== undefined && r.state === 'ASSOCIATED') r.confirmed = false
        })
        this.c.runtime.kick()
      }
      const code = error.code === 'REPLICA_DISASSOCIATED' || error.code === SYNC_NOT_ASSOCIATED || error.code === 'REPLICA_UNAVAILABLE' ? error.code : 'REPLICA_UNAVAILABLE'
      return { cause: { code, message: `${replica.region} answered ${response.status}: ${error.message}` } }
    }
    try {
      return { json: JSON.parse(response.body.toString('utf8')) }
    } catch {
      return { cause: { code: 'REPLICA_UNAVAILABLE', message: `${replica.region} answered a body that is not JSON` } }
    }
  }

  /**
   * Compares the primary with what the replica holds, brings the replica's records in line (a
   * new difference SYNCHRONIZING, or FAILED with `failing`; an equal resource SYNCHRONIZED; a
   * record of a resource that is nowhere any more removed) and answers the differences.
   */
  private updateRecords (task: SyncTaskRecord, replica: SyncTaskReplicaRecord, pv: PrimaryView, view: ReplicaView, failing: SyncCause | undefined): Change[] {
    const primary = task.primaryClusterId
    const matcher = scopeMatcher(task.scope)
    // Nothing known of the replica yet (a start): its records say what it holds, as far as they go.
    const fromRecords = view.known === undefined
    const known = view.known ?? new Map<string, SyncResource>()
    const nowSeconds = this.c.clock.now() / 1000
    const changes: Change[] = []
    const live = new Set<string>()
    const touch = (r: SyncResource, deletion: boolean, equal: boolean): void => {
      const type = typeOf(r)
      const id = idOf(r)
      const key = recordKey(replica.clusterId, type, id)
      live.add(key)
      const record = this.records.get(primary, key)
      if (equal) {
        view.retries.delete(keyOf(r))
        if (record?.status !== 'SYNCHRONIZED') {
          this.records.set(primary, { ...blank(replica.clusterId, type, id), ...record, status: 'SYNCHRONIZED', failureCause: null, lastSuccessAt: record?.lastSuccessAt ?? nowSeconds })
        }
        return
      }
      changes.push({ key: keyOf(r), type, id, resource: r, deletion })
      if (failing !== undefined) {
        if (record?.status !== 'FAILED') this.records.set(primary, { ...blank(replica.clusterId, type, id), ...record, status: 'FAILED', failureCause: failing })
      } else if (record === undefined || record.status === 'SYNCHRONIZED') {
        this.records.set(primary, { ...blank(replica.clusterId, type, id), ...record, status: 'SYNCHRONIZING', failureCause: null })
      }
    }
    for (const [key, r] of pv.resources) {
      if (!matcher.has(r, replica.syncType)) continue
      const equal = fromRecords
        ? this.records.get(primary, recordKey(replica.clusterId, typeOf(r), idOf(r)))?.status === 'SYNCHRONIZED'
        : known.get(key)?.digest === r.digest
      touch(r, false, equal)
    }
    if (fromRecords) {
      // Deletions are not known yet: records of resources gone from the primary stay until they are.
      for (const [key, record] of this.records.of(primary)) if (record.replicaClusterId === replica.clusterId) live.add(key)
    }
    for (const [key, r] of known) {
      if (pv.resources.has(key) || !matcher.has(r, replica.syncType)) continue
      if (r.kind === 'key' ? !pv.deletedKeys.has(r.handle) : !pv.deletedUsers.has(r.name.toLowerCase())) {
        // The watched HSM neither holds nor deleted this key or user: it has not received it (it
        // was away, or the watch moved to it from the HSM that made it; users never reach an HSM
        // that was away when they were made). Not a deletion: its record stays as it is until
        // the primary's HSM catches up (or deletes it).
        live.add(recordKey(replica.clusterId, typeOf(r), idOf(r)))
        continue
      }
      touch(r, true, false)
    }
    for (const [key, record] of this.records.of(primary)) {
      if (record.replicaClusterId === replica.clusterId && !live.has(key)) this.records.remove(primary, key)
    }
    return changes
  }

  /**
   * Extracts the changes from the primary and applies them on the replica; resolves with the cause
   * when the whole attempt failed. A pipeline: the primary's HSM masks the objects in chunks of one
   * apply batch, one chunk after the other, while the batches already extracted are applied (the
   * replica's HSM opens and stores them meanwhile), and batches of keys only go up to
   * `syncApplyBatchesInFlightMax` at once (their handles differ: the replica's HSM stores them
   * side by side, in one group commit when they meet). Batches holding users go one at a time and
   * before the keys (a key's owner must be on the replica before the key); a last batch that
   * carries deletions of users after every other (a user's keys go before it).
   */
  private async carry (task: SyncTaskRecord, replica: SyncTaskReplicaRecord, view: ReplicaView, pv: PrimaryView, due: Change[]): Promise<SyncCause | undefined> {
    const primary = task.primaryClusterId
    const { syncRequestTimeoutMs, syncApplyTimeoutMsPerObject } = this.c.tuning
    const countMax = this.batchObjectsMax()
    // Users first: a key's owner must be on the replica before the key.
    const inserts = due.filter(ch => !ch.deletion).sort((a, b) => (a.type === b.type ? 0 : a.type === 'USER' ? -1 : 1))
    const extractStart = performance.now()
    let extracted: Array<Promise<SyncExtractedObject | undefined>>
    try {
      extracted = this.extract(primary, pv, inserts, countMax)
    } catch (err) {
      return primaryUnavailable(primary, err)
    }
    const byKey = new Map(due.map(ch => [ch.key, ch]))
    const sentOf = (objects: SyncExtractedObject[], deletions: Change[]): Map<string, { change: Change, digest?: string }> => {
      const sent = new Map<string, { change: Change, digest?: string }>()
      for (const o of objects) {
        const change = byKey.get(resourceKey(o))
        if (change !== undefined) sent.set(change.key, { change, digest: o.digest })
      }
      for (const ch of deletions) sent.set(ch.key, { change: ch })
      return sent
    }
    // Within the protocol's limits; what is left goes in the next round, right after.
    const keyDeletions = due.filter(ch => ch.deletion && ch.resource.kind === 'key').slice(0, SYNC_BATCH_KEYS_MAX)
    let userDeletions = due.filter(ch => ch.deletion && ch.resource.kind === 'user').slice(0, SYNC_BATCH_USERS_MAX)
    if (userDeletions.length > 0) {
      // A user another reachable HSM of the primary still holds is not deleted yet: deleteUser
      // goes to each HSM in turn (or failed on one), or the user was made again there while the
      // watched HSM was away. Tried again with backoff, so it goes once every HSM agrees.
      const held = await this.heldByOtherPrimaryHsms(primary, pv, userDeletions.map(ch => (ch.resource as { name: string }).name))
      const isHeld = (ch: Change): boolean => held.has((ch.resource as { name: string }).name.toLowerCase())
      for (const ch of userDeletions.filter(isHeld)) {
        const retry = view.retries.get(ch.key) ?? { failures: 0, atRealMs: 0 }
        retry.failures++
        retry.atRealMs = this.c.runtime.realNow() + this.retryDelayMs(retry.failures)
        view.retries.set(ch.key, retry)
      }
      userDeletions = userDeletions.filter(ch => !isHeld(ch))
    }
    const send = async (objects: SyncExtractedObject[], first: boolean, last: boolean): Promise<SyncCause | undefined> => {
      // Deletions of keys go with the first batch, of users with the last (after their keys).
      const deletions = [...(first ? keyDeletions : []), ...(last ? userDeletions : [])]
      const body: SyncApplyRequest = {
        primaryClusterId: primary,
        replicaClusterId: replica.clusterId,
        objects: objects.map(o => Buffer.from(o.blob).toString('base64')),
        deleteKeys: first ? keyDeletions.map(ch => (ch.resource as { handle: number }).handle) : [],
        deleteUsers: last ? userDeletions.map(ch => (ch.resource as { name: string }).name) : []
      }
      const answer = await this.ask(primary, replica, SYNC_APPLY_PATH, body, syncRequestTimeoutMs + syncApplyTimeoutMsPerObject * (body.objects.length + body.deleteKeys.length + body.deleteUsers.length))
      if ('cause' in answer) return answer.cause
      if (!isSyncApplyAnswer(answer.json)) return { code: 'REPLICA_UNAVAILABLE', message: `${replica.region} answered an apply that is not one` }
      this.takeOutcomes(task, replica, view, sentOf(objects, deletions), answer.json.outcomes)
      return undefined
    }
    const inFlightMax = Math.max(1, this.c.tuning.syncApplyBatchesInFlightMax)
    const inFlight = new Set<Promise<void>>()
    let failed: SyncCause | undefined
    const chunks = Math.max(1, Math.ceil(inserts.length / countMax))
    for (let c = 0; c < chunks && failed === undefined; c++) {
      let objects: SyncExtractedObject[]
      try {
        objects = (await Promise.all(extracted.slice(c * countMax, (c + 1) * countMax))).filter((o): o is SyncExtractedObject => o !== undefined)
      } catch (err) {
        failed = primaryUnavailable(primary, err)
        break
      }
      if (c === chunks - 1) this.c.log.debug({ primary, objects: inserts.length, ms: Math.round((performance.now() - extractStart) * 10) / 10 }, 'extracted from the primary')
      const batches = this.batches(objects)
      for (let b = 0; b < batches.length && failed === undefined; b++) {
        const batch = batches[b] ?? []
        const first = c === 0 && b === 0
        const last = c === chunks - 1 && b === batches.length - 1
        // A chunk whose resources all went from the primary meanwhile has nothing to send.
        if (batch.length === 0 && !(first && keyDeletions.length > 0) && !(last && userDeletions.length > 0)) continue
        const alone = (last && userDeletions.length > 0) || batch.some(o => o.kind === 'user')
        while (inFlight.size > 0 && (alone || inFlight.size >= inFlightMax)) await (alone ? Promise.all(inFlight) : Promise.race(inFlight))
        if (failed !== undefined) break
        const sending: Promise<void> = send(batch, first, last)
          .catch((err: unknown): SyncCause => ({ code: 'REPLICA_UNAVAILABLE', message: `applying on ${replica.region} failed: ${(err as Error).message}` }))
          .then(cause => { failed ??= cause })
          .finally(() => { inFlight.delete(sending) })
        inFlight.add(sending)
        if (alone) await sending
      }
    }
    await Promise.all(inFlight)
    return failed
  }

  /** The most objects in one apply batch (and one extraction of the pipeline). */
  private batchObjectsMax (): number {
    return Math.max(1, Math.min(this.c.tuning.syncApplyBatchObjectsMax, SYNC_BATCH_KEYS_MAX, SYNC_BATCH_USERS_MAX))
  }

  /** The names (lowercase) of these users that an HSM of the primary other than the watched one holds; HSMs that do not answer count for nothing. */
  private async heldByOtherPrimaryHsms (primary: string, pv: PrimaryView, names: string[]): Promise<Set<string>> {
    const others = this.directory.running(primary).filter(h => h.hsmId !== pv.hsmId)
    const answers = await Promise.allSettled(others.map(async h => {
      const address = this.directory.addressOf(h)
      return address === undefined ? { objects: [] } : await this.sync.call(address, 'syncExtract', { keys: [], users: names })
    }))
    const held = new Set<string>()
    for (const answer of answers) {
      if (answer.status !== 'fulfilled') continue
      for (const o of answer.value.objects) if (o.kind === 'user' && o.name !== undefined) held.add(o.name.toLowerCase())
    }
    return held
  }

  /**
   * The masked objects of these keys and users, from the primary's HSM: one promise per change,
   * in their order (undefined for one the HSM no longer holds). Asked in calls of at most
   * `chunkMax` objects, one after the other, so that the first ones can be applied while the next
   * ones are masked. The pushers of a task share them: an object extracted for one replica (or
   * being extracted) serves the others while the primary's view has the same digest, so a change
   * goes to 3 replicas with one extraction. Throws when the primary has no HSM to ask.
   */
  private extract (primary: string, pv: PrimaryView, inserts: Change[], chunkMax: number): Array<Promise<SyncExtractedObject | undefined>> {
    const cache = pv.extracted
    const wanted = (ch: Change): Promise<SyncExtractedObject | undefined> | undefined => {
      const entry = cache.get(ch.key)
      return entry !== undefined && entry.digest === pv.resources.get(ch.key)?.digest ? entry.object : undefined
    }
    const missing = inserts.filter(ch => wanted(ch) === undefined)
    if (missing.length > 0) {
      const address = this.primaryAddress(primary, pv.hsmId)
      if (address === undefined) throw new Error('it has no ACTIVE HSM')
      // One call after the other (a failed one fails those after it, unasked).
      let previous: Promise<unknown> = Promise.resolve()
      for (let i = 0; i < missing.length; i += chunkMax) {
        const part = missing.slice(i, i + chunkMax)
        const keys = part.filter(ch => ch.resource.kind === 'key').map(ch => (ch.resource as { handle: number }).handle)
        const users = part.filter(ch => ch.resource.kind === 'user').map(ch => (ch.resource as { name: string }).name)
        const asked = previous.then(async () => {
          const result = await this.sync.call(address, 'syncExtract', { keys, users })
          return new Map(result.objects.map(o => [resourceKey(o), o]))
        })
        previous = asked
        for (const ch of part) {
          const digest = pv.resources.get(ch.key)?.digest ?? null
          const object = asked.then(found => found.get(ch.key))
          // A failed extraction is not kept: the next attempt asks again.
          object.catch(() => { if (cache.get(ch.key)?.object === object) cache.delete(ch.key) })
          cache.set(ch.key, { digest, object })
        }
      }
    }
    return inserts.map(ch => wanted(ch) ?? cache.get(ch.key)?.object ?? Promise.resolve(undefined))
  }

  /** Objects in batches of at most `syncApplyBatchBytesMax` (base64) and `syncApplyBatchObjectsMax` objects; at least one batch. */
  private batches (objects: SyncExtractedObject[]): SyncExtractedObject[][] {
    const max = this.c.tuning.syncApplyBatchBytesMax
    const countMax = this.batchObjectsMax()
    const out: SyncExtractedObject[][] = [[]]
    let bytes = 0
    for (const o of objects) {
      const size = Math.ceil(o.blob.length / 3) * 4 + 4
      const current = out[out.length - 1] ?? []
      if (current.length > 0 && (bytes + size > max || current.length >= countMax)) {
        out.push([])
        bytes = 0
      }
      out[out.length - 1]?.push(o)
      bytes += size
    }
    return out
  }

  /**
   * Records what the replica did with each object and deletion. `sent` is what was sent, by
   * resource: an applied insert is on the replica with the digest it was extracted with (its
   * outcome's digest should be the same: a different one is logged); an applied deletion is gone
   * from the replica and leaves no record.
   */
  private takeOutcomes (task: SyncTaskRecord, replica: SyncTaskReplicaRecord, view: ReplicaView, sent: Map<string, { change: Change, digest?: string }>, outcomes: readonly SyncOutcome[]): void {
    const primary = task.primaryClusterId
    const known = view.known ?? new Map<string, SyncResource>()
    view.known = known
    const nowSeconds = this.c.clock.now() / 1000
    for (const outcome of outcomes) {
      const key = resourceKey(outcome)
      const what = sent.get(key)
      if (what === undefined) continue
      const { change } = what
      const rKey = recordKey(replica.clusterId, change.type, change.id)
      const record = this.records.get(primary, rKey) ?? blank(replica.clusterId, change.type, change.id)
      if (outcome.ok) {
        view.retries.delete(key)
        if (change.deletion) {
          known.delete(key)
          this.records.remove(primary, rKey)
          continue
        }
        const digest = what.digest ?? change.resource.digest
        known.set(key, { ...change.resource, digest })
        if (outcome.digest !== undefined && outcome.digest !== digest) {
          this.c.log.warn({ primary, replica: replica.clusterId, key, primaryDigest: digest, replicaDigest: outcome.digest }, 'an applied resource has another digest on the replica')
        }
        this.records.set(primary, { ...record, status: 'SYNCHRONIZED', failureCause: null, lastSuccessAt: nowSeconds })
      } else {
        const retry = view.retries.get(key) ?? { failures: 0, atRealMs: 0 }
        retry.failures++
        retry.atRealMs = this.c.runtime.realNow() + this.retryDelayMs(retry.failures)
        view.retries.set(key, retry)
        const cause = { code: outcome.code ?? 'STORAGE_REFUSED', message: outcome.message ?? `the replica refused ${change.type === 'KEY' ? 'key' : 'user'} ${change.id}` }
        this.records.set(primary, { ...record, status: 'FAILED', failureCause: cause })
      }
    }
  }

  /**
   * The whole replica failed: its records not SYNCHRONIZED (those of the attempt, and of changes
   * still on their way; not those an earlier batch of the attempt applied) are FAILED with the cause.
   */
  private failReplica (task: SyncTaskRecord, replica: SyncTaskReplicaRecord, view: ReplicaView, cause: SyncCause): void {
    const primary = task.primaryClusterId
    view.failures++
    view.cause = cause
    view.stale = true
    view.nextAttemptAtRealMs = this.c.runtime.realNow() + this.retryDelayMs(view.failures)
    for (const record of [...this.records.of(primary).values()]) {
      if (record.replicaClusterId === replica.clusterId && record.status !== 'SYNCHRONIZED') this.records.set(primary, { ...record, status: 'FAILED', failureCause: cause })
    }
    this.records.flushSoon(this.c.tuning.syncRecordsFlushDelayMs)
    this.c.log.info({ primary, replica: replica.clusterId, cause: cause.code, message: cause.message, failures: view.failures }, 'synchronisation to a replica failed; trying again')
  }

  /** A disassociated replica: its records that were not SYNCHRONIZED are FAILED, REPLICA_DISASSOCIATED (once). */
  private markDisassociated (primary: string, replica: SyncTaskReplicaRecord): void {
    let changed = false
    for (const record of this.records.of(primary).values()) {
      if (record.replicaClusterId !== replica.clusterId || record.status === 'SYNCHRONIZED' || record.failureCause?.code === 'REPLICA_DISASSOCIATED') continue
      this.records.set(primary, { ...record, status: 'FAILED', failureCause: { code: 'REPLICA_DISASSOCIATED', message: `Replica ${replica.clusterId} was disassociated from ${primary}; it keeps what it received, read-only` } })
      changed = true
    }
    if (changed) this.records.flushSoon(this.c.tuning.syncRecordsFlushDelayMs)
  }

  // ------------------------------------------------------------------ confirmations

  /** One confirmation at a time per replica: the API's and the pass's share it. */
  private async confirm (primary: string, replicaId: string): Promise<void> {
    const key = `${primary}:${replicaId}`
    let running = this.confirming.get(key)
    if (running === undefined) {
      running = this.confirmOnce(primary, replicaId).finally(() => { this.confirming.delete(key) })
      this.confirming.set(key, running)
    }
    await running
  }

  private async confirmOnce (primary: string, replicaId: string): Promise<void> {
    const replica = this.replicaOf(primary, replicaId)
    if (replica === undefined || replica.confirmed) return
    const view = this.replicaView(primary, replicaId)
    const state = replica.state
    const body: SyncAssociateRequest | SyncDisassociateRequest = state === 'ASSOCIATED'
      ? { primaryClusterId: primary, primaryRegion: this.region, replicaClusterId: replicaId, syncType: replica.syncType, ...this.lineageOf(primary) }
      : { primaryClusterId: primary, primaryRegion: this.region, replicaClusterId: replicaId, syncType: replica.syncType }
    const answer = await this.ask(primary, replica, state === 'ASSOCIATED' ? SYNC_ASSOCIATE_PATH : SYNC_DISASSOCIATE_PATH, body)
    if ('cause' in answer) {
      view.confirmFailures++
      view.nextConfirmAtRealMs = this.c.runtime.realNow() + this.retryDelayMs(view.confirmFailures)
      view.cause = answer.cause
      this.c.log.info({ primary, replica: replicaId, state, cause: answer.cause.message }, 'the replica\'s region did not confirm; trying again')
      return
    }
    view.confirmFailures = 0
    await this.c.store.transact(draft => {
      const r = draft.syncTasks?.[primary]?.replicas.find(x => x.clusterId === replicaId)
      if (r !== undefined && r.state === state) r.confirmed = true
    })
    view.stale = true
    view.woken = true
    this.c.runtime.kick()
  }

  private lineageOf (primary: string): { lineage?: string } {
    const lineage = this.c.store.state.clusters[primary]?.lineage
    return lineage === undefined ? {} : { lineage }
  }
}

function primaryUnavailable (primary: string, err: unknown): SyncCause {
  return { code: 'PRIMARY_UNAVAILABLE', message: `The primary ${primary} cannot give its resources: ${(err as Error).message}` }
}

function blank (replicaClusterId: string, resourceType: SyncResourceType, resourceId: string): SyncRecord {
  return { resourceId, resourceType, replicaClusterId, status: 'SYNCHRONIZING', failureCause: null, lastAttemptAt: null, lastSuccessAt: null, attempts: 0 }
}

/** `promise`, or undefined once `signal` aborts (what the promise still does is ignored). */
async function raceAbort<T> (promise: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) { promise.catch(() => {}); return undefined }
  let onAbort: (() => void) | undefined
  const aborted = new Promise<undefined>(resolve => { onAbort = () => { resolve(undefined) }; signal.addEventListener('abort', onAbort) })
  try {
    return await Promise.race([promise, aborted])
  } finally {
    promise.catch(() => {})
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
  }
}
