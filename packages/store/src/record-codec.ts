/**
 * The plaintext inside every sealed record and snapshot, in msgpack:
 *
 *   record   = { seq, changes: [ { op: 'put', id, value } | { op: 'delete', id }, ... ] }
 *   snapshot = { seq, entries: [ [id, value], ... ] }
 *
 * Each change is encoded once, when `apply` is called, so that a value msgpack cannot encode
 * fails its own `apply` and nobody else's; a record is then assembled from those bytes without
 * encoding them again. The value kept in memory is the one decoded from those same bytes, so what
 * a reader sees before a restart is exactly what it sees after one.
 */
import { Packr } from 'msgpackr'
import type { Change } from './store.js'
import { StoreError, STORE_ERR_INVALID_ARGUMENT } from './errors.js'

// Plain msgpack maps (no record extension): the files stay readable by any msgpack decoder and
// never depend on structures shared between records. `variableMapSize` keeps objects with more
// than 65535 keys encodable; `useBigIntExtension` lets every bigint round-trip.
const packr = new Packr({ useRecords: false, variableMapSize: true, useBigIntExtension: true })

/** A change checked, encoded, and decoded back into the value the store will hold. */
export interface EncodedChange {
  bytes: Uint8Array
  change: Change<unknown>
}

/** A record's or snapshot's plaintext that authenticated but has not the expected shape. */
export class ShapeError extends Error {}

/**
 * Checks and encodes a batch given to `apply`. Throws `STORE_ERR_INVALID_ARGUMENT` naming the
 * first bad change.
 */
export function encodeChanges (changes: unknown): EncodedChange[] {
  if (!Array.isArray(changes)) throw invalid('apply takes an array of changes')
  const out: EncodedChange[] = []
  for (let i = 0; i < changes.length; i++) {
    const c: unknown = changes[i]
    if (typeof c !== 'object' || c === null) throw invalid(`change ${i} is not an object`)
    const { op, id, value } = c as { op?: unknown, id?: unknown, value?: unknown }
    if (typeof id !== 'string') throw invalid(`change ${i} has no string id`)
    let plain: object
    if (op === 'put') {
      // A put of undefined would make has() true and get() undefined; that is what delete is for.
      if (value === undefined) throw invalid(`change ${i} puts no value under id ${JSON.stringify(id)}; use op 'delete' to remove it`)
      plain = { op, id, value }
    } else if (op === 'delete') {
      plain = { op, id }
    } else {
      throw invalid(`change ${i} has op ${JSON.stringify(op)}; expected 'put' or 'delete'`)
    }
    let bytes: Uint8Array
    try {
      bytes = packr.pack(plain)
    } catch (err) {
      throw invalid(`change ${i} (id ${JSON.stringify(id)}) cannot be encoded: ${(err as Error).message}`, err)
    }
    out.push({ bytes, change: op === 'put' ? { op, id, value: settle((packr.unpack(bytes) as { value: unknown }).value) } : { op, id } })
  }
  return out
}

function invalid (message: string, cause?: unknown): StoreError {
  return new StoreError(STORE_ERR_INVALID_ARGUMENT, message, cause === undefined ? undefined : { cause })
}

const SEQ_KEY = Uint8Array.of(0xa3, 0x73, 0x65, 0x71) // fixstr "seq"
const CHANGES_KEY = Uint8Array.of(0xa7, 0x63, 0x68, 0x61, 0x6e, 0x67, 0x65, 0x73) // fixstr "changes"

/**
 * The plaintext of one record: `{ seq, changes }` as a msgpack map, written by hand around the
 * changes' existing bytes so that a group commit of many batches costs one copy, not a re-encode.
 */
export function encodeRecord (seq: number, batches: EncodedChange[][]): Uint8Array {
  const seqBytes = packr.pack(seq)
  let count = 0
  let changeBytes = 0
  for (const batch of batches) {
    count += batch.length
    for (const c of batch) changeBytes += c.bytes.length
  }
  const out = new Uint8Array(1 + SEQ_KEY.length + seqBytes.length + CHANGES_KEY.length + 5 + changeBytes)
  let at = 0
  out[at++] = 0x82 // fixmap of two entries
  out.set(SEQ_KEY, at); at += SEQ_KEY.length
  out.set(seqBytes, at); at += seqBytes.length
  out.set(CHANGES_KEY, at); at += CHANGES_KEY.length
  out[at++] = 0xdd // array 32
  new DataView(out.buffer).setUint32(at, count); at += 4
  for (const batch of batches) {
    for (const c of batch) { out.set(c.bytes, at); at += c.bytes.length }
  }
  return out
}

/** Decodes a record's plaintext; throws `ShapeError` when it is not a record. */
export function decodeRecord (plaintext: Uint8Array): { seq: number, changes: Array<Change<unknown>> } {
  const record = unpack(plaintext)
  if (typeof record !== 'object' || record === null) throw new ShapeError('is not a map')
  const { seq, changes } = record as { seq?: unknown, changes?: unknown }
  if (!isSeq(seq)) throw new ShapeError('has no valid seq')
  if (!Array.isArray(changes)) throw new ShapeError('has no changes array')
  const out: Array<Change<unknown>> = []
  for (const c of changes) {
    if (typeof c !== 'object' || c === null) throw new ShapeError('holds a change that is not a map')
    const { op, id, value } = c as { op?: unknown, id?: unknown, value?: unknown }
    if (typeof id !== 'string') throw new ShapeError('holds a change without a string id')
    if (op === 'put' && value !== undefined) out.push({ op, id, value: settle(value) })
    else if (op === 'delete') out.push({ op, id })
    else throw new ShapeError(`holds a change with op ${JSON.stringify(op)}`)
  }
  return { seq, changes: out }
}

/** The plaintext of a snapshot of `entries` as of `seq`. */
export function encodeSnapshot (seq: number, entries: Iterable<[string, unknown]>): Uint8Array {
  return packr.pack({ seq, entries: Array.from(entries) })
}

/** Decodes a snapshot's plaintext; throws `ShapeError` when it is not a snapshot. */
export function decodeSnapshot (plaintext: Uint8Array): { seq: number, entries: Array<[string, unknown]> } {
  const snapshot = unpack(plaintext)
  if (typeof snapshot !== 'object' || snapshot === null) throw new ShapeError('is not a map')
  const { seq, entries } = snapshot as { seq?: unknown, entries?: unknown }
  if (!isSeq(seq) && seq !== 0) throw new ShapeError('has no valid seq')
  if (!Array.isArray(entries)) throw new ShapeError('has no entries array')
  const out: Array<[string, unknown]> = []
  for (const e of entries) {
    if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || e[1] === undefined) throw new ShapeError('holds an entry that is not [id, value]')
    out.push([e[0], settle(e[1])])
  }
  return { seq, entries: out }
}

function unpack (bytes: Uint8Array): unknown {
  try {
    return packr.unpack(bytes)
  } catch (err) {
    throw new ShapeError(`is not msgpack (${(err as Error).message})`)
  }
}

function isSeq (seq: unknown): seq is number {
  return typeof seq === 'number' && Number.isSafeInteger(seq) && seq > 0
}

/**
 * Makes a freshly decoded value safe to hand out many times: objects and arrays are frozen, so
 * a caller cannot change the store without `apply`; byte arrays, which JavaScript cannot freeze,
 * are copied out of the decode buffer into plain `Uint8Array`s of their own (msgpackr decodes
 * them as `Buffer` views that would keep a whole record's plaintext alive).
 */
export function settle (value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value
  if (value instanceof Uint8Array) return new Uint8Array(value)
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = settle(value[i])
    return Object.freeze(value)
  }
  if (value instanceof Date) return value
  const object = value as Record<string, unknown>
  const keys = Object.keys(object)
  if (hasSparseIndexKeys(keys)) return frozenCopy(object, keys)
  for (const key of keys) object[key] = settle(object[key])
  return Object.freeze(object)
}

/** An index key (`'0'`, `'371'`): what V8 stores as an element rather than a named property. */
function isIndexKey (key: string): boolean {
  const n = Number(key)
  return Number.isInteger(n) && n >= 0 && n < 0xffff_ffff && String(n) === key
}

/**
 * True when an object's index keys are few and far apart (an attributes map with keys 0 to 528,
 * say). `Object.keys` lists index keys first, in ascending order.
 */
function hasSparseIndexKeys (keys: string[]): boolean {
  let count = 0
  while (count < keys.length && isIndexKey(keys[count]!)) count++
  return count > 0 && Number(keys[count - 1]) >= 4 * count + 16
}

/**
 * A frozen copy of `object` whose properties are defined read-only one by one. V8 keeps the index
 * keys of an object built by assignment in an array as long as the highest key (with growth room:
 * about 6.5 KiB for an attributes map whose highest key is 528); properties defined read-only
 * make it keep them in a dictionary sized by their count instead (about 1.5 KiB). The value is the
 * same frozen object to every reader; only its memory differs.
 */
function frozenCopy (object: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const key of keys) {
    Object.defineProperty(out, key, { value: settle(object[key]), enumerable: true, writable: false, configurable: false })
  }
  return Object.freeze(out)
}
