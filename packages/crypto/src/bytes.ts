import { createHash } from 'node:crypto'
import { nacl } from './nacl.js'

/** Concatenates byte arrays into one new array. */
export function concatBytes (...parts: Uint8Array[]): Uint8Array {
  let length = 0
  for (const p of parts) length += p.length
  const out = new Uint8Array(length)
  let offset = 0
  for (const p of parts) { out.set(p, offset); offset += p.length }
  return out
}

const encoder = new TextEncoder()

/** UTF-8 bytes of a string. */
export function utf8 (text: string): Uint8Array {
  return encoder.encode(text)
}

/** Lower-case hexadecimal of some bytes. */
export function toHex (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

/** `count` bytes from the operating system's CSPRNG. */
export function randomBytes (count: number): Uint8Array {
  return nacl.randomBytes(count)
}

/**
 * A 32-byte key derived from `key` for one purpose. Domain separation keeps one secret from
 * being used for two jobs (a storage key for the user store and for the key store, say).
 */
export function deriveKey (key: Uint8Array, purpose: string): Uint8Array {
  return sha512(concatBytes(utf8(`hsmlab/derive/v1/${purpose}\0`), key)).slice(0, 32)
}

/** SHA-512 of some bytes. */
export function sha512 (bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha512').update(bytes).digest())
}

/** Constant-time comparison of two byte arrays. */
export function bytesEqual (a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && nacl.verify(a, b)
}
