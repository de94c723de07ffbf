/**
 * key-material.ts against published vectors (AES and 3DES key check values, RFC 3394 and RFC 5649
 * key wrap) and against independent verifiers: node:crypto reading the exported PEM, and the
 * `openssl` command when the machine has it.
 */
import { execFileSync } from 'node:child_process'
import { constants, createHash, createPrivateKey, createPublicKey, privateDecrypt, sign as nodeSign, verify as nodeVerify } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { KeyClass, KeyType } from '@hsmlab/protocol'
import {
  SIGN_MECHANISMS, aesKeyUnwrap, aesKeyWrap, checkRsaSpec, checkSecretKeySpec, curveName, decodeWrappedKey,
  describePrivateKey, encodeWrappedKey, generateEcKeyPair, generateRsaKeyPair, generateSecretKey, privateKeyPem,
  publicKeyKcv, publicKeyPem, rsaAesUnwrap, rsaAesWrap, rsaOaepDecrypt, rsaOaepEncrypt, secretKeyKcv, signData, verifyData
} from '../src/key-material.js'

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'))
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

function hasOpenssl (): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

function tempDir (): string {
  const dir = mkdtempSync(join(tmpdir(), 'hsmlab-keys-'))
  onTestFinished(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

describe('key check values', () => {
  it('AES: first 3 bytes of the zero block encrypted (FIPS-197 known answers)', () => {
    expect(toHex(secretKeyKcv(KeyType.AES, new Uint8Array(16))!)).toBe('66e94b')
    expect(toHex(secretKeyKcv(KeyType.AES, new Uint8Array(32))!)).toBe('dc95c0')
    // Cross-checked with `openssl enc -aes-128-ecb -K 000102...0f -nopad` over a zero block.
    expect(toHex(secretKeyKcv(KeyType.AES, hex('000102030405060708090a0b0c0d0e0f'))!)).toBe('c6a13b')
  })

  it('3DES: first 3 bytes of the zero block encrypted', () => {
    expect(toHex(secretKeyKcv(KeyType.DES3, hex('0123456789abcdeffedcba98765432100123456789abcdef'))!)).toBe('08d7b4')
  })

  it('generic secrets have none; asymmetric keys use SHA-1 of the public key', async () => {
    expect(secretKeyKcv(KeyType.GENERIC_SECRET, new Uint8Array(20))).toBeUndefined()
    const pair = await generateEcKeyPair(2)
    expect(toHex(publicKeyKcv(pair.publicDer))).toBe(createHash('sha1').update(pair.publicDer).digest('hex').slice(0, 6))
  })
})

describe('key specs', () => {
  it('checks symmetric types and sizes', () => {
    for (const size of [16, 24, 32]) expect(() => { checkSecretKeySpec(KeyType.AES, size) }).not.toThrow()
    expect(() => { checkSecretKeySpec(KeyType.AES, 20) }).toThrow(expect.objectContaining({ code: 'RET_INVALID_INPUT' }))
    expect(() => { checkSecretKeySpec(KeyType.DES3, 16) }).toThrow(expect.objectContaining({ code: 'RET_INVALID_INPUT' }))
    expect(() => { checkSecretKeySpec(KeyType.GENERIC_SECRET, 3584) }).toThrow(expect.objectContaining({ code: 'RET_INVALID_INPUT' }))
    expect(() => { checkSecretKeySpec(KeyType.RC4, 16) }).toThrow(expect.objectContaining({ code: 'RET_POLICY_VIOLATION' }))
    expect(() => { checkSecretKeySpec(KeyType.RSA, 16) }).toThrow(expect.objectContaining({ code: 'RET_INVALID_INPUT' }))
    expect(generateSecretKey(KeyType.GENERIC_SECRET, 2048)).toHaveLength(2048)
  })

  it('gives 3DES keys odd parity', () => {
    const key = generateSecretKey(KeyType.DES3, 24)
    for (const byte of key) {
      let ones = 0
      for (let v = byte; v !== 0; v >>= 1) ones += v & 1
      expect(ones % 2).toBe(1)
    }
  })

  it('checks RSA sizes and exponents, and EC curves', () => {
    expect(() => { checkRsaSpec(1024, 65537) }).toThrow(expect.objectContaining({ code: 'RET_POLICY_VIOLATION' }))
    expect(() => { checkRsaSpec(2100, 65537) }).toThrow(expect.objectContaining({ code: 'RET_INVALID_INPUT' }))
    expect(() => { checkRsaSpec(4352, 65537) }).toThrow(expect.objectContaining({ code: 'RET_INVALID_INPUT' }))
    expect(() => { checkRsaSpec(2048, 65538) }).toThrow(expect.objectContaining({ code: 'RET_INVALID_INPUT' }))
    expect(() => { checkRsaSpec(2048, 3) }).toThrow(expect.objectContaining({ code: 'RET_INVALID_INPUT' }))
    expect(() => { checkRsaSpec(3072, 65539) }).not.toThrow()
    expect(curveName(14)).toBe('secp384r1')
    expect(() => curveName(1)).toThrow(expect.objectContaining({ code: 'RET_POLICY_VIOLATION' }))
    expect(() => curveName(7)).toThrow(expect.objectContaining({ code: 'RET_INVALID_INPUT' }))
  })
})

describe('AES key wrap', () => {
  it('matches RFC 3394 4.1 and 4.6', () => {
    expect(toHex(aesKeyWrap(hex('000102030405060708090a0b0c0d0e0f'), hex('00112233445566778899aabbccddeeff'))))
      .toBe('1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5')
    const kek = hex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f')
    const wrapped = aesKeyWrap(kek, hex('00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f'))
    expect(toHex(wrapped)).toBe('28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21')
    expect(toHex(aesKeyUnwrap(kek, wrapped))).toBe('00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f')
  })

  it('matches RFC 5649 section 6 for lengths that are not multiples of 8', () => {
    const kek = hex('5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8')
    const twenty = hex('c37b7e6492584340bed12207808941155068f738')
    expect(toHex(aesKeyWrap(kek, twenty))).toBe('138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a')
    expect(toHex(aesKeyWrap(kek, hex('466f7250617369')))).toBe('afbeb0f07dfbf5419200f2ccb50bb24f')
    expect(toHex(aesKeyUnwrap(kek, hex('138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a')))).toBe(toHex(twenty))
    expect(toHex(aesKeyUnwrap(kek, hex('afbeb0f07dfbf5419200f2ccb50bb24f')))).toBe('466f7250617369')
  })

  it('round-trips private keys and refuses the wrong key or changed data', async () => {
    const kek = generateSecretKey(KeyType.AES, 32)
    const pair = await generateEcKeyPair(14)
    const wrapped = aesKeyWrap(kek, pair.privateDer)
    expect(toHex(aesKeyUnwrap(kek, wrapped))).toBe(toHex(pair.privateDer))
    expect(() => aesKeyUnwrap(generateSecretKey(KeyType.AES, 32), wrapped)).toThrow(expect.objectContaining({ code: 'RET_INVALID_INPUT' }))
    const changed = wrapped.slice()
    changed[5] = changed[5]! ^ 1
    expect(() => aesKeyUnwrap(kek, changed)).toThrow(expect.objectContaining({ code: 'RET_INVALID_INPUT' }))
  })
})

describe('RSA wrapping', () => {
  it('OAEP and RSA-AES round-trip; OAEP refuses what does not fit', async () => {
    const pair = await generateRsaKeyPair(2048, 65537)
    const secret = generateSecretKey(KeyType.AES, 32)
    expect(toHex(rsaOaepDecrypt(pair.privateDer, rsaOaepEncrypt(pair.publicDer, secret)))).toBe(toHex(secret))
    // OAEP with SHA-1, as `openssl pkeyutl -pkeyopt rsa_padding_mode:oaep` does by default.
    const nodeDecrypted = privateDecrypt(
      { key: createPrivateKey(privateKeyPem(pair.privateDer)), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
      rsaOaepEncrypt(pair.publicDer, secret))
    expect(toHex(nodeDecrypted)).toBe(toHex(secret))
    const big = (await generateEcKeyPair(15)).privateDer
    expect(() => rsaOaepEncrypt(pair.publicDer, big)).toThrow(expect.objectContaining({ code: 'RET_INVALID_INPUT' }))
    expect(toHex(rsaAesUnwrap(pair.privateDer, rsaAesWrap(pair.publicDer, big)))).toBe(toHex(big))
  })
})

describe('wrapped-key format', () => {
  it('carries class, type and attributes; a blob without the magic is header-less', () => {
    const blob = encodeWrappedKey({ mechanism: 4, keyClass: KeyClass.SECRET, keyType: KeyType.AES, attributes: { 3: 'label', 264: 1, 371: hex('abcdef') } }, hex('0011'))
    const { header, wrapped } = decodeWrappedKey(blob)
    expect(header).toMatchObject({ mechanism: 4, keyClass: 4, keyType: 31 })
    expect(header?.attributes[3]).toBe('label')
    expect(toHex(header?.attributes[371] as Uint8Array)).toBe('abcdef')
    expect(toHex(wrapped)).toBe('0011')
    expect(decodeWrappedKey(hex('00112233')).header).toBeUndefined()
  })
})

describe('sign and verify', () => {
  it('signs with every RSA mechanism; node:crypto verifies with the exported PEM', async () => {
    const pair = await generateRsaKeyPair(2048, 65537)
    const publicKey = createPublicKey(publicKeyPem(pair.publicDer))
    const data = new TextEncoder().encode('hsmlab sign test')
    for (const mechanism of [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]) {
      const m = SIGN_MECHANISMS[mechanism]!
      const signature = signData(mechanism, KeyType.RSA, pair.privateDer, data)
      const padding = m.scheme === 'rsa-pss' ? constants.RSA_PKCS1_PSS_PADDING : constants.RSA_PKCS1_PADDING
      expect(nodeVerify(m.hash, data, { key: publicKey, padding, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, signature), m.name).toBe(true)
      expect(verifyData(mechanism, KeyType.RSA, pair.publicDer, data, signature)).toBe(true)
      expect(verifyData(mechanism, KeyType.RSA, pair.publicDer, new TextEncoder().encode('other data'), signature)).toBe(false)
    }
    // A signature made outside with the exported private key verifies inside.
    const outside = nodeSign('sha256', data, createPrivateKey(privateKeyPem(pair.privateDer)))
    expect(verifyData(1, KeyType.RSA, pair.publicDer, data, outside)).toBe(true)
  })

  it('signs with every ECDSA mechanism (DER); node:crypto verifies with the exported PEM', async () => {
    const data = new TextEncoder().encode('hsmlab ecdsa test')
    for (const curveId of [2, 13, 14, 15, 16]) {
      const pair = await generateEcKeyPair(curveId)
      const publicKey = createPublicKey(publicKeyPem(pair.publicDer))
      for (const mechanism of [15, 16, 17, 18, 19]) {
        const m = SIGN_MECHANISMS[mechanism]!
        const signature = signData(mechanism, KeyType.EC, pair.privateDer, data)
        expect(signature[0]).toBe(0x30) // a DER SEQUENCE
        expect(nodeVerify(m.hash, data, { key: publicKey, dsaEncoding: 'der' }, signature), `${curveId} ${m.name}`).toBe(true)
        expect(verifyData(mechanism, KeyType.EC, pair.publicDer, data, signature)).toBe(true)
      }
    }
  })

  it('refuses mechanisms that do not fit the key, and treats garbage signatures as failed', async () => {
    const pair = await generateEcKeyPair(2)
    expect(() => signData(1, KeyType.EC, pair.privateDer, new Uint8Array(1))).toThrow(expect.objectContaining({ code: 'RET_INVALID_INPUT' }))
    expect(() => signData(12, KeyType.EC, pair.privateDer, new Uint8Array(1))).toThrow(expect.objectContaining({ code: 'RET_INVALID_INPUT' }))
    expect(verifyData(17, KeyType.EC, pair.publicDer, new Uint8Array(1), hex('3006020101020101'))).toBe(false)
    expect(verifyData(17, KeyType.EC, pair.publicDer, new Uint8Array(1), hex('ff'))).toBe(false)
  })

  it.skipIf(!hasOpenssl())('openssl reads the PEM and verifies the signatures', async () => {
    const dir = tempDir()
    const data = new TextEncoder().encode('verified by openssl')
    writeFileSync(join(dir, 'data'), data)
    const rsa = await generateRsaKeyPair(2048, 65537)
    const ec = await generateEcKeyPair(2)
    for (const [name, pair, mechanism, hash] of [['rsa', rsa, 1, 'sha256'], ['ec', ec, 17, 'sha256']] as const) {
      writeFileSync(join(dir, `${name}.pem`), privateKeyPem(pair.privateDer))
      writeFileSync(join(dir, `${name}.pub`), publicKeyPem(pair.publicDer))
      writeFileSync(join(dir, `${name}.sig`), signData(mechanism, pair.keyType, pair.privateDer, data))
      execFileSync('openssl', ['pkey', '-in', join(dir, `${name}.pem`), '-noout'])
      const out = execFileSync('openssl', ['dgst', `-${hash}`, '-verify', join(dir, `${name}.pub`), '-signature', join(dir, `${name}.sig`), join(dir, 'data')]).toString()
      expect(out).toContain('Verified OK')
    }
  })
})

describe('describePrivateKey', () => {
  it('describes RSA keys and refuses data that is not a key, or of another type', async () => {
    const pair = await generateRsaKeyPair(2048, 65537)
    const described = describePrivateKey(pair.privateDer, KeyType.RSA)
    expect(described.modulusBits).toBe(2048)
    expect(described.publicExponent).toBe(65537)
    expect(toHex(described.publicDer)).toBe(toHex(pair.publicDer))
    expect(() => describePrivateKey(pair.privateDer, KeyType.EC)).toThrow(expect.objectContaining({ code: 'RET_INVALID_INPUT' }))
    expect(() => describePrivateKey(hex('3003020100'))).toThrow(expect.objectContaining({ code: 'RET_INVALID_INPUT' }))
  })
})
