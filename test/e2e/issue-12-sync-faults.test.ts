/**
 * Goal (issue 12): synchronisation crosses the lab's WAN links through the fault proxy and
 * survives their faults and crashes: while the replica's region is partitioned, a new key's
 * record is FAILED with REPLICA_UNREACHABLE within a few seconds (not left SYNCHRONIZING); once
 * healed every record is SYNCHRONIZED by itself, and the replica holds exactly the primary's keys
 * (nothing lost, nothing twice). A SIGKILL of the primary's control plane in the middle of a sync
 * followed by `hsmlab up` picks up where it stopped, from the durable task; so does a SIGKILL of
 * the replica's control plane (the records are FAILED while it is down), and of an HSM of each.
 *
 * Method: a lab of real processes (startLab) with us-east-1/primary and its clone us-west-2/dr;
 * the task made through ControlPlaneClient; keys made by alice through the client library;
 * faults with the real `hsmlab fault` bin; the control plane killed by its pid.
 */
import { describe, expect, it } from 'vitest'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import type { SyncResourceRecord } from '@hsmlab/control-plane'
import { KeyType } from '@hsmlab/protocol'
import { startLab, waitFor } from '@hsmlab/testing'
import { clusterOf, fault, sessionOn } from './regions-helpers.js'
import { ADMIN, ALICE, SYNC_TOPOLOGY, keysOf } from './issue-12-helpers.js'

describe('a synchronisation task under faults', () => {
  it('fails records with a cause while the replica region is cut off, heals by itself, and goes on after a SIGKILL of either control plane or of their HSMs', async () => {
    const lab = await startLab({ lean: true, topology: SYNC_TOPOLOGY })
    const primary = clusterOf(lab.status, 'us-east-1', 'primary')
    const dr = clusterOf(lab.status, 'us-west-2', 'dr')
    const endpoint = lab.status.regions[0]?.controlPlane?.endpoint as string
    const api = new ControlPlaneClient({ endpoint, region: 'us-east-1', timeoutMs: 20_000 })
    const primaryHsm = primary.hsms[0]
    if (primaryHsm === undefined) throw new Error('no HSM in the primary')
    const alice = await sessionOn(primary, primaryHsm.endpoint, ALICE)
    const admin = await sessionOn(primary, primaryHsm.endpoint, ADMIN)
    const aes = async (label: string): Promise<number> => (await alice.connection.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label })).handle
    await api.createSyncTask({ ClusterId: primary.id, Replicas: [{ ClusterId: dr.id, Region: 'us-west-2', SyncType: 'KEYS' }], Scope: { Keys: { All: true } } })
    const first = await aes('first')
    const record = async (handle: number): Promise<SyncResourceRecord | undefined> =>
      (await api.allSyncResources({ ClusterId: primary.id, ResourceType: 'KEY' })).find(r => r.ResourceId === String(handle))
    await waitFor(async () => (await record(first))?.Status === 'SYNCHRONIZED', { timeoutMs: 10_000, what: 'the first key SYNCHRONIZED' })

    // The replica's region is cut off: a new key is FAILED with the cause within a few seconds.
    await fault(lab, ['partition', 'us-west-2'])
    const cutAt = Date.now()
    const during = await aes('during-the-partition')
    const failed = await waitFor(async () => { const r = await record(during); return r?.Status === 'FAILED' ? r : undefined }, { timeoutMs: 10_000, what: 'the key FAILED' })
    expect(Date.now() - cutAt).toBeLessThan(6_000)
    expect(failed.FailureCause?.Code).toBe('REPLICA_UNREACHABLE')
    expect(failed.FailureCause?.Message).toMatch(/us-west-2 of replica .* cannot be reached/)
    expect((await record(first))?.Status).toBe('SYNCHRONIZED')
    // Attempts go on while it is cut.
    await waitFor(async () => ((await record(during))?.Attempts ?? 0) >= 2, { timeoutMs: 10_000, what: 'a second attempt' })
    const more = [await aes('during-2'), await aes('during-3')]
    await fault(lab, ['heal'])
    await waitFor(async () => {
      const all = await api.allSyncResources({ ClusterId: primary.id })
      return all.length === 4 && all.every(r => r.Status === 'SYNCHRONIZED')
    }, { timeoutMs: 15_000, what: 'every record SYNCHRONIZED after the heal' })
    const drAdmins = await Promise.all(dr.hsms.map(async h => await sessionOn(dr, h.endpoint, ADMIN)))
    const want = await keysOf(admin.connection, alice.userId)
    expect(want.handles).toEqual([first, during, ...more].sort((a, b) => a - b))
    await waitFor(async () => {
      const seen = await Promise.all(drAdmins.map(async s => await keysOf(s.connection, alice.userId)))
      return seen.every(k => k.hash === want.hash && JSON.stringify(k.handles) === JSON.stringify(want.handles))
    }, { timeoutMs: 10_000, what: 'every HSM of the replica with exactly the primary\'s keys' })

    // The primary's control plane is killed while keys are being carried; `hsmlab up` brings it back and it goes on.
    const burst = Promise.all(Array.from({ length: 20 }, async (_, i) => await aes(`burst-${i}`)))
    await waitFor(async () => (await api.allSyncResources({ ClusterId: primary.id })).length > 4, { timeoutMs: 10_000, what: 'the burst under way' })
    process.kill(lab.status.regions[0]?.controlPlane?.pid as number, 'SIGKILL')
    const made = await burst
    const again = await lab.up()
    const restarted = new ControlPlaneClient({ endpoint: again.regions[0]?.controlPlane?.endpoint as string, region: 'us-east-1', timeoutMs: 20_000 })
    expect((await restarted.describeSyncTasks({ ClusterId: primary.id }))[0]?.Replicas[0]).toMatchObject({ ClusterId: dr.id, State: 'ASSOCIATED' })
    await waitFor(async () => {
      const all = await restarted.allSyncResources({ ClusterId: primary.id })
      return all.length === 4 + made.length && all.every(r => r.Status === 'SYNCHRONIZED')
    }, { timeoutMs: 20_000, what: 'every record SYNCHRONIZED after the restart' })
    const final = await keysOf(admin.connection, alice.userId)
    expect(final.handles).toHaveLength(4 + made.length)
    await waitFor(async () => {
      const seen = await Promise.all(drAdmins.map(async s => await keysOf(s.connection, alice.userId)))
      return seen.every(k => k.hash === final.hash && JSON.stringify(k.handles) === JSON.stringify(final.handles))
    }, { timeoutMs: 10_000, what: 'every HSM of the replica with exactly the primary\'s keys after the restart' })

    // The replica's control plane is killed while keys are being carried: they are FAILED meanwhile, and SYNCHRONIZED once it is back.
    const westPid = again.regions.find(r => r.name === 'us-west-2')?.controlPlane?.pid as number
    const second = Promise.all(Array.from({ length: 10 }, async (_, i) => await aes(`second-burst-${i}`)))
    process.kill(westPid, 'SIGKILL')
    const made2 = await second
    await waitFor(async () => (await restarted.allSyncResources({ ClusterId: primary.id, Status: 'FAILED' })).length > 0, { timeoutMs: 10_000, what: 'FAILED records while the replica\'s control plane is down' })
    await lab.up()
    const total = 4 + made.length + made2.length
    await waitFor(async () => {
      const all = await restarted.allSyncResources({ ClusterId: primary.id })
      return all.length === total && all.every(r => r.Status === 'SYNCHRONIZED')
    }, { timeoutMs: 20_000, what: 'every record SYNCHRONIZED after the replica\'s control plane is back' })
    const last = await keysOf(admin.connection, alice.userId)
    expect(last.handles).toHaveLength(total)
    await waitFor(async () => {
      const seen = await Promise.all(drAdmins.map(async s => await keysOf(s.connection, alice.userId)))
      return seen.every(k => k.hash === last.hash && JSON.stringify(k.handles) === JSON.stringify(last.handles))
    }, { timeoutMs: 10_000, what: 'every HSM of the replica with exactly the primary\'s keys after its control plane\'s restart' })

    // The HSMs: the replica's first HSM (the one applying) and the primary's are killed; their control planes restart them, and the task goes on.
    const now = await lab.statusJson()
    process.kill(clusterOf(now, 'us-west-2', 'dr').hsms[0]?.pid as number, 'SIGKILL')
    process.kill(clusterOf(now, 'us-east-1', 'primary').hsms[0]?.pid as number, 'SIGKILL')
    const back = await waitFor(async () => await sessionOn(primary, primaryHsm.endpoint, ALICE).catch(() => undefined), { timeoutMs: 20_000, what: 'the primary\'s HSM back' })
    const afterKill = (await back.connection.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label: 'after-the-hsm-kills' })).handle
    await waitFor(async () => {
      const all = await restarted.allSyncResources({ ClusterId: primary.id })
      return all.length === total + 1 && all.every(r => r.Status === 'SYNCHRONIZED') && all.some(r => r.ResourceId === String(afterKill))
    }, { timeoutMs: 30_000, what: 'every record SYNCHRONIZED after the HSMs were killed' })
    const adminBack = await sessionOn(primary, primaryHsm.endpoint, ADMIN)
    const end = await keysOf(adminBack.connection, alice.userId)
    expect(end.handles).toHaveLength(total + 1)
    await waitFor(async () => {
      const sessions = await Promise.all(dr.hsms.map(async h => await sessionOn(dr, h.endpoint, ADMIN))).catch(() => undefined)
      if (sessions === undefined) return false
      const seen = await Promise.all(sessions.map(async s => await keysOf(s.connection, alice.userId)))
      return seen.every(k => k.hash === end.hash && JSON.stringify(k.handles) === JSON.stringify(end.handles))
    }, { timeoutMs: 20_000, what: 'every HSM of the replica with exactly the primary\'s keys after the HSMs were killed' })
  })
})
