import { concatBytes, sha512, utf8 } from './bytes.js'
import { CryptoError, CRYPTO_ERR_AUTH, CRYPTO_ERR_FORMAT, CRYPTO_ERR_LINEAGE } from './errors.js'
import { open, seal } from './seal.js'

/** What a masked object says about itself in clear: enough to route it and to refuse it early. */
export interface MaskedObjectHeader {
  /** `key` or `user`. */
  kind: 'key' | 'user'
  /** A person-readable name of what it holds: `key 262152`, `user alice`. */
  name: string
  /** The cluster lineage whose masking key sealed it. */
  lineage: string
}

const MAGIC = utf8('HSMLABMO')
const VERSION = 1

function headerKey (maskingKey: Uint8Array, headerBytes: Uint8Array): Uint8Array {
  // Binding the header into the key makes a changed header fail authentication like a changed body.
  return sha512(concatBytes(utf8('hsmlab/masked-object/v1\0'), maskingKey, headerBytes)).slice(0, 32)
}

/**
 * Seals one user or one key under the cluster masking key (ExtractMaskedObject). Only an HSM of
 * the same lineage can open it.
 */
export function maskObject (maskingKey: Uint8Array, header: MaskedObjectHeader, payload: Uint8Array): Uint8Array {
  const headerBytes = utf8(JSON.stringify({ kind: header.kind, name: header.name, lineage: header.lineage }))
  const prefix = new Uint8Array(MAGIC.length + 1 + 4)
  prefix.set(MAGIC, 0)
  prefix[MAGIC.length] = VERSION
  new DataView(prefix.buffer).setUint32(MAGIC.length + 1, headerBytes.length)
  return concatBytes(prefix, headerBytes, seal(headerKey(maskingKey, headerBytes), payload))
}

/** Reads the clear header of a masked object without opening it. */
export function readMaskedObjectHeader (blob: Uint8Array): MaskedObjectHeader {
  return parse(blob).header
}

function parse (blob: Uint8Array): { header: MaskedObjectHeader, headerBytes: Uint8Array, body: Uint8Array } {
  const fixed = MAGIC.length + 1 + 4
  if (blob.length < fixed || !MAGIC.every((b, i) => blob[i] === b)) {
    throw new CryptoError(CRYPTO_ERR_FORMAT, 'not a masked object (bad magic bytes)')
  }
  if (blob[MAGIC.length] !== VERSION) {
    throw new CryptoError(CRYPTO_ERR_FORMAT, `masked object version ${String(blob[MAGIC.length])} is not supported`)
  }
  const headerLength = new DataView(blob.buffer, blob.byteOffset, blob.byteLength).getUint32(MAGIC.length + 1)
  if (fixed + headerLength > blob.length) throw new CryptoError(CRYPTO_ERR_FORMAT, 'masked object is truncated')
  const headerBytes = blob.subarray(fixed, fixed + headerLength)
  let header: unknown
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes))
  } catch (err) {
    throw new CryptoError(CRYPTO_ERR_AUTH, 'masked object header is corrupt: it was changed', { cause: err })
  }
  if (!isHeader(header)) throw new CryptoError(CRYPTO_ERR_AUTH, 'masked object header is corrupt: it was changed')
  return { header, headerBytes, body: blob.subarray(fixed + headerLength) }
}

function isHeader (value: unknown): value is MaskedObjectHeader {
  if (typeof value !== 'object' || value === null) return false
  const v = value as Record<string, unknown>
  return (v.kind === 'key' || v.kind === 'user') && typeof v.name === 'string' && typeof v.lineage === 'string'
}

/**
 * Opens a masked object (InsertMaskedObject). Throws `CRYPTO_ERR_LINEAGE` when it comes from another
 * lineage, `CRYPTO_ERR_AUTH` when any byte was changed.
 */
export function unmaskObject (maskingKey: Uint8Array, lineage: string, blob: Uint8Array): { header: MaskedObjectHeader, payload: Uint8Array } {
  const { header, headerBytes, body } = parse(blob)
  if (header.lineage !== lineage) {
    throw new CryptoError(CRYPTO_ERR_LINEAGE, `masked object comes from cluster lineage ${header.lineage}, not ${lineage}: only the cluster it was extracted from and clones of that cluster can insert it`)
  }
  try {
    return { header, payload: open(headerKey(maskingKey, headerBytes), body) }
  } catch (err) {
    throw new CryptoError(CRYPTO_ERR_AUTH, `masked object (${header.name}) failed authentication: it was changed after it was extracted`, { cause: err })
  }
}
