/**
 * Issue 15, item 4: GetResourcePolicy, PutResourcePolicy, DeleteResourcePolicy (backup sharing),
 * typed as a user types them: the real AWS CLI (`aws cloudhsmv2 put-resource-policy ...`) against a
 * real control plane.
 *
 * Goal: a READY backup takes a policy (the shape of the guide's "Working with shared backups"),
 * GetResourcePolicy answers it, it survives a SIGKILL of the control plane, DeleteResourcePolicy
 * removes it and answers what it removed; each error the model documents for the three operations
 * is answered with its shape (a malformed policy, a policy naming another resource, a cluster's
 * ARN, another account's, another region's, an unknown backup, a policy over 20000 characters,
 * no ARN); `describe-backups --shared` stays empty (one account: nobody shares with it).
 * Method: one `hsmlab-control-plane` process, a cluster taken to ACTIVE by the runbook helper
 * (its activation backup is the shared one), the `aws` CLI for every call.
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { isRunning, tmpDir, waitFor } from '@hsmlab/testing'
import { activeCluster, manufacturerKey, startCp } from './control-plane-helpers.js'

const run = promisify(execFile)
const ENV = { ...process.env, AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y', AWS_PAGER: '', AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null', AWS_MAX_ATTEMPTS: '1' }

/** `aws cloudhsmv2 ARGS --endpoint-url URL`: its JSON output, or the error line it printed. */
async function aws (url: string, ...args: string[]): Promise<{ ok: true, json: Record<string, unknown> } | { ok: false, error: string }> {
  try {
    const { stdout } = await run('aws', ['cloudhsmv2', ...args, '--endpoint-url', url, '--region', 'us-east-1', '--output', 'json'], { env: ENV })
    return { ok: true, json: stdout.trim() === '' ? {} : JSON.parse(stdout) as Record<string, unknown> }
  } catch (err) {
    return { ok: false, error: String((err as { stderr?: string }).stderr ?? err).trim() }
  }
}

async function ok (url: string, ...args: string[]): Promise<Record<string, unknown>> {
  const r = await aws(url, ...args)
  if (!r.ok) throw new Error(`aws cloudhsmv2 ${args.join(' ')}: ${r.error}`)
  return r.json
}

async function fails (url: string, type: string, operation: string, message: RegExp, ...args: string[]): Promise<void> {
  const r = await aws(url, ...args)
  expect(r.ok, `aws cloudhsmv2 ${args.join(' ')} should fail`).toBe(false)
  if (!r.ok) {
    expect(r.error).toContain(`An error occurred (${type}) when calling the ${operation} operation: `)
    expect(r.error).toMatch(message)
  }
}

describe('issue 15: resource policies (backup sharing)', () => {
  it('put, get, survive a SIGKILL, delete; every documented error with its shape', async () => {
    const dir = tmpDir('hsmlab-i15-policy-')
    const keyFile = await manufacturerKey(dir)
    const cp = await startCp({ region: 'us-east-1', dataDir: join(dir, 'cp'), keyFile })
    const { clusterId } = await activeCluster(cp.url, 'us-east-1', dir)
    const backup = await waitFor(async () => {
      const backups = (await ok(cp.url, 'describe-backups', '--filters', `clusterIds=${clusterId}`)).Backups as Array<{ BackupId: string, BackupState: string, BackupArn: string }>
      return backups.find(b => b.BackupState === 'READY')
    }, { what: 'the activation backup READY' })
    const arn = `arn:aws:cloudhsm:us-east-1:111122223333:backup/${backup.BackupId}`
    expect(backup.BackupArn).toBe(arn)
    const policyOf = (resource: unknown, actions: unknown = ['cloudhsm:CreateCluster', 'cloudhsm:DescribeBackups']): string => JSON.stringify({
      Version: '2012-10-17',
      Statement: [{ Sid: 'backup-policy', Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::444455556666:root' }, Action: actions, Resource: resource }]
    })
    const policy = policyOf(arn)

    // No policy yet: an empty answer.
    expect(await ok(cp.url, 'get-resource-policy', '--resource-arn', arn)).toEqual({})
    expect(await ok(cp.url, 'put-resource-policy', '--resource-arn', arn, '--policy', policy)).toEqual({ ResourceArn: arn, Policy: policy })
    expect(await ok(cp.url, 'get-resource-policy', '--resource-arn', arn)).toEqual({ Policy: policy })

    // The errors the model lists, each with its shape.
    const invalid = 'CloudHsmInvalidRequestException'
    await fails(cp.url, invalid, 'PutResourcePolicy', /The policy is malformed: it is not JSON/, 'put-resource-policy', '--resource-arn', arn, '--policy', '{"Version": "2012-10-17", "Statement": [')
    await fails(cp.url, invalid, 'PutResourcePolicy', /is not the backup the policy is attached to/, 'put-resource-policy', '--resource-arn', arn,
      '--policy', policyOf('arn:aws:cloudhsm:us-east-1:111122223333:backup/backup-zzzzzzzzzzz'))
    await fails(cp.url, invalid, 'PutResourcePolicy', /Action must be cloudhsm:CreateCluster or cloudhsm:DescribeBackups/, 'put-resource-policy', '--resource-arn', arn,
      '--policy', policyOf(arn, 'cloudhsm:DeleteBackup'))
    await fails(cp.url, invalid, 'PutResourcePolicy', /Member must have length less than or equal to 20000/, 'put-resource-policy', '--resource-arn', arn,
      '--policy', JSON.stringify({ Id: 'x'.repeat(20_000), Statement: [] }))
    await fails(cp.url, invalid, 'GetResourcePolicy', /is a cluster: only backups support resource policies/, 'get-resource-policy',
      '--resource-arn', `arn:aws:cloudhsm:us-east-1:111122223333:cluster/${clusterId}`)
    await fails(cp.url, invalid, 'GetResourcePolicy', /is in region us-west-2/, 'get-resource-policy', '--resource-arn', arn.replace('us-east-1', 'us-west-2'))
    await fails(cp.url, invalid, 'GetResourcePolicy', /Member must satisfy regular expression pattern/, 'get-resource-policy', '--resource-arn', backup.BackupId)
    await fails(cp.url, invalid, 'DeleteResourcePolicy', /Value null at 'resourceArn'/, 'delete-resource-policy')
    await fails(cp.url, 'CloudHsmAccessDeniedException', 'PutResourcePolicy', /belongs to account 444455556666/, 'put-resource-policy',
      '--resource-arn', arn.replace('111122223333', '444455556666'), '--policy', policy)
    await fails(cp.url, 'CloudHsmResourceNotFoundException', 'DeleteResourcePolicy', /Backup backup-zzzzzzzzzzz not found/, 'delete-resource-policy',
      '--resource-arn', 'arn:aws:cloudhsm:us-east-1:111122223333:backup/backup-zzzzzzzzzzz')
    // A refused request changed nothing.
    expect(await ok(cp.url, 'get-resource-policy', '--resource-arn', arn)).toEqual({ Policy: policy })
    // One account: a shared backup is shared by it, never with it.
    expect(await ok(cp.url, 'describe-backups', '--shared')).toEqual({ Backups: [] })

    // Durable: the policy is in the state before the answer.
    cp.proc.child.kill('SIGKILL')
    await waitFor(() => !isRunning(cp.pid), { what: 'the control plane gone' })
    const again = await startCp({ region: 'us-east-1', dataDir: join(dir, 'cp'), keyFile })
    expect(await ok(again.url, 'get-resource-policy', '--resource-arn', arn)).toEqual({ Policy: policy })

    expect(await ok(again.url, 'delete-resource-policy', '--resource-arn', arn)).toEqual({ ResourceArn: arn, Policy: policy })
    expect(await ok(again.url, 'get-resource-policy', '--resource-arn', arn)).toEqual({})
    expect(await ok(again.url, 'delete-resource-policy', '--resource-arn', arn)).toEqual({ ResourceArn: arn })

    // Only a READY backup can be shared.
    await ok(again.url, 'delete-backup', '--backup-id', backup.BackupId)
    await fails(again.url, invalid, 'PutResourcePolicy', /in state PENDING_DELETION: only a READY backup can be shared/, 'put-resource-policy', '--resource-arn', arn, '--policy', policy)
  })
})
