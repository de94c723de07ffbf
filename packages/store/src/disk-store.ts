/**
 * The on-disk store: state in memory, every change first made durable in the write-ahead log.
 *
 * Group commit: `apply` checks and encodes its batch at once and queues it; one writer drains
 * the queue, writing everything queued so far as one sealed record with one O_DSYNC write, then
 * applies those batches to memory and resolves their promises, in call order. Batches that
 * arrive while a write is in flight wait for the next one, so N concurrent writers share one
 * disk flush. The queue is bounded by `queuedBytesMax` (bytes waiting or being written).
 *
 * After `snapshotAfterRecords` records the writer writes a snapshot and empties the WAL before
 * taking the next group, so writes stay strictly ordered (see snapshot.ts and wal.ts for why
 * every crash point between those steps loads correctly).
 *
 * After each record, and after each snapshot's rename, the writer rewrites the manifest
 * (manifest.ts) before it acknowledges anything, so that opening refuses files put back from an
 * earlier time, cut short at a record boundary or deleted; it fails like a WAL write does.
 *
 * A failed write leaves the WAL in an unknown state (and after a failed fsync Linux may already
 * have dropped the unwritten pages), so the store then rejects every further change with
 * `STORE_ERR_IO`; reopening it recovers whatever was durable. A batch rejected that way may or
 * may not survive the reopen; an acknowledged one always does.
 *
 * A full disk (ENOSPC, EDQUOT) is the exception, because it is expected to pass and because what
 * it leaves is known: the bytes before the failed record were durable before it was written and
 * are never written again, so cutting the WAL back to them (truncate + fsync, which needs no
 * space) leaves exactly the acknowledged records. The group is rejected with
 * `STORE_ERR_NO_SPACE`, memory is untouched (a group is applied only once durable), and the store
 * keeps taking writes: the next one succeeds once space returns. Only when that cut itself fails
 * does the store stop as above. A snapshot that does not fit is dropped (its temporary file
 * removed) and tried again after the next record: until then the WAL still holds every record.
 */
import { join } from 'node:path'
import { SECRET_KEY_BYTES } from '@hsmlab/crypto'
import { storeDefaults } from './defaults.js'
import { StoreError, STORE_ERR_BUSY, STORE_ERR_CLOSED, STORE_ERR_INVALID_ARGUMENT, STORE_ERR_IO, STORE_ERR_NO_SPACE } from './errors.js'
import { nodeFileSystem } from './file-system.js'
import type { StoreFileSystem } from './file-system.js'
import { Manifest, MANIFEST_NAME_BYTES_MAX, checkNoManifest, checkSnapshot, checkWal, readManifest } from './manifest.js'
import type { StoreFiles } from './manifest.js'
import { encodeChanges, encodeRecord } from './record-codec.js'
import type { EncodedChange } from './record-codec.js'
import { readSnapshot, sealSnapshot, writeSnapshot } from './snapshot.js'
import { applyChanges } from './store.js'
import type { Change, Store, StoreOptions } from './store.js'
import { Wal } from './wal.js'

/**
 * What one queued `apply` counts against `queuedBytesMax` beyond its encoded changes, so that
 * even empty batches cannot queue without bound.
 */
const PENDING_OVERHEAD_BYTES = 64

/** A batch waiting for the disk. */
interface Pending {
  batch: EncodedChange[]
  bytes: number
  resolve: () => void
  reject: (err: unknown) => void
}

/** Options with every default filled in. */
interface Settings {
  dir: string
  name: string
  key: Uint8Array
  snapshotAfterRecords: number
  syncWrites: boolean
  queuedBytesMax: number
  create: boolean
}

/** The on-disk store; build it with `openStore`. */
export class DiskStore<V> implements Store<V> {
  readonly #state: Map<string, V>
  readonly #wal: Wal
  readonly #manifest: Manifest
  readonly #fs: StoreFileSystem
  readonly #settings: Settings
  readonly #snapPath: string
  #lastSeq: number
  #snapSeq: number
  #recordsSinceSnapshot: number
  #queue: Pending[] = []
  #queuedBytes = 0
  #writer: Promise<void> | undefined
  #closed = false
  #closing: Promise<void> | undefined
  #failure: StoreError | undefined

  constructor (settings: Settings, fs: StoreFileSystem, wal: Wal, manifest: Manifest, state: Map<string, V>, lastSeq: number, snapSeq: number, recordsSinceSnapshot: number) {
    this.#settings = settings
    this.#fs = fs
    this.#wal = wal
    this.#manifest = manifest
    this.#snapSeq = snapSeq
    this.#state = state
    this.#snapPath = join(settings.dir, `${settings.name}.snap`)
    this.#lastSeq = lastSeq
    this.#recordsSinceSnapshot = recordsSinceSnapshot
  }

  get (id: string): V | undefined {
    return this.#state.get(id)
  }

  has (id: string): boolean {
    return this.#state.has(id)
  }

  values (): IterableIterator<V> {
    return this.#state.values()
  }

  entries (): IterableIterator<[string, V]> {
    return this.#state.entries()
  }

  get size (): number {
    return this.#state.size
  }

  apply (changes: Array<Change<V>>): Promise<void> {
    if (this.#closed) return Promise.reject(new StoreError(STORE_ERR_CLOSED, `${this.#wal.path}: the store is closed: apply was called after close`))
    if (this.#failure !== undefined) return Promise.reject(this.#stopped())
    let batch: EncodedChange[]
    try {
      batch = encodeChanges(changes)
    } catch (err) {
      return Promise.reject(err)
    }
    let bytes = PENDING_OVERHEAD_BYTES
    for (const c of batch) bytes += c.bytes.length
    const max = this.#settings.queuedBytesMax
    if (bytes > max) {
      const message = `a batch of ${bytes} encoded bytes is larger than queuedBytesMax (${max}); split it or raise queuedBytesMax`
      return Promise.reject(new StoreError(STORE_ERR_INVALID_ARGUMENT, message))
    }
    if (this.#queuedBytes + bytes > max) {
      const message = `${this.#queuedBytes} encoded bytes already wait for the disk and this batch adds ${bytes}, ` +
        `past queuedBytesMax (${max}); retry once earlier applies resolve`
      return Promise.reject(new StoreError(STORE_ERR_BUSY, message))
    }
    this.#queuedBytes += bytes
    return new Promise((resolve, reject) => {
      this.#queue.push({ batch, bytes, resolve, reject })
      this.#writer ??= this.#drain()
    })
  }

  close (): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close (): Promise<void> {
    this.#closed = true
    // Batches accepted before close are still written; the writer never rejects.
    while (this.#writer !== undefined) await this.#writer
    try {
      await Promise.all([this.#wal.close(), this.#manifest.close()])
    } catch (err) {
      throw new StoreError(STORE_ERR_IO, `${this.#wal.path}: closing the WAL failed: ${(err as Error).message}`, { cause: err })
    }
  }

  /** The writer: one at a time, strictly in order, until the queue is empty or a write failed. */
  async #drain (): Promise<void> {
    // Let every apply made in this turn of the event loop (all the requests that arrived
    // together) join the first group rather than follow it one write later.
    await new Promise(resolve => setImmediate(resolve))
    try {
      while (this.#queue.length > 0) {
        const group = this.#queue
        this.#queue = []
        await this.#commit(group)
        if (this.#recordsSinceSnapshot >= this.#settings.snapshotAfterRecords) await this.#snapshot()
      }
    } catch (err) {
      this.#failure = err instanceof StoreError ? err : new StoreError(STORE_ERR_IO, `${this.#wal.path}: ${(err as Error).message}`, { cause: err })
      const waiting = this.#queue
      this.#queue = []
      this.#queuedBytes = 0
      for (const p of waiting) p.reject(this.#stopped())
    } finally {
      this.#writer = undefined
    }
  }

  /** Writes one group as one record, then makes it visible and acknowledges it. */
  async #commit (group: Pending[]): Promise<void> {
    const batches: EncodedChange[][] = []
    let bytes = 0
    for (const p of group) {
      if (p.batch.length > 0) batches.push(p.batch)
      bytes += p.bytes
    }
    if (batches.length > 0) {
      const seq = this.#lastSeq + 1
      let appended = false
      try {
        await this.#wal.append(encodeRecord(seq, batches))
        appended = true
        await this.#manifest.write({ seq, snapSeq: this.#snapSeq })
      } catch (err) {
        let why = (err as Error).message
        if (isOutOfSpace(err)) {
          const cut = await this.#rollBack(appended)
          if (cut === undefined) {
            const message = `${this.#wal.path}: writing record seq ${seq} failed, the file system is full (${why}): ` +
              'nothing of these changes was kept; free space and retry'
            const failure = new StoreError(STORE_ERR_NO_SPACE, message, { cause: err })
            this.#queuedBytes -= bytes
            for (const p of group) p.reject(failure)
            return
          }
          why += `; cutting the WAL back to its last record failed too: ${cut.message}`
        }
        const failure = new StoreError(STORE_ERR_IO, `${this.#wal.path}: writing record seq ${seq} failed: ${why}`, { cause: err })
        for (const p of group) p.reject(failure)
        throw failure
      }
      this.#lastSeq = seq
      this.#recordsSinceSnapshot++
      for (const batch of batches) applyChanges(this.#state, batch.map(c => c.change))
    }
    this.#queuedBytes -= bytes
    for (const p of group) p.resolve()
  }

  /**
   * Cuts the WAL back after a failed append; resolves with the error when even that failed
   * (the file's state is then unknown).
   */
  async #rollBack (manifestFailed: boolean): Promise<Error | undefined> {
    try {
      await this.#wal.rollBack()
      // When the manifest's write failed, after the record's, it may name a record the WAL no
      // longer holds: say the last acknowledged one again (an in-place rewrite needs no space).
      if (manifestFailed) await this.#manifest.write({ seq: this.#lastSeq, snapSeq: this.#snapSeq })
      return undefined
    } catch (err) {
      return err as Error
    }
  }

  /** Compacts the WAL: the state as of the last record, sealed, renamed into place; WAL emptied. */
  async #snapshot (): Promise<void> {
    let written = false
    try {
      const sealed = sealSnapshot(this.#settings.key, this.#lastSeq, this.#state.entries())
      await writeSnapshot(this.#fs, this.#snapPath, sealed, this.#settings.syncWrites)
      written = true
      // Before the WAL is emptied: from now on an older snapshot would be missing records.
      await this.#manifest.write({ seq: this.#lastSeq, snapSeq: this.#lastSeq })
      this.#snapSeq = this.#lastSeq
      await this.#wal.reset()
    } catch (err) {
      // A snapshot that did not fit changed nothing the store relies on: the WAL still holds
      // every record, and a snapshot renamed into place before its directory sync failed covers
      // only records the WAL holds too. So go on; the next record tries again.
      if (!written && isOutOfSpace(err)) return
      throw new StoreError(STORE_ERR_IO, `${this.#snapPath}: writing a snapshot failed: ${(err as Error).message}`, { cause: err })
    }
    this.#recordsSinceSnapshot = 0
  }

  #stopped (): StoreError {
    const why = this.#failure?.message ?? 'unknown'
    return new StoreError(STORE_ERR_IO, `${this.#wal.path}: the store accepts no more changes since a write failed (${why}); reopen it to recover`, { cause: this.#failure })
  }
}

/**
 * Opens (creating if needed) the store `options.name` in `options.dir`, with the file system
 * given; `openStore` passes the real one, tests pass one that fails on demand.
 */
export async function openDiskStore<V> (options: StoreOptions, fs: StoreFileSystem): Promise<Store<V>> {
  const settings = checkOptions(options)
  const { dir, name, key, syncWrites } = settings
  const files: StoreFiles = { manifest: join(dir, `${name}.manifest`), wal: join(dir, `${name}.wal`), snap: join(dir, `${name}.snap`) }
  let wal: Wal | undefined
  let manifest: Manifest | undefined
  try {
    // A snapshot that was never renamed into place is incomplete; the WAL still holds every
    // record it would have covered.
    await fs.remove(`${files.snap}.tmp`)
    // Everything is checked against the manifest before anything is created or cut off, so a
    // refused store's files are left as they were found.
    const vouched = await readManifest(fs, files.manifest, key, name)
    const snapshot = await readSnapshot(fs, files.snap, key)
    if (vouched !== undefined) checkSnapshot(files, vouched, snapshot?.seq)
    const state = new Map(snapshot?.entries as Array<[string, V]> | undefined)
    const afterSeq = snapshot?.seq ?? 0
    const opened = await Wal.open(fs, files.wal, key, afterSeq, syncWrites, (scan, walBytes) => {
      const lastSeq = scan.records.at(-1)?.seq ?? afterSeq
      if (vouched !== undefined) checkWal(files, vouched, { exists: walBytes !== undefined, lastSeq, tornTail: scan.tornTail })
      else checkNoManifest(files, { snapExists: snapshot !== undefined, walBytes }, settings.create)
    })
    wal = opened.wal
    const lastSeq = opened.scan.records.at(-1)?.seq ?? afterSeq
    const snapSeq = Math.max(vouched?.snapSeq ?? 0, snapshot?.seq ?? 0)
    manifest = await Manifest.open(fs, files.manifest, key, name, syncWrites)
    // A record a crash left unacknowledged after the manifest (or a snapshot renamed before the
    // manifest said so) is vouched for now, before anything newer is written.
    if (vouched === undefined || vouched.seq !== lastSeq || vouched.snapSeq !== snapSeq) await manifest.write({ seq: lastSeq, snapSeq })
    // A new file's directory entry is durable only once the directory is synced.
    if ((opened.created || vouched === undefined) && syncWrites) await fs.syncDirectory(dir)
    for (const record of opened.scan.records) applyChanges(state, record.changes)
    return new DiskStore<V>(settings, fs, wal, manifest, state, lastSeq, snapSeq, opened.scan.records.length)
  } catch (err) {
    await wal?.close().catch(() => {})
    await manifest?.close().catch(() => {})
    if (err instanceof StoreError) throw err
    throw new StoreError(STORE_ERR_IO, `${join(dir, name)}: opening the store failed: ${(err as Error).message}`, { cause: err })
  }
}

/** Whether `err` says the file system is full: no space left (ENOSPC), or over a quota (EDQUOT). */
function isOutOfSpace (err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  return code === 'ENOSPC' || code === 'EDQUOT'
}

/** Opens (creating if needed) the on-disk store `options.name` in `options.dir`. */
export function openStore<V> (options: StoreOptions): Promise<Store<V>> {
  return openDiskStore<V>(options, nodeFileSystem)
}

function checkOptions (options: StoreOptions): Settings {
  const bad = (what: string): StoreError => new StoreError(STORE_ERR_INVALID_ARGUMENT, `openStore: ${what}`)
  if (typeof options !== 'object' || options === null) throw bad('options must be an object')
  const { dir, name, key } = options
  if (typeof dir !== 'string' || dir === '') throw bad('dir must be a directory path')
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw bad(`name ${JSON.stringify(name)} must be a file stem of letters, digits, '.', '_' and '-'`)
  if (name.length > MANIFEST_NAME_BYTES_MAX) throw bad(`name must be at most ${MANIFEST_NAME_BYTES_MAX} characters`)
  if (!(key instanceof Uint8Array) || key.length !== SECRET_KEY_BYTES) throw bad(`key must be a Uint8Array of ${SECRET_KEY_BYTES} bytes`)
  const snapshotAfterRecords = options.snapshotAfterRecords ?? storeDefaults.snapshotAfterRecords
  if (!Number.isSafeInteger(snapshotAfterRecords) || snapshotAfterRecords < 1) throw bad('snapshotAfterRecords must be a positive integer')
  const queuedBytesMax = options.queuedBytesMax ?? storeDefaults.queuedBytesMax
  if (!Number.isSafeInteger(queuedBytesMax) || queuedBytesMax < 1) throw bad('queuedBytesMax must be a positive integer')
  const syncWrites = options.syncWrites ?? storeDefaults.syncWrites
  if (typeof syncWrites !== 'boolean') throw bad('syncWrites must be a boolean')
  const create = options.create ?? storeDefaults.create
  if (typeof create !== 'boolean') throw bad('create must be a boolean')
  // A copy (not `slice`, which on a Buffer is a view), so that a caller reusing its key buffer
  // cannot change the key under an open store.
  return { dir, name, key: new Uint8Array(key), snapshotAfterRecords, syncWrites, queuedBytesMax, create }
}
