/**
 * Synchronisation digests and the change sequence (issue 12) on real `hsmlab-hsm` processes.
 *
 * Goal: a primary and a replica restored from its backup give equal digests for equal content,
 * and each kind of change on the primary (new key, attribute, sharing, password, lockout state,
 * deleted key, new and deleted user) makes the digest of exactly that resource differ and shows
 * in an incremental syncChanges (a deleted key also in the full answer's deletedKeys, a user
 * deleteUser deleted in its deletedUsers); a long poll wakes as soon as a change lands, whether a client
 * made it on that HSM or in-cluster replication brought it from a peer; an unknown epoch gets a
 * full answer. Method: the test plays the control plane (syncHello signed by the anchor) and
 * the clients; it waits on answers, never for a fixed time.
 */
import { describe, expect, it } from 'vitest'
import { KeyType } from '@hsmlab/protocol'
import { waitFor } from '@hsmlab/testing'
import { loginPlane } from './backup-helpers.js'
import { expectCode } from './helpers.js'
import { ADMIN_PASSWORD, ALICE_PASSWORD, addSibling, digests, fullDigests, startSyncPair, syncConnection } from './sync-helpers.js'

describe('synchronisation digests and syncChanges', () => {
  it('gives equal digests for equal content, and a different digest for each kind of change', async () => {
    const { primary, replica } = await startSyncPair()
    const p = await syncConnection(primary)
    const r = await syncConnection(replica)

    const start = await p.call('syncChanges', {})
    expect(start.full).toBe(true)
    const before = digests(start.resources)
    // admin (CO), app_user (AU), alice and bob: users by name, ids not compared.
    expect([...before.keys()].sort()).toEqual(['uadmin', 'ualice', 'uapp_user', 'ubob'])
    expect(await fullDigests(r)).toEqual(before)

    const alice = await loginPlane(primary, 'CU', 'alice', ALICE_PASSWORD)
    const co = await loginPlane(primary, 'CO', 'admin', ADMIN_PASSWORD)
    let seq = start.seq
    /** Applies a change on the primary; returns the resources the incremental answer reports. */
    const change = async (what: string, act: () => Promise<unknown>): Promise<Map<string, string | null>> => {
      await act()
      const answer = await p.call('syncChanges', { epoch: start.epoch, sinceSeq: seq })
      expect(answer.full, what).toBe(false)
      expect(answer.seq, what).toBeGreaterThan(seq)
      seq = answer.seq
      return digests(answer.resources)
    }

    let handle = 0
    const created = await change('new key', async () => { handle = (await alice.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label: 'k' })).handle })
    expect([...created.keys()]).toEqual([`k${handle}`])
    const key = `k${handle}`
    const digestsOf = [created.get(key)]

    const labelled = await change('label', async () => { await alice.call('setAttribute', { handle, attribute: 3, value: 'renamed' }) })
    digestsOf.push(labelled.get(key))
    const bobId = (await co.call('listUsers', {})).users.find(u => u.userName === 'bob')!.userId
    const shared = await change('share', async () => { await alice.call('shareKey', { handle, userId: bobId, share: true }) })
    digestsOf.push(shared.get(key))
    expect(new Set(digestsOf).size).toBe(3)

    const password = await change('password', async () => { await alice.call('changePassword', { userType: 'CU', userName: 'alice', password: 'alicepw2' }) })
    expect(password.get('ualice')).not.toBe(before.get('ualice'))
    const lockout = await change('failed login', async () => { await expectCode(loginPlane(primary, 'CU', 'bob', 'wrongpass'), 'USER_LOGIN_FAILURE') })
    expect(lockout.get('ubob')).not.toBe(before.get('ubob'))
    const newUser = await change('new user', async () => { await co.call('createUser', { userType: 'CU', userName: 'carol', password: 'carolpw1' }) })
    expect(newUser.get('ucarol')).toMatch(/^[0-9a-f]{64}$/)
    const deletedUser = await change('deleted user', async () => { await co.call('deleteUser', { userType: 'CU', userName: 'carol' }) })
    expect(deletedUser.get('ucarol')).toBeNull()
    // A full answer names the deleted user (deleteUser ran here), not one this HSM never had:
    // users are not replicated inside a cluster, so only this tells a deletion from an absence.
    expect((await p.call('syncChanges', {})).deletedUsers).toEqual(['carol'])
    expect((await r.call('syncChanges', {})).deletedUsers).toEqual([])
    // Made again, the user is no longer deleted; deleted again, it is.
    await co.call('createUser', { userType: 'CU', userName: 'Carol', password: 'carolpw1' })
    expect((await p.call('syncChanges', {})).deletedUsers).toEqual([])
    await co.call('deleteUser', { userType: 'CU', userName: 'Carol' })
    expect((await p.call('syncChanges', {})).deletedUsers).toEqual(['Carol'])
    seq = (await p.call('syncChanges', {})).seq

    // The replica still holds the old content: only the changed resources differ.
    const now = await fullDigests(p)
    const replicaNow = await fullDigests(r)
    expect(replicaNow.has(key)).toBe(false)
    for (const name of ['ualice', 'ubob']) expect(now.get(name), name).not.toBe(replicaNow.get(name))
    for (const name of ['uadmin', 'uapp_user']) expect(now.get(name), name).toBe(replicaNow.get(name))
    expect(now.get(key)).toBe(digestsOf[2])

    const deleted = await change('deleted key', async () => { await alice.call('deleteKey', { handle }) })
    expect(deleted.get(key)).toBeNull()
    expect((await fullDigests(p)).has(key)).toBe(false)
    // A full answer names the tombstone: deleted here, not merely never received (the replica,
    // which never held the key, names none), so the control plane carries only real deletions.
    expect((await p.call('syncChanges', {})).deletedKeys).toContain(handle)
    expect((await r.call('syncChanges', {})).deletedKeys).toEqual([])

    // Nothing changed since: an empty list at once without waitMs; an unknown epoch: full.
    expect(await p.call('syncChanges', { epoch: start.epoch, sinceSeq: seq })).toEqual({ epoch: start.epoch, seq, full: false, resources: [] })
    expect((await p.call('syncChanges', { epoch: 'epoch-other', sinceSeq: seq })).full).toBe(true)
    expect((await p.call('syncChanges', { epoch: start.epoch, sinceSeq: seq + 5 })).full).toBe(true)
  })

  it('wakes a long poll as soon as a change lands, made by a client or replicated from a peer', async () => {
    const pair = await startSyncPair()
    const { primary } = pair
    const sibling = await addSibling(pair.installation, primary, pair.backupFile, 1)
    const onSibling = await syncConnection(sibling)
    const alice = await loginPlane(primary, 'CU', 'alice', ALICE_PASSWORD)
    const aliceOnSibling = await loginPlane(sibling, 'CU', 'alice', ALICE_PASSWORD)

    for (const [what, conn] of [['replicated from a peer', alice], ['made by a client here', aliceOnSibling]] as const) {
      const { epoch, seq } = await onSibling.call('syncChanges', {})
      const started = Date.now()
      let answered = false
      const poll = onSibling.call('syncChanges', { epoch, sinceSeq: seq, waitMs: 25_000 }, { timeoutMs: 30_000 }).finally(() => { answered = true })
      const { handle } = await conn.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: what })
      const answer = await poll
      expect(answer.full, what).toBe(false)
      expect(answer.resources.map(r => r.kind === 'key' ? r.handle : r.name), what).toContain(handle)
      // It answered because of the change, well before its 25 s were up.
      expect(Date.now() - started, what).toBeLessThan(15_000)
      expect(answered).toBe(true)
    }

    // A poll with nothing to report answers an empty list once its time is up.
    const { epoch, seq } = await onSibling.call('syncChanges', {})
    expect(await onSibling.call('syncChanges', { epoch, sinceSeq: seq, waitMs: 200 })).toEqual({ epoch, seq, full: false, resources: [] })
    // Both HSMs of the cluster end up with the same keys, and equal digests for them.
    const onPrimary = await syncConnection(primary)
    await waitFor(async () => {
      const [a, b] = [await fullDigests(onPrimary), await fullDigests(onSibling)]
      return [...a].every(([id, digest]) => !id.startsWith('k') || b.get(id) === digest) && a.size === b.size
    }, { what: 'the sibling to hold every key of the primary' })
  })
})
