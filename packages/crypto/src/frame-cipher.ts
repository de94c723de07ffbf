/**
 * One direction of a secure channel: AES-256-GCM (node:crypto, so OpenSSL's AES-NI code) under one
 * key, with the 12-byte nonce of frame n being 4 zero bytes and then n as a big-endian 64-bit
 * counter, and the 16-byte tag after the ciphertext. The channel was nacl secretbox
 * (XSalsa20-Poly1305) in tweetnacl's JavaScript until issue 16's speed work: it cost about 75 µs of
 * CPU for each 4 KiB frame sealed and opened, a quarter of the client daemon's CPU per PKCS#11
 * AES-GCM call and as much again on the HSM; OpenSSL's AES-GCM takes about a fifth of that. Each
 * key is one direction's only, and a counter never repeats under it, as GCM requires.
 */
import { createCipheriv, createDecipheriv, createSecretKey } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { nacl } from './nacl.js'

/** tweetnacl's low-level functions (untyped in its declarations). */
interface Lowlevel {
  crypto_core_hsalsa20: (out: Uint8Array, input: Uint8Array, key: Uint8Array, constant: Uint8Array) => number
}
const lowlevel = (nacl as unknown as { lowlevel: Lowlevel }).lowlevel

// "expand 32-byte k", the constant of (H)Salsa20.
const SIGMA = new Uint8Array([101, 120, 112, 97, 110, 100, 32, 51, 50, 45, 98, 121, 116, 101, 32, 107])
const ZERO_16 = new Uint8Array(16)

/** HSalsa20 of a 32-byte key over 16 zero bytes: XSalsa20's subkey for such nonces, and tweetnacl's `box.before` of a shared secret. */
export function hsalsa20Subkey (key: Uint8Array): Uint8Array {
  const subkey = new Uint8Array(32)
  lowlevel.crypto_core_hsalsa20(subkey, ZERO_16, key, SIGMA)
  return subkey
}

const TAG_BYTES = 16

/** Seals or opens the frames of one direction, in order. */
export class FrameCipher {
  readonly #key: KeyObject
  /** The nonce of the next frame: 4 zero bytes, then its counter, big-endian. */
  readonly #nonce = Buffer.alloc(12)
  #frames = 0

  constructor (key: Uint8Array) {
    if (key.length !== 32) throw new Error('bad key size')
    this.#key = createSecretKey(key)
  }

  /** The next frame: ciphertext, then the 16-byte tag. */
  seal (plaintext: Uint8Array): Uint8Array {
    const cipher = createCipheriv('aes-256-gcm', this.#key, this.#nonce, { authTagLength: TAG_BYTES })
    const out = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
    this.#next()
    return out
  }

  /** The plaintext of the next frame, or null (and the counter unchanged) when it fails authentication. */
  open (box: Uint8Array): Uint8Array | null {
    if (box.length < TAG_BYTES) return null
    const bytes = Buffer.from(box.buffer, box.byteOffset, box.byteLength)
    const decipher = createDecipheriv('aes-256-gcm', this.#key, this.#nonce, { authTagLength: TAG_BYTES })
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES))
    const body = decipher.update(bytes.subarray(0, bytes.length - TAG_BYTES))
    try {
      decipher.final()
    } catch {
      return null
    }
    this.#next()
    return body
  }

  #next (): void {
    this.#frames++
    this.#nonce.writeUInt32BE(Math.floor(this.#frames / 0x1_0000_0000), 4)
    this.#nonce.writeUInt32BE(this.#frames >>> 0, 8)
  }
}
