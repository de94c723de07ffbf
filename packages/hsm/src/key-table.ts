/**
 * The key table of one HSM: its token keys and the tombstones of deleted ones (kept in the `keys`
 * store), with what concurrent operations on them need besides the store — per-handle locks, and
 * the reservations of creations in flight. The node makes one (`startHsm`) and hands it to the key,
 * masked-object, peer and backup handlers and to replication as `HsmContext.keys`; nothing else
 * writes the `keys` store of a running HSM.
 *
 * Why locks: a store read sees a write only once it is durable, so every read-modify-write of a
 * stored key runs under the lock of its handle (`withLocks`). Why reservations: the key limit,
 * unique IDs and free handles are checked before the durable write, so what creations in flight
 * have claimed is counted synchronously (`reserveSlots`, `reserveId`, `allocate`).
 *
 * Handles are never reused: a deleted key leaves a tombstone (`tombstone`), which also carries
 * the delete to peers that were away (peerInventory lists tombstones).
 */
import { ReturnCode, WireError } from '@hsmlab/protocol'
import type { AttributeValue } from '@hsmlab/protocol'
import type { Store } from '@hsmlab/store'
import { hsmDefaults } from './defaults.js'

/** A key (or one half of a key pair) as one HSM stores it. */
export interface KeyRecord {
  handle: number
  /** OBJ_ATTR_CLASS: 2 public, 3 private, 4 secret. */
  keyClass: number
  /** OBJ_ATTR_KEY_TYPE. */
  keyType: number
  owner: number
  sharedWith: number[]
  mValue: number
  /** Every OBJ_ATTR_* the key has, by id (label, id, flags, lengths, KCV, modulus...). */
  attributes: Record<number, AttributeValue>
  /** Secret bytes, or PKCS#8 DER for a private key, or SPKI DER for a public key. */
  material: Uint8Array
  /** Handle of the other half of a key pair, if any. */
  pairHandle?: number
}

/** What the key store keeps for a deleted key, so that a delete reaches every HSM and a handle is never reused. */
export interface KeyTombstone {
  handle: number
  deleted: true
}

/** True for a tombstone. */
export function isTombstone (record: KeyRecord | KeyTombstone): record is KeyTombstone {
  return 'deleted' in record
}

/** The tombstone of a deleted handle. */
export function tombstoneOf (handle: number): KeyTombstone {
  return { handle, deleted: true }
}

/** What a key table is made of. */
export interface KeyTableOptions {
  /** The durable records and tombstones, by handle in decimal. */
  store: Store<KeyRecord | KeyTombstone>
  /** The next free handle in this HSM's slot (the node's handle allocator). */
  nextHandle: () => number
  /** Token keys the table may hold (`HsmLimits.keysMax`). */
  keysMax: number
  /** The open sessions: their session keys hold handles too. */
  sessions: ReadonlySet<{ readonly sessionKeys: ReadonlyMap<number, unknown> }>
  /** Handles given out and not yet stored that the table remembers. @default hsmDefaults.reservedHandlesMax (4096) */
  reservedHandlesMax?: number
}

/** The token keys of one HSM, their locks and the reservations of creations in flight. */
export class KeyTable {
  private readonly store: Store<KeyRecord | KeyTombstone>
  private readonly nextHandle: () => number
  private readonly keysMax: number
  private readonly sessions: KeyTableOptions['sessions']
  private readonly reservedHandlesMax: number
  /** The last task to take each handle's lock. */
  private readonly locks = new Map<number, Promise<void>>()
  /** Token keys creations in flight will add (for the key limit). */
  private reservedKeys = 0
  /** IDs creations in flight will store (for uniqueness). */
  private readonly reservedIds = new Set<string>()
  /** Handles given out for creations in flight, so that a masked object inserted with its own handle cannot take one. */
  private readonly reservedHandles = new Set<number>()

  constructor (options: KeyTableOptions) {
    this.store = options.store
    this.nextHandle = options.nextHandle
    this.keysMax = options.keysMax
    this.sessions = options.sessions
    this.reservedHandlesMax = options.reservedHandlesMax ?? hsmDefaults.reservedHandlesMax
  }

  // -------------------------------------------------------------------------------------------
  // Records and tombstones

  /** The record or tombstone under `handle`, if any. */
  get (handle: number): KeyRecord | KeyTombstone | undefined {
    return this.store.get(String(handle))
  }

  /** True when `handle` holds a record or a tombstone. */
  has (handle: number): boolean {
    return this.store.has(String(handle))
  }

  /** The live token key under `handle` (not a tombstone), if any. */
  live (handle: number): KeyRecord | undefined {
    const record = this.store.get(String(handle))
    return record === undefined || isTombstone(record) ? undefined : record
  }

  /** Every record and tombstone, in the order their handles were first stored. */
  values (): IterableIterator<KeyRecord | KeyTombstone> {
    return this.store.values()
  }

  /** How many live token keys the table holds. */
  liveCount (): number {
    let count = 0
    for (const record of this.store.values()) if (!isTombstone(record)) count++
    return count
  }

  /** Stores records (new or changed) in one durable batch. Callers hold the locks of their handles. */
  async put (records: KeyRecord[]): Promise<void> {
    await this.store.apply(records.map(record => ({ op: 'put' as const, id: String(record.handle), value: record })))
  }

  /** Replaces whatever `handles` hold with tombstones, in one durable batch. Callers hold their locks. */
  async tombstone (handles: number[]): Promise<void> {
    await this.store.apply(handles.map(handle => ({ op: 'put' as const, id: String(handle), value: tombstoneOf(handle) })))
  }

  /**
   * Stores a copy of a key made elsewhere (by a peer), unless this table holds its handle
   * already, as a key or a tombstone: copies never overwrite. True when it was stored.
   */
  async insertCopy (record: KeyRecord): Promise<boolean> {
    return await this.withLocks([record.handle], async () => {
      if (this.has(record.handle)) return false
      await this.put([record])
      return true
    })
  }

  /** Tombstones handles deleted elsewhere (held here or not). Returns how many were not tombstones yet. */
  async tombstoneCopies (handles: number[]): Promise<number> {
    if (handles.length === 0) return 0
    return await this.withLocks(handles, async () => {
      const fresh = handles.filter(handle => {
        const record = this.get(handle)
        return record === undefined || !isTombstone(record)
      })
      if (fresh.length > 0) await this.tombstone(fresh)
      return fresh.length
    })
  }

  // -------------------------------------------------------------------------------------------
  // Locks

  /**
   * Runs `task` once no earlier task holding any of the locks of `handles` is running. All locks
   * are taken at once, in call order, so two tasks can never wait for each other.
   */
  async withLocks<T> (handles: number[], task: () => Promise<T>): Promise<T> {
    const unique = [...new Set(handles)]
    const earlier: Array<Promise<void>> = []
    let release!: () => void
    const mine = new Promise<void>(resolve => { release = resolve })
    for (const handle of unique) {
      const before = this.locks.get(handle)
      if (before !== undefined) earlier.push(before)
      this.locks.set(handle, mine)
    }
    try {
      await Promise.all(earlier)
      return await task()
    } finally {
      release()
      for (const handle of unique) if (this.locks.get(handle) === mine) this.locks.delete(handle)
    }
  }

  // -------------------------------------------------------------------------------------------
  // Reservations

  /**
   * True when `handle` is taken on this HSM: a stored key or tombstone, a session key, a handle
   * given out for a creation in flight, or one locked for an insert (unless the caller holds that
   * lock itself).
   */
  inUse (handle: number, lockedByCaller = false): boolean {
    if (this.has(handle)) return true
    if (this.reservedHandles.has(handle)) return true
    if (!lockedByCaller && this.locks.has(handle)) return true
    for (const s of this.sessions) if (s.sessionKeys.has(handle)) return true
    return false
  }

  /** Throws RET_KEY_LIMIT unless `adding` more token keys fit under the key limit. */
  checkLimit (adding: number): void {
    const count = this.liveCount() + this.reservedKeys
    if (count + adding > this.keysMax) {
      throw new WireError(ReturnCode.KEY_LIMIT, `this HSM holds ${count} token keys, the limit is ${this.keysMax}`)
    }
  }

  /**
   * How many more token keys fit under the key limit now (what is stored and what creations in
   * flight reserved counted), for a caller that places many keys in one synchronous pass: one
   * count of the table for the whole batch, then one `reserveSlots` of what it placed, rather than
   * a count per key (each `checkLimit` scans every record).
   */
  freeSlots (): number {
    return this.keysMax - this.liveCount() - this.reservedKeys
  }

  /**
   * Checks the key limit for `adding` more token keys and holds their places until the returned
   * function is called (once they are stored, or abandoned), so concurrent creations cannot all
   * take the last place.
   */
  reserveSlots (adding: number): () => void {
    this.checkLimit(adding)
    this.reservedKeys += adding
    let released = false
    return () => {
      if (released) return
      released = true
      this.reservedKeys -= adding
    }
  }

  /** True when a creation in flight is about to store a key with this OBJ_ATTR_ID. */
  isIdReserved (id: string): boolean {
    return this.reservedIds.has(id)
  }

  /** Claims an OBJ_ATTR_ID for a creation in flight until the returned function is called. */
  reserveId (id: string): () => void {
    this.reservedIds.add(id)
    return () => { this.reservedIds.delete(id) }
  }

  /** A handle no key of this HSM holds, reserved until `release` forgets it. */
  allocate (): number {
    // The allocator never repeats itself; the loop only guards against a handle that arrived from a
    // peer or a masked object in this HSM's own slot (a restored backup of another HSM, say).
    const reserved = this.reservedHandles
    if (reserved.size >= this.reservedHandlesMax) {
      // Handles of creations that failed before storing stay reserved; forget those long stored.
      for (const handle of reserved) if (this.has(handle)) reserved.delete(handle)
      if (reserved.size >= this.reservedHandlesMax) reserved.clear()
    }
    for (let i = 0; i < 1024; i++) {
      const handle = this.nextHandle()
      if (this.inUse(handle)) continue
      reserved.add(handle)
      return handle
    }
    throw new WireError(ReturnCode.INTERNAL, 'no free key handle found')
  }

  /** Forgets the reservation of handles `allocate` gave out, once stored (or abandoned). */
  release (handles: number[]): void {
    for (const handle of handles) this.reservedHandles.delete(handle)
  }
}
