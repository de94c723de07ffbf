/**
 * Goal (issue 16): CKM_RSA_PKCS decryption, done by hand around a raw RSA operation because Node
 * 20 refuses PKCS#1 v1.5 decryption, gives back exactly what OpenSSL's PKCS#1 v1.5 encryption put
 * in, and refuses every block whose padding is wrong with the one error a wrong key gets.
 *
 * Method: OpenSSL (node:crypto publicEncrypt) pads and encrypts random messages; blocks with a
 * chosen padding are raised to e with RSA_NO_PADDING; fast-check, bounded to a few seconds.
 */
import { constants, generateKeyPairSync, publicEncrypt } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { WireError } from '@hsmlab/protocol'
import { p11DecryptData, p11EncryptData } from '../src/mechanisms.js'

const CKM_RSA_PKCS = 0x1
const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
const K = 256

function failure (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    if (err instanceof WireError) return `${err.status}:${err.message}`
    throw err
  }
  return 'ok'
}

/** 0x00 0x02 PS 0x00 M with a padding string of `psBytes` nonzero bytes. */
function block (message: Uint8Array, psBytes: number): Buffer {
  return Buffer.concat([Buffer.from([0, 2]), Buffer.alloc(psBytes, 0x5a), Buffer.from([0]), message])
}

describe('CKM_RSA_PKCS in the HSM', () => {
  it('decrypts what OpenSSL encrypts, and what it encrypts itself', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: K - 11 }), m => {
      const sealed = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, m)
      expect(Buffer.from(p11DecryptData(CKM_RSA_PKCS, {}, privateKey, sealed)).equals(Buffer.from(m))).toBe(true)
      const own = p11EncryptData(CKM_RSA_PKCS, {}, publicKey, m)
      expect(Buffer.from(p11DecryptData(CKM_RSA_PKCS, {}, privateKey, own)).equals(Buffer.from(m))).toBe(true)
    }), { numRuns: 40, interruptAfterTimeLimit: 4000 })
  })

  it('takes a padding string of 8 bytes and refuses 7, with a wrong key\'s error', () => {
    const m = Buffer.from('m')
    const raw = (em: Buffer): Buffer => publicEncrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, em)
    expect(Buffer.from(p11DecryptData(CKM_RSA_PKCS, {}, privateKey, raw(Buffer.concat([block(Buffer.alloc(K - 11 - 1), 8), m])))).subarray(-1).toString()).toBe('m')
    const wrongKey = failure(() => p11DecryptData(CKM_RSA_PKCS, {}, other, publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, m)))
    expect(wrongKey).toMatch(/^27:/)
    const short = block(Buffer.alloc(K - 10, 1), 7)
    expect(failure(() => p11DecryptData(CKM_RSA_PKCS, {}, privateKey, raw(short)))).toBe(wrongKey)
    const bad = [
      Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(10, 0x5a), Buffer.from([0]), m]),
      Buffer.concat([Buffer.from([0, 2]), Buffer.alloc(K - 2, 0x33)]),
      Buffer.concat([Buffer.from([0, 2, 0]), Buffer.alloc(K - 3, 0x33)])
    ]
    for (const em of bad) expect(failure(() => p11DecryptData(CKM_RSA_PKCS, {}, privateKey, raw(Buffer.concat([em, Buffer.alloc(K - em.length)]))))).toBe(wrongKey)
    expect(failure(() => p11DecryptData(CKM_RSA_PKCS, {}, privateKey, Buffer.alloc(K - 1, 1)))).toBe(wrongKey)
  })

  it('refuses a block of random bytes exactly as a wrong key (fast-check)', () => {
    const wrongKey = failure(() => p11DecryptData(CKM_RSA_PKCS, {}, other, publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, Buffer.from('x'))))
    // ERR_BAD_PKCS_DATA (0x1b), which the daemon answers with CKR_ENCRYPTED_DATA_INVALID.
    expect(wrongKey).toMatch(/^27:/)
    fc.assert(fc.property(fc.uint8Array({ minLength: K, maxLength: K }), em => {
      em[0] = 0
      // A block that happens to have good padding decrypts; every other one fails alike.
      const padded = em[1] === 2 && em.subarray(2, 10).every(b => b !== 0) && em.subarray(10).includes(0)
      const result = failure(() => p11DecryptData(CKM_RSA_PKCS, {}, privateKey, publicEncrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, em)))
      expect(result === 'ok').toBe(padded)
      if (!padded) expect(result).toBe(wrongKey)
    }), { numRuns: 100, interruptAfterTimeLimit: 4000 })
  })
})
