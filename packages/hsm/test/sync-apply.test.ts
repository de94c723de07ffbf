/**
 * syncExtract / syncApply (issue 12) from a primary to a replica restored from its backup, on
 * real `hsmlab-hsm` processes.
 *
 * Goal: what the primary extracts, the replica applies, after which both give the same digest:
 * a new user (under another user id on the replica), a new key owned by it and shared, a changed
 * key (replaced at its handle), a repeat (changes nothing), deletions (repeated: still ok). A
 * different key at the handle is HANDLE_TAKEN, an owner absent on the replica OWNER_MISSING,
 * an object of another lineage LINEAGE_REFUSED, and an HSM that is no replica NOT_A_REPLICA.
 * Method: the test plays both control planes (syncHello, setSyncRole signed by each cluster's
 * anchor) and the clients.
 */
import { describe, expect, it } from 'vitest'
import { KeyType } from '@hsmlab/protocol'
import type { SyncOutcome } from '@hsmlab/protocol'
import { signSyncHello } from '../src/index.js'
import { loginPlane, newInstallation, newPlaneCluster, planHsm, runPlanned } from './backup-helpers.js'
import { expectCode } from './helpers.js'
import { ADMIN_PASSWORD, ALICE_PASSWORD, fullDigests, setRole, startSyncPair, syncConnection } from './sync-helpers.js'

function codes (outcomes: SyncOutcome[]): Array<string | true> {
  return outcomes.map(o => o.ok ? true : o.code ?? '?')
}

describe('syncExtract and syncApply', () => {
  it('applies users, keys, changes and deletions from the primary so that digests agree', async () => {
    const { primary, replica } = await startSyncPair()
    const p = await syncConnection(primary)
    const r = await syncConnection(replica)
    const pCo = await loginPlane(primary, 'CO', 'admin', ADMIN_PASSWORD)
    const rCo = await loginPlane(replica, 'CO', 'admin', ADMIN_PASSWORD)

    // A user made on the replica before it became one takes the id the primary gives carol next.
    await rCo.call('createUser', { userType: 'CU', userName: 'erin', password: 'erinpass' })
    const { userId: carolId } = await pCo.call('createUser', { userType: 'CU', userName: 'carol', password: 'carolpw1' })
    const carol = await loginPlane(primary, 'CU', 'carol', 'carolpw1')
    const { handle } = await carol.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label: 'carols' })
    const aliceId = (await pCo.call('listUsers', {})).users.find(u => u.userName === 'alice')!.userId
    await carol.call('shareKey', { handle, userId: aliceId, share: true })

    // Not a replica yet: refused, nothing changed.
    const first = await p.call('syncExtract', { keys: [handle, 999_999], users: ['carol', 'nobody'] })
    expect(first.objects.map(o => o.kind === 'key' ? o.handle : o.name)).toEqual(['carol', handle])
    expect(codes((await r.call('syncApply', { objects: first.objects.map(o => o.blob), deleteKeys: [], deleteUsers: [] })).outcomes)).toEqual(['NOT_A_REPLICA', 'NOT_A_REPLICA'])

    await setRole(replica, 'replica', primary.cluster.clusterId, 1)
    const applied = await r.call('syncApply', { objects: first.objects.map(o => o.blob), deleteKeys: [], deleteUsers: [] })
    expect(applied.outcomes).toEqual([
      { kind: 'user', name: 'carol', ok: true, digest: first.objects[0]!.digest },
      { kind: 'key', handle, ok: true, digest: first.objects[1]!.digest }
    ])
    const onReplica = (await rCo.call('listUsers', {})).users.find(u => u.userName === 'carol')!
    expect(onReplica.userId).not.toBe(carolId)
    const pAll = await fullDigests(p)
    const rAll = await fullDigests(r)
    for (const id of [`k${handle}`, 'ucarol', 'ualice']) expect(rAll.get(id), id).toBe(pAll.get(id))
    // carol logs in on the replica with her password, and uses her key there.
    const carolThere = await loginPlane(replica, 'CU', 'carol', 'carolpw1')
    expect((await carolThere.call('getKeyInfo', { handle })).owner).toBe(onReplica.userId)

    // A changed key replaces the replica's copy at its handle; a repeat changes nothing.
    await carol.call('setAttribute', { handle, attribute: 3, value: 'relabelled' })
    const changed = await p.call('syncExtract', { keys: [handle], users: [] })
    for (let i = 0; i < 2; i++) {
      expect(await r.call('syncApply', { objects: [changed.objects[0]!.blob], deleteKeys: [], deleteUsers: [] }))
        .toEqual({ outcomes: [{ kind: 'key', handle, ok: true, digest: changed.objects[0]!.digest }] })
    }
    expect((await carolThere.call('getAttribute', { handle, attribute: 3 })).attributes[0]!.value).toBe('relabelled')

    // Deletions, twice, and of what never existed: ok every time.
    for (let i = 0; i < 2; i++) {
      const { outcomes } = await r.call('syncApply', { objects: [], deleteKeys: [handle, 888_888], deleteUsers: ['nobody'] })
      expect(codes(outcomes)).toEqual([true, true, true])
    }
    await carolThere.call('logout', {})
    expect(codes((await r.call('syncApply', { objects: [], deleteKeys: [], deleteUsers: ['carol'] })).outcomes)).toEqual([true])
    const after = await fullDigests(r)
    expect(after.has(`k${handle}`)).toBe(false)
    expect(after.has('ucarol')).toBe(false)
  })

  it('refuses a different key at the handle, a missing owner and another lineage, with their codes', async () => {
    const { primary, replica } = await startSyncPair()
    const p = await syncConnection(primary)
    const r = await syncConnection(replica)
    const pAlice = await loginPlane(primary, 'CU', 'alice', ALICE_PASSWORD)
    const rAlice = await loginPlane(replica, 'CU', 'alice', ALICE_PASSWORD)

    // Both make a key with the next handle of slot 0: the same handle, different keys.
    const theirs = (await rAlice.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label: 'replica' })).handle
    const ours = (await pAlice.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label: 'primary' })).handle
    expect(ours).toBe(theirs)

    const pCo = await loginPlane(primary, 'CO', 'admin', ADMIN_PASSWORD)
    await pCo.call('createUser', { userType: 'CU', userName: 'dave', password: 'davepass' })
    const dave = await loginPlane(primary, 'CU', 'dave', 'davepass')
    const davesKey = (await dave.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 'dave' })).handle

    const other = await runPlanned(await planHsm(await newInstallation(), newPlaneCluster()))
    const otherCo = await loginPlane(other, 'PRECO', 'admin', 'password')
    await otherCo.call('changePassword', { userType: 'PRECO', userName: 'admin', password: ADMIN_PASSWORD })
    const foreign = await (await syncConnection(other)).call('syncExtract', { keys: [], users: ['admin'] })

    await setRole(replica, 'replica', primary.cluster.clusterId, 1)
    const extracted = await p.call('syncExtract', { keys: [ours, davesKey], users: [] })
    const { outcomes } = await r.call('syncApply', { objects: [...extracted.objects.map(o => o.blob), foreign.objects[0]!.blob, new Uint8Array([1, 2, 3])], deleteKeys: [], deleteUsers: [] })
    expect(codes(outcomes)).toEqual(['HANDLE_TAKEN', 'OWNER_MISSING', 'LINEAGE_REFUSED', 'INVALID_OBJECT'])
    expect(outcomes[2]).toMatchObject({ kind: 'user', name: 'admin' })
    expect(outcomes[0]!.message).toContain(`handle ${ours}`)
    expect(outcomes[1]!.message).toContain('dave')
    // The replica's own key is untouched.
    expect((await rAlice.call('getAttribute', { handle: theirs, attribute: 3 })).attributes[0]!.value).toBe('replica')

    // With dave applied first, his key follows.
    const withDave = await p.call('syncExtract', { keys: [davesKey], users: ['dave'] })
    expect(codes((await r.call('syncApply', { objects: withDave.objects.map(o => o.blob), deleteKeys: [], deleteUsers: [] })).outcomes)).toEqual([true, true])
    // A user who still owns keys here is not deleted.
    expect(codes((await r.call('syncApply', { objects: [], deleteKeys: [], deleteUsers: ['dave'] })).outcomes)).toEqual(['USER_OWNS_KEYS'])
  })

  it('refuses sync operations to a session without a valid syncHello', async () => {
    const { primary, replica } = await startSyncPair()
    const plain = await loginPlane(primary, 'CO', 'admin', ADMIN_PASSWORD)
    await expectCode(plain.call('syncChanges', {}), 'SYNC_UNAUTHENTICATED')
    await expectCode(plain.call('syncExtract', { keys: [], users: ['admin'] }), 'SYNC_UNAUTHENTICATED')
    await expectCode(plain.call('syncApply', { objects: [], deleteKeys: [], deleteUsers: [] }), 'SYNC_UNAUTHENTICATED')
    const now = Date.now()
    // Another cluster's anchor, another HSM's id, a stale time: all refused.
    await expectCode(plain.call('syncHello', { requestedAtMs: now, signature: signSyncHello(replica.cluster.anchor.secretKey, primary.hsmId, now) }), 'PERMISSION_DENIED')
    await expectCode(plain.call('syncHello', { requestedAtMs: now, signature: signSyncHello(primary.cluster.anchor.secretKey, replica.hsmId, now) }), 'PERMISSION_DENIED')
    const stale = now - 600_000
    await expectCode(plain.call('syncHello', { requestedAtMs: stale, signature: signSyncHello(primary.cluster.anchor.secretKey, primary.hsmId, stale) }), 'PERMISSION_DENIED')
    await expectCode(plain.call('syncChanges', {}), 'SYNC_UNAUTHENTICATED')
    // A replica's control plane holds the replica's anchor, not the primary's.
    await expectCode(syncConnection(primary, replica.cluster.anchor), 'PERMISSION_DENIED')
    expect(await (await syncConnection(primary)).call('syncChanges', {})).toMatchObject({ full: true })
  })
})
