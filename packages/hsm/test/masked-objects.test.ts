/**
 * extractMaskedObject / insertMaskedObject between in-memory HSMs: round trips of keys and users,
 * who may extract and insert, foreign lineages, changed bytes, inconsistent credentials (nothing
 * written), syncKey's handle rules and the idempotent repeat.
 */
import { describe, expect, it } from 'vitest'
import { generateSecretKey } from '@hsmlab/crypto'
import { Attribute, KeyType } from '@hsmlab/protocol'
import type { UserRecord } from '../src/context.js'
import { keyDigest } from '../src/key-digest.js'
import { TEST_USERS, expectCode, storedKey, testCluster, testHsm } from './keys-context.js'
import type { TestCluster, TestHsm } from './keys-context.js'

function cloneOf (cluster: TestCluster): TestCluster {
  return { ...testCluster(cluster.lineage), maskingKey: cluster.maskingKey }
}

async function aliceKey (hsm: TestHsm, extra: Record<string, unknown> = {}): Promise<number> {
  const { handle } = await hsm.call(hsm.session('alice'), 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label: 'k', ...extra })
  return handle
}

async function extractKey (hsm: TestHsm, handle: number, userName = 'admin'): Promise<Uint8Array> {
  return (await hsm.call(hsm.session(userName), 'extractMaskedObject', { kind: 'key', handle })).blob
}

function snapshot (hsm: TestHsm): string {
  return JSON.stringify([...hsm.keys.entries()].map(([id, v]) => [id, 'deleted' in v ? v : keyDigest(v)]))
}

describe('masked keys', () => {
  it('round-trip to a clone with the same handle (syncKey) or a new one (KMU)', async () => {
    const cluster = testCluster()
    const source = await testHsm({ cluster, slot: 0 })
    const dest = await testHsm({ cluster: cloneOf(cluster), slot: 0 })
    // Move the allocator on so that a new handle differs from the source's.
    await aliceKey(dest)
    const handle = await aliceKey(source, { extractable: false, id: 'kid' })
    await source.call(source.session('alice'), 'shareKey', { handle, userId: 4, share: true })
    const blob = await extractKey(source, handle, 'alice')

    const kept = await dest.call(dest.session('admin'), 'insertMaskedObject', { blob, sameHandle: true })
    // Handle 6 is held on the destination by another key: a new handle, reported back.
    expect(kept.kind).toBe('key')
    expect(kept.handle).not.toBe(handle)
    const copy = storedKey(dest, kept.handle!)!
    expect(copy.owner).toBe(3)
    expect(copy.sharedWith).toEqual([4])
    expect(Buffer.from(copy.material).equals(Buffer.from(storedKey(source, handle)!.material))).toBe(true)
    expect(dest.replicator.created.map(c => c.handle)).toContain(kept.handle)

    const fresh = await testHsm({ cluster: cloneOf(cluster), slot: 1 })
    const same = await fresh.call(fresh.session('alice'), 'insertMaskedObject', { blob, sameHandle: true })
    expect(same.handle).toBe(handle)
    expect(keyDigest(storedKey(fresh, handle)!)).toBe(keyDigest(storedKey(source, handle)!))

    const kmu = await fresh.call(fresh.session('alice'), 'insertMaskedObject', { blob })
    expect(kmu.handle).not.toBe(handle)
    expect(storedKey(fresh, kmu.handle!)!.attributes[Attribute.LABEL]).toBe('k')
  })

  it('lets the owner, any CO and the AU extract; others get the usual codes', async () => {
    const hsm = await testHsm()
    const handle = await aliceKey(hsm)
    await hsm.call(hsm.session('alice'), 'shareKey', { handle, userId: 4, share: true })
    await extractKey(hsm, handle, 'alice')
    await extractKey(hsm, handle, 'officer')
    await extractKey(hsm, handle, 'app_user')
    await expectCode(extractKey(hsm, handle, 'bob'), 'KEY_ACCESS_DENIED')
    await expectCode(extractKey(hsm, handle, 'carol'), 'INVALID_HANDLE')
    await expectCode(extractKey(hsm, 12345, 'admin'), 'INVALID_HANDLE')
    await expectCode(hsm.call(hsm.session(), 'extractMaskedObject', { kind: 'key', handle }), 'NOT_LOGGED_IN')
    await expectCode(hsm.call(hsm.session('admin'), 'extractMaskedObject', { kind: 'key' }), 'INVALID_INPUT')
    const alice = hsm.session('alice')
    const s = (await hsm.call(alice, 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 's', session: true })).handle
    await expectCode(hsm.call(alice, 'extractMaskedObject', { kind: 'key', handle: s }), 'INVALID_INPUT')
    // A crypto user may insert only keys it owns.
    const blob = await extractKey(hsm, handle)
    const other = await testHsm({ cluster: cloneOf(testClusterOf(hsm)) })
    await expectCode(other.call(other.session('bob'), 'insertMaskedObject', { blob, sameHandle: true }), 'KEY_ACCESS_DENIED')
  })

  it('refuses another lineage and any changed byte, and writes nothing', async () => {
    const hsm = await testHsm()
    const blob = await extractKey(hsm, await aliceKey(hsm))
    const foreign = await testHsm()
    await expectCode(foreign.call(foreign.session('admin'), 'insertMaskedObject', { blob, sameHandle: true }), 'MASKED_OBJECT_LINEAGE')
    // Same lineage name, another masking key: authentication fails.
    const impostor = await testHsm({ cluster: { ...testCluster(testClusterOf(hsm).lineage), maskingKey: generateSecretKey() } })
    await expectCode(impostor.call(impostor.session('admin'), 'insertMaskedObject', { blob }), 'MASKED_OBJECT_INVALID')

    const dest = await testHsm({ cluster: cloneOf(testClusterOf(hsm)), slot: 1 })
    const before = snapshot(dest)
    for (let i = 0; i < blob.length; i += Math.max(1, Math.floor(blob.length / 40))) {
      const changed = blob.slice()
      changed[i] = changed[i]! ^ 0x01
      const err = await dest.call(dest.session('admin'), 'insertMaskedObject', { blob: changed, sameHandle: true }).then(() => undefined, (e: Error & { code?: string }) => e)
      expect(err?.code, `byte ${i}`).toMatch(/^RET_MASKED_OBJECT_(INVALID|LINEAGE)$/)
    }
    await expectCode(dest.call(dest.session('admin'), 'insertMaskedObject', { blob: blob.subarray(0, 30) }), 'MASKED_OBJECT_INVALID')
    expect(snapshot(dest)).toBe(before)
  })

  it('refuses a key whose owner or shared user is missing or someone else here, naming the user', async () => {
    const hsm = await testHsm()
    const handle = await aliceKey(hsm)
    await hsm.call(hsm.session('alice'), 'shareKey', { handle, userId: 5, share: true })
    const blob = await extractKey(hsm, handle)
    const clone = cloneOf(testClusterOf(hsm))

    const noAlice = await testHsm({ cluster: clone, users: TEST_USERS.filter(u => u.userName !== 'alice') })
    const err = await expectCode(noAlice.call(noAlice.session('admin'), 'insertMaskedObject', { blob, sameHandle: true }), 'CREDENTIALS_INCONSISTENT')
    expect(err.message).toContain('alice')
    expect(noAlice.keys.size).toBe(0)

    const renamed = TEST_USERS.map(u => u.userName === 'carol' ? { ...u, userName: 'mallory' } : u)
    const wrongShare = await testHsm({ cluster: clone, users: renamed })
    const err2 = await expectCode(wrongShare.call(wrongShare.session('admin'), 'insertMaskedObject', { blob, sameHandle: true }), 'CREDENTIALS_INCONSISTENT')
    expect(err2.message).toMatch(/carol.*mallory/)
    expect(wrongShare.keys.size).toBe(0)
    expect(wrongShare.replicator.created).toEqual([])
  })

  it('syncKey repairs a desynchronised key in place, and a repeat changes nothing', async () => {
    const cluster = testCluster()
    const a = await testHsm({ cluster, slot: 0 })
    const b = await testHsm({ cluster, slot: 1 })
    const handle = await aliceKey(a)
    // b got the key by replication, then its copy drifted (a share and a label only there).
    await b.keys.apply([{ op: 'put', id: String(handle), value: storedKey(a, handle)! }])
    await b.call(b.session('alice'), 'shareKey', { handle, userId: 4, share: true })
    await b.call(b.session('alice'), 'setAttribute', { handle, attribute: Attribute.LABEL, value: 'drifted' })
    expect(keyDigest(storedKey(b, handle)!)).not.toBe(keyDigest(storedKey(a, handle)!))

    const blob = await extractKey(a, handle)
    expect((await b.call(b.session('admin'), 'insertMaskedObject', { blob, sameHandle: true })).handle).toBe(handle)
    expect(keyDigest(storedKey(b, handle)!)).toBe(keyDigest(storedKey(a, handle)!))
    const after = snapshot(b)
    expect((await b.call(b.session('admin'), 'insertMaskedObject', { blob, sameHandle: true })).handle).toBe(handle)
    expect(snapshot(b)).toBe(after)
    expect(b.replicator.created).toEqual([]) // replaced in place: nothing new to replicate

    // A handle deleted here is never reused: the key comes in under a new handle.
    await b.call(b.session('alice'), 'deleteKey', { handle })
    const again = await b.call(b.session('admin'), 'insertMaskedObject', { blob, sameHandle: true })
    expect(again.handle).not.toBe(handle)
    expect(b.keys.get(String(handle))).toEqual({ handle, deleted: true })
  })

  it('syncKey into a clone whose copy of the handle is another key: a new handle, the same one when repeated', async () => {
    const cluster = testCluster()
    const source = await testHsm({ cluster, slot: 1 })
    const dest = await testHsm({ cluster: cloneOf(cluster), slot: 1 })
    // Both HSMs have slot 1 (a clone continues from the slots its backup knew, and the source
    // added HSMs since): their first keys have the same handle.
    const handle = await aliceKey(source)
    const theirs = await aliceKey(dest)
    expect(theirs).toBe(handle)
    const blob = await extractKey(source, handle)

    const first = await dest.call(dest.session('admin'), 'insertMaskedObject', { blob, sameHandle: true })
    expect(first.handle).not.toBe(handle)
    const after = snapshot(dest)
    expect((await dest.call(dest.session('admin'), 'insertMaskedObject', { blob, sameHandle: true })).handle).toBe(first.handle)
    expect(snapshot(dest)).toBe(after)
    expect(dest.replicator.created.map(c => c.handle)).toEqual([theirs, first.handle])

    // A change on the source (a label) reaches that copy in place when synced again.
    await source.call(source.session('alice'), 'setAttribute', { handle, attribute: Attribute.LABEL, value: 'renamed' })
    const changed = await extractKey(source, handle)
    expect((await dest.call(dest.session('admin'), 'insertMaskedObject', { blob: changed, sameHandle: true })).handle).toBe(first.handle)
    expect(storedKey(dest, first.handle!)!.attributes[Attribute.LABEL]).toBe('renamed')
    expect(storedKey(dest, theirs)!.attributes[Attribute.LABEL]).toBe('k')
    // KMU insertMaskedObject still makes a copy each time.
    expect((await dest.call(dest.session('admin'), 'insertMaskedObject', { blob })).handle).not.toBe(first.handle)
  })

  it('concurrent syncKeys of a key whose handle is taken make one copy between them', async () => {
    const cluster = testCluster()
    const source = await testHsm({ cluster, slot: 1 })
    const dest = await testHsm({ cluster: cloneOf(cluster), slot: 1 })
    const handle = await aliceKey(source)
    const theirs = await aliceKey(dest)
    const blob = await extractKey(source, handle)

    // Each insert looks for an earlier copy under the key's handle lock, so the ones queued
    // behind the first find the copy it made.
    const results = await Promise.all(Array.from({ length: 8 }, async () => await dest.call(dest.session('admin'), 'insertMaskedObject', { blob, sameHandle: true })))
    const handles = new Set(results.map(r => r.handle))
    expect(handles.size).toBe(1)
    expect(handles.has(handle)).toBe(false)
    expect(dest.replicator.created.map(c => c.handle)).toEqual([theirs, results[0]!.handle])
    expect([...dest.keys.values()].length).toBe(2)
  })
})

describe('masked users', () => {
  it('moves a user with its password verifier, replacing the same id and name', async () => {
    const cluster = testCluster()
    const a = await testHsm({ cluster })
    const alice: UserRecord = { ...a.users.get('3')!, password: { algorithm: 'scrypt', salt: new Uint8Array(16).fill(7), hash: new Uint8Array(32).fill(9), cost: 16 }, loginFailureCount: 2 }
    await a.users.apply([{ op: 'put', id: '3', value: alice }])
    const { blob } = await a.call(a.session('admin'), 'extractMaskedObject', { kind: 'user', userId: 3 })
    expect(Buffer.from(blob).includes(Buffer.from(new Uint8Array(32).fill(9)))).toBe(false) // sealed, not in clear

    const b = await testHsm({ cluster: cloneOf(cluster) })
    expect(await b.call(b.session('admin'), 'insertMaskedObject', { blob })).toEqual({ kind: 'user', userId: 3 })
    expect(b.users.get('3')).toEqual(alice)
    await b.call(b.session('app_user'), 'insertMaskedObject', { blob }) // a repeat: the same
    expect(b.users.get('3')).toEqual(alice)

    const c = await testHsm({ cluster: cloneOf(cluster), users: TEST_USERS.filter(u => u.userId !== 3) })
    await c.call(c.session('admin'), 'insertMaskedObject', { blob })
    expect(c.users.get('3')).toEqual(alice)
  })

  it('refuses an id held by another name or a name held by another id; only officers and the AU', async () => {
    const cluster = testCluster()
    const a = await testHsm({ cluster })
    const { blob } = await a.call(a.session('officer'), 'extractMaskedObject', { kind: 'user', userId: 3 })
    await expectCode(a.call(a.session('alice'), 'extractMaskedObject', { kind: 'user', userId: 3 }), 'PERMISSION_DENIED')
    await expectCode(a.call(a.session('admin'), 'extractMaskedObject', { kind: 'user', userId: 99 }), 'USER_DOES_NOT_EXIST')
    await expectCode(a.call(a.session('alice'), 'insertMaskedObject', { blob }), 'PERMISSION_DENIED')

    const idTaken = await testHsm({ cluster: cloneOf(cluster), users: TEST_USERS.map(u => u.userId === 3 ? { ...u, userName: 'dave' } : u) })
    await expectCode(idTaken.call(idTaken.session('admin'), 'insertMaskedObject', { blob }), 'CREDENTIALS_INCONSISTENT')
    expect(idTaken.users.get('3')?.userName).toBe('dave')

    const nameTaken = await testHsm({ cluster: cloneOf(cluster), users: TEST_USERS.map(u => u.userName === 'alice' ? { ...u, userId: 7 } : u) })
    await expectCode(nameTaken.call(nameTaken.session('admin'), 'insertMaskedObject', { blob }), 'CREDENTIALS_INCONSISTENT')
    expect(nameTaken.users.has('3')).toBe(false)
  })
})

function testClusterOf (hsm: TestHsm): TestCluster {
  const { clusterId, lineage, maskingKey } = hsm.ctx.identity
  return { clusterId, lineage, maskingKey, anchor: { publicKey: hsm.ctx.identity.anchorPublicKey, secretKey: new Uint8Array(64) } }
}
