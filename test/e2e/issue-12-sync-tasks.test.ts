/**
 * Goal (issue 12): a synchronisation task keeps a replica cluster in another region in step with
 * its primary by itself: keys and users in scope created, changed and deleted on the primary
 * reach every HSM of the replica with equal content (findAllKeys hashes, user logins with the new
 * password); keys out of scope do not; every resource has a record that ends SYNCHRONIZED; the
 * replica refuses client changes; the association rules refuse what is in the way, saying what;
 * a disassociation needs a confirmation and is irreversible.
 *
 * Method: a lab of real processes (startLab) with us-east-1/primary (alice) and its clone
 * us-west-2/dr of two HSMs, plus us-west-2/other, a cluster of another lineage; the API through
 * ControlPlaneClient; the HSMs through client-library sessions as alice and as the crypto
 * officer, on each HSM's own endpoint.
 */
import { describe, expect, it } from 'vitest'
import type { HsmConnection } from '@hsmlab/client'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import type { SyncResourceRecord } from '@hsmlab/control-plane'
import { Attribute, KeyType } from '@hsmlab/protocol'
import { startLab, waitFor } from '@hsmlab/testing'
import type { LabStatusCluster } from '@hsmlab/testing'
import { ADMIN, ALICE, SYNC_TOPOLOGY, keysOf } from './issue-12-helpers.js'
import { clusterOf, sessionOn } from './regions-helpers.js'

async function refusal (promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (err) {
    return (err as Error).message
  }
  throw new Error('expected a refusal')
}

/** Sessions as `user` on every HSM of a cluster, each on its own endpoint. */
async function sessionsOn (cluster: LabStatusCluster, user: typeof ALICE | typeof ADMIN): Promise<Array<{ connection: HsmConnection, userId: number }>> {
  return await Promise.all(cluster.hsms.map(async h => await sessionOn(cluster, h.endpoint, user)))
}

describe('a synchronisation task between two regions', () => {
  it('carries keys and users in scope, created, changed and deleted, to every HSM of the replica; the replica is read-only; disassociation is irreversible', async () => {
    const lab = await startLab({
      lean: true,
      topology: {
        regions: [
          SYNC_TOPOLOGY.regions[0],
          { name: 'us-west-2', clusters: [...(SYNC_TOPOLOGY.regions[1]?.clusters ?? []), { name: 'other', hsms: 1, activate: { admin: 'Other1234' } }] }
        ]
      }
    })
    const primary = clusterOf(lab.status, 'us-east-1', 'primary')
    const dr = clusterOf(lab.status, 'us-west-2', 'dr')
    const other = clusterOf(lab.status, 'us-west-2', 'other')
    const api = new ControlPlaneClient({ endpoint: lab.status.regions[0]?.controlPlane?.endpoint as string, region: 'us-east-1', timeoutMs: 20_000 })

    const [alice] = await sessionsOn(primary, ALICE)
    const [admin] = await sessionsOn(primary, ADMIN)
    if (alice === undefined || admin === undefined) throw new Error('no session on the primary')
    const aes = async (label: string): Promise<number> => (await alice.connection.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label })).handle
    const before = await aes('before-the-task')

    // Refused: a replica in the primary's region; more than 3 replicas; a replica holding a key the primary does not have.
    expect(await refusal(api.createSyncTask({ ClusterId: primary.id, Replicas: [{ ClusterId: primary.id, Region: 'us-east-1', SyncType: 'KEYS' }] })))
      .toMatch(new RegExp(`Replica ${primary.id} is in us-east-1, the region of primary ${primary.id}: a replica must be in another region`))
    expect(await refusal(api.createSyncTask({ ClusterId: primary.id, Replicas: ['A', 'B', 'C', 'D'].map(l => ({ ClusterId: `cluster-${l}bcdefghijk`, Region: 'us-west-2', SyncType: 'KEYS' as const })) })))
      .toMatch(/A synchronisation task has at most 3 replicas; 4 were given/)
    const [drAlice] = await sessionsOn(dr, ALICE)
    if (drAlice === undefined) throw new Error('no session on the replica')
    const stray = (await drAlice.connection.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label: 'only-on-dr' })).handle
    expect(await refusal(api.createSyncTask({ ClusterId: primary.id, Replicas: [{ ClusterId: dr.id, Region: 'us-west-2', SyncType: 'KEYS' }] })))
      .toMatch(new RegExp(`Replica ${dr.id} \\(us-west-2\\) holds 1 resource that primary ${primary.id} does not: key ${stray} \\(owner alice\\)`))
    await drAlice.connection.call('deleteKey', { handle: stray })
    const replicaAdmins = await sessionsOn(dr, ADMIN)
    // The deletion reaches the other HSM of dr by its in-cluster replication; the inventory asks both.
    await waitFor(async () => (await Promise.all(replicaAdmins.map(async s => await keysOf(s.connection, alice.userId)))).every(k => !k.handles.includes(stray)),
      { timeoutMs: 10_000, what: 'the stray key gone from every HSM of dr' })
    // Refused: a cluster of another lineage.
    expect(await refusal(api.createSyncTask({ ClusterId: primary.id, Replicas: [{ ClusterId: other.id, Region: 'us-west-2', SyncType: 'KEYS' }] })))
      .toMatch(new RegExp(`CloudHsmInvalidRequestException: Cluster ${other.id} \\(us-west-2\\) is of another lineage \\(.+\\) than primary ${primary.id}`))
    const task = await api.createSyncTask({
      ClusterId: primary.id, Replicas: [{ ClusterId: dr.id, Region: 'us-west-2', SyncType: 'KEYS_AND_USERS' }], Scope: { Keys: { Owners: ['alice'] }, Users: ['alice', 'bob'] }
    })
    expect(task).toMatchObject({ PrimaryClusterId: primary.id, PrimaryRegion: 'us-east-1', Replicas: [{ ClusterId: dr.id, State: 'ASSOCIATED', SyncType: 'KEYS_AND_USERS' }] })
    expect(await api.describeSyncTasks({ ClusterId: primary.id })).toEqual([task])
    // The replica is no primary, and no replica of a second task.
    const west = api.forRegion('us-west-2')
    expect(await refusal(west.createSyncTask({ ClusterId: dr.id, Replicas: [{ ClusterId: primary.id, Region: 'us-east-1', SyncType: 'KEYS' }] })))
      .toMatch(/is replica of primary .*; a replica cannot be the primary of a task/)

    // Changes on the primary: a key of alice, a user in scope, a label changed, a key deleted, bob's password changed.
    const kept = await aes('kept')
    const gone = await aes('gone')
    await admin.connection.call('createUser', { userType: 'CU', userName: 'bob', password: 'Bob12345' })
    await alice.connection.call('setAttribute', { handle: kept, attribute: Attribute.LABEL, value: 'kept-relabelled' })
    await alice.connection.call('deleteKey', { handle: gone })
    await admin.connection.call('changePassword', { userType: 'CU', userName: 'bob', password: 'Bob67890' })

    const records = await waitFor(async () => {
      const all = await api.allSyncResources({ ClusterId: primary.id })
      return all.length > 0 && all.every(r => r.Status === 'SYNCHRONIZED') && !all.some(r => r.ResourceId === String(gone)) ? all : undefined
    }, { timeoutMs: 20_000, what: 'every record SYNCHRONIZED' })
    const byId = new Map<string, SyncResourceRecord>(records.map(r => [`${r.ResourceType} ${r.ResourceId}`, r]))
    expect([...byId.keys()].sort()).toEqual([`KEY ${before}`, `KEY ${kept}`, 'USER alice', 'USER bob'].sort())
    expect(byId.get(`KEY ${kept}`)).toMatchObject({ ReplicaClusterId: dr.id, FailureCause: null })
    expect(byId.get(`KEY ${kept}`)?.LastSuccessAt).toBeGreaterThan(0)

    // Every HSM of the replica holds alice's keys as the primary does (the HSM applied to spread them in its cluster).
    const want = await keysOf(admin.connection, alice.userId)
    expect(want.handles).toEqual([before, kept].sort((a, b) => a - b))
    await waitFor(async () => {
      const seen = await Promise.all(replicaAdmins.map(async s => await keysOf(s.connection, alice.userId)))
      return seen.every(k => k.hash === want.hash && JSON.stringify(k.handles) === JSON.stringify(want.handles))
    }, { timeoutMs: 20_000, what: 'every HSM of the replica with the primary\'s keys' })
    const [onReplica] = await sessionsOn(dr, ALICE)
    if (onReplica === undefined) throw new Error('no session on the replica')
    expect((await onReplica.connection.call('getAttribute', { handle: kept, attribute: Attribute.LABEL })).attributes[0]?.value).toBe('kept-relabelled')
    expect((await replicaAdmins[0]?.connection.call('listUsers', {}))?.users.map(u => u.userName)).toContain('bob')
    // bob came with his new password, on every HSM of the replica.
    await waitFor(async () => await sessionsOn(dr, { type: 'CU', name: 'bob', password: 'Bob67890' }).then(() => true, () => undefined), { timeoutMs: 10_000, what: 'bob\'s new password on the replica' })

    // A user in scope deleted on the primary is deleted on the replica, and leaves no record.
    await admin.connection.call('deleteUser', { userType: 'CU', userName: 'bob' })
    await waitFor(async () => !(await api.allSyncResources({ ClusterId: primary.id })).some(r => r.ResourceId === 'bob'), { timeoutMs: 10_000, what: 'bob\'s record gone' })
    await waitFor(async () => {
      const lists = await Promise.all(replicaAdmins.map(async s => (await s.connection.call('listUsers', {})).users.map(u => u.userName)))
      return lists.every(names => !names.includes('bob'))
    }, { timeoutMs: 10_000, what: 'bob gone from every HSM of the replica' })

    // Read-only: alice cannot create, change or delete on the replica; she can read.
    expect(await refusal(onReplica.connection.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label: 'on-replica' }))).toMatch(/RET_SYNC_REPLICA_READ_ONLY|replica/)
    expect(await refusal(onReplica.connection.call('deleteKey', { handle: kept }))).toMatch(/RET_SYNC_REPLICA_READ_ONLY|replica/)

    // Disassociation: confirmation first; then irreversible.
    expect(await refusal(api.disassociateSyncReplica({ ClusterId: primary.id, ReplicaClusterId: dr.id }))).toMatch(/is irreversible.*Send Confirm: true to proceed/)
    const after = await api.disassociateSyncReplica({ ClusterId: primary.id, ReplicaClusterId: dr.id, Confirm: true })
    expect(after.Replicas[0]).toMatchObject({ ClusterId: dr.id, State: 'DISASSOCIATED' })
    expect(await refusal(api.associateSyncReplica({ ClusterId: primary.id, ReplicaClusterId: dr.id, ReplicaRegion: 'us-west-2', SyncType: 'KEYS' })))
      .toMatch(new RegExp(`Replica ${dr.id} \\(us-west-2\\) was disassociated from primary ${primary.id} at .*; the association cannot be re-established`))
    // The replica keeps its resources, read-only, and no longer follows the primary.
    const late = await aes('after-disassociation')
    expect(await refusal(onReplica.connection.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label: 'on-replica' }))).toMatch(/RET_SYNC_REPLICA_READ_ONLY|replica/)
    expect((await keysOf(replicaAdmins[0]?.connection as HsmConnection, alice.userId)).handles).toEqual([before, kept].sort((a, b) => a - b))
    expect(late).toBeGreaterThan(0)
    expect(await refusal(api.removeSyncResources({ ClusterId: primary.id, Scope: { Keys: { Handles: [kept] } } }))).toMatch(/Removing previously selected resources is not supported/)
  })
})
