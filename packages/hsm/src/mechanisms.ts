/**
 * PKCS#11 mechanisms (CKM_* numbers) on node:crypto, for the p11Encrypt, p11Decrypt, p11Sign and
 * p11Verify operations the client daemon uses (issue 16). Like key-material.ts, nothing here knows
 * users or sessions: the crypto handlers decide who may use which key.
 *
 * What node:crypto cannot do is written out here, small and checked by the tests against OpenSSL:
 * CKM_ECDSA signs a digest the caller made, which OpenSSL's EVP interface behind node:crypto never
 * does, so raw ECDSA is the textbook algorithm on BigInt (Jacobian coordinates; a fresh random k a
 * signature); CKM_RSA_PKCS_PSS on a digest is EMSA-PSS (RFC 8017 9.1) around a raw RSA operation;
 * CKM_RSA_PKCS decryption removes PKCS#1 v1.5 padding itself (Node 20 refuses it, CVE-2023-46809).
 *
 * A mechanism hsmlab does not implement throws RET_MECHANISM_INVALID; a key of the wrong class or
 * type RET_INVALID_INPUT; data that does not decrypt or a signature that does not verify
 * RET_BAD_PKCS_DATA.
 */
import {
  createCipheriv, createDecipheriv, createHash, createHmac, privateEncrypt, publicDecrypt, privateDecrypt, publicEncrypt,
  randomBytes, sign as nodeSign, timingSafeEqual, verify as nodeVerify, constants
} from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { ReturnCode, WireError } from '@hsmlab/protocol'
import type { MechanismParams } from '@hsmlab/protocol'

/** The CKM_* numbers hsmlab implements (PKCS#11 v2.40). */
export const Ckm = {
  RSA_PKCS: 0x1,
  RSA_PKCS_OAEP: 0x9,
  RSA_PKCS_PSS: 0xd,
  SHA1_RSA_PKCS: 0x6,
  SHA1_RSA_PKCS_PSS: 0xe,
  SHA256_RSA_PKCS: 0x40,
  SHA384_RSA_PKCS: 0x41,
  SHA512_RSA_PKCS: 0x42,
  SHA256_RSA_PKCS_PSS: 0x43,
  SHA384_RSA_PKCS_PSS: 0x44,
  SHA512_RSA_PKCS_PSS: 0x45,
  SHA224_RSA_PKCS: 0x46,
  SHA224_RSA_PKCS_PSS: 0x47,
  SHA_1: 0x220,
  SHA_1_HMAC: 0x221,
  SHA256: 0x250,
  SHA256_HMAC: 0x251,
  SHA224: 0x255,
  SHA224_HMAC: 0x256,
  SHA384: 0x260,
  SHA384_HMAC: 0x261,
  SHA512: 0x270,
  SHA512_HMAC: 0x271,
  ECDSA: 0x1041,
  ECDSA_SHA1: 0x1042,
  ECDSA_SHA224: 0x1043,
  ECDSA_SHA256: 0x1044,
  ECDSA_SHA384: 0x1045,
  ECDSA_SHA512: 0x1046,
  AES_ECB: 0x1081,
  AES_CBC: 0x1082,
  AES_CBC_PAD: 0x1085,
  AES_CTR: 0x1086,
  AES_GCM: 0x1087
} as const

type Hash = 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512'

const HASH_OF: Readonly<Record<number, Hash>> = {
  [Ckm.SHA_1]: 'sha1', [Ckm.SHA224]: 'sha224', [Ckm.SHA256]: 'sha256', [Ckm.SHA384]: 'sha384', [Ckm.SHA512]: 'sha512'
}
const HASH_BYTES: Readonly<Record<Hash, number>> = { sha1: 20, sha224: 28, sha256: 32, sha384: 48, sha512: 64 }

/** How a signing mechanism works: its scheme, and the hash it applies itself (none: the data is a digest). */
interface SignScheme {
  scheme: 'rsa-pkcs1' | 'rsa-pss' | 'ecdsa' | 'hmac'
  hash?: Hash
}

const SIGN_SCHEMES: Readonly<Record<number, SignScheme>> = {
  [Ckm.RSA_PKCS]: { scheme: 'rsa-pkcs1' },
  [Ckm.SHA1_RSA_PKCS]: { scheme: 'rsa-pkcs1', hash: 'sha1' },
  [Ckm.SHA224_RSA_PKCS]: { scheme: 'rsa-pkcs1', hash: 'sha224' },
  [Ckm.SHA256_RSA_PKCS]: { scheme: 'rsa-pkcs1', hash: 'sha256' },
  [Ckm.SHA384_RSA_PKCS]: { scheme: 'rsa-pkcs1', hash: 'sha384' },
  [Ckm.SHA512_RSA_PKCS]: { scheme: 'rsa-pkcs1', hash: 'sha512' },
  [Ckm.RSA_PKCS_PSS]: { scheme: 'rsa-pss' },
  [Ckm.SHA1_RSA_PKCS_PSS]: { scheme: 'rsa-pss', hash: 'sha1' },
  [Ckm.SHA224_RSA_PKCS_PSS]: { scheme: 'rsa-pss', hash: 'sha224' },
  [Ckm.SHA256_RSA_PKCS_PSS]: { scheme: 'rsa-pss', hash: 'sha256' },
  [Ckm.SHA384_RSA_PKCS_PSS]: { scheme: 'rsa-pss', hash: 'sha384' },
  [Ckm.SHA512_RSA_PKCS_PSS]: { scheme: 'rsa-pss', hash: 'sha512' },
  [Ckm.ECDSA]: { scheme: 'ecdsa' },
  [Ckm.ECDSA_SHA1]: { scheme: 'ecdsa', hash: 'sha1' },
  [Ckm.ECDSA_SHA224]: { scheme: 'ecdsa', hash: 'sha224' },
  [Ckm.ECDSA_SHA256]: { scheme: 'ecdsa', hash: 'sha256' },
  [Ckm.ECDSA_SHA384]: { scheme: 'ecdsa', hash: 'sha384' },
  [Ckm.ECDSA_SHA512]: { scheme: 'ecdsa', hash: 'sha512' },
  [Ckm.SHA_1_HMAC]: { scheme: 'hmac', hash: 'sha1' },
  [Ckm.SHA224_HMAC]: { scheme: 'hmac', hash: 'sha224' },
  [Ckm.SHA256_HMAC]: { scheme: 'hmac', hash: 'sha256' },
  [Ckm.SHA384_HMAC]: { scheme: 'hmac', hash: 'sha384' },
  [Ckm.SHA512_HMAC]: { scheme: 'hmac', hash: 'sha512' }
}

function mechanismInvalid (mechanism: number, what: string): WireError {
  return new WireError(ReturnCode.MECHANISM_INVALID, `mechanism 0x${mechanism.toString(16)} is not one hsmlab implements for ${what} (docs/pkcs11.md lists them)`)
}

function badInput (why: string): WireError {
  return new WireError(ReturnCode.INVALID_INPUT, why)
}

/** The scheme of a signing mechanism; throws RET_MECHANISM_INVALID for one hsmlab does not implement. */
export function signScheme (mechanism: number): SignScheme {
  const s = SIGN_SCHEMES[mechanism]
  if (s === undefined) throw mechanismInvalid(mechanism, 'signing')
  return s
}

function paramHash (params: MechanismParams, fallback: Hash | undefined, what: string): Hash {
  if (params.hashMechanism === undefined) {
    if (fallback !== undefined) return fallback
    throw badInput(`${what} needs its hash algorithm (hashAlg of the mechanism parameters)`)
  }
  const h = HASH_OF[params.hashMechanism]
  if (h === undefined) throw badInput(`${what}: hash mechanism 0x${params.hashMechanism.toString(16)} is not SHA-1 or SHA-2`)
  return h
}

// ---------------------------------------------------------------------------------------------
// RSA-PSS on a digest (RFC 8017 9.1.1 and 9.1.2, MGF1 with the same hash)

function mgf1 (hash: Hash, seed: Uint8Array, length: number): Buffer {
  const out: Buffer[] = []
  for (let counter = 0, n = 0; n < length; counter++) {
    const c = Buffer.alloc(4)
    c.writeUInt32BE(counter)
    const block = createHash(hash).update(seed).update(c).digest()
    out.push(block)
    n += block.length
  }
  return Buffer.concat(out).subarray(0, length)
}

function modulusBitsOf (key: KeyObject): number {
  const bits = key.asymmetricKeyDetails?.modulusLength
  if (bits === undefined) throw badInput('an RSA key is needed')
  return bits
}

function pssEncode (hash: Hash, digest: Uint8Array, saltBytes: number, emBits: number): Buffer {
  const hLen = HASH_BYTES[hash]
  const emLen = Math.ceil(emBits / 8)
  if (digest.length !== hLen) throw badInput(`the digest is ${digest.length} bytes; ${hash} digests are ${hLen}`)
  if (emLen < hLen + saltBytes + 2) throw badInput('the salt is too long for this key')
  const salt = randomBytes(saltBytes)
  const h = createHash(hash).update(Buffer.alloc(8)).update(digest).update(salt).digest()
  const db = Buffer.alloc(emLen - hLen - 1)
  db[emLen - saltBytes - hLen - 2] = 1
  salt.copy(db, db.length - saltBytes)
  const mask = mgf1(hash, h, db.length)
  for (let i = 0; i < db.length; i++) db[i] = (db[i] as number) ^ (mask[i] as number)
  db[0] = (db[0] as number) & (0xff >> (8 * emLen - emBits))
  return Buffer.concat([db, h, Buffer.from([0xbc])])
}

function pssVerify (hash: Hash, digest: Uint8Array, em: Buffer, saltBytes: number | undefined, emBits: number): boolean {
  const hLen = HASH_BYTES[hash]
  const emLen = Math.ceil(emBits / 8)
  // The raw RSA result has the modulus's length; EM is its last emLen bytes.
  const e = em.subarray(em.length - emLen)
  if (digest.length !== hLen || e[emLen - 1] !== 0xbc || em.subarray(0, em.length - emLen).some(b => b !== 0)) return false
  const db = Buffer.from(e.subarray(0, emLen - hLen - 1))
  const h = e.subarray(emLen - hLen - 1, emLen - 1)
  if (((db[0] as number) & ~(0xff >> (8 * emLen - emBits)) & 0xff) !== 0) return false
  const mask = mgf1(hash, h, db.length)
  for (let i = 0; i < db.length; i++) db[i] = (db[i] as number) ^ (mask[i] as number)
  db[0] = (db[0] as number) & (0xff >> (8 * emLen - emBits))
  const one = db.indexOf(1)
  if (one < 0 || db.subarray(0, one).some(b => b !== 0)) return false
  const salt = db.subarray(one + 1)
  if (saltBytes !== undefined && salt.length !== saltBytes) return false
  const h2 = createHash(hash).update(Buffer.alloc(8)).update(digest).update(salt).digest()
  return h2.equals(h)
}

// ---------------------------------------------------------------------------------------------
// ECDSA on a digest (SEC 1 4.1.3 and 4.1.4)

interface Curve { p: bigint, a: bigint, n: bigint, gx: bigint, gy: bigint, bytes: number }

const CURVES: Readonly<Record<string, Curve>> = {
  'P-256': {
    p: 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
    a: 0xffffffff00000001000000000000000000000000fffffffffffffffffffffffcn,
    n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
    gx: 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n,
    gy: 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n,
    bytes: 32
  },
  'P-384': {
    p: 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffffn,
    a: 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000fffffffcn,
    n: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
    gx: 0xaa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7n,
    gy: 0x3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5fn,
    bytes: 48
  },
  secp256k1: {
    p: 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2fn,
    a: 0n,
    n: 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n,
    gx: 0x79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798n,
    gy: 0x483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8n,
    bytes: 32
  }
}

type Jacobian = [bigint, bigint, bigint]

function mod (x: bigint, m: bigint): bigint {
  const r = x % m
  return r < 0n ? r + m : r
}

function inverse (x: bigint, m: bigint): bigint {
  let [a, b, u, v] = [mod(x, m), m, 1n, 0n]
  while (a !== 0n) {
    const q = b / a
    ;[a, b] = [b - q * a, a]
    ;[u, v] = [v - q * u, u]
  }
  return mod(v, m)
}

function double (c: Curve, [x, y, z]: Jacobian): Jacobian {
  if (y === 0n || z === 0n) return [0n, 1n, 0n]
  const { p } = c
  const y2 = y * y % p
  const s = 4n * x * y2 % p
  const z2 = z * z % p
  const m = (3n * x * x + c.a * z2 * z2) % p
  const x3 = mod(m * m - 2n * s, p)
  const y3 = mod(m * (s - x3) - 8n * y2 * y2, p)
  return [x3, y3, 2n * y * z % p]
}

function add (c: Curve, a: Jacobian, b: Jacobian): Jacobian {
  if (a[2] === 0n) return b
  if (b[2] === 0n) return a
  const { p } = c
  const z1z1 = a[2] * a[2] % p
  const z2z2 = b[2] * b[2] % p
  const u1 = a[0] * z2z2 % p
  const u2 = b[0] * z1z1 % p
  const s1 = a[1] * z2z2 % p * b[2] % p
  const s2 = b[1] * z1z1 % p * a[2] % p
  if (u1 === u2) return s1 === s2 ? double(c, a) : [0n, 1n, 0n]
  const h = mod(u2 - u1, p)
  const r = mod(s2 - s1, p)
  const h2 = h * h % p
  const h3 = h2 * h % p
  const x3 = mod(r * r - h3 - 2n * u1 * h2, p)
  const y3 = mod(r * (u1 * h2 - x3) - s1 * h3, p)
  return [x3, y3, h * a[2] % p * b[2] % p]
}

function multiply (c: Curve, k: bigint, point: Jacobian): Jacobian {
  let result: Jacobian = [0n, 1n, 0n]
  for (let i = BigInt(k.toString(2).length - 1); i >= 0n; i--) {
    result = double(c, result)
    if (((k >> i) & 1n) === 1n) result = add(c, result, point)
  }
  return result
}

function affineX (c: Curve, [x, , z]: Jacobian): bigint {
  const zi = inverse(z, c.p)
  return x * zi % c.p * zi % c.p
}

function toBigInt (bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt('0x' + Buffer.from(bytes).toString('hex'))
}

function toBytes (x: bigint, length: number): Buffer {
  return Buffer.from(x.toString(16).padStart(length * 2, '0'), 'hex')
}

function curveOf (key: KeyObject): Curve {
  const jwk = key.export({ format: 'jwk' })
  const curve = typeof jwk.crv === 'string' ? CURVES[jwk.crv] : undefined
  if (curve === undefined) throw mechanismInvalid(Ckm.ECDSA, `the curve ${String(jwk.crv)} (P-256, P-384 and secp256k1 are)`)
  return curve
}

/** The digest as an integer, cut to the order's length (SEC 1 4.1.3 step 5). */
function digestInteger (c: Curve, digest: Uint8Array): bigint {
  const nBits = c.n.toString(2).length
  const z = toBigInt(digest)
  const excess = digest.length * 8 - nBits
  return excess > 0 ? z >> BigInt(excess) : z
}

function ecdsaSignDigest (key: KeyObject, digest: Uint8Array): Buffer {
  const c = curveOf(key)
  const d = toBigInt(Buffer.from(key.export({ format: 'jwk' }).d ?? '', 'base64url'))
  const z = digestInteger(c, digest)
  for (;;) {
    const k = mod(toBigInt(randomBytes(c.bytes + 8)), c.n - 1n) + 1n
    const r = mod(affineX(c, multiply(c, k, [c.gx, c.gy, 1n])), c.n)
    if (r === 0n) continue
    const s = mod(inverse(k, c.n) * (z + r * d), c.n)
    if (s === 0n) continue
    return Buffer.concat([toBytes(r, c.bytes), toBytes(s, c.bytes)])
  }
}

function ecdsaVerifyDigest (key: KeyObject, digest: Uint8Array, signature: Uint8Array): boolean {
  const c = curveOf(key)
  if (signature.length !== 2 * c.bytes) return false
  const r = toBigInt(signature.subarray(0, c.bytes))
  const s = toBigInt(signature.subarray(c.bytes))
  if (r <= 0n || r >= c.n || s <= 0n || s >= c.n) return false
  const jwk = key.export({ format: 'jwk' })
  const q: Jacobian = [toBigInt(Buffer.from(jwk.x ?? '', 'base64url')), toBigInt(Buffer.from(jwk.y ?? '', 'base64url')), 1n]
  const w = inverse(s, c.n)
  const point = add(c, multiply(c, mod(digestInteger(c, digest) * w, c.n), [c.gx, c.gy, 1n]), multiply(c, mod(r * w, c.n), q))
  if (point[2] === 0n) return false
  return mod(affineX(c, point), c.n) === r
}

// ---------------------------------------------------------------------------------------------
// Signing and verifying

/** The key a signing scheme needs. */
export function signKeyKind (mechanism: number): 'rsa' | 'ec' | 'secret' {
  const s = signScheme(mechanism).scheme
  return s === 'hmac' ? 'secret' : s === 'ecdsa' ? 'ec' : 'rsa'
}

/** Signs with a private key (a KeyObject) or an HMAC secret (raw bytes). ECDSA signatures are r || s, as PKCS#11 has them. */
export function p11SignData (mechanism: number, params: MechanismParams, key: KeyObject | Uint8Array, data: Uint8Array): Uint8Array {
  const s = signScheme(mechanism)
  if (s.scheme === 'hmac') return new Uint8Array(createHmac(s.hash as Hash, key).update(data).digest())
  const k = key as KeyObject
  if (s.scheme === 'ecdsa') {
    if (s.hash !== undefined) return new Uint8Array(nodeSign(s.hash, data, { key: k, dsaEncoding: 'ieee-p1363' }))
    return new Uint8Array(ecdsaSignDigest(k, data))
  }
  if (s.scheme === 'rsa-pss') {
    const hash = s.hash ?? paramHash(params, undefined, 'CKM_RSA_PKCS_PSS')
    const saltBytes = params.saltBytes ?? HASH_BYTES[hash]
    if (s.hash !== undefined) return new Uint8Array(nodeSign(hash, data, { key: k, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: saltBytes }))
    const bits = modulusBitsOf(k)
    return new Uint8Array(privateEncrypt({ key: k, padding: constants.RSA_NO_PADDING }, pssEncode(hash, data, saltBytes, bits - 1)))
  }
  if (s.hash !== undefined) return new Uint8Array(nodeSign(s.hash, data, { key: k, padding: constants.RSA_PKCS1_PADDING }))
  if (data.length > modulusBitsOf(k) / 8 - 11) throw badInput(`CKM_RSA_PKCS signs at most k-11 bytes; this is ${data.length}`)
  return new Uint8Array(privateEncrypt({ key: k, padding: constants.RSA_PKCS1_PADDING }, data))
}

/** True when `signature` is good for `data`; a public key (KeyObject) or an HMAC secret (raw bytes). */
export function p11VerifyData (mechanism: number, params: MechanismParams, key: KeyObject | Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  const s = signScheme(mechanism)
  try {
    if (s.scheme === 'hmac') {
      const mac = createHmac(s.hash as Hash, key).update(data).digest()
      return mac.length === signature.length && timingSafeEqual(mac, signature)
    }
    const k = key as KeyObject
    if (s.scheme === 'ecdsa') {
      if (s.hash !== undefined) return nodeVerify(s.hash, data, { key: k, dsaEncoding: 'ieee-p1363' }, signature)
      return ecdsaVerifyDigest(k, data, signature)
    }
    if (s.scheme === 'rsa-pss') {
      const hash = s.hash ?? paramHash(params, undefined, 'CKM_RSA_PKCS_PSS')
      if (s.hash !== undefined) {
        return nodeVerify(hash, data, { key: k, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: params.saltBytes ?? constants.RSA_PSS_SALTLEN_AUTO }, signature)
      }
      const bits = modulusBitsOf(k)
      const em = publicEncrypt({ key: k, padding: constants.RSA_NO_PADDING }, signature)
      return pssVerify(hash, data, em, params.saltBytes, bits - 1)
    }
    if (s.hash !== undefined) return nodeVerify(s.hash, data, { key: k, padding: constants.RSA_PKCS1_PADDING }, signature)
    return publicDecrypt({ key: k, padding: constants.RSA_PKCS1_PADDING }, signature).equals(data)
  } catch (err) {
    if (err instanceof WireError) throw err
    // OpenSSL throws on malformed signatures (wrong length, bad padding): that is a failed check.
    return false
  }
}

// ---------------------------------------------------------------------------------------------
// Encrypting and decrypting

const AES_MECHANISMS: ReadonlySet<number> = new Set([Ckm.AES_ECB, Ckm.AES_CBC, Ckm.AES_CBC_PAD, Ckm.AES_CTR, Ckm.AES_GCM])

/** The key an encryption mechanism needs; RET_MECHANISM_INVALID for others. */
export function cryptKeyKind (mechanism: number): 'aes' | 'rsa' {
  if (AES_MECHANISMS.has(mechanism)) return 'aes'
  if (mechanism === Ckm.RSA_PKCS_OAEP || mechanism === Ckm.RSA_PKCS) return 'rsa'
  throw mechanismInvalid(mechanism, 'encryption')
}

function aesCipher (bits: number, mode: string): string {
  return `aes-${bits}-${mode}`
}

function aesCrypt (encrypt: boolean, mechanism: number, params: MechanismParams, key: Uint8Array, data: Uint8Array): Uint8Array {
  const bits = key.length * 8
  const iv = params.iv
  const need = (n: number): Uint8Array => {
    if (iv === undefined || iv.length !== n) throw badInput(`mechanism 0x${mechanism.toString(16)} needs a ${n}-byte IV`)
    return iv
  }
  try {
    if (mechanism === Ckm.AES_GCM) {
      if (iv === undefined || iv.length < 1 || iv.length > 128) throw badInput('AES-GCM needs an IV of 1 to 128 bytes (12 recommended)')
      const tagBytes = (params.tagBits ?? 128) / 8
      if (encrypt) {
        const c = createCipheriv(aesCipher(bits, 'gcm') as 'aes-256-gcm', key, iv, { authTagLength: tagBytes })
        if (params.aad !== undefined) c.setAAD(params.aad)
        return new Uint8Array(Buffer.concat([c.update(data), c.final(), c.getAuthTag()]))
      }
      if (data.length < tagBytes) throw new WireError(ReturnCode.BAD_PKCS_DATA, 'the AES-GCM ciphertext is shorter than its tag')
      const d = createDecipheriv(aesCipher(bits, 'gcm') as 'aes-256-gcm', key, iv, { authTagLength: tagBytes })
      if (params.aad !== undefined) d.setAAD(params.aad)
      d.setAuthTag(data.subarray(data.length - tagBytes))
      return new Uint8Array(Buffer.concat([d.update(data.subarray(0, data.length - tagBytes)), d.final()]))
    }
    const mode = mechanism === Ckm.AES_ECB ? 'ecb' : mechanism === Ckm.AES_CTR ? 'ctr' : 'cbc'
    const cipherIv = mode === 'ecb' ? null : need(16)
    if (mode !== 'ctr' && mechanism !== Ckm.AES_CBC_PAD && data.length % 16 !== 0) {
      throw new WireError(ReturnCode.BAD_PKCS_DATA, `AES-${mode.toUpperCase()} without padding takes whole 16-byte blocks; the data is ${data.length} bytes`)
    }
    const c = encrypt ? createCipheriv(aesCipher(bits, mode), key, cipherIv) : createDecipheriv(aesCipher(bits, mode), key, cipherIv)
    c.setAutoPadding(mechanism === Ckm.AES_CBC_PAD)
    return new Uint8Array(Buffer.concat([c.update(data), c.final()]))
  } catch (err) {
    if (err instanceof WireError) throw err
    throw new WireError(ReturnCode.BAD_PKCS_DATA, `the data does not ${encrypt ? 'encrypt' : 'decrypt'}: ${(err as Error).message}`)
  }
}

function oaepOptions (params: MechanismParams): { oaepHash: string, oaepLabel?: Buffer } {
  const options: { oaepHash: string, oaepLabel?: Buffer } = { oaepHash: paramHash(params, 'sha1', 'CKM_RSA_PKCS_OAEP') }
  if (params.label !== undefined && params.label.length > 0) options.oaepLabel = Buffer.from(params.label)
  return options
}

/**
 * PKCS#1 v1.5 decryption (CKM_RSA_PKCS) of a block the private key already raised to d: EM is
 * 0x00 0x02 PS 0x00 M with at least 8 nonzero bytes of PS. Node 20 refuses privateDecrypt with
 * RSA_PKCS1_PADDING (CVE-2023-46809, "Marvin": the time a padding check takes tells an attacker
 * about the plaintext), so the HSM decrypts with RSA_NO_PADDING and checks the padding here the
 * way a constant-time implementation does: every byte is looked at, the verdict is gathered in
 * masks without a branch or early exit, and a bad padding ends on the one error (and the same code
 * path) a wrong key or a tampered ciphertext ends on. JavaScript gives no timing guarantee; this
 * is a simulator, and the code keeps the shape a real HSM's must have.
 */
function pkcs1v15Unpad (em: Uint8Array): Uint8Array | undefined {
  let good = ((em[0] ?? 1) === 0 ? 1 : 0) & ((em[1] ?? 0) === 2 ? 1 : 0)
  let looking = 1
  let zeroAt = 0
  for (let i = 2; i < em.length; i++) {
    const isZero = (em[i] ?? 1) === 0 ? 1 : 0
    const hit = looking & isZero
    // zeroAt = hit ? i : zeroAt, without a branch.
    zeroAt = (zeroAt & (hit - 1)) | (i & -hit)
    looking &= isZero ^ 1
  }
  good &= looking ^ 1
  // At least 8 bytes of padding string: the separator at index 10 or later.
  good &= ((9 - zeroAt) >>> 31) & 1
  return good === 1 ? em.subarray(zeroAt + 1) : undefined
}

function rsaPkcs1Decrypt (key: KeyObject, data: Uint8Array): Uint8Array {
  let out: Uint8Array | undefined
  try {
    const k = modulusBitsOf(key) / 8
    // The length is public: a ciphertext of the wrong size is refused before any private-key work.
    if (data.length === k) out = pkcs1v15Unpad(new Uint8Array(privateDecrypt({ key, padding: constants.RSA_NO_PADDING }, data)))
  } catch {
    out = undefined
  }
  if (out === undefined) throw new WireError(ReturnCode.BAD_PKCS_DATA, 'the data does not decrypt with RSA-PKCS under this key')
  return new Uint8Array(out)
}

/** Encrypts with an AES key (raw bytes) or an RSA public key (KeyObject). GCM output is ciphertext || tag. */
export function p11EncryptData (mechanism: number, params: MechanismParams, key: KeyObject | Uint8Array, data: Uint8Array): Uint8Array {
  if (cryptKeyKind(mechanism) === 'aes') return aesCrypt(true, mechanism, params, key as Uint8Array, data)
  if (mechanism === Ckm.RSA_PKCS) {
    const k = key as KeyObject
    if (data.length > modulusBitsOf(k) / 8 - 11) throw new WireError(ReturnCode.BAD_PKCS_DATA, `CKM_RSA_PKCS encrypts at most k-11 bytes; this is ${data.length}`)
    return new Uint8Array(publicEncrypt({ key: k, padding: constants.RSA_PKCS1_PADDING }, data))
  }
  try {
    return new Uint8Array(publicEncrypt({ key: key as KeyObject, padding: constants.RSA_PKCS1_OAEP_PADDING, ...oaepOptions(params) }, data))
  } catch (err) {
    if (err instanceof WireError) throw err
    throw new WireError(ReturnCode.BAD_PKCS_DATA, `the data does not encrypt with RSA-OAEP: ${(err as Error).message}`)
  }
}

/** Decrypts with an AES key (raw bytes) or an RSA private key (KeyObject). */
export function p11DecryptData (mechanism: number, params: MechanismParams, key: KeyObject | Uint8Array, data: Uint8Array): Uint8Array {
  if (cryptKeyKind(mechanism) === 'aes') return aesCrypt(false, mechanism, params, key as Uint8Array, data)
  if (mechanism === Ckm.RSA_PKCS) return rsaPkcs1Decrypt(key as KeyObject, data)
  try {
    return new Uint8Array(privateDecrypt({ key: key as KeyObject, padding: constants.RSA_PKCS1_OAEP_PADDING, ...oaepOptions(params) }, data))
  } catch (err) {
    if (err instanceof WireError) throw err
    throw new WireError(ReturnCode.BAD_PKCS_DATA, 'the data does not decrypt with RSA-OAEP under this key')
  }
}
