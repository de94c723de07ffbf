/**
 * The HSM operations behind KMU exSymKey, imSymKey, importPrivateKey, importPubKey and
 * findSingleKey (issue 15): wrapKey without its header and for one key class, aesWrapData's
 * key-wrap form (the HSM's Cfm3WrapHostKey / Cfm3UnWrapHostKey), unwrapKey keeping -id,
 * -m_value and -min_srv, importPublicKey, keyDigest; who may do each.
 */
import { createDecipheriv, createPublicKey, generateKeyPairSync, sign as nodeSign, verify as nodeVerify } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { Attribute, KeyClass, KeyType } from '@hsmlab/protocol'
import { expectCode, storedKey, testHsm } from './keys-context.js'
import type { TestHsm } from './keys-context.js'

const data = new TextEncoder().encode('data to sign')

async function aes (hsm: TestHsm, userName = 'alice', extra: Record<string, unknown> = {}): Promise<number> {
  const { handle } = await hsm.call(hsm.session(userName), 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label: 'aes', ...extra })
  return handle
}

async function attribute (hsm: TestHsm, session: ReturnType<TestHsm['session']>, handle: number, id: number): Promise<unknown> {
  return (await hsm.call(session, 'getAttribute', { handle, attribute: id })).attributes[0]?.value
}

describe('exSymKey: wrapKey without header, then aesWrapData unwraps for the host', () => {
  it('gives the key\'s plaintext; RFC 3394 with the wrapping key, as the host unwraps it with -wk', async () => {
    const hsm = await testHsm()
    const alice = hsm.session('alice')
    const target = await aes(hsm)
    const wrapping = await aes(hsm)
    const { wrapped } = await hsm.call(alice, 'wrapKey', { handle: target, wrappingHandle: wrapping, mechanism: 4, noHeader: true, keyClass: KeyClass.SECRET })
    expect(wrapped).toHaveLength(40)
    const { data: plain } = await hsm.call(alice, 'aesWrapData', { wrappingHandle: wrapping, unwrap: true, data: wrapped, keyWrap: true })
    expect(Buffer.from(plain)).toEqual(Buffer.from(storedKey(hsm, target)?.material ?? []))
    // The host's -wk unwrap is plain RFC 3394 with the same key.
    const kek = storedKey(hsm, wrapping)?.material ?? new Uint8Array()
    const decipher = createDecipheriv('id-aes256-wrap', kek, Buffer.from('a6a6a6a6a6a6a6a6', 'hex'))
    expect(Buffer.concat([decipher.update(wrapped), decipher.final()])).toEqual(Buffer.from(plain))
  })

  it('wraps only the class asked for, only for the owner, and takes no IV in the key-wrap form', async () => {
    const hsm = await testHsm()
    const alice = hsm.session('alice')
    const wrapping = await aes(hsm, 'alice', { shareWith: [4] })
    const { privateHandle } = await hsm.call(alice, 'generateKeyPair', { algorithm: 'EC', curveId: 2, label: 'ec' })
    await expectCode(hsm.call(alice, 'wrapKey', { handle: privateHandle, wrappingHandle: wrapping, mechanism: 4, noHeader: true, keyClass: KeyClass.SECRET }), 'INVALID_INPUT')
    const shared = await aes(hsm, 'alice', { shareWith: [4] })
    await expectCode(hsm.call(hsm.session('bob'), 'wrapKey', { handle: shared, wrappingHandle: wrapping, mechanism: 4, noHeader: true }), 'KEY_ACCESS_DENIED')
    const nex = await aes(hsm, 'alice', { extractable: false })
    await expectCode(hsm.call(alice, 'wrapKey', { handle: nex, wrappingHandle: wrapping, mechanism: 4, noHeader: true }), 'KEY_ACCESS_DENIED')
    await expectCode(hsm.call(alice, 'aesWrapData', { wrappingHandle: wrapping, unwrap: false, data: new Uint8Array(16), keyWrap: true, iv: new Uint8Array(8) }), 'INVALID_INPUT')
    // The wrong wrapping key does not unwrap.
    const { wrapped } = await hsm.call(alice, 'wrapKey', { handle: shared, wrappingHandle: wrapping, mechanism: 4, noHeader: true })
    const other = await aes(hsm)
    await expectCode(hsm.call(alice, 'aesWrapData', { wrappingHandle: other, unwrap: true, data: wrapped, keyWrap: true }), 'INVALID_INPUT')
  })
})

describe('imSymKey and importPrivateKey: aesWrapData wraps for the host, unwrapKey makes the key', () => {
  it('imports a 3DES key with its -id as a session key, and a PKCS#8 private key that signs', async () => {
    const hsm = await testHsm()
    const alice = hsm.session('alice')
    const wrapping = await aes(hsm)
    const des = new Uint8Array(Buffer.from('0123456789abcdeffedcba987654321089abcdef01234567', 'hex'))
    const { data: wrappedDes } = await hsm.call(alice, 'aesWrapData', { wrappingHandle: wrapping, unwrap: false, data: des, keyWrap: true })
    const { handle: desHandle } = await hsm.call(alice, 'unwrapKey', {
      wrapped: wrappedDes, wrappingHandle: wrapping, mechanism: 4, keyClass: KeyClass.SECRET, keyType: KeyType.DES3, label: 'temp', id: 'test01', session: true
    })
    expect(storedKey(hsm, desHandle)).toBeUndefined()
    expect((await hsm.call(alice, 'findKey', { id: 'test01', session: true })).handles).toEqual([desHandle])
    expect(await attribute(hsm, alice, desHandle, Attribute.LOCAL)).toBe(0)
    // IDs stay unique: the same ID again is refused.
    await expectCode(hsm.call(alice, 'unwrapKey', {
      wrapped: wrappedDes, wrappingHandle: wrapping, mechanism: 4, keyClass: KeyClass.SECRET, keyType: KeyType.DES3, label: 'again', id: 'test01'
    }), 'INVALID_INPUT')

    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
    // A DER of any length: RFC 5649 pads it when it is not a multiple of 8 bytes.
    const der = new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' }))
    const { data: wrappedKey } = await hsm.call(alice, 'aesWrapData', { wrappingHandle: wrapping, unwrap: false, data: der, keyWrap: true })
    const { handle } = await hsm.call(alice, 'unwrapKey', {
      wrapped: wrappedKey, wrappingHandle: wrapping, mechanism: 4, keyClass: KeyClass.PRIVATE, keyType: KeyType.RSA, label: 'rsa-imported', shareWith: [4], mValue: 1
    })
    const record = storedKey(hsm, handle)
    expect(record).toMatchObject({ keyClass: KeyClass.PRIVATE, keyType: KeyType.RSA, owner: 3, sharedWith: [4], mValue: 1 })
    expect(hsm.replicator.created.map(c => c.handle)).toContain(handle)
    // -min_srv / -timeout reach the replicator as for a generated key.
    const { handle: synced } = await hsm.call(alice, 'unwrapKey', {
      wrapped: wrappedDes, wrappingHandle: wrapping, mechanism: 4, keyClass: KeyClass.SECRET, keyType: KeyType.DES3, label: 'synced', minServers: 2, timeoutMs: 5000
    })
    expect(hsm.replicator.created.find(c => c.handle === synced)).toEqual({ handle: synced, minServers: 2, timeoutMs: 5000 })
    const { signature } = await hsm.call(alice, 'sign', { handle, mechanism: 1, data })
    expect(nodeVerify('sha256', data, publicKey, signature)).toBe(true)
  })
})

describe('importPublicKey (importPubKey)', () => {
  it('makes a public key of the SPKI, not local, that verifies a signature made outside, for every CU', async () => {
    const hsm = await testHsm()
    const alice = hsm.session('alice')
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
    const spki = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }))
    const { handle } = await hsm.call(alice, 'importPublicKey', { label: 'importedPublicKey', id: 'pub-1', spki })
    const record = storedKey(hsm, handle)
    expect(record).toMatchObject({ keyClass: KeyClass.PUBLIC, keyType: KeyType.EC, owner: 3, sharedWith: [] })
    expect(record?.pairHandle).toBeUndefined()
    expect(hsm.replicator.created.map(c => c.handle)).toContain(handle)
    expect(await attribute(hsm, alice, handle, Attribute.LOCAL)).toBe(0)
    expect(await attribute(hsm, alice, handle, Attribute.MODULUS_BITS)).toBe(415)
    const { pem } = await hsm.call(alice, 'exportPublicKey', { handle })
    expect(createPublicKey(pem).export({ format: 'der', type: 'spki' })).toEqual(Buffer.from(spki))
    const signature = nodeSign('sha256', data, privateKey)
    await hsm.call(hsm.session('bob'), 'verify', { handle, mechanism: 17, data, signature })

    await expectCode(hsm.call(alice, 'importPublicKey', { label: 'dup', id: 'pub-1', spki }), 'INVALID_INPUT')
    await expectCode(hsm.call(alice, 'importPublicKey', { label: 'shared', spki, shareWith: [4] }), 'INVALID_INPUT')
    await expectCode(hsm.call(alice, 'importPublicKey', { label: 'junk', spki: new Uint8Array(64) }), 'INVALID_INPUT')
    await expectCode(hsm.call(hsm.session('admin'), 'importPublicKey', { label: 'co', spki }), 'PERMISSION_DENIED')
    // A session public key stays in the session.
    const { handle: sess } = await hsm.call(alice, 'importPublicKey', { label: 'sess', spki, session: true })
    expect(storedKey(hsm, sess)).toBeUndefined()
  })
})

describe('keyDigest (findSingleKey)', () => {
  it('is the same for the same key, changes when the key does, and is only for users who may use the key', async () => {
    const hsm = await testHsm()
    const alice = hsm.session('alice')
    const handle = await aes(hsm)
    const first = (await hsm.call(alice, 'keyDigest', { handle })).hash
    expect(first).toMatch(/^[0-9a-f]{64}$/)
    expect((await hsm.call(hsm.session('alice'), 'keyDigest', { handle })).hash).toBe(first)
    await hsm.call(alice, 'setAttribute', { handle, attribute: Attribute.LABEL, value: 'changed' })
    expect((await hsm.call(alice, 'keyDigest', { handle })).hash).not.toBe(first)
    await expectCode(hsm.call(hsm.session('bob'), 'keyDigest', { handle }), 'INVALID_HANDLE')
    await expectCode(hsm.call(alice, 'keyDigest', { handle: 999_999 }), 'INVALID_HANDLE')
  })
})
