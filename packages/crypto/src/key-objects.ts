/**
 * Ed25519 and X25519 in node:crypto (OpenSSL), on the raw 32-byte keys tweetnacl uses.
 *
 * Both are deterministic, so a signature or a shared secret is the same bytes either way; what
 * differs is the time. tweetnacl does them in JavaScript: a millisecond or more each once warm, and
 * tens of milliseconds for the first ones a process makes, which every HSM start (its certificate
 * checked), every connection (the handshake signs once and verifies twice) and every process that
 * connects pays. OpenSSL takes tens of microseconds. Symmetric work (secretbox: stores, masked
 * objects, the channel's frames) stays on tweetnacl: OpenSSL has no XSalsa20-Poly1305.
 */
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, randomBytes } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { hsalsa20Subkey } from './frame-cipher.js'

// DER headers of PKCS#8 private keys and SubjectPublicKeyInfo public keys (RFC 8410), before the 32 raw bytes.
const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex')
const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex')
const X25519_SPKI = Buffer.from('302a300506032b656e032100', 'hex')
const RAW_KEY_BYTES = 32

/** KeyObjects made from byte arrays, kept while the array lives and holds the same bytes. */
class KeyObjectCache {
  readonly #entries = new WeakMap<Uint8Array, { bytes: Uint8Array, key: KeyObject }>()

  get (raw: Uint8Array, make: () => KeyObject): KeyObject {
    const hit = this.#entries.get(raw)
    if (hit !== undefined && Buffer.compare(hit.bytes, raw) === 0) return hit.key
    const key = make()
    this.#entries.set(raw, { bytes: raw.slice(), key })
    return key
  }
}

const ed25519PrivateKeys = new KeyObjectCache()
const ed25519PublicKeys = new KeyObjectCache()

function der (prefix: Buffer, raw: Uint8Array): Buffer {
  return Buffer.concat([prefix, raw])
}

/** The last 32 bytes of a DER-encoded key: the raw key. */
function rawOf (encoded: Buffer): Uint8Array {
  return new Uint8Array(encoded.subarray(encoded.length - RAW_KEY_BYTES))
}

/** The Ed25519 private key of a tweetnacl secret key (seed ‖ public key, 64 bytes). */
export function ed25519PrivateKey (secretKey: Uint8Array): KeyObject {
  return ed25519PrivateKeys.get(secretKey, () => createPrivateKey({ key: der(ED25519_PKCS8, secretKey.subarray(0, RAW_KEY_BYTES)), format: 'der', type: 'pkcs8' }))
}

/** The Ed25519 public key of 32 raw bytes; throws when OpenSSL refuses them. */
export function ed25519PublicKey (publicKey: Uint8Array): KeyObject {
  return ed25519PublicKeys.get(publicKey, () => createPublicKey({ key: der(ED25519_SPKI, publicKey), format: 'der', type: 'spki' }))
}

/** A fresh Ed25519 key pair in tweetnacl's form: a 32-byte public key, a 64-byte secret key (seed ‖ public key). */
export function generateEd25519 (): { publicKey: Uint8Array, secretKey: Uint8Array } {
  const seed = randomBytes(RAW_KEY_BYTES)
  const privateKey = createPrivateKey({ key: der(ED25519_PKCS8, seed), format: 'der', type: 'pkcs8' })
  const publicKey = rawOf(createPublicKey(privateKey).export({ format: 'der', type: 'spki' }))
  const secretKey = new Uint8Array(2 * RAW_KEY_BYTES)
  secretKey.set(seed)
  secretKey.set(publicKey, RAW_KEY_BYTES)
  seed.fill(0)
  ed25519PrivateKeys.get(secretKey, () => privateKey)
  return { publicKey, secretKey }
}

/** An ephemeral X25519 key pair: the private half stays a KeyObject, the public half is raw bytes. */
export interface X25519KeyPair {
  privateKey: KeyObject
  publicKey: Uint8Array
}

/** A fresh X25519 key pair. */
export function generateX25519 (): X25519KeyPair {
  const pair = generateKeyPairSync('x25519')
  return { privateKey: pair.privateKey, publicKey: rawOf(pair.publicKey.export({ format: 'der', type: 'spki' })) }
}

/**
 * tweetnacl's `box.before`: HSalsa20 over the X25519 shared secret. Throws when OpenSSL refuses
 * the other side's key (a point of small order gives an all-zero secret, which it does not derive).
 */
export function x25519BoxKey (ownPrivateKey: KeyObject, otherPublicKey: Uint8Array): Uint8Array {
  const shared = diffieHellman({ privateKey: ownPrivateKey, publicKey: createPublicKey({ key: der(X25519_SPKI, otherPublicKey), format: 'der', type: 'spki' }) })
  const key = hsalsa20Subkey(shared)
  shared.fill(0)
  return key
}
