/**
 * Hashes over keys: the digest of one key (what peerInventory reports, so two HSMs can tell
 * whether they hold the same key under a handle) and the key hash of findAllKeys (one value over
 * every token key of an HSM, equal on two HSMs exactly when their keys, owners and shares agree,
 * reference A.6 / G.3).
 *
 * Both are SHA-256 over a canonical JSON text: attributes in id order, byte values in hex, shared
 * users sorted, so that the same key gives the same digest whatever order its fields were built
 * or decoded in (MessagePack turns numeric keys into strings, byte arrays into Buffers).
 */
import { createHash } from 'node:crypto'
import type { AttributeValue } from '@hsmlab/protocol'
import type { KeyRecord, KeyTombstone } from './context.js'
import { isTombstone } from './context.js'

function hex (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

function sha256Hex (text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex')
}

function canonicalValue (value: AttributeValue): [string, string | number] {
  if (typeof value === 'number') return ['n', value]
  if (typeof value === 'string') return ['s', value]
  return ['b', hex(value)]
}

/** A key's attributes in a canonical form: `[id, type, value]` in id order, bytes in hex. */
export function canonicalAttributes (record: KeyRecord): Array<[number, string, string | number]> {
  return Object.keys(record.attributes)
    .map(Number)
    .sort((a, b) => a - b)
    .map(id => [id, ...canonicalValue(record.attributes[id]!)])
}

const digestCache = new WeakMap<KeyRecord, string>()

/** SHA-256 (hex) of a key's material: lets digests compare material without carrying it. */
export function materialDigest (material: Uint8Array): string {
  return sha256Hex(material)
}

/**
 * The digest of one key (lowercase hex SHA-256): handle, class, type, material, every attribute,
 * owner, shared users (sorted) and the quorum value. Two HSMs holding the same key under the same
 * handle, with the same owner, shares and attributes, compute the same digest.
 */
export function keyDigest (record: KeyRecord): string {
  // Store values are frozen and keep their identity until replaced, so a digest is computed once
  // per stored version of a key (peerInventory asks for all of them every sync round).
  const cached = digestCache.get(record)
  if (cached !== undefined) return cached
  const attributes = canonicalAttributes(record)
  const shared = [...record.sharedWith].sort((a, b) => a - b)
  const digest = sha256Hex(JSON.stringify([
    'hsmlab/key/v1', record.handle, record.keyClass, record.keyType, materialDigest(record.material),
    attributes, record.owner, shared, record.mValue
  ]))
  if (Object.isFrozen(record)) digestCache.set(record, digest)
  return digest
}

/**
 * The findAllKeys key hash of an HSM: SHA-256 (lowercase hex, 64 characters) over the digests of
 * all its token keys in handle order. The records may come in any order.
 */
export function keysHash (records: Iterable<KeyRecord>): string {
  const sorted = [...records].sort((a, b) => a.handle - b.handle)
  const hash = createHash('sha256').update('hsmlab/key-hash/v1\0')
  for (const record of sorted) hash.update(`${keyDigest(record)}\n`)
  return hash.digest('hex')
}

/**
 * What anti-entropy compares, in one value (peerInventory's `unlessSummary`): SHA-256 (lowercase hex)
 * over the handles of the live keys and of the tombstones, each in ascending order. Two HSMs with
 * the same summary hold the same handles with the same state, so a round between them has
 * nothing to fetch or tombstone and skips the inventory (about 75 bytes a key, every round).
 */
export function inventorySummary (records: Iterable<KeyRecord | KeyTombstone>): string {
  const live: number[] = []
  const deleted: number[] = []
  for (const record of records) (isTombstone(record) ? deleted : live).push(record.handle)
  const hash = createHash('sha256').update(`hsmlab/inventory/v1\0${live.length}\0${deleted.length}\0`)
  for (const handles of [live, deleted]) hash.update(new Uint8Array(Float64Array.from(handles).sort().buffer))
  return hash.digest('hex')
}
