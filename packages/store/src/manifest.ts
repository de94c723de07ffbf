/**
 * The manifest: `${name}.manifest`, beside a store's WAL and snapshot, vouching for how far the
 * store got, so that a file put back from an earlier time, cut at a record boundary or deleted
 * is refused instead of loading an older state. A record that authenticates proves its bytes
 * are the store's, not that they are the newest: only something outside the file can say that.
 *
 * It is one fixed-size sealed record (`MANIFEST_BYTES`), `seal(key, u16 LE length |
 * msgpack({ name, seq, snapSeq }) | zero padding)`:
 *   - `seq`: the last WAL record made durable and acknowledged; every group commit writes the
 *     record, then the manifest, then acknowledges, so the files always hold `seq` or `seq + 1`;
 *   - `snapSeq`: the seq of the last snapshot renamed into place (0: none), written after the
 *     rename and before the WAL is emptied, so the snapshot is never older than `snapSeq`;
 *   - `name`: the store's file stem, so that one store's manifest cannot vouch for another's.
 *
 * It is rewritten in place at offset 0 with one O_DSYNC write (no rename, no new blocks: the
 * cheapest durable write there is, and one that a full disk does not refuse). The record fits in
 * one 512-byte sector, which disks write whole, as PostgreSQL's pg_control relies on; a SIGKILL
 * cannot tear it either, as the kernel copies a write within one page at once.
 *
 * Every crash point of a commit loads: before the WAL write is durable (files end at `seq`),
 * between it and the manifest write (`seq + 1`: that record was never acknowledged but is
 * durable, so it stays and the manifest is brought up to it on open), after (`seq`). Of a
 * snapshot: before the rename (old snapshot, WAL whole), between the rename and the manifest
 * write (a snapshot newer than `snapSeq` is fine), before the WAL is emptied (records the
 * snapshot covers are dropped as before). What this cannot catch is a store whose WAL, snapshot
 * and manifest are all put back from the same earlier moment: that needs a counter outside the
 * data directory (a peer, the control plane).
 */
import { Packr } from 'msgpackr'
import { open as openSealed, seal } from '@hsmlab/crypto'
import type { StoreFileSystem, WalFile } from './file-system.js'
import { StoreError, STORE_ERR_FORMAT, STORE_ERR_TAMPERED } from './errors.js'

/** Size of a manifest file: one sector, so that it is written whole. */
export const MANIFEST_BYTES = 512
/** Bytes `seal` adds: a 24-byte nonce and a 16-byte tag. */
const SEAL_OVERHEAD_BYTES = 40
const PLAINTEXT_BYTES = MANIFEST_BYTES - SEAL_OVERHEAD_BYTES
/** Longest store name a manifest can hold, with room for the rest of its fields. */
export const MANIFEST_NAME_BYTES_MAX = 255

const packr = new Packr({ useRecords: false })

/** What a manifest vouches for. */
export interface ManifestContents {
  /** Seq of the last WAL record acknowledged (0: none yet). */
  seq: number
  /** Seq the last snapshot renamed into place covers (0: none). */
  snapSeq: number
}

/** The paths of one store's files, for messages. */
export interface StoreFiles {
  manifest: string
  wal: string
  snap: string
}

/** Reads the manifest at `path`; `undefined` when there is none. Throws `STORE_ERR_TAMPERED` naming it. */
export async function readManifest (fs: StoreFileSystem, path: string, key: Uint8Array, name: string): Promise<ManifestContents | undefined> {
  const bytes = await fs.readFile(path)
  if (bytes === undefined) return undefined
  if (bytes.length !== MANIFEST_BYTES) {
    throw new StoreError(STORE_ERR_TAMPERED, `${path}: manifest of ${bytes.length} bytes, not ${MANIFEST_BYTES}: the file was changed`)
  }
  let plaintext: Uint8Array
  try {
    plaintext = openSealed(key, bytes)
  } catch (err) {
    throw new StoreError(STORE_ERR_TAMPERED, `${path}: manifest failed authentication: changed, or sealed under another key`, { cause: err })
  }
  const length = plaintext.length >= 2 ? new DataView(plaintext.buffer, plaintext.byteOffset).getUint16(0, true) : Infinity
  let decoded: unknown
  try {
    if (2 + length > plaintext.length) throw new Error(`announces ${length} bytes`)
    decoded = packr.unpack(plaintext.subarray(2, 2 + length))
  } catch (err) {
    throw new StoreError(STORE_ERR_FORMAT, `${path}: manifest authenticated but is not msgpack (${(err as Error).message}): written by an incompatible version?`, { cause: err })
  }
  const { name: owner, seq, snapSeq } = (typeof decoded === 'object' && decoded !== null ? decoded : {}) as Record<string, unknown>
  if (typeof owner !== 'string' || !isCount(seq) || !isCount(snapSeq) || snapSeq > seq) {
    throw new StoreError(STORE_ERR_FORMAT, `${path}: manifest authenticated but has no valid name, seq and snapSeq: written by an incompatible version?`)
  }
  if (owner !== name) {
    throw new StoreError(STORE_ERR_TAMPERED, `${path}: is the manifest of store '${owner}', not of '${name}': a file was put in the place of another`)
  }
  return { seq, snapSeq }
}

function isCount (n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
}

/**
 * Checks, before the WAL is opened, that the snapshot found is the one the manifest vouches for
 * (or newer: a crash between its rename and the manifest write).
 */
export function checkSnapshot (files: StoreFiles, vouched: ManifestContents, snapSeq: number | undefined): void {
  if (snapSeq === undefined) {
    if (vouched.snapSeq > 0) {
      throw new StoreError(STORE_ERR_TAMPERED, `${files.snap}: is missing, but ${files.manifest} says a snapshot up to seq ${vouched.snapSeq} was written: the file was deleted`)
    }
    return
  }
  if (snapSeq < vouched.snapSeq) {
    throw new StoreError(STORE_ERR_TAMPERED, `${files.snap}: covers up to seq ${snapSeq}, but ${files.manifest} says a snapshot up to seq ${vouched.snapSeq} was written: it was replaced by an earlier copy`)
  }
  if (snapSeq > vouched.seq) {
    throw new StoreError(STORE_ERR_TAMPERED, `${files.manifest}: vouches for seq ${vouched.seq}, but ${files.snap} covers up to seq ${snapSeq}: the manifest was replaced by an earlier copy`)
  }
}

/** What the WAL held, as far as the manifest is concerned. */
export interface WalFound {
  /** Whether the WAL file existed. */
  exists: boolean
  /** The last seq the files hold: the WAL's last record after the snapshot, else the snapshot's seq. */
  lastSeq: number
  /** Why bytes at the WAL's end were taken for a torn tail, if there were any. */
  tornTail: string | undefined
}

/**
 * Checks, before a torn tail is cut off, that the files hold every record the manifest vouches
 * for and at most the one a crash left unacknowledged after it.
 */
export function checkWal (files: StoreFiles, vouched: ManifestContents, found: WalFound): void {
  if (!found.exists) {
    throw new StoreError(STORE_ERR_TAMPERED, `${files.wal}: is missing, but ${files.manifest} vouches for records up to seq ${vouched.seq}: the file was deleted`)
  }
  if (found.lastSeq < vouched.seq) {
    const torn = found.tornTail === undefined ? '' : ` (and ${found.tornTail})`
    throw new StoreError(STORE_ERR_TAMPERED, `${files.wal}: ends at seq ${found.lastSeq}${torn}, but ${files.manifest} vouches for records up to seq ${vouched.seq}: ` +
      'acknowledged records are missing: the file was cut short, emptied, or replaced by an earlier copy')
  }
  if (found.lastSeq > vouched.seq + 1) {
    throw new StoreError(STORE_ERR_TAMPERED, `${files.manifest}: vouches for seq ${vouched.seq}, but ${files.wal} holds records up to seq ${found.lastSeq}: the manifest was replaced by an earlier copy`)
  }
}

/**
 * Where there is no manifest: throws unless the store is new (no snapshot, a WAL absent or empty)
 * and may be created.
 */
export function checkNoManifest (files: StoreFiles, found: { snapExists: boolean, walBytes: number | undefined }, create: boolean): void {
  const held = [...(found.snapExists ? [files.snap] : []), ...((found.walBytes ?? 0) > 0 ? [files.wal] : [])]
  if (held.length > 0) {
    throw new StoreError(STORE_ERR_TAMPERED, `${files.manifest}: is missing, but ${held.join(' and ')} hold${held.length === 1 ? 's' : ''} the store: ` +
      'the manifest was deleted (or the store was written by an hsmlab older than manifests)')
  }
  if (!create) {
    throw new StoreError(STORE_ERR_TAMPERED, `${files.manifest}: is missing, and so ${found.walBytes === undefined ? `is ${files.wal}` : `is every record of ${files.wal}`}` +
      `${found.snapExists ? '' : ` and ${files.snap}`}, but the store must exist (create: false): its files were deleted`)
  }
}

/** An open manifest file, rewritten in place. */
export class Manifest {
  readonly path: string
  readonly #file: WalFile
  readonly #key: Uint8Array
  readonly #name: string

  private constructor (path: string, file: WalFile, key: Uint8Array, name: string) {
    this.path = path
    this.#file = file
    this.#key = key
    this.#name = name
  }

  /** Opens (creating) the manifest at `path`; each write is durable on return when `sync`. */
  static async open (fs: StoreFileSystem, path: string, key: Uint8Array, name: string, sync: boolean): Promise<Manifest> {
    return new Manifest(path, await fs.openWal(path, sync), key, name)
  }

  /** Replaces what the manifest vouches for, with one write of `MANIFEST_BYTES` at offset 0. */
  async write (contents: ManifestContents): Promise<void> {
    await this.#file.write(sealManifest(this.#key, this.#name, contents), 0)
  }

  async close (): Promise<void> {
    await this.#file.close()
  }
}

/** The bytes of a manifest: always `MANIFEST_BYTES`. */
export function sealManifest (key: Uint8Array, name: string, contents: ManifestContents): Uint8Array {
  const body = packr.pack({ name, seq: contents.seq, snapSeq: contents.snapSeq })
  if (2 + body.length > PLAINTEXT_BYTES) throw new Error(`a manifest for store name '${name}' does not fit in ${MANIFEST_BYTES} bytes`)
  const plaintext = new Uint8Array(PLAINTEXT_BYTES)
  new DataView(plaintext.buffer).setUint16(0, body.length, true)
  plaintext.set(body, 2)
  return seal(key, plaintext)
}
