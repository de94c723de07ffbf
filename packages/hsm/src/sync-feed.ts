/**
 * The change sequence syncChanges reads (issue 12): every key and user this HSM's stores change,
 * whoever changed them — a client, a masked-object insert, in-cluster replication from a peer,
 * or syncApply — in the order the changes became durable, numbered from 1.
 *
 * It lives in memory only: `epoch` is random per process start, so after a restart a caller
 * holding an old epoch gets a full answer and recomputes its differences (anti-entropy over
 * digests, nothing that a crash could lose). Only the last `retainedMax` changes are kept; a
 * caller that fell further behind also gets a full answer.
 *
 * The stores are observed by wrapping them (`observeStore`): the node hands the wrapped `users`
 * and `keys` stores to everything, so no writer can forget to report a change.
 */
import { randomBytes } from '@hsmlab/crypto'
import type { Change, Store } from '@hsmlab/store'
import type { UserType } from '@hsmlab/protocol'

/** One changed resource: a key by handle (with its owner's name, for a deleted key), a user by name. */
export type ResourceRef =
  | { kind: 'key', handle: number, owner: string }
  | { kind: 'user', name: string, userType: UserType }

/** Wraps a store so that `onApplied` hears of every batch once it is durable, with the values the ids held before. */
export function observeStore<V> (store: Store<V>, onApplied: (changes: Array<Change<V>>, before: Array<V | undefined>) => void): Store<V> {
  return {
    get: id => store.get(id),
    has: id => store.has(id),
    values: () => store.values(),
    entries: () => store.entries(),
    get size () { return store.size },
    apply: async changes => {
      const before = changes.map(change => store.get(change.id))
      await store.apply(changes)
      onApplied(changes, before)
    },
    close: async () => { await store.close() }
  }
}

function refId (ref: ResourceRef): string {
  return ref.kind === 'key' ? `k${ref.handle}` : `u${ref.name.toLowerCase()}`
}

/** The change sequence of one HSM process. */
export class SyncChangeFeed {
  /** Names this process's sequence; a new one at every start. */
  readonly epoch: string
  private readonly retainedMax: number
  private seqNow = 0
  /** The retained changes, oldest first, from `head` on (the array is compacted now and then). */
  private entries: Array<{ seq: number, ref: ResourceRef }> = []
  private head = 0
  /** The highest sequence number no longer retained (0: none dropped yet). */
  private droppedThrough = 0
  private readonly waiters = new Set<() => void>()
  private closed = false

  constructor (retainedMax: number) {
    this.epoch = `epoch-${Buffer.from(randomBytes(12)).toString('hex')}`
    this.retainedMax = Math.max(1, retainedMax)
  }

  /** The number of the last change (0 before any). */
  get seq (): number {
    return this.seqNow
  }

  /** Records changed resources (each gets the next number) and wakes the long polls. */
  record (refs: ResourceRef[]): void {
    if (refs.length === 0) return
    for (const ref of refs) this.entries.push({ seq: ++this.seqNow, ref })
    const excess = this.entries.length - this.head - this.retainedMax
    if (excess > 0) {
      this.head += excess
      this.droppedThrough = this.entries[this.head - 1]!.seq
      // Compact once half the array is dropped changes: amortised O(1) per change.
      if (this.head > this.retainedMax) {
        this.entries = this.entries.slice(this.head)
        this.head = 0
      }
    }
    for (const wake of this.waiters) wake()
    this.waiters.clear()
  }

  /**
   * The resources changed after `sinceSeq` (each once, in the order of their last change), or
   * undefined when some of those changes are no longer retained, or `sinceSeq` is beyond `seq`.
   */
  since (sinceSeq: number): ResourceRef[] | undefined {
    if (sinceSeq < this.droppedThrough || sinceSeq > this.seqNow) return undefined
    const latest = new Map<string, ResourceRef>()
    // Entries are in sequence order: scan back from the newest to the first one after sinceSeq.
    let first = this.entries.length
    while (first > this.head && this.entries[first - 1]!.seq > sinceSeq) first--
    for (let i = first; i < this.entries.length; i++) {
      const { ref } = this.entries[i]!
      const id = refId(ref)
      latest.delete(id)
      latest.set(id, ref)
    }
    return [...latest.values()]
  }

  /** Resolves once a change is recorded, `waitMs` have passed, or the feed is closed. */
  async wait (waitMs: number): Promise<void> {
    if (this.closed || waitMs <= 0) return
    await new Promise<void>(resolve => {
      const wake = (): void => { clearTimeout(timer); resolve() }
      const timer = setTimeout(() => { this.waiters.delete(wake); resolve() }, waitMs)
      this.waiters.add(wake)
    })
  }

  /** Ends every long poll now (the HSM is stopping). Safe to call twice. */
  close (): void {
    this.closed = true
    for (const wake of this.waiters) wake()
    this.waiters.clear()
  }
}

/** What the change refs need of the HSM: user names by id, and the keys (for shares of a deleted user). */
export interface FeedLookups {
  userName: (userId: number) => string | undefined
  keysSharedWith: (userId: number) => number[]
}

/** The resources a batch of the `keys` store changed. */
export function keyChangeRefs<V extends { handle: number, owner?: number, deleted?: true }> (
  lookups: FeedLookups, changes: Array<Change<V>>, before: Array<V | undefined>
): ResourceRef[] {
  const refs: ResourceRef[] = []
  changes.forEach((change, i) => {
    const old = before[i]
    const now = change.op === 'put' ? change.value : undefined
    const live = (v: V | undefined): V | undefined => v === undefined || v.deleted === true ? undefined : v
    const record = live(now) ?? live(old)
    // A tombstone written over a tombstone, or for a handle never held here, changes nothing visible.
    if (record === undefined) return
    refs.push({ kind: 'key', handle: record.handle, owner: record.owner === undefined ? '' : lookups.userName(record.owner) ?? '' })
  })
  return refs
}

/** The resources a batch of the `users` store changed (a deleted user's shared keys change digest too). */
export function userChangeRefs<V extends { userId: number, userName: string, userType: UserType }> (
  lookups: FeedLookups, changes: Array<Change<V>>, before: Array<V | undefined>
): ResourceRef[] {
  const refs: ResourceRef[] = []
  changes.forEach((change, i) => {
    const old = before[i]
    const now = change.op === 'put' ? change.value : undefined
    if (now !== undefined) refs.push({ kind: 'user', name: now.userName, userType: now.userType })
    if (old !== undefined && (now === undefined || old.userName.toLowerCase() !== now.userName.toLowerCase())) {
      refs.push({ kind: 'user', name: old.userName, userType: old.userType })
      for (const handle of lookups.keysSharedWith(old.userId)) refs.push({ kind: 'key', handle, owner: '' })
    }
  })
  return refs
}
