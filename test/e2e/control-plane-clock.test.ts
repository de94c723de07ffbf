/**
 * The lab clock drives the backup windows.
 *
 * Goal: with a fast lab clock, an ACTIVE cluster gets its daily backups, the retention policy
 * deletes the old ones but never the newest, and a deleted backup goes PENDING_DELETION → DELETED
 * once its 7-day window has passed.
 * Method: one `hsmlab-control-plane` with `--clock-speed 200000` (7 lab days ≈ 3 real seconds,
 * a lab day ≈ 0.43 s) and a real HSM.
 */
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import { tmpDir, waitFor } from '@hsmlab/testing'
import { activeCluster, manufacturerKey, startCp } from './control-plane-helpers.js'

describe('control plane lab clock', () => {
  it('makes daily backups, applies retention, and deletes a backup after its window', async () => {
    const dir = tmpDir('hsmlab-cp-clock-')
    const keyFile = await manufacturerKey(dir)
    const cp = await startCp({ region: 'eu-west-1', dataDir: join(dir, 'cp'), keyFile, args: ['--clock-speed', '200000'] })
    const api = new ControlPlaneClient({ endpoint: cp.url, region: 'eu-west-1' })
    const { clusterId } = await activeCluster(cp.url, 'eu-west-1', dir)
    await api.modifyCluster({ ClusterId: clusterId, BackupRetentionPolicy: { Type: 'DAYS', Value: '7' } })

    const first = await waitFor(async () => (await api.describeBackups({ Filters: { clusterIds: [clusterId], states: ['READY'] }, SortAscending: true })).Backups[0], { what: 'a READY backup' })
    const pending = await api.deleteBackup(first.BackupId)
    expect(pending.BackupState).toBe('PENDING_DELETION')
    expect((pending.DeleteTimestamp ?? 0) - (pending.CreateTimestamp ?? 0)).toBeGreaterThanOrEqual(7 * 86_400)
    const gone = await waitFor(async () => {
      const b = await api.getBackup(first.BackupId)
      return b?.BackupState === 'DELETED' ? b : undefined
    }, { what: 'the deleted backup to be DELETED', timeoutMs: 20_000, intervalMs: 20 })
    expect(gone.StateMessage).toMatch(/deletion window/)

    const purged = await waitFor(async () => {
      const all = (await api.describeBackups({ Filters: { clusterIds: [clusterId] } })).Backups
      return all.find(b => b.BackupState === 'DELETED' && /retention policy \(7 days\)/.test(b.StateMessage ?? '')) !== undefined ? all : undefined
    }, { what: 'a backup purged by the retention policy', timeoutMs: 20_000, intervalMs: 20 })
    // Daily backups keep coming, and the newest is never purged.
    const newest = purged.filter(b => b.BackupState !== 'DELETED')[0]
    expect(newest).toBeDefined()
    expect(purged.length).toBeGreaterThanOrEqual(3)
  })
})
