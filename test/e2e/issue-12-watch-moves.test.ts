/**
 * Goal (issue 12, the hsm-kill-during-key-creation scenario's HANDLE_TAKEN): when the primary's
 * HSM that the synchronisation service watches is killed, the watch moves to another HSM of the
 * primary, which may not have received every key yet (in-cluster replication is still catching
 * up). A key it merely lacks must not be carried to the replica as a deletion: that tombstoned
 * the key on the replica for good, and once the primary's HSMs caught up the key was FAILED with
 * HANDLE_TAKEN forever. After the primary converges, every record is SYNCHRONIZED and the replica
 * holds exactly the primary's keys.
 *
 * Method: a lab of real processes (startLab) with us-east-1/primary (2 HSMs) and its clone
 * us-west-2/dr (1 HSM) under a task of all keys; the primary's in-cluster replication cut with the
 * real `hsmlab fault partition peer/us-east-1/primary`, so that a key made on hsm-0 (the watched
 * one, the first ACTIVE) stays off hsm-1 deterministically; hsm-0 killed by its pid; a key made on
 * hsm-1 shows when the service carries what hsm-1 reports; then heal.
 */
import { describe, expect, it } from 'vitest'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import type { SyncResourceRecord } from '@hsmlab/control-plane'
import type { HsmConnection } from '@hsmlab/client'
import { KeyType } from '@hsmlab/protocol'
import { startLab, waitFor } from '@hsmlab/testing'
import { clusterOf, fault, sessionOn } from './regions-helpers.js'
import { ADMIN, ALICE, SYNC_TOPOLOGY, keysOf } from './issue-12-helpers.js'

const TOPOLOGY = {
  regions: [
    { ...SYNC_TOPOLOGY.regions[0], clusters: [{ ...SYNC_TOPOLOGY.regions[0]!.clusters[0]!, hsms: 2 }] },
    { ...SYNC_TOPOLOGY.regions[1], clusters: [{ ...SYNC_TOPOLOGY.regions[1]!.clusters[0]!, hsms: 1 }] }
  ]
}

describe('a synchronisation task whose watched primary HSM is killed', () => {
  it('carries no deletion of a key the next watched HSM has not received yet, and ends with every record SYNCHRONIZED', async () => {
    const lab = await startLab({ lean: true, topology: TOPOLOGY })
    const primary = clusterOf(lab.status, 'us-east-1', 'primary')
    const dr = clusterOf(lab.status, 'us-west-2', 'dr')
    const api = new ControlPlaneClient({ endpoint: lab.status.regions[0]?.controlPlane?.endpoint as string, region: 'us-east-1', timeoutMs: 20_000 })
    const [h0, h1] = primary.hsms
    if (h0 === undefined || h1 === undefined) throw new Error('the primary needs 2 HSMs')
    const alice0 = await sessionOn(primary, h0.endpoint, ALICE)
    const alice1 = await sessionOn(primary, h1.endpoint, ALICE)
    const admin1 = await sessionOn(primary, h1.endpoint, ADMIN)
    const aes = async (on: HsmConnection, label: string): Promise<number> => (await on.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label })).handle
    const record = async (handle: number): Promise<SyncResourceRecord | undefined> =>
      (await api.allSyncResources({ ClusterId: primary.id, ResourceType: 'KEY' })).find(r => r.ResourceId === String(handle))
    await api.createSyncTask({ ClusterId: primary.id, Replicas: [{ ClusterId: dr.id, Region: 'us-west-2', SyncType: 'KEYS' }], Scope: { Keys: { All: true } } })

    // A key made on hsm-0 while the primary's HSMs cannot replicate: carried from hsm-0, not on hsm-1.
    await fault(lab, ['partition', 'peer/us-east-1/primary'])
    const onlyOnHsm0 = await aes(alice0.connection, 'only-on-hsm-0')
    await waitFor(async () => (await record(onlyOnHsm0))?.Status === 'SYNCHRONIZED', { timeoutMs: 15_000, what: 'the key made on hsm-0 SYNCHRONIZED' })

    // hsm-0 dies; the watch moves to hsm-1. A key made there is carried: the service has compared
    // hsm-1 with the replica by then.
    process.kill(h0.pid as number, 'SIGKILL')
    const onHsm1 = await aes(alice1.connection, 'on-hsm-1')
    await waitFor(async () => (await record(onHsm1))?.Status === 'SYNCHRONIZED', { timeoutMs: 15_000, what: 'the key made on hsm-1 SYNCHRONIZED' })
    const drAdmin = await sessionOn(dr, dr.hsms[0]?.endpoint as string, ADMIN)
    expect((await keysOf(drAdmin.connection, alice1.userId)).handles).toContain(onlyOnHsm0)
    expect(await record(onlyOnHsm0)).toMatchObject({ Status: 'SYNCHRONIZED', FailureCause: null })

    // The primary converges (hsm-0 is back, replication heals): every record SYNCHRONIZED, none
    // HANDLE_TAKEN, and the replica holds exactly the primary's keys.
    await fault(lab, ['heal'])
    await lab.up()
    await waitFor(async () => (await keysOf(admin1.connection, alice1.userId)).handles.includes(onlyOnHsm0), { timeoutMs: 15_000, what: 'hsm-1 to catch up' })
    await waitFor(async () => {
      const all = await api.allSyncResources({ ClusterId: primary.id })
      return all.some(r => r.ResourceId === String(onlyOnHsm0)) && all.every(r => r.Status === 'SYNCHRONIZED')
    }, { timeoutMs: 15_000, what: 'every record SYNCHRONIZED' })
    const want = await keysOf(admin1.connection, alice1.userId)
    expect(want.handles).toEqual(expect.arrayContaining([onlyOnHsm0, onHsm1]))
    await waitFor(async () => {
      const seen = await keysOf(drAdmin.connection, alice1.userId)
      return seen.hash === want.hash && JSON.stringify(seen.handles) === JSON.stringify(want.handles)
    }, { timeoutMs: 10_000, what: 'the replica with exactly the primary\'s keys' })
  })
})
