import { scrypt, timingSafeEqual } from 'node:crypto'
import { randomBytes } from './bytes.js'

/** A salted password verifier; the password itself is never stored. */
export interface PasswordHash {
  algorithm: 'scrypt'
  salt: Uint8Array
  hash: Uint8Array
  /** CPU/memory cost. @default 16384 */
  cost: number
}

const HASH_BYTES = 32

function derive (password: string, salt: Uint8Array, cost: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, HASH_BYTES, { N: cost, r: 8, p: 1 }, (err, key) => {
      if (err !== null) reject(err)
      else resolve(new Uint8Array(key))
    })
  })
}

/** Hashes a password with scrypt and a fresh salt. */
export async function hashPassword (password: string, cost = 16384): Promise<PasswordHash> {
  const salt = randomBytes(16)
  return { algorithm: 'scrypt', salt, hash: await derive(password, salt, cost), cost }
}

/** True when `password` matches the verifier, compared in constant time. */
export async function verifyPassword (password: string, verifier: PasswordHash): Promise<boolean> {
  const candidate = await derive(password, verifier.salt, verifier.cost)
  return candidate.length === verifier.hash.length && timingSafeEqual(candidate, verifier.hash)
}
