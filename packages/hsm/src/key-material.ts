/**
 * Real key material for the HSM's keys, on node:crypto: generation, key check values, wrapping
 * (AES key wrap, RSA-OAEP, RSA-AES), signing and verifying with the KMU mechanisms, PEM export.
 * Nothing here knows about users, sessions or stores; the key handlers decide who may do what.
 *
 * Material is kept the way `KeyRecord.material` documents it: raw bytes for a secret key, PKCS#8
 * DER for a private key, SPKI DER for a public key.
 *
 * Functions throw `WireError` for input a caller can get wrong (an unknown mechanism, a size the
 * key type does not allow, data that does not unwrap), so handlers can let them through.
 */
import {
  createCipheriv, createDecipheriv, createHash, createPrivateKey, createPublicKey, generateKeyPair,
  privateDecrypt, publicEncrypt, randomBytes, sign as nodeSign, verify as nodeVerify, constants
} from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { promisify } from 'node:util'
import { EC_CURVES, KeyClass, KeyType, ReturnCode, WireError, decode, encode } from '@hsmlab/protocol'
import type { AttributeValue } from '@hsmlab/protocol'

const generateKeyPairAsync = promisify(generateKeyPair)

// ---------------------------------------------------------------------------------------------
// Symmetric keys

/** KMU genSymKey's largest generic secret: "Generic Secret: <3584" bytes (the guide creates 2048). */
const GENERIC_SECRET_BYTES_MAX = 3583

/** Checks a genSymKey type and size against what CloudHSM allows (reference C.3). */
export function checkSecretKeySpec (keyType: number, sizeBytes: number): void {
  switch (keyType) {
    case KeyType.AES:
      if (sizeBytes !== 16 && sizeBytes !== 24 && sizeBytes !== 32) {
        throw new WireError(ReturnCode.INVALID_INPUT, `an AES key is 16, 24 or 32 bytes, not ${sizeBytes}`)
      }
      return
    case KeyType.DES3:
      if (sizeBytes !== 24) throw new WireError(ReturnCode.INVALID_INPUT, `a 3DES key is 24 bytes, not ${sizeBytes}`)
      return
    case KeyType.GENERIC_SECRET:
      if (sizeBytes < 1 || sizeBytes > GENERIC_SECRET_BYTES_MAX) {
        throw new WireError(ReturnCode.INVALID_INPUT, `a generic secret is 1 to ${GENERIC_SECRET_BYTES_MAX} bytes, not ${sizeBytes}`)
      }
      return
    case KeyType.RC4:
      throw new WireError(ReturnCode.POLICY_VIOLATION, 'RC4 keys are not allowed in FIPS mode')
    default:
      throw new WireError(ReturnCode.INVALID_INPUT, `key type ${keyType} is not a symmetric key type (16 generic secret, 21 3DES, 31 AES)`)
  }
}

/** Sets the DES parity bit of every byte (odd parity), as a DES key generator does. */
function setDesParity (key: Uint8Array): Uint8Array {
  for (let i = 0; i < key.length; i++) {
    const b = key[i]! & 0xfe
    let ones = 0
    for (let v = b; v !== 0; v >>= 1) ones += v & 1
    key[i] = b | (ones % 2 === 0 ? 1 : 0)
  }
  return key
}

/** Fresh material of a symmetric key; the spec must have passed `checkSecretKeySpec`. */
export function generateSecretKey (keyType: number, sizeBytes: number): Uint8Array {
  checkSecretKeySpec(keyType, sizeBytes)
  const key = new Uint8Array(randomBytes(sizeBytes))
  return keyType === KeyType.DES3 ? setDesParity(key) : key
}

function aesEcbName (length: number): string {
  return `aes-${length * 8}-ecb`
}

/**
 * The key check value of a symmetric key: the first 3 bytes of encrypting one zero block with it
 * (ECB). A generic secret (HMAC key) has none, as on CloudHSM ("HMAC keys unsupported").
 */
export function secretKeyKcv (keyType: number, material: Uint8Array): Uint8Array | undefined {
  let cipher
  if (keyType === KeyType.AES) cipher = createCipheriv(aesEcbName(material.length), material, null)
  else if (keyType === KeyType.DES3) cipher = createCipheriv('des-ede3-ecb', material, null)
  else return undefined
  cipher.setAutoPadding(false)
  const block = new Uint8Array(keyType === KeyType.AES ? 16 : 8)
  return new Uint8Array(Buffer.concat([cipher.update(block), cipher.final()]).subarray(0, 3))
}

/** The key check value of an asymmetric key: the first 3 bytes of SHA-1 of its public key (SPKI DER). */
export function publicKeyKcv (spkiDer: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha1').update(spkiDer).digest().subarray(0, 3))
}

/** Checks that unwrapped bytes can be a secret key of this type. */
export function checkSecretMaterial (keyType: number, material: Uint8Array): void {
  checkSecretKeySpec(keyType, material.length)
}

// ---------------------------------------------------------------------------------------------
// Asymmetric keys

/** Both halves of a generated or unwrapped key pair, and what the attributes need. */
export interface AsymmetricMaterial {
  keyType: number
  /** PKCS#8 DER (absent when only a public key is described). */
  privateDer?: Uint8Array
  /** SPKI DER. */
  publicDer: Uint8Array
  /** RSA: modulus, big-endian. */
  modulus?: Uint8Array
  /** RSA: the modulus length in bits. */
  modulusBits?: number
  /** RSA: the public exponent. */
  publicExponent?: number
  /** EC: the OpenSSL name of the curve. */
  curve?: string
  /** EC: the public point as the SPKI holds it (uncompressed: 0x04, x, y). */
  ecPoint?: Uint8Array
}

const RSA_BITS_MIN = 2048
const RSA_BITS_MAX = 4096
const RSA_BITS_STEP = 256
const RSA_EXPONENT_MIN = 65537
// node:crypto takes the exponent as a JavaScript number and OpenSSL as an unsigned long; 2^32 - 1
// is the largest value both represent on every platform.
const RSA_EXPONENT_MAX = 0xffffffff

/** Checks a genRSAKeyPair modulus and exponent (reference C.3). */
export function checkRsaSpec (modulusBits: number, publicExponent: number): void {
  if (modulusBits < RSA_BITS_MIN) {
    throw new WireError(ReturnCode.POLICY_VIOLATION, `RSA keys shorter than ${RSA_BITS_MIN} bits are not allowed in FIPS mode (asked for ${modulusBits})`)
  }
  if (modulusBits > RSA_BITS_MAX || modulusBits % RSA_BITS_STEP !== 0) {
    throw new WireError(ReturnCode.INVALID_INPUT, `the RSA modulus is ${RSA_BITS_MIN} to ${RSA_BITS_MAX} bits in steps of ${RSA_BITS_STEP}, not ${modulusBits}`)
  }
  if (publicExponent < RSA_EXPONENT_MIN || publicExponent > RSA_EXPONENT_MAX || publicExponent % 2 === 0) {
    throw new WireError(ReturnCode.INVALID_INPUT, `the RSA public exponent must be odd and at least ${RSA_EXPONENT_MIN} (and below 2^32), not ${publicExponent}`)
  }
}

/** The OpenSSL name of a genECCKeyPair curve id; curve 1 (prime192v1) is refused as FIPS does. */
export function curveName (curveId: number): string {
  const name = EC_CURVES[curveId]
  if (name !== undefined) return name
  if (curveId === 1) throw new WireError(ReturnCode.POLICY_VIOLATION, 'curve 1 (prime192v1) is not allowed in FIPS mode')
  const known = Object.entries(EC_CURVES).map(([id, n]) => `${id} ${n}`).join(', ')
  throw new WireError(ReturnCode.INVALID_INPUT, `curve ${curveId} is not supported (supported: ${known})`)
}

/** The length and where the content starts of the DER element at `at`. */
function derElement (der: Uint8Array, at: number): { start: number, end: number } {
  let length = der[at + 1] ?? 0
  let start = at + 2
  if (length > 0x80) {
    const octets = length & 0x7f
    length = 0
    for (let i = 0; i < octets; i++) length = length * 256 + (der[start + i] ?? 0)
    start += octets
  }
  return { start, end: start + length }
}

/**
 * The subjectPublicKey bits of an SPKI (for EC keys, the public point), read from the DER that
 * Node itself exported: SEQUENCE { SEQUENCE algorithm, BIT STRING (a zero unused-bits byte, then
 * the key) }.
 */
function spkiKeyBits (spki: Uint8Array): Uint8Array {
  const outer = derElement(spki, 0)
  const algorithm = derElement(spki, outer.start)
  const bits = derElement(spki, algorithm.end)
  return spki.slice(bits.start + 1, bits.end)
}

function describeKeyObjects (privateKey: KeyObject | undefined, publicKey: KeyObject): AsymmetricMaterial {
  const publicDer = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }))
  const privateDer = privateKey === undefined ? undefined : new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' }))
  if (publicKey.asymmetricKeyType === 'rsa') {
    const jwk = publicKey.export({ format: 'jwk' })
    const modulus = new Uint8Array(Buffer.from(jwk.n ?? '', 'base64url'))
    const details = publicKey.asymmetricKeyDetails ?? {}
    const material: AsymmetricMaterial = {
      keyType: KeyType.RSA,
      publicDer,
      modulus,
      modulusBits: details.modulusLength ?? modulus.length * 8,
      publicExponent: Number(details.publicExponent ?? 65537n)
    }
    if (privateDer !== undefined) material.privateDer = privateDer
    return material
  }
  if (publicKey.asymmetricKeyType === 'ec') {
    const material: AsymmetricMaterial = { keyType: KeyType.EC, publicDer }
    const curve = publicKey.asymmetricKeyDetails?.namedCurve
    if (curve !== undefined) material.curve = curve
    if (privateDer !== undefined) material.privateDer = privateDer
    material.ecPoint = spkiKeyBits(publicDer)
    return material
  }
  throw new WireError(ReturnCode.INVALID_INPUT, `keys of type ${String(publicKey.asymmetricKeyType)} are not supported (RSA and EC only)`)
}

/** A fresh RSA key pair; the spec must have passed `checkRsaSpec`. */
export async function generateRsaKeyPair (modulusBits: number, publicExponent: number): Promise<AsymmetricMaterial & { privateDer: Uint8Array }> {
  checkRsaSpec(modulusBits, publicExponent)
  const { privateKey, publicKey } = await generateKeyPairAsync('rsa', { modulusLength: modulusBits, publicExponent })
  return describeKeyObjects(privateKey, publicKey) as AsymmetricMaterial & { privateDer: Uint8Array }
}

/** A fresh EC key pair on the curve of a genECCKeyPair id. */
export async function generateEcKeyPair (curveId: number): Promise<AsymmetricMaterial & { privateDer: Uint8Array }> {
  const namedCurve = curveName(curveId)
  const { privateKey, publicKey } = await generateKeyPairAsync('ec', { namedCurve })
  return describeKeyObjects(privateKey, publicKey) as AsymmetricMaterial & { privateDer: Uint8Array }
}

/**
 * Reads PKCS#8 DER (an unwrapped private key) and describes it; throws `RET_INVALID_INPUT` when
 * the bytes are not a private key, or not of `expectedKeyType` when that is given.
 */
export function describePrivateKey (pkcs8Der: Uint8Array, expectedKeyType?: number): AsymmetricMaterial & { privateDer: Uint8Array } {
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey({ key: Buffer.from(pkcs8Der), format: 'der', type: 'pkcs8' })
  } catch (err) {
    throw new WireError(ReturnCode.INVALID_INPUT, 'the unwrapped data is not a PKCS#8 private key', { cause: err })
  }
  const material = describeKeyObjects(privateKey, createPublicKey(privateKey))
  if (expectedKeyType !== undefined && material.keyType !== expectedKeyType) {
    throw new WireError(ReturnCode.INVALID_INPUT, `the unwrapped private key is of key type ${material.keyType}, not ${expectedKeyType}`)
  }
  return material as AsymmetricMaterial & { privateDer: Uint8Array }
}

/**
 * Reads SPKI DER (a public key to import, KMU importPubKey) and describes it; throws
 * `RET_INVALID_INPUT` when the bytes are not a public key of a supported type.
 */
export function describePublicKey (spkiDer: Uint8Array): AsymmetricMaterial {
  let publicKey: KeyObject
  try {
    publicKey = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' })
  } catch (err) {
    throw new WireError(ReturnCode.INVALID_INPUT, 'the data is not an SPKI public key', { cause: err })
  }
  return describeKeyObjects(undefined, publicKey)
}

// KeyObjects parsed from store material, so that repeated signing does not parse DER each time.
// Store values are frozen and stable, so the material array is a good WeakMap key.
const privateKeyCache = new WeakMap<Uint8Array, KeyObject>()
const publicKeyCache = new WeakMap<Uint8Array, KeyObject>()

/** A cached KeyObject of PKCS#8 material. */
export function privateKeyObject (pkcs8Der: Uint8Array): KeyObject {
  let key = privateKeyCache.get(pkcs8Der)
  if (key === undefined) {
    key = createPrivateKey({ key: Buffer.from(pkcs8Der), format: 'der', type: 'pkcs8' })
    privateKeyCache.set(pkcs8Der, key)
  }
  return key
}

/** A cached KeyObject of SPKI material. */
export function publicKeyObject (spkiDer: Uint8Array): KeyObject {
  let key = publicKeyCache.get(spkiDer)
  if (key === undefined) {
    key = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' })
    publicKeyCache.set(spkiDer, key)
  }
  return key
}

/** PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) of a private key, as `openssl pkey` reads it. */
export function privateKeyPem (pkcs8Der: Uint8Array): string {
  return privateKeyObject(pkcs8Der).export({ format: 'pem', type: 'pkcs8' }).toString()
}

/** SPKI PEM (`-----BEGIN PUBLIC KEY-----`) of a public key, as `openssl dgst -verify` reads it. */
export function publicKeyPem (spkiDer: Uint8Array): string {
  return publicKeyObject(spkiDer).export({ format: 'pem', type: 'spki' }).toString()
}

// ---------------------------------------------------------------------------------------------
// Sign and verify

/** One sign/verify mechanism of KMU's `-m` (reference D). */
export interface SignMechanism {
  name: string
  scheme: 'rsa-pkcs1' | 'rsa-pss' | 'ecdsa'
  hash: 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512'
}

/** KMU sign/verify mechanisms by number. */
export const SIGN_MECHANISMS: Readonly<Record<number, SignMechanism>> = {
  0: { name: 'SHA1_RSA_PKCS', scheme: 'rsa-pkcs1', hash: 'sha1' },
  1: { name: 'SHA256_RSA_PKCS', scheme: 'rsa-pkcs1', hash: 'sha256' },
  2: { name: 'SHA384_RSA_PKCS', scheme: 'rsa-pkcs1', hash: 'sha384' },
  3: { name: 'SHA512_RSA_PKCS', scheme: 'rsa-pkcs1', hash: 'sha512' },
  4: { name: 'SHA224_RSA_PKCS', scheme: 'rsa-pkcs1', hash: 'sha224' },
  5: { name: 'SHA1_RSA_PKCS_PSS', scheme: 'rsa-pss', hash: 'sha1' },
  6: { name: 'SHA256_RSA_PKCS_PSS', scheme: 'rsa-pss', hash: 'sha256' },
  7: { name: 'SHA384_RSA_PKCS_PSS', scheme: 'rsa-pss', hash: 'sha384' },
  8: { name: 'SHA512_RSA_PKCS_PSS', scheme: 'rsa-pss', hash: 'sha512' },
  9: { name: 'SHA224_RSA_PKCS_PSS', scheme: 'rsa-pss', hash: 'sha224' },
  15: { name: 'ECDSA_SHA1', scheme: 'ecdsa', hash: 'sha1' },
  16: { name: 'ECDSA_SHA224', scheme: 'ecdsa', hash: 'sha224' },
  17: { name: 'ECDSA_SHA256', scheme: 'ecdsa', hash: 'sha256' },
  18: { name: 'ECDSA_SHA384', scheme: 'ecdsa', hash: 'sha384' },
  19: { name: 'ECDSA_SHA512', scheme: 'ecdsa', hash: 'sha512' }
}

const HASH_BYTES = { sha1: 20, sha224: 28, sha256: 32, sha384: 48, sha512: 64 } as const

/** The mechanism, checked against the key type; throws `RET_INVALID_INPUT` otherwise. */
export function signMechanism (mechanism: number, keyType: number): SignMechanism {
  const m = SIGN_MECHANISMS[mechanism]
  if (m === undefined) {
    throw new WireError(ReturnCode.INVALID_INPUT, `sign/verify mechanism ${mechanism} is not supported (0-9 RSA, 15-19 ECDSA)`)
  }
  const wanted = m.scheme === 'ecdsa' ? KeyType.EC : KeyType.RSA
  if (keyType !== wanted) {
    throw new WireError(ReturnCode.INVALID_INPUT, `mechanism ${mechanism} (${m.name}) needs an ${wanted === KeyType.EC ? 'EC' : 'RSA'} key, this key is of type ${keyType}`)
  }
  return m
}

/**
 * Signs `data` (hashing it as the mechanism says). RSA-PSS uses MGF1 with the same hash and a salt
 * as long as the hash; ECDSA signatures are DER, so `openssl dgst -verify` checks them.
 */
export function signData (mechanism: number, keyType: number, pkcs8Der: Uint8Array, data: Uint8Array): Uint8Array {
  const m = signMechanism(mechanism, keyType)
  const key = privateKeyObject(pkcs8Der)
  if (m.scheme === 'ecdsa') return new Uint8Array(nodeSign(m.hash, data, { key, dsaEncoding: 'der' }))
  if (m.scheme === 'rsa-pss') {
    return new Uint8Array(nodeSign(m.hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: HASH_BYTES[m.hash] }))
  }
  return new Uint8Array(nodeSign(m.hash, data, { key, padding: constants.RSA_PKCS1_PADDING }))
}

/** True when `signature` is a valid signature of `data`; PSS accepts any salt length. */
export function verifyData (mechanism: number, keyType: number, spkiDer: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  const m = signMechanism(mechanism, keyType)
  const key = publicKeyObject(spkiDer)
  try {
    if (m.scheme === 'ecdsa') return nodeVerify(m.hash, data, { key, dsaEncoding: 'der' }, signature)
    if (m.scheme === 'rsa-pss') {
      return nodeVerify(m.hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, signature)
    }
    return nodeVerify(m.hash, data, { key, padding: constants.RSA_PKCS1_PADDING }, signature)
  } catch {
    // OpenSSL throws on some malformed signatures (a DER that does not parse): that is a failed check.
    return false
  }
}

// ---------------------------------------------------------------------------------------------
// Wrapping

/** wrapKey / unwrapKey mechanisms (KMU `-m`, reference D). */
export const WrapMechanism = { AES_KEY_WRAP: 4, RSA_AES: 7, RSA_OAEP: 8 } as const

const RFC3394_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex')
const RFC5649_IV = Buffer.from('a65959a6', 'hex')

function aesWrapName (kek: Uint8Array, padded: boolean): string {
  if (kek.length !== 16 && kek.length !== 24 && kek.length !== 32) {
    throw new WireError(ReturnCode.INVALID_INPUT, `an AES wrapping key is 16, 24 or 32 bytes, not ${kek.length}`)
  }
  return `id-aes${kek.length * 8}-wrap${padded ? '-pad' : ''}`
}

/**
 * AES key wrap of `data` under `kek`. Data whose length is a multiple of 8 and at least 16 bytes
 * (AES and 3DES keys) is wrapped with RFC 3394 (NIST SP 800-38F KW, default IV A6A6A6A6A6A6A6A6),
 * so the result matches any RFC 3394 tool; anything else (generic secrets of odd sizes, PKCS#8
 * private keys) with RFC 5649 (KWP, the padded variant, IV A65959A6 + length).
 */
export function aesKeyWrap (kek: Uint8Array, data: Uint8Array): Uint8Array {
  const padded = data.length < 16 || data.length % 8 !== 0
  const cipher = createCipheriv(aesWrapName(kek, padded), kek, padded ? RFC5649_IV : RFC3394_IV)
  return new Uint8Array(Buffer.concat([cipher.update(data), cipher.final()]))
}

/**
 * RFC 3394 AES key wrap of host data with an explicit IV (KMU aesWrapUnwrap `-i`, default
 * A6A6A6A6A6A6A6A6): the data must be a multiple of 8 bytes and at least 16.
 */
export function aesWrapWithIv (kek: Uint8Array, data: Uint8Array, iv?: Uint8Array): Uint8Array {
  if (data.length < 16 || data.length % 8 !== 0) {
    throw new WireError(ReturnCode.INVALID_INPUT, `AES key wrap takes a multiple of 8 bytes and at least 16, not ${data.length}`)
  }
  const cipher = createCipheriv(aesWrapName(kek, false), kek, rfc3394Iv(iv))
  return new Uint8Array(Buffer.concat([cipher.update(data), cipher.final()]))
}

/** Inverse of `aesWrapWithIv`; throws `RET_INVALID_INPUT` when the data does not authenticate. */
export function aesUnwrapWithIv (kek: Uint8Array, wrapped: Uint8Array, iv?: Uint8Array): Uint8Array {
  if (wrapped.length < 24 || wrapped.length % 8 !== 0) {
    throw new WireError(ReturnCode.INVALID_INPUT, `AES-wrapped data is a multiple of 8 bytes and at least 24, not ${wrapped.length}`)
  }
  try {
    const decipher = createDecipheriv(aesWrapName(kek, false), kek, rfc3394Iv(iv))
    return new Uint8Array(Buffer.concat([decipher.update(wrapped), decipher.final()]))
  } catch (err) {
    if (err instanceof WireError) throw err
    throw new WireError(ReturnCode.INVALID_INPUT, 'the data did not unwrap: wrong wrapping key or IV, or the data was changed', { cause: err })
  }
}

function rfc3394Iv (iv: Uint8Array | undefined): Uint8Array {
  if (iv === undefined) return RFC3394_IV
  if (iv.length !== 8) throw new WireError(ReturnCode.INVALID_INPUT, `an AES key wrap IV is 8 bytes, not ${iv.length}`)
  return iv
}

function tryUnwrap (kek: Uint8Array, wrapped: Uint8Array, padded: boolean): Uint8Array | undefined {
  try {
    const decipher = createDecipheriv(aesWrapName(kek, padded), kek, padded ? RFC5649_IV : RFC3394_IV)
    return new Uint8Array(Buffer.concat([decipher.update(wrapped), decipher.final()]))
  } catch (err) {
    if (err instanceof WireError) throw err
    return undefined
  }
}

/**
 * Inverse of `aesKeyWrap`. The integrity check value tells the two variants apart, so no flag is
 * needed: RFC 3394 is tried first, then RFC 5649. Throws `RET_INVALID_INPUT` when neither
 * authenticates (wrong wrapping key, or changed data).
 */
export function aesKeyUnwrap (kek: Uint8Array, wrapped: Uint8Array): Uint8Array {
  if (wrapped.length < 16 || wrapped.length % 8 !== 0) {
    throw new WireError(ReturnCode.INVALID_INPUT, `AES-wrapped data is a multiple of 8 bytes and at least 16, not ${wrapped.length}`)
  }
  const plain = (wrapped.length >= 24 ? tryUnwrap(kek, wrapped, false) : undefined) ?? tryUnwrap(kek, wrapped, true)
  if (plain === undefined) {
    throw new WireError(ReturnCode.INVALID_INPUT, 'the wrapped key did not unwrap: wrong wrapping key, or the data was changed')
  }
  return plain
}

/** RSA-OAEP (MGF1 and label hash SHA-1, KMU's default `-t 2`) encryption with a public key. */
export function rsaOaepEncrypt (spkiDer: Uint8Array, data: Uint8Array): Uint8Array {
  const key = publicKeyObject(spkiDer)
  const modulusBytes = Math.ceil((key.asymmetricKeyDetails?.modulusLength ?? 2048) / 8)
  const room = modulusBytes - 2 * 20 - 2
  if (data.length > room) {
    throw new WireError(ReturnCode.INVALID_INPUT, `RSA-OAEP with this ${modulusBytes * 8}-bit key wraps at most ${room} bytes; the key is ${data.length} bytes (use mechanism 7 RSA_AES)`)
  }
  return new Uint8Array(publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, data))
}

/** Inverse of `rsaOaepEncrypt`; throws `RET_INVALID_INPUT` when the data does not decrypt. */
export function rsaOaepDecrypt (pkcs8Der: Uint8Array, data: Uint8Array): Uint8Array {
  try {
    return new Uint8Array(privateDecrypt({ key: privateKeyObject(pkcs8Der), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, data))
  } catch (err) {
    throw new WireError(ReturnCode.INVALID_INPUT, 'the wrapped key did not decrypt: wrong unwrapping key, or the data was changed', { cause: err })
  }
}

/**
 * RSA-AES key wrap (PKCS#11 CKM_RSA_AES_KEY_WRAP): a fresh 256-bit AES key wrapped with RSA-OAEP,
 * followed by the data wrapped under it with RFC 5649. Wraps keys of any size, private keys too.
 */
export function rsaAesWrap (spkiDer: Uint8Array, data: Uint8Array): Uint8Array {
  const ephemeral = new Uint8Array(randomBytes(32))
  const cipher = createCipheriv('id-aes256-wrap-pad', ephemeral, RFC5649_IV)
  return new Uint8Array(Buffer.concat([rsaOaepEncrypt(spkiDer, ephemeral), cipher.update(data), cipher.final()]))
}

/** Inverse of `rsaAesWrap`. */
export function rsaAesUnwrap (pkcs8Der: Uint8Array, data: Uint8Array): Uint8Array {
  const key = privateKeyObject(pkcs8Der)
  const modulusBytes = Math.ceil((key.asymmetricKeyDetails?.modulusLength ?? 2048) / 8)
  if (data.length <= modulusBytes) throw new WireError(ReturnCode.INVALID_INPUT, 'RSA-AES wrapped data is too short')
  const ephemeral = rsaOaepDecrypt(pkcs8Der, data.subarray(0, modulusBytes))
  const plain = ephemeral.length === 32 ? tryUnwrap(ephemeral, data.subarray(modulusBytes), true) : undefined
  if (plain === undefined) throw new WireError(ReturnCode.INVALID_INPUT, 'the RSA-AES wrapped key did not unwrap: the data was changed')
  return plain
}

// ---------------------------------------------------------------------------------------------
// Wrapped-key files

/**
 * What the clear header of a wrapped key says, so unwrapKey can restore the key's class, type and
 * (non-secret) attributes.
 */
export interface WrappedKeyHeader {
  mechanism: number
  keyClass: number
  keyType: number
  attributes: Record<number, AttributeValue>
}

const WRAPPED_MAGIC = Buffer.from('HSMLABWK', 'latin1')
const WRAPPED_VERSION = 1
const WRAPPED_FIXED_BYTES = WRAPPED_MAGIC.length + 1 + 1 + 4

/**
 * The bytes wrapKey returns (and KMU writes to its `-out` file):
 *
 * ```
 * offset  size  field
 * 0       8     magic "HSMLABWK"
 * 8       1     format version, 1
 * 9       1     mechanism (4 AES_KEY_WRAP, 7 RSA_AES, 8 RSA_OAEP)
 * 10      4     header length N, big-endian
 * 14      N     header: MessagePack map { keyClass, keyType, attributes: { <OBJ_ATTR id>: value } }
 * 14+N    rest  the mechanism's output over the key material (raw secret bytes, or PKCS#8 DER)
 * ```
 *
 * The header is in clear and not authenticated, like the real tool's: it carries no secret, and
 * the part after it is exactly what a standard tool produces (`openssl` can unwrap an RFC 3394
 * blob with the wrapping key). A blob without the magic is taken as header-less (KMU's
 * `-noheader`); unwrapKey then needs the key class and type as arguments.
 */
export function encodeWrappedKey (header: WrappedKeyHeader, wrapped: Uint8Array): Uint8Array {
  const headerBytes = encode({ keyClass: header.keyClass, keyType: header.keyType, attributes: header.attributes })
  const out = Buffer.alloc(WRAPPED_FIXED_BYTES + headerBytes.length + wrapped.length)
  WRAPPED_MAGIC.copy(out, 0)
  out[WRAPPED_MAGIC.length] = WRAPPED_VERSION
  out[WRAPPED_MAGIC.length + 1] = header.mechanism
  out.writeUInt32BE(headerBytes.length, WRAPPED_MAGIC.length + 2)
  out.set(headerBytes, WRAPPED_FIXED_BYTES)
  out.set(wrapped, WRAPPED_FIXED_BYTES + headerBytes.length)
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

/** Splits what `encodeWrappedKey` made; `header` is undefined for a header-less blob. */
export function decodeWrappedKey (blob: Uint8Array): { header?: WrappedKeyHeader, wrapped: Uint8Array } {
  const bytes = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength)
  if (bytes.length < WRAPPED_FIXED_BYTES || !bytes.subarray(0, WRAPPED_MAGIC.length).equals(WRAPPED_MAGIC)) return { wrapped: blob }
  const version = bytes[WRAPPED_MAGIC.length]
  if (version !== WRAPPED_VERSION) throw new WireError(ReturnCode.INVALID_INPUT, `wrapped key format version ${String(version)} is not supported`)
  const mechanism = bytes[WRAPPED_MAGIC.length + 1]!
  const headerLength = bytes.readUInt32BE(WRAPPED_MAGIC.length + 2)
  if (WRAPPED_FIXED_BYTES + headerLength > bytes.length) throw new WireError(ReturnCode.INVALID_INPUT, 'the wrapped key header is truncated')
  let parsed: unknown
  try {
    parsed = decode(bytes.subarray(WRAPPED_FIXED_BYTES, WRAPPED_FIXED_BYTES + headerLength))
  } catch (err) {
    throw new WireError(ReturnCode.INVALID_INPUT, 'the wrapped key header is not readable', { cause: err })
  }
  const h = parsed as Partial<WrappedKeyHeader> | null
  if (typeof h !== 'object' || h === null || typeof h.keyClass !== 'number' || typeof h.keyType !== 'number' ||
      typeof h.attributes !== 'object' || h.attributes === null) {
    throw new WireError(ReturnCode.INVALID_INPUT, 'the wrapped key header lacks the key class, type or attributes')
  }
  return {
    header: { mechanism, keyClass: h.keyClass, keyType: h.keyType, attributes: h.attributes },
    wrapped: blob.subarray(WRAPPED_FIXED_BYTES + headerLength)
  }
}

/** True for a class the HSM stores. */
export function isKeyClass (keyClass: number): boolean {
  return keyClass === KeyClass.PUBLIC || keyClass === KeyClass.PRIVATE || keyClass === KeyClass.SECRET
}
