/**
 * The cloudhsmv2 control plane end to end, driven with the AWS SDK as a user of the real service
 * would (plus ControlPlaneClient for hsmlab's extension members).
 *
 * Goal: a cluster is created, gets a real HSM process, is initialized with a CSR signed by
 * openssl and activated by the PRECO's password change; its activation backup is READY; the
 * backup is copied to a second region's control plane, appears there (found by sourceBackupIds)
 * and becomes READY; a cluster created from the copy becomes ACTIVE with its first HSM and that
 * HSM has the source's users, keys and lineage; a second HSM is restored from a fresh backup and
 * the first HSM's keys reach it; an HSM is deleted (its process really ends); a backup is deleted,
 * restored; and the wrong-state paths answer the exact error shapes.
 * Method: two `hsmlab-control-plane` processes (us-east-1, us-west-2) with one regions file;
 * every HSM is a real process; checks over @hsmlab/client with each cluster's trust anchor.
 */
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import {
  CopyBackupToRegionCommand, CreateClusterCommand, CreateHsmCommand, DeleteBackupCommand, DeleteClusterCommand, DeleteHsmCommand,
  DescribeBackupsCommand, InitializeClusterCommand, ModifyBackupAttributesCommand, RestoreBackupCommand
} from '@aws-sdk/client-cloudhsm-v2'
import { describe, expect, it } from 'vitest'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import { KeyType } from '@hsmlab/protocol'
import { isRunning, tmpDir, waitFor } from '@hsmlab/testing'
import { activeCluster, connectHsm, manufacturerKey, sdk, startCp, SUBNETS } from './control-plane-helpers.js'

async function expectAws (promise: Promise<unknown>, type: string, message?: RegExp): Promise<void> {
  const err = await promise.then(() => undefined, (e: unknown) => e as { name?: string, message?: string })
  expect(err?.name, `expected ${type}`).toBe(type)
  if (message !== undefined) expect(err?.message).toMatch(message)
}

describe('control plane lifecycle', () => {
  it('create → HSM → initialize → activate → backup → copy to another region → clone → add and delete HSMs → delete/restore backup', async () => {
    const dir = tmpDir('hsmlab-cp-e2e-')
    const keyFile = await manufacturerKey(dir)
    const regionsFile = join(dir, 'regions.json')
    const east = await startCp({ region: 'us-east-1', dataDir: join(dir, 'east'), keyFile, regionsFile })
    const west = await startCp({ region: 'us-west-2', dataDir: join(dir, 'west'), keyFile, regionsFile })
    writeFileSync(regionsFile, JSON.stringify({ 'us-east-1': east.url, 'us-west-2': west.url }))
    const eastSdk = sdk(east.url, 'us-east-1')
    // One endpoint serves both regions: the SDK's region picks the control plane.
    const westSdk = sdk(east.url, 'us-west-2')
    const eastApi = new ControlPlaneClient({ endpoint: east.url, region: 'us-east-1' })
    const westApi = new ControlPlaneClient({ endpoint: west.url, region: 'us-west-2' })

    const { clusterId, hsmId, password } = await activeCluster(east.url, 'us-east-1', dir)
    const activation = await waitFor(async () => {
      const backups = (await eastSdk.send(new DescribeBackupsCommand({ Filters: { clusterIds: [clusterId] } }))).Backups ?? []
      return backups.find(b => b.BackupState === 'READY')
    }, { what: 'the activation backup' })
    // BackupArn, HsmType, Mode are newer than this SDK (3.332): read them raw.
    expect(await eastApi.getBackup(activation.BackupId ?? '')).toMatchObject({
      BackupArn: `arn:aws:cloudhsm:us-east-1:111122223333:backup/${activation.BackupId ?? ''}`, HsmType: 'hsm2m.medium', Mode: 'FIPS'
    })
    await expectAws(eastSdk.send(new InitializeClusterCommand({ ClusterId: clusterId, SignedCert: 'x', TrustAnchor: 'y' })), 'CloudHsmInvalidRequestException', /in state ACTIVE/)
    await expectAws(eastSdk.send(new DeleteClusterCommand({ ClusterId: clusterId })), 'CloudHsmInvalidRequestException', /contains HSMs/)

    // Users and keys on the source cluster, then a backup that holds them.
    const source = await connectHsm(eastApi, clusterId, hsmId)
    await source.call('login', { userType: 'CO', userName: 'admin', password })
    await source.call('createUser', { userType: 'CU', userName: 'alice', password: 'Alice1234' })
    await source.call('logout', {})
    await source.call('login', { userType: 'CU', userName: 'alice', password: 'Alice1234' })
    const { handle } = await source.call('generateSymmetricKey', { label: 'dr-key', keyType: KeyType.AES, sizeBytes: 32 })
    const sourceInfo = await source.call('getHsmInfo', {})
    const sourceUsers = (await source.call('listUsers', {})).users
    const requested = await eastApi.createBackup(clusterId)
    expect(requested.BackupState).toBe('CREATE_IN_PROGRESS')
    const backup = await eastApi.waitForBackup(requested.BackupId, 'READY')
    expect(backup.HsmlabLineage).toBe(sourceInfo.lineage)

    // Copy: the raw answer is exactly the four members of DestinationBackup.
    const copied = await eastApi.copyBackupToRegion({ BackupId: backup.BackupId, DestinationRegion: 'us-west-2' })
    expect(copied).toEqual({ DestinationBackup: { CreateTimestamp: backup.CreateTimestamp, SourceBackup: backup.BackupId, SourceCluster: clusterId, SourceRegion: 'us-east-1' } })
    const viaSdk = await eastSdk.send(new CopyBackupToRegionCommand({ BackupId: backup.BackupId, DestinationRegion: 'us-west-2', TagList: [{ Key: 'purpose', Value: 'dr' }] }))
    expect(viaSdk.DestinationBackup?.SourceBackup).toBe(backup.BackupId)
    const copies = (await westSdk.send(new DescribeBackupsCommand({ Filters: { sourceBackupIds: [backup.BackupId] } }))).Backups ?? []
    expect(copies).toHaveLength(2)
    for (const copy of copies) {
      expect(['CREATE_IN_PROGRESS', 'READY']).toContain(copy.BackupState)
      expect(copy).toMatchObject({ SourceBackup: backup.BackupId, SourceCluster: clusterId, SourceRegion: 'us-east-1' })
      expect(copy.ClusterId).toBeUndefined()
      expect(copy.CopyTimestamp).toBeInstanceOf(Date)
      expect((await westApi.getBackup(copy.BackupId ?? ''))?.BackupArn).toMatch(/^arn:aws:cloudhsm:us-west-2:/)
    }
    const tagged = copies.find(c => c.TagList?.[0]?.Key === 'purpose')
    expect(tagged).toBeDefined()
    const copy = await westApi.waitForBackup(copies.find(c => c !== tagged)?.BackupId ?? '', 'READY')
    expect(copy.HsmlabLineage).toBe(sourceInfo.lineage)
    await expectAws(eastSdk.send(new CopyBackupToRegionCommand({ BackupId: backup.BackupId, DestinationRegion: 'us-east-1' })), 'CloudHsmInvalidRequestException', /own region/)
    await expectAws(eastSdk.send(new CopyBackupToRegionCommand({ BackupId: backup.BackupId, DestinationRegion: 'us-gov-west-1' })), 'CloudHsmInvalidRequestException', /restricted regions and standard regions/)
    await expectAws(eastSdk.send(new CopyBackupToRegionCommand({ BackupId: backup.BackupId, DestinationRegion: 'eu-west-1' })), 'CloudHsmInvalidRequestException', /not available/)

    // The clone: created from the copy, ACTIVE once its first HSM restored it, no initialization.
    const clone = (await westSdk.send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: SUBNETS, SourceBackupId: copy.BackupId }))).Cluster
    expect(clone?.SourceBackupId).toBe(copy.BackupId)
    const cloneId = clone?.ClusterId ?? ''
    await westApi.waitForCluster(cloneId, 'UNINITIALIZED')
    await expectAws(westSdk.send(new InitializeClusterCommand({ ClusterId: cloneId, SignedCert: 'x', TrustAnchor: 'y' })), 'CloudHsmInvalidRequestException', /created from backup/)
    const cloneHsm = (await westSdk.send(new CreateHsmCommand({ ClusterId: cloneId, AvailabilityZone: 'us-west-2b' }))).Hsm
    await expectAws(westSdk.send(new CreateHsmCommand({ ClusterId: cloneId, AvailabilityZone: 'us-west-2a' })), 'CloudHsmInvalidRequestException', /already has an HSM/)
    const activeClone = await westApi.waitForCluster(cloneId, 'ACTIVE', { timeoutMs: 30_000 })
    expect(activeClone.HsmlabLineage).toBe(sourceInfo.lineage)
    const cloned = await connectHsm(westApi, cloneId, cloneHsm?.HsmId ?? '')
    expect(cloned.clusterId).toBe(cloneId)
    expect((await cloned.call('getHsmInfo', {})).lineage).toBe(sourceInfo.lineage)
    expect((await cloned.call('listUsers', {})).users).toEqual(sourceUsers)
    await cloned.call('login', { userType: 'CU', userName: 'alice', password: 'Alice1234' })
    expect((await cloned.call('getKeyInfo', { handle })).handle).toBe(handle)
    expect((await cloned.call('findKey', { label: 'dr-key' })).handles).toEqual([handle])

    // A second HSM in the source cluster: restored from a fresh backup of the first, with its users and keys.
    const second = (await eastSdk.send(new CreateHsmCommand({ ClusterId: clusterId, AvailabilityZone: 'us-east-1b' }))).Hsm
    const secondId = second?.HsmId ?? ''
    const secondReady = await eastApi.waitForHsm(clusterId, secondId, 'ACTIVE', { timeoutMs: 30_000 })
    expect(secondReady.EniIp).not.toBe((await eastApi.getCluster(clusterId))?.Hsms?.[0]?.EniIp)
    const onSecond = await connectHsm(eastApi, clusterId, secondId)
    expect((await onSecond.call('listUsers', {})).users.map(u => u.userName)).toEqual(sourceUsers.map(u => u.userName))
    await onSecond.call('login', { userType: 'CU', userName: 'alice', password: 'Alice1234' })
    expect((await onSecond.call('getKeyInfo', { handle })).handle).toBe(handle)
    // A key made on the first HSM now reaches the second: the peer lists were pushed.
    const later = await source.call('generateSymmetricKey', { label: 'after-peers', keyType: KeyType.AES, sizeBytes: 16 })
    await waitFor(async () => (await onSecond.call('findKey', { label: 'after-peers' })).handles.includes(later.handle), { what: 'the new key on the second HSM', timeoutMs: 20_000 })
    const addedBackups = (await eastSdk.send(new DescribeBackupsCommand({ Filters: { clusterIds: [clusterId] }, SortAscending: true }))).Backups ?? []
    expect(addedBackups.length).toBeGreaterThanOrEqual(3)
    expect((addedBackups[0]?.CreateTimestamp?.getTime() ?? 0) <= (addedBackups.at(-1)?.CreateTimestamp?.getTime() ?? 0)).toBe(true)

    // Delete the second HSM by its ENI IP: DELETE_IN_PROGRESS → gone, its process ends.
    const pid = secondReady.HsmlabPid ?? 0
    expect((await eastSdk.send(new DeleteHsmCommand({ ClusterId: clusterId, EniIp: secondReady.EniIp }))).HsmId).toBe(secondId)
    await expectAws(eastSdk.send(new DeleteHsmCommand({ ClusterId: clusterId, HsmId: secondId })), 'CloudHsmInvalidRequestException', /DELETE_IN_PROGRESS/)
    await eastApi.waitForHsm(clusterId, secondId, 'DELETED', { timeoutMs: 30_000 })
    expect(isRunning(pid)).toBe(false)

    // Delete a backup, restore it; wrong states answer CloudHsmInvalidRequestException.
    const deleted = (await eastSdk.send(new DeleteBackupCommand({ BackupId: backup.BackupId }))).Backup
    expect(deleted?.BackupState).toBe('PENDING_DELETION')
    const windowMs = (deleted?.DeleteTimestamp?.getTime() ?? 0) - Date.now()
    expect(windowMs).toBeGreaterThan(6.9 * 86_400_000)
    expect(windowMs).toBeLessThan(7.1 * 86_400_000)
    await expectAws(eastSdk.send(new DeleteBackupCommand({ BackupId: backup.BackupId })), 'CloudHsmInvalidRequestException', /PENDING_DELETION/)
    await expectAws(eastSdk.send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: SUBNETS, SourceBackupId: backup.BackupId })), 'CloudHsmInvalidRequestException', /PENDING_DELETION/)
    const restored = (await eastSdk.send(new RestoreBackupCommand({ BackupId: backup.BackupId }))).Backup
    expect(restored?.BackupState).toBe('READY')
    expect(restored?.DeleteTimestamp).toBeUndefined()
    await expectAws(eastSdk.send(new RestoreBackupCommand({ BackupId: backup.BackupId })), 'CloudHsmInvalidRequestException', /in state READY/)
    expect((await eastSdk.send(new ModifyBackupAttributesCommand({ BackupId: backup.BackupId, NeverExpires: true }))).Backup?.NeverExpires).toBe(true)
    expect((await eastSdk.send(new DescribeBackupsCommand({ Filters: { neverExpires: ['true'] } }))).Backups?.map(b => b.BackupId)).toEqual([backup.BackupId])

    // SIGTERM: both control planes stop their HSMs and exit 0.
    const hsmPid = (await eastApi.getCluster(clusterId))?.Hsms?.[0]?.HsmlabPid ?? 0
    east.proc.child.kill('SIGTERM')
    west.proc.child.kill('SIGTERM')
    expect(await east.proc.exited).toBe(0)
    expect(await west.proc.exited).toBe(0)
    expect(isRunning(hsmPid)).toBe(false)
  })
})
