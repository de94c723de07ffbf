/**
 * Goal: a backup whose stored bytes were changed never restores, and the API says why (issue
 * "Regions"): copying it to another region ends DELETED at once with the reason (not after the
 * copy's retry window); a cluster created from it, in its own region or from a copy tampered with
 * in the destination region, stays UNINITIALIZED with a StateMessage naming the backup and the
 * failed authentication, its HSM is DEGRADED for good (no process, no half-restored data
 * directory) with the reason too; and the control planes keep serving every other request: the
 * source cluster's next backup is READY and copies, the failed HSM and cluster can be deleted.
 *
 * Method: two real `hsmlab-control-plane` processes (us-east-1, us-west-2) with one regions file;
 * a cluster taken to ACTIVE the AWS way (control-plane-helpers' activeCluster); a backup made with
 * HsmlabCreateBackup; one byte of its file (`<data dir>/backups/<id>.backup`, docs/control-plane.md)
 * flipped; then CopyBackupToRegion, CreateCluster and CreateHsm through ControlPlaneClient.
 */
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import { tmpDir } from '@hsmlab/testing'
import { activeCluster, manufacturerKey, startCp, SUBNETS } from './control-plane-helpers.js'

/** Flips the last byte of a backup file (inside its sealed content). */
function flipLastByte (file: string): void {
  const bytes = readFileSync(file)
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0x01
  writeFileSync(file, bytes)
}

/** What a control plane left of an HSM in its data directory (`hsms/<id>/`), data directory entries included. */
function leftOf (dataDir: string, hsmId: string): { files: string[], data: string[] } {
  const dir = join(dataDir, 'hsms', hsmId)
  const data = join(dir, 'data')
  return { files: existsSync(dir) ? readdirSync(dir).sort() : [], data: existsSync(data) ? readdirSync(data) : [] }
}

/**
 * Creates a cluster from `backupId` and its first HSM; resolves with their ids once the HSM is
 * ACTIVE or DEGRADED (a restore that fails ends the HSM DEGRADED for good).
 */
async function restore (api: ControlPlaneClient, region: string, backupId: string): Promise<{ clusterId: string, hsmId: string }> {
  const clusterId = (await api.createCluster({ HsmType: 'hsm2m.medium', SubnetIds: SUBNETS, SourceBackupId: backupId })).ClusterId ?? ''
  await api.waitForCluster(clusterId, 'UNINITIALIZED')
  const hsm = await api.createHsm({ ClusterId: clusterId, AvailabilityZone: `${region}a` })
  await api.waitForHsm(clusterId, hsm.HsmId, ['ACTIVE', 'DEGRADED'], { timeoutMs: 30_000 })
  return { clusterId, hsmId: hsm.HsmId }
}

/** Checks that a cluster made from a tampered backup says why it cannot be restored, and its HSM too. */
async function expectRefused (api: ControlPlaneClient, dataDir: string, made: { clusterId: string, hsmId: string }, backupId: string): Promise<void> {
  const cluster = await api.getCluster(made.clusterId)
  const hsm = cluster?.Hsms?.find(h => h.HsmId === made.hsmId)
  const why = `cannot restore backup ${backupId}: the backup failed authentication: its header or content was changed after it was made`
  expect(hsm?.State).toBe('DEGRADED')
  expect(hsm?.StateMessage).toBe(`The HSM could not be created: ${made.hsmId} exited with code 2 before it was ready: [HSM_ERR_BACKUP_TAMPERED] ${why}`)
  expect(hsm?.HsmlabPid).toBeUndefined()
  expect(cluster?.State).toBe('UNINITIALIZED')
  expect(cluster?.StateMessage).toBe(`Backup ${backupId} could not be restored: ${made.hsmId} exited with code 2 before it was ready: [HSM_ERR_BACKUP_TAMPERED] ${why}`)
  // The model's StateMessage is at most 300 characters (reference F.4).
  expect(cluster?.StateMessage?.length).toBeLessThanOrEqual(300)
  expect(hsm?.StateMessage?.length).toBeLessThanOrEqual(300)
  // Nothing half-restored: no data directory (nor a staging one beside it), only the files the control plane gave the HSM and its logs.
  expect(leftOf(dataDir, made.hsmId)).toEqual({ files: ['hsm.log', 'provision.json', 'restore.backup', 'stdout.log'], data: [] })
}

describe('a tampered backup', () => {
  it('is not copied, not restored, and the API says why; the control planes keep serving', async () => {
    const dir = tmpDir('hsmlab-tampered-')
    const keyFile = await manufacturerKey(dir)
    const regionsFile = join(dir, 'regions.json')
    const east = await startCp({ region: 'us-east-1', dataDir: join(dir, 'east'), keyFile, regionsFile })
    const west = await startCp({ region: 'us-west-2', dataDir: join(dir, 'west'), keyFile, regionsFile })
    writeFileSync(regionsFile, JSON.stringify({ 'us-east-1': east.url, 'us-west-2': west.url }))
    const eastApi = new ControlPlaneClient({ endpoint: east.url, region: 'us-east-1' })
    const westApi = new ControlPlaneClient({ endpoint: west.url, region: 'us-west-2' })
    const { clusterId } = await activeCluster(east.url, 'us-east-1', dir)

    // A backup, copied to us-west-2 while its bytes are intact; then one byte of each flipped.
    const backup = await eastApi.waitForBackup((await eastApi.createBackup(clusterId)).BackupId, 'READY')
    await eastApi.copyBackupToRegion({ BackupId: backup.BackupId, DestinationRegion: 'us-west-2' })
    const [goodCopy] = await westApi.copiesOf(backup.BackupId)
    const copy = await westApi.waitForBackup(goodCopy?.BackupId ?? '', 'READY', { timeoutMs: 20_000 })
    const sourceFile = join(east.dataDir, 'backups', `${backup.BackupId}.backup`)
    const copyFile = join(west.dataDir, 'backups', `${copy.BackupId}.backup`)
    flipLastByte(sourceFile)
    flipLastByte(copyFile)

    // Copying the tampered backup ends DELETED at once (its retry window is 60 s), saying why.
    const copiedAt = Date.now()
    await eastApi.copyBackupToRegion({ BackupId: backup.BackupId, DestinationRegion: 'us-west-2' })
    const second = (await westApi.copiesOf(backup.BackupId)).find(b => b.BackupId !== copy.BackupId)
    const failed = await westApi.waitForBackup(second?.BackupId ?? '', ['READY', 'DELETED'], { timeoutMs: 20_000 })
    expect(failed.BackupState).toBe('DELETED')
    expect(failed.StateMessage).toBe(`The source backup ${backup.BackupId} in us-east-1 cannot be copied: Backup ${backup.BackupId} cannot be copied: ` +
      `its stored bytes (backups/${backup.BackupId}.backup) no longer match the SHA-256 recorded when it was made; they were changed or damaged`)
    expect(Date.now() - copiedAt).toBeLessThan(20_000)

    // A cluster created from it in its own region, and one from the tampered copy in us-west-2: neither restores.
    const here = await restore(eastApi, 'us-east-1', backup.BackupId)
    await expectRefused(eastApi, east.dataDir, here, backup.BackupId)
    const there = await restore(westApi, 'us-west-2', copy.BackupId)
    await expectRefused(westApi, west.dataDir, there, copy.BackupId)

    // Never ACTIVE: the control plane does not retry a restore that cannot succeed.
    const later = await eastApi.waitForBackup((await eastApi.createBackup(clusterId)).BackupId, 'READY')
    await expectRefused(eastApi, east.dataDir, here, backup.BackupId)

    // Meanwhile everything else works: the source cluster is ACTIVE, its new backup copies.
    expect((await eastApi.getCluster(clusterId))?.State).toBe('ACTIVE')
    await eastApi.copyBackupToRegion({ BackupId: later.BackupId, DestinationRegion: 'us-west-2' })
    const [laterCopy] = await westApi.copiesOf(later.BackupId)
    await westApi.waitForBackup(laterCopy?.BackupId ?? '', 'READY', { timeoutMs: 20_000 })
    expect((await eastApi.describeClusters()).Clusters.map(c => [c.ClusterId, c.State])).toEqual([[clusterId, 'ACTIVE'], [here.clusterId, 'UNINITIALIZED']])

    // The failed HSMs and clusters are deleted the usual way.
    for (const [api, made] of [[eastApi, here], [westApi, there]] as const) {
      await api.deleteHsm({ ClusterId: made.clusterId, HsmId: made.hsmId })
      await api.waitForHsm(made.clusterId, made.hsmId, 'DELETED', { timeoutMs: 20_000 })
      await api.deleteCluster(made.clusterId)
      await api.waitForCluster(made.clusterId, 'DELETED', { timeoutMs: 20_000 })
    }
  })
})
