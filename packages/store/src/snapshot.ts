/**
 * Snapshots: the whole state sealed into one file, `seal(key, msgpack({ seq, entries }))`, where
 * `seq` is the last WAL record it covers. A snapshot is written to `${name}.snap.tmp`, fsynced,
 * renamed over `${name}.snap` and the directory fsynced, so `${name}.snap` is always either the
 * old snapshot or the new one, whole. A snapshot is never torn: any damage is tampering.
 */
import { dirname } from 'node:path'
import { open as openSealed, seal } from '@hsmlab/crypto'
import type { StoreFileSystem } from './file-system.js'
import { StoreError, STORE_ERR_FORMAT, STORE_ERR_TAMPERED } from './errors.js'
import { decodeSnapshot, encodeSnapshot, ShapeError } from './record-codec.js'

/** A snapshot's contents. */
export interface SnapshotContents {
  seq: number
  entries: Array<[string, unknown]>
}

/** Reads the snapshot at `path`; `undefined` when there is none. */
export async function readSnapshot (fs: StoreFileSystem, path: string, key: Uint8Array): Promise<SnapshotContents | undefined> {
  const bytes = await fs.readFile(path)
  if (bytes === undefined) return undefined
  let plaintext: Uint8Array
  try {
    plaintext = openSealed(key, bytes)
  } catch (err) {
    throw new StoreError(STORE_ERR_TAMPERED, `${path}: snapshot of ${bytes.length} bytes failed authentication: changed, or sealed under another key`, { cause: err })
  }
  try {
    return decodeSnapshot(plaintext)
  } catch (err) {
    if (!(err instanceof ShapeError)) throw err
    throw new StoreError(STORE_ERR_FORMAT, `${path}: snapshot authenticated but ${err.message}: written by an incompatible version?`, { cause: err })
  }
}

/**
 * Encodes and seals a snapshot of `entries` as of `seq`. Synchronous on purpose: the state must
 * be captured before any later change is applied to it.
 */
export function sealSnapshot (key: Uint8Array, seq: number, entries: Iterable<[string, unknown]>): Uint8Array {
  return seal(key, encodeSnapshot(seq, entries))
}

/**
 * Atomically replaces the snapshot at `path` with `sealed`, durable on return when `sync`. When
 * writing or renaming fails, the temporary file is removed before the error is passed on: on a
 * full disk it holds the space that the next write needs.
 */
export async function writeSnapshot (fs: StoreFileSystem, path: string, sealed: Uint8Array, sync: boolean): Promise<void> {
  const tmp = `${path}.tmp`
  try {
    await fs.writeFile(tmp, sealed, sync)
    await fs.rename(tmp, path)
  } catch (err) {
    // Best effort: opening the store removes a leftover temporary file anyway.
    await fs.remove(tmp).catch(() => {})
    throw err
  }
  if (sync) await fs.syncDirectory(dirname(path))
}
