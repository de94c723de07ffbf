/**
 * Goal (issue 16): C_CreateObject makes keys in the HSM from their values (AES and generic secret
 * keys, RSA and EC public keys), with PKCS#11 v2.40's return values for bad templates; and
 * CKM_RSA_PKCS encrypts and decrypts in the HSM (PKCS#1 v1.5, its padding checked by the HSM).
 *
 * Method: a lab of one cluster of 2 HSMs (startPkcs11Lab), pkcs11js loading the library. What the
 * HSM computes with an imported key is computed again with node:crypto from the same bytes; RSA
 * results go the other way through node:crypto (publicEncrypt) and openssl (pkeyutl -decrypt with
 * a private key made here, whose public half is imported with C_CreateObject).
 */
import { createCipheriv, createHmac, generateKeyPairSync, publicEncrypt, randomBytes, constants, createPublicKey, sign as nodeSign } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as pkcs11js from 'pkcs11js'
import { describe, expect, it, onTestFinished } from 'vitest'
import { tmpDir, waitFor } from '@hsmlab/testing'
import type { LabStatusCluster, StartedLab } from '@hsmlab/testing'
import { runCmuBin } from './cmu-helpers.js'
import { kmuOnce } from './kmu-driver.js'
import { ALICE_PIN, BOB_PIN, PKCS11_LIBRARY, run, rvOf, startPkcs11Lab } from './pkcs11-helpers.js'

const T = true
const F = false

/** A lab, pkcs11js with the library loaded, and a read-write session logged in as alice. */
async function open (): Promise<{ lab: StartedLab, cluster: LabStatusCluster, env: NodeJS.ProcessEnv, p11: pkcs11js.PKCS11, slot: Buffer, session: Buffer }> {
  const { lab, cluster, client, env } = await startPkcs11Lab()
  Object.assign(process.env, client.env)
  const p11 = new pkcs11js.PKCS11()
  p11.load(client.pkcs11Module)
  p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK })
  onTestFinished(() => {
    p11.C_Finalize()
    p11.close()
  })
  const slot = p11.C_GetSlotList(true)[0] as Buffer
  const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
  p11.C_Login(session, pkcs11js.CKU_USER, ALICE_PIN)
  return { lab, cluster, env, p11, slot, session }
}

const clear = Buffer.from('an application message of some length')

describe('issue 16: C_CreateObject and CKM_RSA_PKCS encryption', () => {
  it('imports secret and public keys into the HSM with C_CreateObject, PKCS#11 return values for bad templates', async () => {
    const { lab, cluster, env, p11, slot, session } = await open()
    const secret = (keyType: number, value: Buffer, more: pkcs11js.Template = []): pkcs11js.Template => [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: keyType }, { type: pkcs11js.CKA_VALUE, value }, ...more
    ]

    // An AES-256 token key from its bytes: AES-CBC in the HSM equals node:crypto's with the same bytes.
    const aesBytes = randomBytes(32)
    const aes = p11.C_CreateObject(session, secret(pkcs11js.CKK_AES, aesBytes, [
      { type: pkcs11js.CKA_TOKEN, value: T }, { type: pkcs11js.CKA_LABEL, value: 'imported-aes' }, { type: pkcs11js.CKA_ID, value: Buffer.from('imp1') },
      { type: pkcs11js.CKA_ENCRYPT, value: T }, { type: pkcs11js.CKA_DECRYPT, value: T }, { type: pkcs11js.CKA_EXTRACTABLE, value: F }, { type: pkcs11js.CKA_SENSITIVE, value: T }
    ]))
    const iv = randomBytes(16)
    p11.C_EncryptInit(session, { mechanism: pkcs11js.CKM_AES_CBC_PAD, parameter: iv }, aes)
    const sealed = p11.C_Encrypt(session, clear, Buffer.alloc(64))
    const c = createCipheriv('aes-256-cbc', aesBytes, iv)
    expect(sealed.toString('hex')).toBe(Buffer.concat([c.update(clear), c.final()]).toString('hex'))
    p11.C_DecryptInit(session, { mechanism: pkcs11js.CKM_AES_CBC_PAD, parameter: iv }, aes)
    expect(p11.C_Decrypt(session, sealed, Buffer.alloc(64)).toString()).toBe(clear.toString())
    const attrs = p11.C_GetAttributeValue(session, aes, [
      { type: pkcs11js.CKA_TOKEN }, { type: pkcs11js.CKA_VALUE_LEN }, { type: pkcs11js.CKA_EXTRACTABLE }, { type: pkcs11js.CKA_LOCAL }, { type: pkcs11js.CKA_ID }, { type: pkcs11js.CKA_CHECK_VALUE }
    ])
    expect(attrs.map(a => a.value.toString('hex'))).toEqual([
      '01', '2000000000000000', '00', '00', Buffer.from('imp1').toString('hex'),
      createCipheriv('aes-256-ecb', aesBytes, null).update(Buffer.alloc(16)).subarray(0, 3).toString('hex')
    ])
    expect(rvOf(() => p11.C_GetAttributeValue(session, aes, [{ type: pkcs11js.CKA_VALUE }]))).toBe('CKR_ATTRIBUTE_SENSITIVE')

    // A session AES-128 key without CKA_ENCRYPT: the HSM keeps the template's usage.
    const aes128 = randomBytes(16)
    const noEncrypt = p11.C_CreateObject(session, secret(pkcs11js.CKK_AES, aes128, [{ type: pkcs11js.CKA_ENCRYPT, value: F }, { type: pkcs11js.CKA_DECRYPT, value: T }]))
    p11.C_EncryptInit(session, { mechanism: pkcs11js.CKM_AES_ECB }, noEncrypt)
    expect(rvOf(() => p11.C_Encrypt(session, Buffer.alloc(16), Buffer.alloc(16)))).toBe('CKR_KEY_FUNCTION_NOT_PERMITTED')
    const block = createCipheriv('aes-128-ecb', aes128, null).setAutoPadding(false).update(Buffer.alloc(16, 7))
    p11.C_DecryptInit(session, { mechanism: pkcs11js.CKM_AES_ECB }, noEncrypt)
    expect(p11.C_Decrypt(session, block, Buffer.alloc(16)).toString('hex')).toBe(Buffer.alloc(16, 7).toString('hex'))

    // A generic secret (HMAC) key: the HSM's HMAC equals node:crypto's.
    const hmacBytes = randomBytes(20)
    const hmac = p11.C_CreateObject(session, secret(pkcs11js.CKK_GENERIC_SECRET, hmacBytes, [{ type: pkcs11js.CKA_SIGN, value: T }, { type: pkcs11js.CKA_VERIFY, value: T }]))
    p11.C_SignInit(session, { mechanism: pkcs11js.CKM_SHA256_HMAC }, hmac)
    expect(p11.C_Sign(session, clear, Buffer.alloc(32)).toString('hex')).toBe(createHmac('sha256', hmacBytes).update(clear).digest('hex'))

    // Bad templates, with PKCS#11 v2.40 4.1.1's return values.
    const create = (t: pkcs11js.Template): string => rvOf(() => p11.C_CreateObject(session, t))
    expect(create([{ type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES }, { type: pkcs11js.CKA_VALUE, value: aesBytes }])).toBe('CKR_TEMPLATE_INCOMPLETE')
    expect(create([{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_VALUE, value: aesBytes }])).toBe('CKR_TEMPLATE_INCOMPLETE')
    expect(create(secret(pkcs11js.CKK_AES, aesBytes).slice(0, 2))).toBe('CKR_TEMPLATE_INCOMPLETE')
    expect(create(secret(pkcs11js.CKK_AES, randomBytes(15)))).toBe('CKR_ATTRIBUTE_VALUE_INVALID')
    expect(create(secret(pkcs11js.CKK_GENERIC_SECRET, randomBytes(801)))).toBe('CKR_ATTRIBUTE_VALUE_INVALID')
    expect(create(secret(pkcs11js.CKK_DES3, randomBytes(24)))).toBe('CKR_ATTRIBUTE_VALUE_INVALID')
    expect(create(secret(pkcs11js.CKK_AES, aesBytes, [{ type: pkcs11js.CKA_SENSITIVE, value: F }]))).toBe('CKR_ATTRIBUTE_VALUE_INVALID')
    expect(create(secret(pkcs11js.CKK_AES, aesBytes, [{ type: pkcs11js.CKA_VALUE_LEN, value: 32 }]))).toBe('CKR_ATTRIBUTE_READ_ONLY')
    expect(create(secret(pkcs11js.CKK_AES, aesBytes, [{ type: pkcs11js.CKA_LOCAL, value: T }]))).toBe('CKR_ATTRIBUTE_READ_ONLY')
    expect(create(secret(pkcs11js.CKK_AES, aesBytes, [{ type: pkcs11js.CKA_MODULUS, value: Buffer.alloc(256, 1) }]))).toBe('CKR_ATTRIBUTE_TYPE_INVALID')
    expect(create(secret(pkcs11js.CKK_AES, aesBytes, [{ type: pkcs11js.CKA_ID, value: Buffer.from('imp1') }, { type: pkcs11js.CKA_TOKEN, value: T }]))).toBe('CKR_TEMPLATE_INCONSISTENT')
    expect(create([{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_DATA }, { type: pkcs11js.CKA_VALUE, value: Buffer.from('data') }])).toBe('CKR_ATTRIBUTE_VALUE_INVALID')
    expect(create([{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_RSA }])).toBe('CKR_ATTRIBUTE_VALUE_INVALID')
    expect(create([{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_RSA }, { type: pkcs11js.CKA_MODULUS, value: Buffer.alloc(256, 1) }])).toBe('CKR_TEMPLATE_INCOMPLETE')
    const readOnly = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION)
    expect(rvOf(() => p11.C_CreateObject(readOnly, secret(pkcs11js.CKK_AES, aesBytes, [{ type: pkcs11js.CKA_TOKEN, value: T }])))).toBe('CKR_SESSION_READ_ONLY')
    p11.C_CloseSession(readOnly)

    // An RSA public key made here imported with C_CreateObject: the HSM encrypts with it, openssl
    // decrypts with the private key.
    const work = tmpDir('hsmlab-p11obj-')
    const local = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const jwk = local.publicKey.export({ format: 'jwk' })
    const imported = p11.C_CreateObject(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_RSA },
      { type: pkcs11js.CKA_MODULUS, value: Buffer.from(jwk.n ?? '', 'base64url') }, { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from(jwk.e ?? '', 'base64url') },
      { type: pkcs11js.CKA_ENCRYPT, value: T }, { type: pkcs11js.CKA_LABEL, value: 'imported-rsa' }
    ])
    p11.C_EncryptInit(session, { mechanism: pkcs11js.CKM_RSA_PKCS }, imported)
    writeFileSync(join(work, 'enc'), p11.C_Encrypt(session, clear, Buffer.alloc(256)))
    writeFileSync(join(work, 'key.pem'), local.privateKey.export({ type: 'pkcs8', format: 'pem' }))
    const opened = await run('openssl', ['pkeyutl', '-decrypt', '-inkey', join(work, 'key.pem'), '-pkeyopt', 'rsa_padding_mode:pkcs1', '-in', join(work, 'enc'), '-out', join(work, 'dec')], env)
    expect(opened.code, opened.err).toBe(0)
    expect(readFileSync(join(work, 'dec'), 'utf8')).toBe(clear.toString())

    // pkcs11-tool writes a secret key with C_CreateObject (CKA_PRIVATE and CKA_SENSITIVE true, as
    // CloudHSM keeps every key); the HSM encrypts with it as node:crypto does.
    const toolBytes = randomBytes(16)
    writeFileSync(join(work, 'tool.key'), toolBytes)
    const written = await run('pkcs11-tool', ['--module', PKCS11_LIBRARY, '--login', '--pin', ALICE_PIN, '--write-object', join(work, 'tool.key'), '--type', 'secrkey',
      '--key-type', 'AES:16', '--label', 'tool-aes', '--id', '0a', '--usage-decrypt', '--private', '--sensitive'], env)
    expect(written.code, written.out + written.err).toBe(0)
    p11.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_LABEL, value: 'tool-aes' }])
    const [toolKey] = p11.C_FindObjects(session, 2)
    p11.C_FindObjectsFinal(session)
    if (toolKey === undefined) throw new Error('pkcs11-tool\'s key is not found')
    p11.C_EncryptInit(session, { mechanism: pkcs11js.CKM_AES_ECB }, toolKey)
    expect(p11.C_Encrypt(session, Buffer.alloc(16, 3), Buffer.alloc(16)).toString('hex'))
      .toBe(createCipheriv('aes-128-ecb', toolBytes, null).setAutoPadding(false).update(Buffer.alloc(16, 3)).toString('hex'))

    // An EC public key made here, imported: the HSM verifies node:crypto's signature with it.
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const ecJwk = ec.publicKey.export({ format: 'jwk' })
    const point = Buffer.concat([Buffer.from([4]), Buffer.from(ecJwk.x ?? '', 'base64url'), Buffer.from(ecJwk.y ?? '', 'base64url')])
    const ecImported = p11.C_CreateObject(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_EC }, { type: pkcs11js.CKA_VERIFY, value: T },
      { type: pkcs11js.CKA_EC_PARAMS, value: Buffer.from('06082a8648ce3d030107', 'hex') }, { type: pkcs11js.CKA_EC_POINT, value: Buffer.concat([Buffer.from([4, point.length]), point]) }
    ])
    p11.C_VerifyInit(session, { mechanism: pkcs11js.CKM_ECDSA_SHA256 }, ecImported)
    expect(p11.C_Verify(session, clear, nodeSign('sha256', clear, { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }))).toBe(true)

    // The imported token key is an HSM token key: KMU finds it by its label, and CMU's findAllKeys
    // lists it on both HSMs once it has replicated.
    const kmu = await kmuOnce(lab.cwd, ['--config', cluster.cmuConfig, 'singlecmd', 'loginHSM', '-u', 'CU', '-s', 'alice', '-p', 'Alice1234', 'findKey', '-l', 'imported-aes'])
    expect(kmu.out).toContain(`number of keys matched from start index 0::0\n${aes.readBigUInt64LE()}`)
    await waitFor(async () => {
      const cmu = await runCmuBin([cluster.cmuConfig], 'loginHSM CO admin Admin1234\nfindAllKeys 3 0\nquit\n')
      return cmu.stdout.match(new RegExp(`\\b${aes.readBigUInt64LE()}\\(o\\)`, 'g'))?.length === 2
    }, { timeoutMs: 30_000, what: 'CMU findAllKeys listing the imported key on both HSMs' })

    // A session object dies with its session; another CU does not see alice's imported key.
    const other = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION)
    const temporary = p11.C_CreateObject(other, secret(pkcs11js.CKK_AES, aes128, [{ type: pkcs11js.CKA_LABEL, value: 'imported-temporary' }]))
    p11.C_CloseSession(other)
    p11.C_EncryptInit(session, { mechanism: pkcs11js.CKM_AES_ECB }, temporary)
    expect(rvOf(() => p11.C_Encrypt(session, Buffer.alloc(16), Buffer.alloc(16)))).toBe('CKR_KEY_HANDLE_INVALID')
    p11.C_Logout(session)
    p11.C_Login(session, pkcs11js.CKU_USER, BOB_PIN)
    p11.C_EncryptInit(session, { mechanism: pkcs11js.CKM_AES_ECB }, aes)
    expect(rvOf(() => p11.C_Encrypt(session, Buffer.alloc(16), Buffer.alloc(16)))).toBe('CKR_KEY_HANDLE_INVALID')
    p11.C_Logout(session)
    p11.C_CloseSession(session)
  })

  it('encrypts and decrypts with CKM_RSA_PKCS in the HSM, against node:crypto and pkcs11-tool', async () => {
    const { env, p11, session } = await open()
    const work = tmpDir('hsmlab-p11rsa-')
    // CKM_RSA_PKCS with an HSM key pair: node:crypto encrypts with the public key read back, the HSM
    // decrypts; the HSM encrypts and decrypts its own; a tampered block and too much data are refused.
    const pair = p11.C_GenerateKeyPair(session, { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN },
      [{ type: pkcs11js.CKA_MODULUS_BITS, value: 2048 }, { type: pkcs11js.CKA_ENCRYPT, value: T }],
      [{ type: pkcs11js.CKA_DECRYPT, value: T }])
    const [n, e] = p11.C_GetAttributeValue(session, pair.publicKey, [{ type: pkcs11js.CKA_MODULUS }, { type: pkcs11js.CKA_PUBLIC_EXPONENT }])
    const hsmPublic = createPublicKey({ format: 'jwk', key: { kty: 'RSA', n: (n?.value as Buffer).toString('base64url'), e: (e?.value as Buffer).toString('base64url') } })
    const decrypt = (data: Buffer): Buffer => {
      p11.C_DecryptInit(session, { mechanism: pkcs11js.CKM_RSA_PKCS }, pair.privateKey)
      return p11.C_Decrypt(session, data, Buffer.alloc(256))
    }
    for (const size of [0, 1, 32, 245]) {
      const m = randomBytes(size)
      expect(decrypt(publicEncrypt({ key: hsmPublic, padding: constants.RSA_PKCS1_PADDING }, m)).toString('hex')).toBe(m.toString('hex'))
    }
    p11.C_EncryptInit(session, { mechanism: pkcs11js.CKM_RSA_PKCS }, pair.publicKey)
    const byHsm = p11.C_Encrypt(session, clear, Buffer.alloc(256))
    expect(byHsm).toHaveLength(256)
    expect(decrypt(byHsm).toString()).toBe(clear.toString())
    const tampered = Buffer.from(byHsm)
    tampered[100] = (tampered[100] ?? 0) ^ 1
    expect(rvOf(() => decrypt(tampered))).toBe('CKR_ENCRYPTED_DATA_INVALID')
    // A block that decrypts to no PKCS#1 v1.5 padding at all (raw RSA of zeros) is the same error.
    const unpadded = publicEncrypt({ key: hsmPublic, padding: constants.RSA_NO_PADDING }, Buffer.alloc(256, 0x11))
    expect(rvOf(() => decrypt(unpadded))).toBe('CKR_ENCRYPTED_DATA_INVALID')
    expect(rvOf(() => decrypt(Buffer.alloc(255, 1)))).toBe('CKR_ENCRYPTED_DATA_INVALID')
    p11.C_EncryptInit(session, { mechanism: pkcs11js.CKM_RSA_PKCS }, pair.publicKey)
    expect(rvOf(() => p11.C_Encrypt(session, Buffer.alloc(246, 1), Buffer.alloc(256)))).toBe('CKR_DATA_LEN_RANGE')

    // pkcs11-tool decrypts RSA-PKCS with the HSM's private key (found by its ID).
    const tooled = p11.C_GenerateKeyPair(session, { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN },
      [{ type: pkcs11js.CKA_TOKEN, value: T }, { type: pkcs11js.CKA_MODULUS_BITS, value: 2048 }, { type: pkcs11js.CKA_ID, value: Buffer.from([0x7e]) }],
      [{ type: pkcs11js.CKA_TOKEN, value: T }, { type: pkcs11js.CKA_ID, value: Buffer.from([0x7e]) }, { type: pkcs11js.CKA_DECRYPT, value: T }])
    const [tn, te] = p11.C_GetAttributeValue(session, tooled.publicKey, [{ type: pkcs11js.CKA_MODULUS }, { type: pkcs11js.CKA_PUBLIC_EXPONENT }])
    const toolPublic = createPublicKey({ format: 'jwk', key: { kty: 'RSA', n: (tn?.value as Buffer).toString('base64url'), e: (te?.value as Buffer).toString('base64url') } })
    writeFileSync(join(work, 'tool-enc'), publicEncrypt({ key: toolPublic, padding: constants.RSA_PKCS1_PADDING }, clear))
    const tool = await run('pkcs11-tool', ['--module', PKCS11_LIBRARY, '--login', '--pin', ALICE_PIN, '--decrypt', '-m', 'RSA-PKCS', '--id', '7e', '-i', join(work, 'tool-enc'), '-o', join(work, 'tool-dec')], env)
    expect(tool.code, tool.out + tool.err).toBe(0)
    expect(readFileSync(join(work, 'tool-dec'), 'utf8')).toBe(clear.toString())
    p11.C_Logout(session)
    p11.C_CloseSession(session)
  })
})
