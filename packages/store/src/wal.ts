/**
 * The write-ahead log: a file of records, each
 *
 *   u32 LE length | u32 LE ~length | seal(key, msgpack({ seq, changes }))    (length = sealed bytes)
 *
 * with `seq` counting up by one from record to record across the life of the store (snapshots
 * included). One record is written per group commit, with a single write() on a file opened
 * O_DSYNC, and the next write starts only once that one is durable.
 *
 * Torn tail or tampering? Because writes are strictly one after the other and each is durable
 * before the next begins, a crash can damage only the last record, and only by leaving it
 * short (the process died mid-write) or, after a power cut, with blocks that never reached the
 * disk reading back as zeros. So recovery accepts exactly these as a torn tail and truncates
 * them away:
 *   1. fewer bytes than a length prefix remain at the end;
 *   2. a well-formed length prefix announces more bytes than the file still holds;
 *   3. everything from a record's start to the end of the file is zero;
 *   4. the last record is complete but fails authentication and ends in at least
 *      `ZERO_TAIL_BYTES_MIN` zero bytes, which sealed (random-looking) bytes never do.
 * Anything else is tampering: a complete record that fails authentication, a length prefix whose
 * complement does not match (which is what stops one flipped bit in a length from making the
 * records after it pass for a torn tail), a gap or a repeat in the sequence numbers. No rule
 * ever discards a record that authenticated. What no rule here can catch is a file cut at a
 * record boundary, emptied or put back from an earlier time: that is the manifest's part
 * (manifest.ts), which says how far the WAL must go; it is checked before a torn tail is cut.
 */
import { open as openSealed, seal } from '@hsmlab/crypto'
import type { WalFile, StoreFileSystem } from './file-system.js'
import { StoreError, STORE_ERR_FORMAT, STORE_ERR_TAMPERED } from './errors.js'
import { decodeRecord, ShapeError } from './record-codec.js'
import type { Change } from './store.js'

/** Bytes of a record's length prefix: the length and its bitwise complement. */
const PREFIX_BYTES = 8
/** Fewest bytes `seal` can produce: a 24-byte nonce, a 16-byte tag, one byte of msgpack. */
const SEALED_BYTES_MIN = 41
/** A failing last record that ends in this many zero bytes was torn by a power cut (rule 4). */
const ZERO_TAIL_BYTES_MIN = 16

/** One authenticated record. */
export interface WalRecord {
  seq: number
  changes: Array<Change<unknown>>
}

/** What recovery found in a WAL file. */
export interface WalScan {
  /** Records with a seq above the snapshot's, in order. */
  records: WalRecord[]
  /** Seq of the last record in the file (stale or not), or `undefined` for an empty file. */
  lastSeq: number | undefined
  /** Bytes up to the end of the last good record: where a torn tail starts. */
  goodBytes: number
  /** Why the bytes after `goodBytes` were judged a torn tail, if there are any. */
  tornTail: string | undefined
}

/**
 * Reads a WAL's bytes. `afterSeq` is the last seq the snapshot covers: records up to it are
 * authenticated and checked for order but not returned. Throws `STORE_ERR_TAMPERED` or
 * `STORE_ERR_FORMAT` with a message naming `path`, the record and the byte.
 */
export function scanWal (bytes: Uint8Array, key: Uint8Array, path: string, afterSeq: number): WalScan {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const records: WalRecord[] = []
  let offset = 0
  let index = 0
  let lastSeq: number | undefined
  const where = (): string => `${path}: record ${index + 1} at byte ${offset}`
  const torn = (why: string): WalScan => ({ records, lastSeq, goodBytes: offset, tornTail: `${where()} ${why}` })

  while (offset < bytes.length) {
    const remaining = bytes.length - offset
    if (remaining < PREFIX_BYTES) return torn(`is cut short: ${remaining} bytes of a length prefix`)
    const length = view.getUint32(offset, true)
    const complement = view.getUint32(offset + 4, true)
    if ((length ^ complement) >>> 0 !== 0xffffffff || length < SEALED_BYTES_MIN) {
      if (isZero(bytes, offset, bytes.length)) return torn(`is ${remaining} zero bytes, never written`)
      throw new StoreError(STORE_ERR_TAMPERED, `${where()} has a damaged length prefix: the file was changed`)
    }
    const end = offset + PREFIX_BYTES + length
    if (end > bytes.length) return torn(`is cut short: ${remaining - PREFIX_BYTES} of ${length} bytes`)

    let plaintext: Uint8Array
    try {
      plaintext = openSealed(key, bytes.subarray(offset + PREFIX_BYTES, end))
    } catch (err) {
      if (end === bytes.length && isZero(bytes, end - ZERO_TAIL_BYTES_MIN, end)) return torn('ends in zero bytes, never written')
      // Once an earlier record authenticated the key is right, and a failing last record may be
      // a power cut's damage that rule 4 could not recognise: say how to recover by hand.
      const hint = end === bytes.length && index > 0
        ? `; it is the last record: if the machine lost power while writing it, truncating the file to ${offset} bytes recovers the store without it`
        : ''
      throw new StoreError(STORE_ERR_TAMPERED, `${where()} failed authentication: changed, or sealed under another key${hint}`, { cause: err })
    }

    let record: WalRecord
    try {
      record = decodeRecord(plaintext)
    } catch (err) {
      if (!(err instanceof ShapeError)) throw err
      throw new StoreError(STORE_ERR_FORMAT, `${where()} authenticated but ${err.message}: written by an incompatible version?`, { cause: err })
    }

    if (lastSeq === undefined) {
      // The first record may repeat seqs the snapshot covers (a crash between writing the
      // snapshot and emptying the WAL) but may not start past it.
      if (record.seq > afterSeq + 1) {
        const covered = afterSeq === 0 ? 'there is no snapshot' : `the snapshot covers up to seq ${afterSeq}`
        const missing = `records ${afterSeq + 1} to ${record.seq - 1} are missing (was a file removed or replaced?)`
        throw new StoreError(STORE_ERR_TAMPERED, `${where()} has seq ${record.seq} but ${covered}: ${missing}`)
      }
    } else if (record.seq !== lastSeq + 1) {
      throw new StoreError(STORE_ERR_TAMPERED, `${where()} has seq ${record.seq} after seq ${lastSeq}: records were removed, reordered or replayed`)
    }
    lastSeq = record.seq
    if (record.seq > afterSeq) records.push(record)
    offset = end
    index++
  }
  return { records, lastSeq, goodBytes: offset, tornTail: undefined }
}

function isZero (bytes: Uint8Array, from: number, to: number): boolean {
  for (let i = Math.max(0, from); i < to; i++) if (bytes[i] !== 0) return false
  return true
}

/** An open write-ahead log, positioned after its last good record. */
export class Wal {
  readonly path: string
  readonly #file: WalFile
  readonly #key: Uint8Array
  #sizeBytes: number

  private constructor (path: string, file: WalFile, key: Uint8Array, sizeBytes: number) {
    this.path = path
    this.#file = file
    this.#key = key
    this.#sizeBytes = sizeBytes
  }

  /**
   * Opens the WAL at `path` (creating it), recovers its records after `afterSeq`, cuts off a
   * torn tail, and empties it when every record is covered by the snapshot, so that the next
   * record (seq `afterSeq + 1`) follows without a gap. `check` sees what was found (the file's
   * size, `undefined` when it does not exist) and may throw, before anything is created or cut
   * off, so that a refused file is left as it was.
   */
  static async open (fs: StoreFileSystem, path: string, key: Uint8Array, afterSeq: number, sync: boolean,
    check?: (scan: WalScan, sizeBytes: number | undefined) => void): Promise<{ wal: Wal, scan: WalScan, created: boolean }> {
    const bytes = await fs.readFile(path)
    const scan = bytes === undefined
      ? { records: [], lastSeq: undefined, goodBytes: 0, tornTail: undefined }
      : scanWal(bytes, key, path, afterSeq)
    check?.(scan, bytes?.length)
    const file = await fs.openWal(path, sync)
    try {
      let sizeBytes = bytes?.length ?? 0
      const stale = scan.lastSeq !== undefined && scan.lastSeq <= afterSeq
      const keepBytes = stale ? 0 : scan.goodBytes
      if (keepBytes < sizeBytes) {
        await file.truncate(keepBytes)
        sizeBytes = keepBytes
      }
      return { wal: new Wal(path, file, key, sizeBytes), scan, created: bytes === undefined }
    } catch (err) {
      await file.close().catch(() => {})
      throw err
    }
  }

  /** Bytes in the file. */
  get sizeBytes (): number {
    return this.#sizeBytes
  }

  /** Seals `plaintext` into one record and appends it; durable on return when opened with sync. */
  async append (plaintext: Uint8Array): Promise<void> {
    const sealed = seal(this.#key, plaintext)
    const frame = new Uint8Array(PREFIX_BYTES + sealed.length)
    const view = new DataView(frame.buffer)
    view.setUint32(0, sealed.length, true)
    view.setUint32(4, ~sealed.length >>> 0, true)
    frame.set(sealed, PREFIX_BYTES)
    await this.#file.write(frame, this.#sizeBytes)
    this.#sizeBytes += frame.length
  }

  /**
   * Cuts the file back to the end of the last record appended whole, and makes that length
   * durable: after an append failed part way (a full disk), whatever part of its record reached
   * the file is gone, and the next append starts where the failed one did. The bytes before that
   * point were made durable by earlier appends and never written again, so they are what the
   * disk holds.
   */
  async rollBack (): Promise<void> {
    await this.#file.truncate(this.#sizeBytes)
  }

  /** Empties the file, once a durable snapshot covers every record in it. */
  async reset (): Promise<void> {
    await this.#file.truncate(0)
    this.#sizeBytes = 0
  }

  async close (): Promise<void> {
    await this.#file.close()
  }
}
