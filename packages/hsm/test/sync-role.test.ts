/**
 * The replica role of issue 12 on real `hsmlab-hsm` processes.
 *
 * Goal: an HSM whose role is 'replica' refuses every client change to keys and users with
 * RET_SYNC_REPLICA_READ_ONLY naming the primary cluster, and still serves reads, logins, session
 * keys and cryptography with existing keys; in-cluster replication still brings it what syncApply
 * put on another HSM of its cluster; the role survives SIGKILL and a restart; 'disassociated' keeps
 * refusing changes and cannot be undone; setSyncRole refuses bad signatures and older versions.
 * Method: the test plays the replica's control plane (signs with the replica's anchor) and clients.
 */
import { describe, expect, it } from 'vitest'
import { KeyType, ReturnCode } from '@hsmlab/protocol'
import type { HsmConnection } from '@hsmlab/client'
import { waitFor } from '@hsmlab/testing'
import { signSyncRole } from '../src/index.js'
import { connectPlane, loginPlane } from './backup-helpers.js'
import { expectCode, readReadyLine, spawnHsm } from './helpers.js'
import { ADMIN_PASSWORD, ALICE_PASSWORD, addSibling, setRole, startSyncPair, syncConnection } from './sync-helpers.js'

const DATA = new TextEncoder().encode('signed on a replica')

/** Every client change kind, each expected to fail with RET_SYNC_REPLICA_READ_ONLY naming `primaryClusterId`. */
async function expectAllChangesRefused (co: HsmConnection, alice: HsmConnection, handle: number, bobId: number, primaryClusterId: string): Promise<void> {
  // Thunks, run one at a time: a promise made early and awaited late counts as unhandled.
  const attempts: Array<[string, () => Promise<unknown>]> = [
    ['genSymKey', async () => await alice.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label: 'new' })],
    ['genKeyPair', async () => await alice.call('generateKeyPair', { algorithm: 'EC', curveId: 2, label: 'new' })],
    ['setAttribute', async () => await alice.call('setAttribute', { handle, attribute: 3, value: 'changed' })],
    ['shareKey', async () => await alice.call('shareKey', { handle, userId: bobId, share: true })],
    ['deleteKey', async () => await alice.call('deleteKey', { handle })],
    ['unwrapKey', async () => {
      const { wrapped } = await alice.call('wrapKey', { handle, wrappingHandle: handle, mechanism: 4 })
      return await alice.call('unwrapKey', { wrapped, wrappingHandle: handle, mechanism: 4 })
    }],
    ['insertMaskedObject', async () => {
      const { blob } = await co.call('extractMaskedObject', { kind: 'key', handle })
      return await co.call('insertMaskedObject', { blob, sameHandle: true })
    }],
    ['createUser', async () => await co.call('createUser', { userType: 'CU', userName: 'mallory', password: 'mallorypw' })],
    ['deleteUser', async () => await co.call('deleteUser', { userType: 'CU', userName: 'bob' })],
    ['changePassword (other)', async () => await co.call('changePassword', { userType: 'CU', userName: 'bob', password: 'changed1' })],
    ['changePassword (own)', async () => await alice.call('changePassword', { userType: 'CU', userName: 'alice', password: 'changed1' })],
    ['registerQuorumPubKey', async () => await co.call('registerQuorumPubKey', { userType: 'CO', userName: 'admin', token: new Uint8Array(8), signature: new Uint8Array(8), publicKeyPem: 'not checked first' })]
  ]
  for (const [what, attempt] of attempts) {
    const err = await attempt().then(() => undefined, (e: unknown) => e)
    expect(err, what).toMatchObject({ status: ReturnCode.SYNC_REPLICA_READ_ONLY.code, code: 'RET_SYNC_REPLICA_READ_ONLY' })
    expect((err as Error).message, what).toContain(primaryClusterId)
  }
}

describe('the replica sync role', () => {
  it('refuses client changes, serves reads and crypto, survives a restart, and is irreversible once disassociated', async () => {
    const pair = await startSyncPair()
    const { primary, replica } = pair
    const primaryId = primary.cluster.clusterId
    const rAlice = await loginPlane(replica, 'CU', 'alice', ALICE_PASSWORD)
    const { handle } = await rAlice.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label: 'before' })
    const pair2 = await rAlice.call('generateKeyPair', { algorithm: 'EC', curveId: 2, label: 'signing' })
    await setRole(replica, 'replica', primaryId, 1)
    expect((await (await connectPlane(replica)).call('getHsmInfo', {})).syncRole).toEqual({ role: 'replica', primaryClusterId: primaryId })

    let co = await loginPlane(replica, 'CO', 'admin', ADMIN_PASSWORD)
    let alice = await loginPlane(replica, 'CU', 'alice', ALICE_PASSWORD)
    const bobId = (await co.call('listUsers', {})).users.find(u => u.userName === 'bob')!.userId
    await expectAllChangesRefused(co, alice, handle, bobId, primaryId)

    // Reads, crypto with existing keys and session keys work.
    expect((await alice.call('getAttribute', { handle, attribute: 3 })).attributes[0]!.value).toBe('before')
    const { signature } = await alice.call('sign', { handle: pair2.privateHandle, mechanism: 17, data: DATA })
    await alice.call('verify', { handle: pair2.publicHandle, mechanism: 17, data: DATA, signature })
    const session = await alice.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 'tmp', session: true })
    await alice.call('deleteKey', { handle: session.handle })
    await alice.call('wrapKey', { handle, wrappingHandle: handle, mechanism: 4 })
    expect((await co.call('listUsers', {})).users.length).toBe(4)

    // SIGKILL and restart: still a replica.
    await replica.proc.kill()
    const restarted = spawnHsm({ dataDir: replica.dataDir, keyFile: replica.keyFile })
    const ready = await readReadyLine(restarted)
    const again = { ...replica, url: `ws://${ready.host}:${ready.port}` }
    expect((await (await connectPlane(again)).call('getHsmInfo', {})).syncRole).toEqual({ role: 'replica', primaryClusterId: primaryId })
    co = await loginPlane(again, 'CO', 'admin', ADMIN_PASSWORD)
    alice = await loginPlane(again, 'CU', 'alice', ALICE_PASSWORD)
    await expectAllChangesRefused(co, alice, handle, bobId, primaryId)

    // Versions only grow; a bad signature is refused.
    const conn = await connectPlane(again)
    await expectCode(conn.call('setSyncRole', { role: 'none', version: 0, signature: signSyncRole(again.cluster.anchor.secretKey, again.hsmId, 'none', undefined, 0) }), 'INVALID_INPUT')
    await expectCode(conn.call('setSyncRole', { role: 'none', version: 5, signature: signSyncRole(primary.cluster.anchor.secretKey, again.hsmId, 'none', undefined, 5) }), 'PERMISSION_DENIED')
    await expectCode(conn.call('setSyncRole', { role: 'none', version: 5, signature: signSyncRole(again.cluster.anchor.secretKey, again.hsmId, 'replica', primaryId, 5) }), 'PERMISSION_DENIED')

    // Disassociated: still read-only, and for good.
    await setRole(again, 'disassociated', primaryId, 2)
    expect((await conn.call('getHsmInfo', {})).syncRole).toEqual({ role: 'disassociated', primaryClusterId: primaryId })
    await expectAllChangesRefused(co, alice, handle, bobId, primaryId)
    await expectCode(setRole(again, 'none', undefined, 3), 'POLICY_VIOLATION')
    await expectCode(setRole(again, 'replica', primaryId, 4), 'POLICY_VIOLATION')
    // syncApply only for a replica.
    const sync = await syncConnection(again)
    expect((await sync.call('syncApply', { objects: [], deleteKeys: [handle], deleteUsers: [] })).outcomes).toMatchObject([{ ok: false, code: 'NOT_A_REPLICA' }])
  })

  it('lets in-cluster replication carry what syncApply put on another HSM of the replica cluster', async () => {
    const pair = await startSyncPair()
    const { primary, replica } = pair
    const sibling = await addSibling(pair.installation, replica, pair.backupFile, 1)
    for (const hsm of [replica, sibling]) await setRole(hsm, 'replica', primary.cluster.clusterId, 1)
    const pAlice = await loginPlane(primary, 'CU', 'alice', ALICE_PASSWORD)
    const { handle } = await pAlice.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label: 'synced' })
    const { objects } = await (await syncConnection(primary)).call('syncExtract', { keys: [handle], users: [] })
    expect((await (await syncConnection(replica)).call('syncApply', { objects: [objects[0]!.blob], deleteKeys: [], deleteUsers: [] })).outcomes[0]!.ok).toBe(true)
    const onSibling = await loginPlane(sibling, 'CU', 'alice', ALICE_PASSWORD)
    await waitFor(async () => (await onSibling.call('getAttribute', { handle, attribute: 3 })).attributes[0]!.value === 'synced', { what: 'the key on the other replica HSM' })
    // A changed key and a new user reach it too (peerSyncApply), then their deletion.
    const pCo = await loginPlane(primary, 'CO', 'admin', ADMIN_PASSWORD)
    await pCo.call('createUser', { userType: 'CU', userName: 'frank', password: 'frankpw1' })
    await pAlice.call('setAttribute', { handle, attribute: 3, value: 'changed' })
    const changed = await (await syncConnection(primary)).call('syncExtract', { keys: [handle], users: ['frank'] })
    const r = await syncConnection(replica)
    expect((await r.call('syncApply', { objects: changed.objects.map(o => o.blob), deleteKeys: [], deleteUsers: [] })).outcomes.every(o => o.ok)).toBe(true)
    await waitFor(async () => (await onSibling.call('getAttribute', { handle, attribute: 3 })).attributes[0]!.value === 'changed', { what: 'the changed key on the other replica HSM' })
    await waitFor(async () => await loginPlane(sibling, 'CU', 'frank', 'frankpw1').then(() => true, () => false), { what: 'frank on the other replica HSM' })
    await r.call('syncApply', { objects: [], deleteKeys: [handle], deleteUsers: ['frank'] })
    await waitFor(async () => await onSibling.call('getKeyInfo', { handle }).then(() => false, () => true), { what: 'the delete on the other replica HSM' })
    const siblingCo = await loginPlane(sibling, 'CO', 'admin', ADMIN_PASSWORD)
    await waitFor(async () => !(await siblingCo.call('listUsers', {})).users.some(u => u.userName === 'frank'), { what: 'frank deleted on the other replica HSM' })
  })
})
