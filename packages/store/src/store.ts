/** The store's public types, and the one rule for applying a batch that both stores share. */

/** One change of a batch: put a value under an id, or delete the id. */
export type Change<V> = { op: 'put', id: string, value: V } | { op: 'delete', id: string }

/** Options of `openStore`. */
export interface StoreOptions {
  /** Data directory; it must exist. */
  dir: string
  /**
   * File stem, at most 255 characters: the store keeps `${name}.wal`, `${name}.snap` and
   * `${name}.manifest` (which vouches for how far the other two got) in `dir`.
   */
  name: string
  /** 32-byte storage key; every record and snapshot is sealed under it. */
  key: Uint8Array
  /** Compact the WAL into a snapshot after this many records. @default 4096 */
  snapshotAfterRecords?: number
  /** Make each write durable before acknowledging it. @default true */
  syncWrites?: boolean
  /**
   * Create the store when none of its files exist. Pass `false` where the store is known to
   * exist (an HSM that was provisioned), so that deleting all its files is refused with
   * `STORE_ERR_TAMPERED` instead of opening an empty store. @default true
   */
  create?: boolean
  /**
   * Most bytes of changes allowed to wait for the disk or be in the write under way (their
   * msgpack encoding, plus 64 per `apply`); past it `apply` rejects with `STORE_ERR_BUSY`. One
   * `apply` larger than this rejects with `STORE_ERR_INVALID_ARGUMENT`.
   * @default 67108864 (64 MiB)
   */
  queuedBytesMax?: number
}

/**
 * A map from string ids to plain-data values whose changes are applied in batches.
 *
 * Reads answer from memory and see a change only once `apply` has made it durable, so a reader
 * never sees a write that a crash could still undo. Values are stored as msgpack would decode
 * them (a class instance comes back a plain object, a `Map` an object) and are deeply frozen;
 * byte arrays cannot be frozen in JavaScript, so a `Uint8Array` read from the store must not be
 * written to (copy it with `.slice()` first). The values passed to `apply` are never retained.
 */
export interface Store<V> {
  /** The value under `id`, or `undefined`. */
  get (id: string): V | undefined
  /** Whether `id` has a value. */
  has (id: string): boolean
  /** Every value, in the order the ids were first put. */
  values (): IterableIterator<V>
  /** Every `[id, value]`, in the order the ids were first put. */
  entries (): IterableIterator<[string, V]>
  /** How many ids have a value. */
  readonly size: number
  /**
   * Applies the changes atomically (all or none survive a crash) and resolves once durable.
   * Batches are applied in the order `apply` was called.
   */
  apply (changes: Array<Change<V>>): Promise<void>
  /** Waits for accepted changes to be written, then releases the files. Safe to call twice. */
  close (): Promise<void>
}

/** Applies checked changes to a state map, in order. */
export function applyChanges<V> (state: Map<string, V>, changes: ReadonlyArray<Change<unknown>>): void {
  for (const change of changes) {
    if (change.op === 'put') state.set(change.id, change.value as V)
    else state.delete(change.id)
  }
}
