/**
 * The key handlers against an in-memory HSM context: who may do what, each error class, the
 * attributes keys get, wrapping, signing, findAllKeys' hash and the minServers rollback.
 */
import { createPrivateKey, createPublicKey, verify as nodeVerify } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { Attribute, CMU_ATTRIBUTE_ORDER, KeyClass, KeyType, ReturnCode, WireError } from '@hsmlab/protocol'
import { expectCode, storedKey, testHsm } from './keys-context.js'
import type { TestHsm } from './keys-context.js'

const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const data = new TextEncoder().encode('data to sign')

async function aes (hsm: TestHsm, userName = 'alice', extra: Record<string, unknown> = {}): Promise<number> {
  const { handle } = await hsm.call(hsm.session(userName), 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label: 'aes', ...extra })
  return handle
}

describe('permissions', () => {
  it('needs a login, and a crypto user for key operations', async () => {
    const hsm = await testHsm()
    await expectCode(hsm.call(hsm.session(), 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 'x' }), 'NOT_LOGGED_IN')
    await expectCode(hsm.call(hsm.session('admin'), 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 'x' }), 'PERMISSION_DENIED')
    await expectCode(hsm.call(hsm.session('app_user'), 'findKey', {}), 'PERMISSION_DENIED')
    await expectCode(hsm.call(hsm.session('alice'), 'findAllKeys', { userId: 3, withHash: false }), 'PERMISSION_DENIED')
    await expectCode(hsm.call(hsm.session('admin'), 'deleteKey', { handle: 6 }), 'PERMISSION_DENIED')
    await expectCode(hsm.call(hsm.session('admin'), 'getAttribute', { handle: 6, attribute: 0 }), 'PERMISSION_DENIED')
  })

  it('owner, shared user, public key and stranger each get what the reference says', async () => {
    const hsm = await testHsm()
    const alice = hsm.session('alice')
    const bob = hsm.session('bob')
    const carol = hsm.session('carol')
    const { publicHandle, privateHandle } = await hsm.call(alice, 'generateKeyPair', { algorithm: 'EC', curveId: 2, label: 'ec', shareWith: [4] })

    // bob shares the private key: he may use it, not manage it.
    const { signature } = await hsm.call(bob, 'sign', { handle: privateHandle, mechanism: 17, data })
    await hsm.call(bob, 'verify', { handle: publicHandle, mechanism: 17, data, signature })
    await expectCode(hsm.call(bob, 'deleteKey', { handle: privateHandle }), 'KEY_ACCESS_DENIED')
    await expectCode(hsm.call(bob, 'setAttribute', { handle: privateHandle, attribute: Attribute.LABEL, value: 'x' }), 'KEY_ACCESS_DENIED')
    await expectCode(hsm.call(bob, 'shareKey', { handle: privateHandle, userId: 5, share: true }), 'KEY_ACCESS_DENIED')

    // carol sees only the public key: she may verify with it, and nothing else.
    await expectCode(hsm.call(carol, 'sign', { handle: privateHandle, mechanism: 17, data }), 'INVALID_HANDLE')
    await expectCode(hsm.call(carol, 'getKeyInfo', { handle: privateHandle }), 'INVALID_HANDLE')
    await hsm.call(carol, 'verify', { handle: publicHandle, mechanism: 17, data, signature })
    await expectCode(hsm.call(carol, 'deleteKey', { handle: publicHandle }), 'KEY_ACCESS_DENIED')
    await expectCode(hsm.call(carol, 'getKeyInfo', { handle: 999_999 }), 'INVALID_HANDLE')

    // A CO may ask about any key.
    expect(await hsm.call(hsm.session('admin'), 'getKeyInfo', { handle: privateHandle }))
      .toEqual({ handle: privateHandle, token: true, owner: 3, sharedWith: [4], mValue: 0, keyClass: KeyClass.PRIVATE })
    expect((await hsm.call(bob, 'getKeyInfo', { handle: publicHandle })).sharedWith).toEqual([])
  })
})

describe('generateSymmetricKey', () => {
  it('makes a token key with real material and the attributes of C.1', async () => {
    const hsm = await testHsm()
    const alice = hsm.session('alice')
    const { handle } = await hsm.call(alice, 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label: 'mykey', id: 'k1', extractable: false })
    expect(handle).toBe(6)
    const record = storedKey(hsm, handle)!
    expect(record).toMatchObject({ handle, keyClass: KeyClass.SECRET, keyType: KeyType.AES, owner: 3, sharedWith: [], mValue: 0 })
    expect(record.material).toHaveLength(32)
    const a = record.attributes
    expect(a[Attribute.CLASS]).toBe(4)
    expect(a[Attribute.TOKEN]).toBe(1)
    expect(a[Attribute.PRIVATE]).toBe(1)
    expect(a[Attribute.LABEL]).toBe('mykey')
    expect(a[Attribute.ID]).toBe('k1')
    expect(a[Attribute.SENSITIVE]).toBe(1)
    expect(a[Attribute.ENCRYPT]).toBe(1)
    expect(a[Attribute.VALUE_LEN]).toBe(32)
    expect(a[Attribute.EXTRACTABLE]).toBe(0)
    expect(a[Attribute.NEVER_EXTRACTABLE]).toBe(1)
    expect(a[Attribute.LOCAL]).toBe(1)
    expect(a[Attribute.DESTROYABLE]).toBe(1)
    expect(a[Attribute.KCV]).toHaveLength(3)
    expect(hsm.replicator.created).toEqual([{ handle, minServers: 1, timeoutMs: expect.any(Number) }])
  })

  it('refuses RC4 (FIPS), wrong sizes, duplicate IDs and keys over the limit', async () => {
    const hsm = await testHsm({ keysMax: 2 })
    const alice = hsm.session('alice')
    await expectCode(hsm.call(alice, 'generateSymmetricKey', { keyType: KeyType.RC4, sizeBytes: 16, label: 'x' }), 'POLICY_VIOLATION')
    await expectCode(hsm.call(alice, 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 17, label: 'x' }), 'INVALID_INPUT')
    await expectCode(hsm.call(alice, 'generateSymmetricKey', { keyType: KeyType.DES3, sizeBytes: 16, label: 'x' }), 'INVALID_INPUT')
    await expectCode(hsm.call(alice, 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 'x', shareWith: [42] }), 'USER_DOES_NOT_EXIST')
    await expectCode(hsm.call(alice, 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 'x', shareWith: [1] }), 'INVALID_USER_TYPE')
    await hsm.call(alice, 'generateSymmetricKey', { keyType: KeyType.DES3, sizeBytes: 24, label: 'x', id: 'same' })
    await expectCode(hsm.call(hsm.session('bob'), 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 'y', id: 'same' }), 'INVALID_INPUT')
    await hsm.call(alice, 'generateSymmetricKey', { keyType: KeyType.GENERIC_SECRET, sizeBytes: 7, label: 'x' })
    await expectCode(hsm.call(alice, 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 'x' }), 'KEY_LIMIT')
    // Concurrent creations cannot both take the last slot.
    const other = await testHsm({ keysMax: 1 })
    const results = await Promise.allSettled([aes(other), aes(other)])
    expect(results.filter(r => r.status === 'fulfilled')).toHaveLength(1)
  })

  it('keeps session keys in the session only: not stored, not replicated, invisible elsewhere', async () => {
    const hsm = await testHsm()
    const alice = hsm.session('alice')
    const { handle } = await hsm.call(alice, 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 's', session: true, minServers: 3 })
    expect(hsm.keys.has(String(handle))).toBe(false)
    expect(alice.sessionKeys.get(handle)?.attributes[Attribute.TOKEN]).toBe(0)
    expect(hsm.replicator.created).toEqual([])
    expect((await hsm.call(alice, 'getKeyInfo', { handle })).token).toBe(false)
    await expectCode(hsm.call(hsm.session('alice'), 'getKeyInfo', { handle }), 'INVALID_HANDLE')
    expect((await hsm.call(alice, 'findKey', { session: true })).handles).toEqual([handle])
    expect((await hsm.call(alice, 'findKey', { session: false })).handles).toEqual([])
  })

  it('rolls a key back when it does not reach minServers', async () => {
    const hsm = await testHsm()
    hsm.replicator.onKeyCreated = async (_record, minServers) => {
      if (minServers > 1) throw new WireError(ReturnCode.MIN_SERVERS_NOT_MET, 'test')
    }
    const alice = hsm.session('alice')
    await expectCode(hsm.call(alice, 'generateKeyPair', { algorithm: 'EC', curveId: 2, label: 'x', minServers: 2, timeoutMs: 10 }), 'MIN_SERVERS_NOT_MET')
    expect(hsm.replicator.deleted).toEqual([6, 7])
    expect(hsm.keys.get('6')).toEqual({ handle: 6, deleted: true })
    expect(hsm.keys.get('7')).toEqual({ handle: 7, deleted: true })
    expect((await hsm.call(alice, 'findKey', {})).handles).toEqual([])
    expect(await aes(hsm)).toBe(8) // handles are never reused
  })
})

describe('generateKeyPair', () => {
  it('makes linked RSA halves with modulus attributes; -u shares the private half', async () => {
    const hsm = await testHsm()
    const alice = hsm.session('alice')
    const { publicHandle, privateHandle } = await hsm.call(alice, 'generateKeyPair', { algorithm: 'RSA', modulusBits: 2048, publicExponent: 65537, label: 'rsa', shareWith: [4] })
    const pub = storedKey(hsm, publicHandle)!
    const priv = storedKey(hsm, privateHandle)!
    expect(pub).toMatchObject({ keyClass: KeyClass.PUBLIC, keyType: KeyType.RSA, pairHandle: privateHandle, sharedWith: [] })
    expect(priv).toMatchObject({ keyClass: KeyClass.PRIVATE, keyType: KeyType.RSA, pairHandle: publicHandle, sharedWith: [4] })
    expect(pub.attributes[Attribute.MODULUS_BITS]).toBe(2048)
    expect(pub.attributes[Attribute.PUBLIC_EXPONENT]).toBe(65537)
    expect(pub.attributes[Attribute.MODULUS]).toHaveLength(256)
    expect(pub.attributes[Attribute.SENSITIVE]).toBe(0)
    expect(pub.attributes[Attribute.VERIFY]).toBe(1)
    expect(priv.attributes[Attribute.SIGN]).toBe(1)
    expect(toHex(pub.attributes[Attribute.KCV] as Uint8Array)).toBe(toHex(priv.attributes[Attribute.KCV] as Uint8Array))
  })

  it('refuses curve 1 (FIPS), unknown curves and bad RSA parameters', async () => {
    const hsm = await testHsm()
    const alice = hsm.session('alice')
    await expectCode(hsm.call(alice, 'generateKeyPair', { algorithm: 'EC', curveId: 1, label: 'x' }), 'POLICY_VIOLATION')
    await expectCode(hsm.call(alice, 'generateKeyPair', { algorithm: 'EC', curveId: 99, label: 'x' }), 'INVALID_INPUT')
    await expectCode(hsm.call(alice, 'generateKeyPair', { algorithm: 'EC', label: 'x' }), 'INVALID_INPUT')
    await expectCode(hsm.call(alice, 'generateKeyPair', { algorithm: 'RSA', modulusBits: 1024, label: 'x' }), 'POLICY_VIOLATION')
    await expectCode(hsm.call(alice, 'generateKeyPair', { algorithm: 'RSA', modulusBits: 2048, publicExponent: 3, label: 'x' }), 'INVALID_INPUT')
  })
})

describe('attributes', () => {
  it('getAttribute 512 lists every attribute in CMU order; one attribute alone; a missing one is refused', async () => {
    const hsm = await testHsm()
    const alice = hsm.session('alice')
    const handle = await aes(hsm)
    const all = (await hsm.call(alice, 'getAttribute', { handle, attribute: Attribute.ALL })).attributes
    const ids = all.map(a => a.id)
    expect(ids).toEqual(CMU_ATTRIBUTE_ORDER.filter(id => ids.includes(id)))
    expect(all[0]).toEqual({ id: 0, name: 'OBJ_ATTR_CLASS', value: 4 })
    expect((await hsm.call(alice, 'getAttribute', { handle, attribute: Attribute.LABEL })).attributes).toEqual([{ id: 3, name: 'OBJ_ATTR_LABEL', value: 'aes' }])
    await expectCode(hsm.call(alice, 'getAttribute', { handle, attribute: Attribute.MODULUS }), 'INVALID_ATTRIBUTE')
  })

  it('setAttribute changes settable attributes only, for the owner only', async () => {
    const hsm = await testHsm()
    const alice = hsm.session('alice')
    const handle = await aes(hsm)
    await hsm.call(alice, 'setAttribute', { handle, attribute: Attribute.LABEL, value: 'renamed' })
    await hsm.call(alice, 'setAttribute', { handle, attribute: Attribute.DECRYPT, value: 0 })
    expect(storedKey(hsm, handle)!.attributes[Attribute.LABEL]).toBe('renamed')
    expect(storedKey(hsm, handle)!.attributes[Attribute.DECRYPT]).toBe(0)
    await expectCode(hsm.call(alice, 'setAttribute', { handle, attribute: Attribute.EXTRACTABLE, value: 0 }), 'INVALID_ATTRIBUTE')
    await expectCode(hsm.call(alice, 'setAttribute', { handle, attribute: Attribute.KEY_TYPE, value: 21 }), 'INVALID_ATTRIBUTE')
    await expectCode(hsm.call(alice, 'setAttribute', { handle, attribute: Attribute.SIGN, value: 2 }), 'INVALID_INPUT')
    await expectCode(hsm.call(alice, 'setAttribute', { handle, attribute: Attribute.TOKEN, value: 0 }), 'INVALID_ATTRIBUTE')
    await expectCode(hsm.call(hsm.session('bob'), 'setAttribute', { handle, attribute: Attribute.LABEL, value: 'x' }), 'INVALID_HANDLE')
    // Concurrent changes of one key do not lose each other.
    await Promise.all([
      hsm.call(alice, 'setAttribute', { handle, attribute: Attribute.SIGN, value: 0 }),
      hsm.call(alice, 'setAttribute', { handle, attribute: Attribute.VERIFY, value: 0 }),
      hsm.call(alice, 'shareKey', { handle, userId: 4, share: true }),
      hsm.call(alice, 'shareKey', { handle, userId: 5, share: true })
    ])
    const record = storedKey(hsm, handle)!
    expect([record.attributes[Attribute.SIGN], record.attributes[Attribute.VERIFY], record.sharedWith]).toEqual([0, 0, [4, 5]])
  })

  it('setAttribute OBJ_ATTR_TOKEN 1 turns a session key into a token key with the same handle, and replicates it', async () => {
    const hsm = await testHsm()
    const alice = hsm.session('alice')
    const { handle } = await hsm.call(alice, 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 's', session: true })
    await hsm.call(alice, 'setAttribute', { handle, attribute: Attribute.TOKEN, value: 1 })
    expect(alice.sessionKeys.has(handle)).toBe(false)
    expect(storedKey(hsm, handle)!.attributes[Attribute.TOKEN]).toBe(1)
    expect(hsm.replicator.created.map(c => c.handle)).toEqual([handle])
    await hsm.call(alice, 'setAttribute', { handle, attribute: Attribute.TOKEN, value: 1 }) // already: nothing to do
    expect((await hsm.call(hsm.session('alice'), 'getKeyInfo', { handle })).token).toBe(true)
  })
})

describe('shareKey', () => {
  it('shares and unshares with crypto users; refuses public keys, unknown users and officers', async () => {
    const hsm = await testHsm()
    const alice = hsm.session('alice')
    const handle = await aes(hsm)
    await hsm.call(alice, 'shareKey', { handle, userId: 4, share: true })
    await hsm.call(alice, 'shareKey', { handle, userId: 4, share: true })
    expect((await hsm.call(alice, 'getKeyInfo', { handle })).sharedWith).toEqual([4])
    await hsm.call(hsm.session('bob'), 'getKeyInfo', { handle })
    await hsm.call(alice, 'shareKey', { handle, userId: 4, share: false })
    await expectCode(hsm.call(hsm.session('bob'), 'getKeyInfo', { handle }), 'INVALID_HANDLE')
    await expectCode(hsm.call(alice, 'shareKey', { handle, userId: 77, share: true }), 'USER_DOES_NOT_EXIST')
    await expectCode(hsm.call(alice, 'shareKey', { handle, userId: 1, share: true }), 'INVALID_USER_TYPE')
    const { publicHandle } = await hsm.call(alice, 'generateKeyPair', { algorithm: 'EC', curveId: 2, label: 'ec' })
    await expectCode(hsm.call(alice, 'shareKey', { handle: publicHandle, userId: 4, share: true }), 'INVALID_INPUT')
  })
})

describe('findKey and findAllKeys', () => {
  it('filters the caller\'s visible keys', async () => {
    const hsm = await testHsm()
    const alice = hsm.session('alice')
    const a = await aes(hsm, 'alice', { label: 'one', id: 'id-1' })
    const { publicHandle, privateHandle } = await hsm.call(alice, 'generateKeyPair', { algorithm: 'EC', curveId: 2, label: 'two' })
    const b = await aes(hsm, 'bob', { label: 'one' })
    const kcv = toHex(storedKey(hsm, a)!.attributes[Attribute.KCV] as Uint8Array)
    expect(await hsm.call(alice, 'findKey', {})).toEqual({ handles: [a, publicHandle, privateHandle], total: 3 })
    expect((await hsm.call(alice, 'findKey', { label: 'one' })).handles).toEqual([a])
    expect((await hsm.call(alice, 'findKey', { keyClass: KeyClass.PRIVATE })).handles).toEqual([privateHandle])
    expect((await hsm.call(alice, 'findKey', { keyType: KeyType.EC })).handles).toEqual([publicHandle, privateHandle])
    expect((await hsm.call(alice, 'findKey', { id: 'id-1' })).handles).toEqual([a])
    expect((await hsm.call(alice, 'findKey', { kcv: `0x${kcv.toUpperCase()}` })).handles).toEqual([a])
    // bob sees his key and alice's public key.
    expect((await hsm.call(hsm.session('bob'), 'findKey', {})).handles).toEqual([publicHandle, b])
  })

  it('lists a user\'s keys as owned, shared and public, with a hash that tracks keys, owners and shares', async () => {
    const one = await testHsm()
    const alice = one.session('alice')
    const a = await aes(one)
    const { publicHandle, privateHandle } = await one.call(alice, 'generateKeyPair', { algorithm: 'EC', curveId: 2, label: 'ec', shareWith: [4] })
    const co = one.session('admin')
    const listing = await one.call(co, 'findAllKeys', { userId: 3, withHash: true })
    expect(listing.keys).toEqual([{ handle: a, relation: 'owned' }, { handle: publicHandle, relation: 'public' }, { handle: privateHandle, relation: 'owned' }])
    expect(listing.hash).toMatch(/^[0-9a-f]{64}$/)
    const bobs = await one.call(one.session('app_user'), 'findAllKeys', { userId: 4, withHash: true })
    expect(bobs.keys).toEqual([{ handle: privateHandle, relation: 'shared' }])
    expect(bobs.hash).toBe(listing.hash)
    expect((await one.call(co, 'findAllKeys', { userId: 5, withHash: true })).hash).toBeUndefined()
    expect((await one.call(co, 'findAllKeys', { userId: 3, withHash: false })).hash).toBeUndefined()

    // The same keys on another HSM give the same hash; a different share does not.
    const two = await testHsm()
    await two.keys.apply([...one.keys.entries()].map(([id, value]) => ({ op: 'put' as const, id, value })))
    expect((await two.call(two.session('admin'), 'findAllKeys', { userId: 3, withHash: true })).hash).toBe(listing.hash)
    await two.call(two.session('alice'), 'shareKey', { handle: a, userId: 5, share: true })
    expect((await two.call(two.session('admin'), 'findAllKeys', { userId: 3, withHash: true })).hash).not.toBe(listing.hash)
  })
})

describe('deleteKey', () => {
  it('tombstones the key, tells the replicator, and deletes one half of a pair only', async () => {
    const hsm = await testHsm()
    const alice = hsm.session('alice')
    const { publicHandle, privateHandle } = await hsm.call(alice, 'generateKeyPair', { algorithm: 'EC', curveId: 2, label: 'ec' })
    await hsm.call(alice, 'deleteKey', { handle: privateHandle })
    expect(hsm.keys.get(String(privateHandle))).toEqual({ handle: privateHandle, deleted: true })
    expect(hsm.replicator.deleted).toEqual([privateHandle])
    expect(storedKey(hsm, publicHandle)).toBeDefined()
    await expectCode(hsm.call(alice, 'deleteKey', { handle: privateHandle }), 'INVALID_HANDLE')
    const s = (await hsm.call(alice, 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 's', session: true })).handle
    await hsm.call(alice, 'deleteKey', { handle: s })
    expect(alice.sessionKeys.size).toBe(0)
    expect(hsm.replicator.deleted).toEqual([privateHandle])
    const d = await aes(hsm)
    await hsm.call(alice, 'setAttribute', { handle: d, attribute: Attribute.DESTROYABLE, value: 0 })
    await expectCode(hsm.call(alice, 'deleteKey', { handle: d }), 'KEY_ACCESS_DENIED')
  })
})

describe('wrapKey and unwrapKey', () => {
  it('AES key wrap round trip: the unwrapped key is the same key, owned by the caller, not local', async () => {
    const hsm = await testHsm()
    const alice = hsm.session('alice')
    const bob = hsm.session('bob')
    const kek = await aes(hsm, 'alice')
    await hsm.call(alice, 'shareKey', { handle: kek, userId: 4, share: true })
    const target = (await hsm.call(alice, 'generateSymmetricKey', { keyType: KeyType.DES3, sizeBytes: 24, label: 'tdes' })).handle
    const { wrapped } = await hsm.call(alice, 'wrapKey', { handle: target, wrappingHandle: kek, mechanism: 4 })
    // bob may unwrap with the shared wrapping key; the new key is his.
    const { handle } = await hsm.call(bob, 'unwrapKey', { wrapped, wrappingHandle: kek, mechanism: 4 })
    const copy = storedKey(hsm, handle)!
    const original = storedKey(hsm, target)!
    expect(copy).toMatchObject({ owner: 4, keyClass: KeyClass.SECRET, keyType: KeyType.DES3 })
    expect(toHex(copy.material)).toBe(toHex(original.material))
    expect(toHex(copy.attributes[Attribute.KCV] as Uint8Array)).toBe(toHex(original.attributes[Attribute.KCV] as Uint8Array))
    expect(copy.attributes[Attribute.LOCAL]).toBe(0)
    expect(copy.attributes[Attribute.LABEL]).toBe('tdes')
    // bob may not wrap alice's key, nor anyone a key that is not extractable.
    await expectCode(hsm.call(bob, 'wrapKey', { handle: target, wrappingHandle: kek, mechanism: 4 }), 'INVALID_HANDLE')
    await expectCode(hsm.call(bob, 'wrapKey', { handle: kek, wrappingHandle: kek, mechanism: 4 }), 'KEY_ACCESS_DENIED')
    const locked = await aes(hsm, 'alice', { extractable: false })
    await expectCode(hsm.call(alice, 'wrapKey', { handle: locked, wrappingHandle: kek, mechanism: 4 }), 'KEY_ACCESS_DENIED')
    // A wrapping key without OBJ_ATTR_WRAP, an unknown mechanism, the wrong kind of wrapping key.
    await hsm.call(alice, 'setAttribute', { handle: locked, attribute: Attribute.WRAP, value: 0 })
    await expectCode(hsm.call(alice, 'wrapKey', { handle: target, wrappingHandle: locked, mechanism: 4 }), 'KEY_ACCESS_DENIED')
    await expectCode(hsm.call(alice, 'wrapKey', { handle: target, wrappingHandle: kek, mechanism: 99 }), 'INVALID_INPUT')
    await expectCode(hsm.call(alice, 'wrapKey', { handle: target, wrappingHandle: kek, mechanism: 8 }), 'INVALID_INPUT')
    // Unwrapping with another key fails cleanly.
    const other = await aes(hsm, 'alice')
    await expectCode(hsm.call(alice, 'unwrapKey', { wrapped, wrappingHandle: other, mechanism: 4 }), 'INVALID_INPUT')
  })

  it('header-less blobs need the class and type; RSA-OAEP and RSA-AES wrap with a public key', async () => {
    const hsm = await testHsm()
    const alice = hsm.session('alice')
    const kek = await aes(hsm)
    const target = await aes(hsm, 'alice', { label: 'target' })
    const { wrapped } = await hsm.call(alice, 'wrapKey', { handle: target, wrappingHandle: kek, mechanism: 4 })
    const raw = wrapped.subarray(wrapped.length - 40) // 32-byte key wrapped by RFC 3394: 40 bytes
    await expectCode(hsm.call(alice, 'unwrapKey', { wrapped: raw, wrappingHandle: kek, mechanism: 4 }), 'INVALID_INPUT')
    const { handle } = await hsm.call(alice, 'unwrapKey', { wrapped: raw, wrappingHandle: kek, mechanism: 4, keyClass: 4, keyType: 31, label: 'raw', session: true })
    expect(toHex(alice.sessionKeys.get(handle)!.material)).toBe(toHex(storedKey(hsm, target)!.material))

    const { publicHandle, privateHandle } = await hsm.call(alice, 'generateKeyPair', { algorithm: 'RSA', modulusBits: 2048, label: 'rsa' })
    for (const mechanism of [7, 8]) {
      const w = await hsm.call(alice, 'wrapKey', { handle: target, wrappingHandle: publicHandle, mechanism })
      const u = await hsm.call(alice, 'unwrapKey', { wrapped: w.wrapped, wrappingHandle: privateHandle, mechanism })
      expect(toHex(storedKey(hsm, u.handle)!.material)).toBe(toHex(storedKey(hsm, target)!.material))
    }
    // RSA-AES also wraps private keys; the unwrapped copy signs like the original.
    const ec = await hsm.call(alice, 'generateKeyPair', { algorithm: 'EC', curveId: 14, label: 'ec' })
    const w = await hsm.call(alice, 'wrapKey', { handle: ec.privateHandle, wrappingHandle: publicHandle, mechanism: 7 })
    const u = await hsm.call(alice, 'unwrapKey', { wrapped: w.wrapped, wrappingHandle: privateHandle, mechanism: 7 })
    const { signature } = await hsm.call(alice, 'sign', { handle: u.handle, mechanism: 18, data })
    await hsm.call(alice, 'verify', { handle: ec.publicHandle, mechanism: 18, data, signature })
  })
})

describe('exportPrivateKey', () => {
  it('returns PKCS#8 PEM of the owner\'s extractable private key', async () => {
    const hsm = await testHsm()
    const alice = hsm.session('alice')
    const kek = await aes(hsm)
    const { publicHandle, privateHandle } = await hsm.call(alice, 'generateKeyPair', { algorithm: 'RSA', modulusBits: 2048, label: 'rsa', shareWith: [4] })
    const { pem } = await hsm.call(alice, 'exportPrivateKey', { handle: privateHandle, wrappingHandle: kek })
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/)
    const exported = createPublicKey(createPrivateKey(pem)).export({ format: 'der', type: 'spki' })
    expect(toHex(exported)).toBe(toHex(storedKey(hsm, publicHandle)!.material))
    await expectCode(hsm.call(hsm.session('bob'), 'exportPrivateKey', { handle: privateHandle, wrappingHandle: kek }), 'KEY_ACCESS_DENIED')
    await expectCode(hsm.call(alice, 'exportPrivateKey', { handle: kek, wrappingHandle: kek }), 'INVALID_INPUT')
    const locked = await hsm.call(alice, 'generateKeyPair', { algorithm: 'EC', curveId: 2, label: 'ec', extractable: false })
    await expectCode(hsm.call(alice, 'exportPrivateKey', { handle: locked.privateHandle, wrappingHandle: kek }), 'KEY_ACCESS_DENIED')
  })
})

describe('sign and verify', () => {
  it('signs with private keys, verifies with public keys, reports a bad signature as ERR_BAD_PKCS_DATA', async () => {
    const hsm = await testHsm()
    const alice = hsm.session('alice')
    const { publicHandle, privateHandle } = await hsm.call(alice, 'generateKeyPair', { algorithm: 'RSA', modulusBits: 2048, label: 'rsa' })
    const { signature } = await hsm.call(alice, 'sign', { handle: privateHandle, mechanism: 6, data })
    await hsm.call(alice, 'verify', { handle: publicHandle, mechanism: 6, data, signature })
    const spki = createPublicKey({ key: Buffer.from(storedKey(hsm, publicHandle)!.material), format: 'der', type: 'spki' })
    expect(nodeVerify('sha256', data, { key: spki, padding: 6, saltLength: -2 }, signature)).toBe(true)
    const bad = signature.slice()
    bad[10] = bad[10]! ^ 0xff
    const err = await expectCode(hsm.call(alice, 'verify', { handle: publicHandle, mechanism: 6, data, signature: bad }), 'BAD_PKCS_DATA')
    expect(err.status).toBe(0x1b)
    await expectCode(hsm.call(alice, 'sign', { handle: publicHandle, mechanism: 6, data }), 'INVALID_INPUT')
    await expectCode(hsm.call(alice, 'verify', { handle: privateHandle, mechanism: 6, data, signature }), 'INVALID_INPUT')
    await expectCode(hsm.call(alice, 'sign', { handle: privateHandle, mechanism: 17, data }), 'INVALID_INPUT')
    await hsm.call(alice, 'setAttribute', { handle: privateHandle, attribute: Attribute.SIGN, value: 0 })
    await expectCode(hsm.call(alice, 'sign', { handle: privateHandle, mechanism: 6, data }), 'KEY_ACCESS_DENIED')
  })
})
