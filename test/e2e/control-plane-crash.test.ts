/**
 * A control plane killed with SIGKILL comes back with every acknowledged change, and nothing
 * stays half-done.
 *
 * Goal: a copy in progress when the destination's control plane is SIGKILLed ends READY after
 * the restart (or DELETED, with the reason, once its retry window is over: never stuck
 * CREATE_IN_PROGRESS); a SIGKILLed source control plane re-adopts its running HSM processes; an
 * HSM process that dies is restarted (DEGRADED meanwhile) on its port.
 * Method: real `hsmlab-control-plane` processes with a regions file each; the destination's
 * regions file first points the source region at a closed port, so the copy keeps retrying until
 * the file is fixed.
 */
import { createServer } from 'node:net'
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import { isRunning, tmpDir, waitFor } from '@hsmlab/testing'
import { activeCluster, manufacturerKey, startCp } from './control-plane-helpers.js'

async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', resolve) })
  const { port } = server.address() as { port: number }
  await new Promise<void>(resolve => { server.close(() => { resolve() }) })
  return port
}

describe('control plane crashes', () => {
  it('a copy survives a SIGKILL of its destination (READY), or ends DELETED after its window; HSMs are re-adopted and restarted', async () => {
    const dir = tmpDir('hsmlab-cp-crash-')
    const keyFile = await manufacturerKey(dir)
    const dead = `http://127.0.0.1:${await closedPort()}`
    const eastRegions = join(dir, 'east-regions.json')
    const westRegions = join(dir, 'west-regions.json')
    const east = await startCp({ region: 'us-east-1', dataDir: join(dir, 'east'), keyFile, regionsFile: eastRegions })
    const west = await startCp({ region: 'us-west-2', dataDir: join(dir, 'west'), keyFile, regionsFile: westRegions })
    const shortWindow = await startCp({ region: 'us-west-1', dataDir: join(dir, 'west1'), keyFile, regionsFile: westRegions, args: ['--copy-retry-window-seconds', '2'] })
    writeFileSync(eastRegions, JSON.stringify({ 'us-west-2': west.url, 'us-west-1': shortWindow.url }))
    writeFileSync(westRegions, JSON.stringify({ 'us-east-1': dead }))
    const eastApi = new ControlPlaneClient({ endpoint: east.url, region: 'us-east-1' })
    const { clusterId, hsmId } = await activeCluster(east.url, 'us-east-1', dir)
    const backup = (await waitFor(async () => (await eastApi.describeBackups({ Filters: { clusterIds: [clusterId], states: ['READY'] } })).Backups[0], { what: 'a READY backup' }))

    // The destination records the copy before the source answers; it cannot fetch the bytes yet.
    await eastApi.copyBackupToRegion({ BackupId: backup.BackupId, DestinationRegion: 'us-west-2' })
    const direct = new ControlPlaneClient({ endpoint: west.url, region: 'us-west-2' })
    const [pending] = await direct.copiesOf(backup.BackupId)
    expect(pending?.BackupState).toBe('CREATE_IN_PROGRESS')
    expect(pending?.ClusterId).toBeUndefined()
    west.proc.child.kill('SIGKILL')
    await west.proc.exited
    writeFileSync(westRegions, JSON.stringify({ 'us-east-1': east.url }))
    const westAgain = await startCp({ region: 'us-west-2', dataDir: join(dir, 'west'), keyFile, regionsFile: westRegions })
    const resumed = await new ControlPlaneClient({ endpoint: westAgain.url, region: 'us-west-2' }).waitForBackup(pending?.BackupId ?? '', 'READY', { timeoutMs: 20_000 })
    expect(resumed).toMatchObject({ SourceBackup: backup.BackupId, SourceRegion: 'us-east-1', SourceCluster: clusterId })

    // A copy whose source cannot be reached within its window ends DELETED with the reason; after a SIGKILL too.
    writeFileSync(westRegions, JSON.stringify({ 'us-east-1': dead }))
    await eastApi.copyBackupToRegion({ BackupId: backup.BackupId, DestinationRegion: 'us-west-1' })
    const west1 = new ControlPlaneClient({ endpoint: shortWindow.url, region: 'us-west-1' })
    const [doomed] = await west1.copiesOf(backup.BackupId)
    expect(doomed?.BackupState).toBe('CREATE_IN_PROGRESS')
    shortWindow.proc.child.kill('SIGKILL')
    await shortWindow.proc.exited
    const west1Again = await startCp({ region: 'us-west-1', dataDir: join(dir, 'west1'), keyFile, regionsFile: westRegions, args: ['--copy-retry-window-seconds', '2'] })
    const failed = await new ControlPlaneClient({ endpoint: west1Again.url, region: 'us-west-1' }).waitForBackup(doomed?.BackupId ?? '', 'DELETED', { timeoutMs: 20_000 })
    expect(failed.StateMessage).toMatch(/did not complete within its retry window of 2 seconds: us-east-1 cannot be reached/)

    // The source control plane, SIGKILLed, adopts its running HSM again.
    const before = (await eastApi.getCluster(clusterId))?.Hsms?.[0]
    expect(before?.HsmlabPid).toBeTypeOf('number')
    east.proc.child.kill('SIGKILL')
    await east.proc.exited
    expect(isRunning(before?.HsmlabPid ?? 0)).toBe(true)
    const eastAgain = await startCp({ region: 'us-east-1', dataDir: join(dir, 'east'), keyFile, regionsFile: eastRegions })
    const api = new ControlPlaneClient({ endpoint: eastAgain.url, region: 'us-east-1' })
    const adopted = (await api.getCluster(clusterId))?.Hsms?.[0]
    expect(adopted).toMatchObject({ HsmId: hsmId, State: 'ACTIVE', HsmlabPid: before?.HsmlabPid, HsmlabEndpoint: before?.HsmlabEndpoint })

    // An HSM process that dies is restarted, on the same address, with a new pid.
    process.kill(before?.HsmlabPid ?? 0, 'SIGKILL')
    const restarted = await waitFor(async () => {
      const hsm = (await api.getCluster(clusterId))?.Hsms?.[0]
      return hsm?.State === 'ACTIVE' && hsm.HsmlabPid !== before?.HsmlabPid ? hsm : undefined
    }, { what: 'the HSM to be restarted', timeoutMs: 30_000 })
    expect(restarted.HsmlabEndpoint).toBe(before?.HsmlabEndpoint)
    expect(isRunning(restarted.HsmlabPid ?? 0)).toBe(true)
    eastAgain.proc.child.kill('SIGTERM')
    expect(await eastAgain.proc.exited).toBe(0)
    expect(isRunning(restarted.HsmlabPid ?? 0)).toBe(false)
  })
})
