/**
 * Synchronising across cloned clusters (reference G.4) with real processes: a cluster A, a clone
 * B restored from A's backup (new cluster id, A's lineage and masking key), and an unrelated
 * cluster C. A key made in A after the backup moves to B as a masked object (syncKey: same handle
 * where free) and works there; C refuses it (RET_MASKED_OBJECT_LINEAGE). A user made in A after
 * the backup moves to B the syncUser way and can log in there.
 */
import { describe, expect, it } from 'vitest'
import { expectCode } from './helpers.js'
import { exportBackup, loginPlane, newInstallation, newPlaneCluster, planHsm, runPlanned, storeBackup } from './backup-helpers.js'

const DATA = new TextEncoder().encode('made in A after the backup')

describe('syncKey / syncUser across a clone made from a backup', () => {
  it('moves keys and users from a cluster to its clone, and not to an unrelated cluster', async () => {
    const installation = await newInstallation()
    const a = await runPlanned(await planHsm(installation, newPlaneCluster(), { slot: 0 }))
    const aCo = await loginPlane(a, 'PRECO', 'admin', 'password')
    await aCo.call('changePassword', { userType: 'PRECO', userName: 'admin', password: 'officer1pw' })
    await aCo.call('createUser', { userType: 'CU', userName: 'alice', password: 'alicepw1' })
    const backupFile = await storeBackup(installation, (await exportBackup(a)).backup)

    const b = await runPlanned(await planHsm(installation, newPlaneCluster(), { slot: 0, backupFile }))
    const c = await runPlanned(await planHsm(installation, newPlaneCluster(), { slot: 0 }))
    const cCo = await loginPlane(c, 'PRECO', 'admin', 'password')
    await cCo.call('changePassword', { userType: 'PRECO', userName: 'admin', password: 'officer1pw' })
    await cCo.call('createUser', { userType: 'CU', userName: 'alice', password: 'alicepw1' })

    // A key made in A after the backup: B does not have it yet.
    const aAlice = await loginPlane(a, 'CU', 'alice', 'alicepw1')
    const pair = await aAlice.call('generateKeyPair', { algorithm: 'EC', curveId: 2, label: 'late' })
    const { signature } = await aAlice.call('sign', { handle: pair.privateHandle, mechanism: 17, data: DATA })
    const bAlice = await loginPlane(b, 'CU', 'alice', 'alicepw1')
    await expectCode(bAlice.call('getKeyInfo', { handle: pair.publicHandle }), 'INVALID_HANDLE')

    // syncKey: extract from A, insert into B keeping the handle (free there).
    const bCo = await loginPlane(b, 'CO', 'admin', 'officer1pw')
    for (const handle of [pair.publicHandle, pair.privateHandle]) {
      const { blob } = await aCo.call('extractMaskedObject', { kind: 'key', handle })
      expect(await bCo.call('insertMaskedObject', { blob, sameHandle: true })).toEqual({ kind: 'key', handle })
      // An unrelated cluster, even with a user of the same name, refuses it.
      await expectCode(cCo.call('insertMaskedObject', { blob, sameHandle: true }), 'MASKED_OBJECT_LINEAGE')
    }
    await bAlice.call('verify', { handle: pair.publicHandle, mechanism: 17, data: DATA, signature })
    const inB = await bAlice.call('sign', { handle: pair.privateHandle, mechanism: 17, data: DATA })
    await aAlice.call('verify', { handle: pair.publicHandle, mechanism: 17, data: DATA, signature: inB.signature })

    // A key made in B with the handle A's next key gets: syncKey then gives A's key another handle.
    const bOwn = (await bAlice.call('generateSymmetricKey', { keyType: 31, sizeBytes: 32, label: 'b' })).handle
    const aNext = (await aAlice.call('generateSymmetricKey', { keyType: 31, sizeBytes: 32, label: 'a' })).handle
    expect(aNext).toBe(bOwn)
    const moved = await bCo.call('insertMaskedObject', { blob: (await aCo.call('extractMaskedObject', { kind: 'key', handle: aNext })).blob, sameHandle: true })
    expect(moved.handle).not.toBe(aNext)

    // syncUser: a user made in A after the backup, moved to B, logs in there with its password.
    const { userId } = await aCo.call('createUser', { userType: 'CU', userName: 'carol', password: 'carolpw1' })
    await expectCode(loginPlane(b, 'CU', 'carol', 'carolpw1'), 'USER_NOT_FOUND')
    const { blob: userBlob } = await aCo.call('extractMaskedObject', { kind: 'user', userId })
    expect(await bCo.call('insertMaskedObject', { blob: userBlob })).toEqual({ kind: 'user', userId })
    await loginPlane(b, 'CU', 'carol', 'carolpw1')
    await expectCode(cCo.call('insertMaskedObject', { blob: userBlob }), 'MASKED_OBJECT_LINEAGE')
  })
})
