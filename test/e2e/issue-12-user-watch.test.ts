/**
 * Goal (issue 12, "users are still deleted on the replica when a lagging primary HSM lacks them"):
 * users are not replicated inside a cluster (each HSM has its own user table; CMU sends
 * createUser to every HSM), so an HSM of the primary that was away while a user was made never
 * gets it. When the synchronisation service's watch moves to such an HSM (the watched one was
 * killed), the user it lacks must not be deleted on the replica: only a user deleteUser really
 * deleted on the primary is (its tombstone on the watched HSM).
 *
 * Method: a lab of real processes (startLab) with us-east-1/primary (2 HSMs) and its clone
 * us-west-2/dr (1 HSM) under a KEYS_AND_USERS task; user carol made on hsm-0 only (the watched
 * one, the first ACTIVE: as if hsm-1 had been down), carried; hsm-0 killed by its pid; a user
 * made on hsm-1 shows when the service has compared hsm-1 with the replica; then carol must still
 * be on the replica, SYNCHRONIZED; and a user deleted on hsm-1 is deleted on the replica.
 */
import { describe, expect, it } from 'vitest'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import type { SyncResourceRecord } from '@hsmlab/control-plane'
import type { HsmConnection } from '@hsmlab/client'
import { startLab, waitFor } from '@hsmlab/testing'
import { clusterOf, sessionOn } from './regions-helpers.js'
import { ADMIN, SYNC_TOPOLOGY } from './issue-12-helpers.js'

const TOPOLOGY = {
  regions: [
    { ...SYNC_TOPOLOGY.regions[0], clusters: [{ ...SYNC_TOPOLOGY.regions[0]!.clusters[0]!, hsms: 2 }] },
    { ...SYNC_TOPOLOGY.regions[1], clusters: [{ ...SYNC_TOPOLOGY.regions[1]!.clusters[0]!, hsms: 1 }] }
  ]
}

async function userNames (admin: HsmConnection): Promise<string[]> {
  return (await admin.call('listUsers', {})).users.map(u => u.userName).sort()
}

describe('a synchronisation task whose watch moves to a primary HSM lacking a user', () => {
  it('keeps that user on the replica, and still carries a user deleteUser deleted', async () => {
    const lab = await startLab({ lean: true, topology: TOPOLOGY })
    const primary = clusterOf(lab.status, 'us-east-1', 'primary')
    const dr = clusterOf(lab.status, 'us-west-2', 'dr')
    const api = new ControlPlaneClient({ endpoint: lab.status.regions[0]?.controlPlane?.endpoint as string, region: 'us-east-1', timeoutMs: 20_000 })
    const [h0, h1] = primary.hsms
    if (h0 === undefined || h1 === undefined) throw new Error('the primary needs 2 HSMs')
    const admin0 = await sessionOn(primary, h0.endpoint, ADMIN)
    const admin1 = await sessionOn(primary, h1.endpoint, ADMIN)
    const record = async (name: string): Promise<SyncResourceRecord | undefined> =>
      (await api.allSyncResources({ ClusterId: primary.id, ResourceType: 'USER' })).find(r => r.ResourceId === name)
    await api.createSyncTask({
      ClusterId: primary.id, Replicas: [{ ClusterId: dr.id, Region: 'us-west-2', SyncType: 'KEYS_AND_USERS' }], Scope: { Users: ['alice', 'carol', 'dave'] }
    })

    // carol made on hsm-0 only (hsm-1 "was down"): carried from the watched hsm-0.
    await admin0.connection.call('createUser', { userType: 'CU', userName: 'carol', password: 'Carol1234' })
    expect(await userNames(admin1.connection)).not.toContain('carol')
    await waitFor(async () => (await record('carol'))?.Status === 'SYNCHRONIZED', { timeoutMs: 15_000, what: 'carol SYNCHRONIZED' })
    const drAdmin = await sessionOn(dr, dr.hsms[0]?.endpoint as string, ADMIN)
    expect(await userNames(drAdmin.connection)).toContain('carol')

    // hsm-0 dies; the watch moves to hsm-1, which never got carol. dave, made there, is carried:
    // the service has compared hsm-1 with the replica by then.
    process.kill(h0.pid as number, 'SIGKILL')
    await admin1.connection.call('createUser', { userType: 'CU', userName: 'dave', password: 'Dave12345' })
    await waitFor(async () => (await userNames(drAdmin.connection)).includes('dave') && (await record('dave'))?.Status === 'SYNCHRONIZED',
      { timeoutMs: 15_000, what: 'dave carried from hsm-1' })
    expect(await userNames(drAdmin.connection)).toContain('carol')
    expect(await record('carol')).toMatchObject({ Status: 'SYNCHRONIZED', FailureCause: null })

    // A user deleteUser deletes on the watched HSM is a deletion: carried.
    await admin1.connection.call('deleteUser', { userType: 'CU', userName: 'dave' })
    await waitFor(async () => !(await userNames(drAdmin.connection)).includes('dave') && (await record('dave')) === undefined,
      { timeoutMs: 15_000, what: 'dave deleted on the replica' })
    expect(await userNames(drAdmin.connection)).toContain('carol')
    expect(await record('carol')).toMatchObject({ Status: 'SYNCHRONIZED', FailureCause: null })
  })
})
