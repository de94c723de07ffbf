/**
 * Goal: a region cut off by `hsmlab fault partition` fails what crosses to it with a cause, in
 * bounded time, and leaves nothing half-done: a request forwarded to it fails; CopyBackupToRegion
 * to it is refused and records no copy; a copy whose fetch is cut ends DELETED with the reason
 * once its retry window is over, or READY when the link heals within the window — never
 * CREATE_IN_PROGRESS for good.
 *
 * Method: the default two-region lab (startLab) with a copy retry window of 4 lab seconds
 * (`up --copy-retry-window-seconds`); the cloudhsmv2 API through ControlPlaneClient, as the AWS
 * CLI sends it (`--region us-west-2` at us-east-1's endpoint is forwarded across the WAN);
 * faults set with the real `hsmlab fault` bin; the fault proxy's `GET /hsmlab/faults` to see a
 * fetch held by a blackhole.
 */
import { describe, expect, it } from 'vitest'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import type { Backup } from '@hsmlab/control-plane'
import { FaultClient } from '@hsmlab/fault-proxy'
import { startLab, waitFor } from '@hsmlab/testing'
import type { StartedLab } from '@hsmlab/testing'

async function fault (lab: StartedLab, args: string[]): Promise<string> {
  const run = await lab.hsmlab(['fault', ...args])
  expect(run.code, run.stderr).toBe(0)
  return run.stdout
}

async function failure (promise: Promise<unknown>): Promise<Error> {
  try {
    await promise
  } catch (err) {
    return err as Error
  }
  throw new Error('expected the call to fail')
}

describe('a region cut off by the fault proxy', () => {
  it('fails forwarded requests and copies with a cause; a copy ends DELETED after its window, or READY if healed in time', async () => {
    const lab = await startLab({ lean: true, args: ['--copy-retry-window-seconds', '4'] })
    const eastEndpoint = lab.status.regions[0]?.controlPlane?.endpoint as string
    const westEndpoint = lab.status.regions[1]?.controlPlane?.endpoint as string
    const east = new ControlPlaneClient({ endpoint: eastEndpoint, region: 'us-east-1', timeoutMs: 20_000 })
    const westViaEast = east.forRegion('us-west-2')
    // The lab reaches each control plane directly (as the AWS CLI does with its own --endpoint-url).
    const west = new ControlPlaneClient({ endpoint: westEndpoint, region: 'us-west-2' })
    const backupRun = await lab.hsmlab(['backup', 'us-east-1/primary'])
    expect(backupRun.code, backupRun.stderr).toBe(0)
    const backupId = backupRun.stdout.trim()
    expect((await westViaEast.describeBackups()).Backups.length).toBeGreaterThan(0)

    // The whole region: the WAN links both ways, to us-east-1 and to the default lab's eu-west-1
    // (and the client links into it), are cut.
    expect(await fault(lab, ['partition', 'us-west-2'])).toBe('partitioned us-west-2: 6 links\n  us-west-2/dr/hsm-0\n  us-west-2/dr/hsm-1\n  wan/eu-west-1->us-west-2\n  wan/us-east-1->us-west-2\n  wan/us-west-2->eu-west-1\n  wan/us-west-2->us-east-1\n')
    const forwarded = await failure(westViaEast.describeBackups())
    expect(forwarded.message).toMatch(/DescribeBackups \(us-west-2\)/)
    const refused = await failure(east.copyBackupToRegion({ BackupId: backupId, DestinationRegion: 'us-west-2' }))
    expect(refused.message).toMatch(/CloudHsmInternalFailureException: Region us-west-2 cannot be reached to copy backup backup-\w+: .+; try again/)
    // Inside the region all works, and it has no copy of the backup, in progress or otherwise.
    expect(await west.copiesOf(backupId)).toEqual([])
    expect((await fault(lab, ['heal']))).toMatch(/^healed everything/)

    // Only the fetch is cut (us-west-2 fetches the bytes from us-east-1): the copy is recorded,
    // then fails until its window ends, and says why.
    await fault(lab, ['partition', 'wan/us-west-2->us-east-1'])
    await east.copyBackupToRegion({ BackupId: backupId, DestinationRegion: 'us-west-2' })
    const [recorded] = await west.copiesOf(backupId)
    expect(recorded?.BackupState).toBe('CREATE_IN_PROGRESS')
    const deleted = await west.waitForBackup(recorded?.BackupId as string, ['DELETED', 'READY'], { timeoutMs: 30_000, intervalMs: 100 })
    expect(deleted.BackupState).toBe('DELETED')
    expect(deleted.StateMessage).toMatch(/us-east-1 cannot be reached/)
    await fault(lab, ['heal'])

    // The fetch is held by a blackhole; the link heals within the window: the copy is READY.
    await fault(lab, ['blackhole', 'wan/us-west-2->us-east-1'])
    await east.copyBackupToRegion({ BackupId: backupId, DestinationRegion: 'us-west-2' })
    const inProgress = (await west.copiesOf(backupId)).find(b => b.BackupState === 'CREATE_IN_PROGRESS') as Backup
    expect(inProgress).toBeDefined()
    const faults = new FaultClient({ url: lab.status.faults.endpoint as string })
    await waitFor(async () => ((await faults.faults()).proxies['wan/us-west-2->us-east-1']?.connections ?? 0) > 0 ? true : undefined,
      { timeoutMs: 10_000, what: 'the copy\'s fetch held by the blackhole' })
    await fault(lab, ['heal', 'wan/us-west-2->us-east-1'])
    const ready = await west.waitForBackup(inProgress.BackupId, ['DELETED', 'READY'], { timeoutMs: 30_000, intervalMs: 100 })
    expect(ready.BackupState, ready.StateMessage).toBe('READY')
    expect(ready).toMatchObject({ SourceBackup: backupId, SourceRegion: 'us-east-1' })
    // Nothing is left CREATE_IN_PROGRESS.
    expect((await west.copiesOf(backupId)).map(b => b.BackupState).sort()).toEqual(['DELETED', 'READY'])
  })
})
