/**
 * Goal (issue 16): the mechanisms, attributes, objects and return values of docs/pkcs11.md, as an
 * application sees them through Node's pkcs11js (a real PKCS#11 client loading the library in
 * process): AES-GCM/CBC/ECB/CTR, RSA PKCS#1 v1.5, PSS (hashing and on a digest) and OAEP, ECDSA
 * on P-256, P-384 and secp256k1, HMAC, SHA digests, AES key wrap, random; session objects that
 * die with their session; the CU permission rules with their CK_RVs; many calls in flight at once
 * (pkcs11js's *Async calls run on libuv's threads); a daemon that stops (CKR_DEVICE_ERROR) and
 * comes back (a new login).
 *
 * Method: a lab of one cluster of 2 HSMs with CUs alice and bob (startPkcs11Lab); results made in
 * the HSM are checked with node:crypto against the public keys read from CKA_MODULUS /
 * CKA_PUBLIC_EXPONENT and CKA_EC_POINT.
 */
import { createHash, createPublicKey, verify as nodeVerify, constants } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import * as pkcs11js from 'pkcs11js'
import { describe, expect, it, onTestFinished } from 'vitest'
import type { StartedLab } from '@hsmlab/testing'
import { kmuOnce } from './kmu-driver.js'
import { ALICE_PIN, BOB_PIN, rvOf, startPkcs11Lab } from './pkcs11-helpers.js'

const T = true
const F = false

function codeOf (fn: () => unknown): number {
  try {
    fn()
  } catch (err) {
    return (err as { code?: number }).code ?? -1
  }
  return 0
}

function ecPublicKey (p11: pkcs11js.PKCS11, session: Buffer, handle: Buffer, crv: string): KeyObject {
  const [point] = p11.C_GetAttributeValue(session, handle, [{ type: pkcs11js.CKA_EC_POINT }])
  const der = point?.value as Buffer
  // DER OCTET STRING around 04 || x || y.
  const raw = der.subarray(der[1] === 0x81 ? 3 : 2)
  const half = (raw.length - 1) / 2
  return createPublicKey({ format: 'jwk', key: { kty: 'EC', crv, x: raw.subarray(1, 1 + half).toString('base64url'), y: raw.subarray(1 + half).toString('base64url') } })
}

function rsaPublicKey (p11: pkcs11js.PKCS11, session: Buffer, handle: Buffer): KeyObject {
  const [n, e] = p11.C_GetAttributeValue(session, handle, [{ type: pkcs11js.CKA_MODULUS }, { type: pkcs11js.CKA_PUBLIC_EXPONENT }])
  return createPublicKey({ format: 'jwk', key: { kty: 'RSA', n: (n?.value as Buffer).toString('base64url'), e: (e?.value as Buffer).toString('base64url') } })
}

describe('issue 16: pkcs11js against a lab', () => {
  let lab: StartedLab
  let cmuConfig: string
  const p11 = new pkcs11js.PKCS11()
  let slot: Buffer

  // One lab for the whole file (startLab tears it down with the test that made it): each part is a
  // step of one test.
  it('serves pkcs11js: tokens, mechanisms, objects and the CU rules', async () => {
    const started = await startPkcs11Lab()
    lab = started.lab
    cmuConfig = started.cluster.cmuConfig
    // The library reads its environment at C_Initialize, as an application that sets it first.
    Object.assign(process.env, started.client.env)
    p11.load(started.client.pkcs11Module)
    p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK })
    const slots = p11.C_GetSlotList(true)
    expect(slots).toHaveLength(1)
    slot = slots[0] as Buffer
    onTestFinished(() => {
      p11.C_Finalize()
      p11.close()
    })
    loginRules()
    await mechanisms()
    await objects()
    permissions()
    await restart()
  })

  function loginRules (): void {
    expect(p11.C_GetTokenInfo(slot).label.trim()).toBe('apps')
    const mechanisms = p11.C_GetMechanismList(slot)
    for (const m of [pkcs11js.CKM_AES_GCM, pkcs11js.CKM_RSA_PKCS_PSS, pkcs11js.CKM_ECDSA, pkcs11js.CKM_SHA256_HMAC, pkcs11js.CKM_AES_KEY_WRAP]) expect(mechanisms).toContain(m)
    const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
    expect(rvOf(() => p11.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [{ type: pkcs11js.CKA_VALUE_LEN, value: 32 }]))).toBe('CKR_USER_NOT_LOGGED_IN')
    expect(rvOf(() => p11.C_Login(session, pkcs11js.CKU_USER, 'alice:nope'))).toBe('CKR_PIN_INCORRECT')
    expect(rvOf(() => p11.C_Login(session, pkcs11js.CKU_USER, 'nobody:Nobody123'))).toBe('CKR_PIN_INCORRECT')
    expect(rvOf(() => p11.C_Login(session, pkcs11js.CKU_SO, 'admin:Admin1234'))).toBe('CKR_USER_TYPE_INVALID')
    p11.C_Login(session, pkcs11js.CKU_USER, ALICE_PIN)
    expect(rvOf(() => p11.C_Login(session, pkcs11js.CKU_USER, ALICE_PIN))).toBe('CKR_USER_ALREADY_LOGGED_IN')
    expect(p11.C_GetSessionInfo(session).state).toBe(3) // CKS_RW_USER_FUNCTIONS
    p11.C_Logout(session)
    p11.C_CloseSession(session)
  }

  /** AES in every mode and RSA-OAEP; RSA, ECDSA and HMAC signatures; digests, random, wrapping; calls in parallel. */
  async function mechanisms (): Promise<void> {
    const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
    p11.C_Login(session, pkcs11js.CKU_USER, ALICE_PIN)
    const aes = p11.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_TOKEN, value: T }, { type: pkcs11js.CKA_VALUE_LEN, value: 32 }, { type: pkcs11js.CKA_LABEL, value: 'js-aes' },
      { type: pkcs11js.CKA_ENCRYPT, value: T }, { type: pkcs11js.CKA_DECRYPT, value: T }
    ])
    const plain = Buffer.from('four kilobytes of application data'.repeat(120))
    const iv16 = Buffer.alloc(16, 7)
    const ctr = Buffer.concat([Buffer.from([128, 0, 0, 0, 0, 0, 0, 0]), iv16]) // CK_AES_CTR_PARAMS: ulCounterBits (LP64, little-endian), cb
    const gcm = { type: pkcs11js.CK_PARAMS_AES_GCM_v240, iv: Buffer.alloc(12, 9), ivBits: 96, aad: Buffer.from('header'), tagBits: 128 }
    const modes: pkcs11js.Mechanism[] = [
      { mechanism: pkcs11js.CKM_AES_GCM, parameter: gcm },
      { mechanism: pkcs11js.CKM_AES_CBC_PAD, parameter: iv16 },
      { mechanism: pkcs11js.CKM_AES_CBC, parameter: iv16 },
      { mechanism: pkcs11js.CKM_AES_ECB },
      { mechanism: pkcs11js.CKM_AES_CTR, parameter: ctr }
    ]
    for (const mechanism of modes) {
      const data = mechanism.mechanism === pkcs11js.CKM_AES_CBC || mechanism.mechanism === pkcs11js.CKM_AES_ECB ? plain.subarray(0, 4096) : plain
      p11.C_EncryptInit(session, mechanism, aes)
      const sealed = Buffer.from(p11.C_Encrypt(session, data, Buffer.alloc(data.length + 32)))
      p11.C_DecryptInit(session, mechanism, aes)
      expect(Buffer.from(p11.C_Decrypt(session, sealed, Buffer.alloc(sealed.length + 16))).equals(data)).toBe(true)
    }
    // Multi-part, and a changed byte under GCM.
    p11.C_EncryptInit(session, modes[0] as pkcs11js.Mechanism, aes)
    p11.C_EncryptUpdate(session, plain.subarray(0, 100), Buffer.alloc(200))
    p11.C_EncryptUpdate(session, plain.subarray(100), Buffer.alloc(plain.length))
    const sealed = Buffer.from(p11.C_EncryptFinal(session, Buffer.alloc(plain.length + 16)))
    sealed[5] = (sealed[5] as number) ^ 1
    p11.C_DecryptInit(session, modes[0] as pkcs11js.Mechanism, aes)
    expect(rvOf(() => p11.C_Decrypt(session, sealed, Buffer.alloc(sealed.length)))).toBe('CKR_ENCRYPTED_DATA_INVALID')

    // RSA: PKCS#1 v1.5, PSS (hashing, and on a digest), OAEP.
    const rsa = p11.C_GenerateKeyPair(session, { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN },
      [{ type: pkcs11js.CKA_TOKEN, value: T }, { type: pkcs11js.CKA_MODULUS_BITS, value: 2048 }, { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) }, { type: pkcs11js.CKA_LABEL, value: 'js-rsa' }],
      [{ type: pkcs11js.CKA_TOKEN, value: T }, { type: pkcs11js.CKA_LABEL, value: 'js-rsa' }, { type: pkcs11js.CKA_SIGN, value: T }, { type: pkcs11js.CKA_DECRYPT, value: T }])
    const rsaPub = rsaPublicKey(p11, session, rsa.publicKey)
    const message = Buffer.from('sign me')
    p11.C_SignInit(session, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, rsa.privateKey)
    expect(nodeVerify('sha256', message, rsaPub, p11.C_Sign(session, message, Buffer.alloc(512)))).toBe(true)
    const pss = { type: pkcs11js.CK_PARAMS_RSA_PSS, hashAlg: pkcs11js.CKM_SHA256, mgf: pkcs11js.CKG_MGF1_SHA256, saltLen: 32 }
    p11.C_SignInit(session, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS_PSS, parameter: pss }, rsa.privateKey)
    const pssSig = p11.C_Sign(session, message, Buffer.alloc(512))
    expect(nodeVerify('sha256', message, { key: rsaPub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, pssSig)).toBe(true)
    const digest = createHash('sha256').update(message).digest()
    p11.C_SignInit(session, { mechanism: pkcs11js.CKM_RSA_PKCS_PSS, parameter: pss }, rsa.privateKey)
    const rawPss = p11.C_Sign(session, digest, Buffer.alloc(512))
    expect(nodeVerify('sha256', message, { key: rsaPub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, rawPss)).toBe(true)
    p11.C_VerifyInit(session, { mechanism: pkcs11js.CKM_RSA_PKCS_PSS, parameter: pss }, rsa.publicKey)
    expect(p11.C_Verify(session, digest, rawPss)).toBe(true)
    const oaep = { type: pkcs11js.CK_PARAMS_RSA_OAEP, hashAlg: pkcs11js.CKM_SHA256, mgf: pkcs11js.CKG_MGF1_SHA256, source: 1 } // CKZ_DATA_SPECIFIED
    p11.C_EncryptInit(session, { mechanism: pkcs11js.CKM_RSA_PKCS_OAEP, parameter: oaep }, rsa.publicKey)
    const wrappedSecret = Buffer.from(p11.C_Encrypt(session, Buffer.from('a secret'), Buffer.alloc(256)))
    p11.C_DecryptInit(session, { mechanism: pkcs11js.CKM_RSA_PKCS_OAEP, parameter: oaep }, rsa.privateKey)
    expect(Buffer.from(p11.C_Decrypt(session, wrappedSecret, Buffer.alloc(256))).toString()).toBe('a secret')
    p11.C_VerifyInit(session, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, rsa.publicKey)
    expect(rvOf(() => p11.C_Verify(session, Buffer.from('other'), pssSig))).toBe('CKR_SIGNATURE_INVALID')

    // ECDSA on each curve, on a digest (CKM_ECDSA) and hashing (CKM_ECDSA_SHA256): r || s, verified by node:crypto.
    const curves: Array<[string, string, string]> = [['P-256', '06082a8648ce3d030107', 'sha256'], ['P-384', '06052b81040022', 'sha384'], ['secp256k1', '06052b8104000a', 'sha256']]
    for (const [crv, oid, hash] of curves) {
      const ec = p11.C_GenerateKeyPair(session, { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
        [{ type: pkcs11js.CKA_EC_PARAMS, value: Buffer.from(oid, 'hex') }, { type: pkcs11js.CKA_LABEL, value: `js-${crv}` }],
        [{ type: pkcs11js.CKA_SIGN, value: T }, { type: pkcs11js.CKA_LABEL, value: `js-${crv}` }])
      const pub = ecPublicKey(p11, session, ec.publicKey, crv)
      p11.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, ec.privateKey)
      const sig = p11.C_Sign(session, createHash(hash).update(message).digest(), Buffer.alloc(128))
      expect(nodeVerify(hash, message, { key: pub, dsaEncoding: 'ieee-p1363' }, sig), crv).toBe(true)
      p11.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA_SHA256 }, ec.privateKey)
      const hashed = p11.C_Sign(session, message, Buffer.alloc(128))
      p11.C_VerifyInit(session, { mechanism: pkcs11js.CKM_ECDSA_SHA256 }, ec.publicKey)
      expect(p11.C_Verify(session, message, hashed), crv).toBe(true)
    }

    // HMAC with a generic secret.
    const mac = p11.C_GenerateKey(session, { mechanism: pkcs11js.CKM_GENERIC_SECRET_KEY_GEN }, [
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 }, { type: pkcs11js.CKA_SIGN, value: T }, { type: pkcs11js.CKA_VERIFY, value: T }
    ])
    p11.C_SignInit(session, { mechanism: pkcs11js.CKM_SHA256_HMAC }, mac)
    const tag = p11.C_Sign(session, message, Buffer.alloc(64))
    expect(tag).toHaveLength(32)
    p11.C_VerifyInit(session, { mechanism: pkcs11js.CKM_SHA256_HMAC }, mac)
    expect(p11.C_Verify(session, message, tag)).toBe(true)

    // Digests and random.
    p11.C_DigestInit(session, { mechanism: pkcs11js.CKM_SHA384 })
    expect(Buffer.from(p11.C_Digest(session, message, Buffer.alloc(48))).equals(createHash('sha384').update(message).digest())).toBe(true)
    expect(p11.C_GenerateRandom(session, Buffer.alloc(32))).toHaveLength(32)

    // AES key wrap: an extractable session AES key out and back in; both encrypt alike.
    const inner = p11.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_VALUE_LEN, value: 16 }, { type: pkcs11js.CKA_EXTRACTABLE, value: T }
    ])
    const wrapped = Buffer.from(p11.C_WrapKey(session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP }, aes, inner, Buffer.alloc(64)))
    expect(wrapped).toHaveLength(24)
    const back = p11.C_UnwrapKey(session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP }, aes, wrapped, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES }, { type: pkcs11js.CKA_TOKEN, value: F }
    ])
    const encryptWith = (key: Buffer): Buffer => {
      p11.C_EncryptInit(session, { mechanism: pkcs11js.CKM_AES_ECB }, key)
      return Buffer.from(p11.C_Encrypt(session, Buffer.alloc(16, 1), Buffer.alloc(16)))
    }
    expect(encryptWith(back).equals(encryptWith(inner))).toBe(true)

    // Many signatures in flight at once, over the library's socket pool.
    const many = await Promise.all(Array.from({ length: 24 }, async (_, i) => {
      const s = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION)
      const data = Buffer.from(`message ${i}`)
      p11.C_SignInit(s, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, rsa.privateKey)
      const sig = await p11.C_SignAsync(s, data, Buffer.alloc(256))
      p11.C_CloseSession(s)
      return nodeVerify('sha256', data, rsaPub, sig)
    }))
    expect(many.every(ok => ok)).toBe(true)
    p11.C_Logout(session)
    p11.C_CloseSession(session)
  }

  /** Objects found by template, attributes changed, session objects that end with their session. */
  async function objects (): Promise<void> {
    const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
    p11.C_Login(session, pkcs11js.CKU_USER, ALICE_PIN)
    const token = p11.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_TOKEN, value: T }, { type: pkcs11js.CKA_VALUE_LEN, value: 16 }, { type: pkcs11js.CKA_LABEL, value: 'find-me' }, { type: pkcs11js.CKA_ID, value: Buffer.from([0xc0, 0xff, 0xee]) }
    ])
    const find = (s: Buffer, template: pkcs11js.Template): Buffer[] => {
      p11.C_FindObjectsInit(s, template)
      const found = p11.C_FindObjects(s, 100)
      p11.C_FindObjectsFinal(s)
      return found
    }
    expect(find(session, [{ type: pkcs11js.CKA_LABEL, value: 'find-me' }, { type: pkcs11js.CKA_ENCRYPT, value: T }]).map(h => h.toString('hex'))).toEqual([token.toString('hex')])
    expect(find(session, [{ type: pkcs11js.CKA_ID, value: Buffer.from([0xc0, 0xff, 0xee]) }])).toHaveLength(1)
    expect(find(session, [{ type: pkcs11js.CKA_LABEL, value: 'find-me' }, { type: pkcs11js.CKA_SIGN, value: T }])).toHaveLength(0)
    p11.C_SetAttributeValue(session, token, [{ type: pkcs11js.CKA_LABEL, value: 'found' }])
    const [label, cls, valueLen] = p11.C_GetAttributeValue(session, token, [{ type: pkcs11js.CKA_LABEL }, { type: pkcs11js.CKA_CLASS }, { type: pkcs11js.CKA_VALUE_LEN }])
    expect(label?.value?.toString()).toBe('found')
    expect((cls?.value as Buffer).readBigUInt64LE()).toBe(BigInt(pkcs11js.CKO_SECRET_KEY))
    expect((valueLen?.value as Buffer).readBigUInt64LE()).toBe(16n)
    expect(rvOf(() => p11.C_GetAttributeValue(session, token, [{ type: pkcs11js.CKA_VALUE }]))).toBe('CKR_ATTRIBUTE_SENSITIVE')

    // A session object: seen by every session of the application, gone when its session closes.
    const other = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION)
    const temporary = p11.C_GenerateKey(other, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [{ type: pkcs11js.CKA_VALUE_LEN, value: 16 }, { type: pkcs11js.CKA_LABEL, value: 'temporary' }])
    expect(find(session, [{ type: pkcs11js.CKA_LABEL, value: 'temporary' }])).toHaveLength(1)
    expect(find(session, [{ type: pkcs11js.CKA_TOKEN, value: F }]).map(h => h.toString('hex'))).toContain(temporary.toString('hex'))
    p11.C_CloseSession(other)
    expect(find(session, [{ type: pkcs11js.CKA_LABEL, value: 'temporary' }])).toHaveLength(0)
    p11.C_EncryptInit(session, { mechanism: pkcs11js.CKM_AES_ECB }, temporary)
    expect(rvOf(() => p11.C_Encrypt(session, Buffer.alloc(16), Buffer.alloc(16)))).toBe('CKR_KEY_HANDLE_INVALID')
    // KMU sees the token key and never the session key.
    const kmu = await kmuOnce(lab.cwd, ['--config', cmuConfig, 'singlecmd', 'loginHSM', '-u', 'CU', '-s', 'alice', '-p', 'Alice1234', 'findKey', '-l', 'temporary'])
    expect(kmu.out).toContain('Total number of keys present 0')
    const renamed = await kmuOnce(lab.cwd, ['--config', cmuConfig, 'singlecmd', 'loginHSM', '-u', 'CU', '-s', 'alice', '-p', 'Alice1234', 'findKey', '-l', 'found'])
    expect(renamed.out).toContain(`number of keys matched from start index 0::0\n${token.readBigUInt64LE()}`)
    p11.C_Logout(session)
    p11.C_CloseSession(session)
  }

  /** A CU keeps to its own keys: another CU gets the documented return values. */
  function permissions (): void {
    const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
    p11.C_Login(session, pkcs11js.CKU_USER, ALICE_PIN)
    const pair = p11.C_GenerateKeyPair(session, { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
      [{ type: pkcs11js.CKA_TOKEN, value: T }, { type: pkcs11js.CKA_EC_PARAMS, value: Buffer.from('06082a8648ce3d030107', 'hex') }],
      [{ type: pkcs11js.CKA_TOKEN, value: T }, { type: pkcs11js.CKA_SIGN, value: T }])
    p11.C_Logout(session)
    p11.C_Login(session, pkcs11js.CKU_USER, BOB_PIN)
    p11.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA_SHA256 }, pair.privateKey)
    expect(rvOf(() => p11.C_Sign(session, Buffer.from('x'), Buffer.alloc(64)))).toBe('CKR_KEY_HANDLE_INVALID')
    expect(rvOf(() => p11.C_GetAttributeValue(session, pair.privateKey, [{ type: pkcs11js.CKA_LABEL }]))).toBe('CKR_OBJECT_HANDLE_INVALID')
    expect(rvOf(() => p11.C_DestroyObject(session, pair.privateKey))).toBe('CKR_OBJECT_HANDLE_INVALID')
    // Public keys are every CU's to use, but only their owner's to destroy.
    // (pkcs11js names no CK_RV of v2.40's additions: CKR_ACTION_PROHIBITED is 0x1b.)
    expect(codeOf(() => p11.C_DestroyObject(session, pair.publicKey))).toBe(0x1b)
    p11.C_Logout(session)
    p11.C_Login(session, pkcs11js.CKU_USER, ALICE_PIN)
    p11.C_DestroyObject(session, pair.privateKey)
    expect(rvOf(() => p11.C_GetAttributeValue(session, pair.privateKey, [{ type: pkcs11js.CKA_LABEL }]))).toBe('CKR_OBJECT_HANDLE_INVALID')
    p11.C_Logout(session)
    p11.C_CloseSession(session)
  }

  /** The daemon stops and comes back (hsmlab down, up): CKR_DEVICE_ERROR meanwhile, then a new login. */
  async function restart (): Promise<void> {
    const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
    p11.C_Login(session, pkcs11js.CKU_USER, ALICE_PIN)
    const key = p11.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [{ type: pkcs11js.CKA_TOKEN, value: T }, { type: pkcs11js.CKA_VALUE_LEN, value: 16 }])
    await lab.down()
    expect(rvOf(() => p11.C_GenerateRandom(session, Buffer.alloc(8)))).toBe('CKR_DEVICE_ERROR')
    await lab.up()
    // The library saw the daemon close its sockets: the login is gone.
    expect(rvOf(() => p11.C_EncryptInit(session, { mechanism: pkcs11js.CKM_AES_ECB }, key))).toBe('CKR_USER_NOT_LOGGED_IN')
    p11.C_Login(session, pkcs11js.CKU_USER, ALICE_PIN)
    p11.C_EncryptInit(session, { mechanism: pkcs11js.CKM_AES_ECB }, key)
    expect(p11.C_Encrypt(session, Buffer.alloc(16), Buffer.alloc(16))).toHaveLength(16)
    p11.C_CloseSession(session)
  }
})
