/**
 * Goal (issue 12): the internal region-to-region paths of a lab's control planes
 * (`/_hsmlab/sync/{inventory,associate,disassociate,apply}`, the backup-copy paths) take only
 * requests of the lab's own control planes, signed with the lab's peer secret: a plain request
 * from any other local process — which could otherwise disassociate a replica (locking it for
 * good), delete its keys or take a backup's bytes — gets 403 with an error body and changes
 * nothing, and the synchronisation task goes on. The public cloudhsmv2 API still takes unsigned
 * requests (the AWS CLI's way with any credentials). The secret is a 0600 file of the lab
 * directory, given by path: it is on no command line.
 *
 * Method: a lab of real processes (startLab) with us-east-1/primary and its clone us-west-2/dr
 * under a KEYS task of every key; `fetch` plays the intruder against both regions' endpoints
 * (unsigned, and with a made-up signature), with bodies that would disassociate the replica and
 * delete its key; then the task must still be ASSOCIATED, the key still on the replica, and a new
 * key SYNCHRONIZED.
 */
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import type { SyncResourceRecord } from '@hsmlab/control-plane'
import { KeyType } from '@hsmlab/protocol'
import { startLab, waitFor } from '@hsmlab/testing'
import { ALICE, ADMIN, SYNC_TOPOLOGY, keysOf } from './issue-12-helpers.js'
import { clusterOf, sessionOn } from './regions-helpers.js'

describe('the internal paths of a lab\'s control planes', () => {
  it('refuse requests not signed with the lab\'s peer secret (403, nothing changed), and the task goes on', async () => {
    const lab = await startLab({ topology: SYNC_TOPOLOGY })
    const primary = clusterOf(lab.status, 'us-east-1', 'primary')
    const dr = clusterOf(lab.status, 'us-west-2', 'dr')
    const east = lab.status.regions.find(r => r.name === 'us-east-1')?.controlPlane
    const west = lab.status.regions.find(r => r.name === 'us-west-2')?.controlPlane
    if (east == null || west == null) throw new Error('no control planes in the status')
    const api = new ControlPlaneClient({ endpoint: east.endpoint, region: 'us-east-1', timeoutMs: 20_000 })
    const record = async (handle: number): Promise<SyncResourceRecord | undefined> =>
      (await api.allSyncResources({ ClusterId: primary.id })).find(r => r.ResourceId === String(handle))

    // The secret: a file only its owner reads, on no control plane's command line.
    const secretFile = join(lab.dir, 'peer.secret')
    expect(statSync(secretFile).mode & 0o777).toBe(0o600)
    const secret = readFileSync(secretFile, 'utf8').trim()
    expect(secret.length).toBeGreaterThanOrEqual(32)
    for (const cp of [east, west]) {
      const cmdline = readFileSync(`/proc/${cp.pid ?? 0}/cmdline`, 'utf8')
      expect(cmdline).toContain('--peer-secret-file')
      expect(cmdline).not.toContain(secret)
    }

    const alice = await sessionOn(primary, primary.hsms[0]?.endpoint as string, ALICE)
    const aes = async (label: string): Promise<number> => (await alice.connection.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label })).handle
    await api.createSyncTask({ ClusterId: primary.id, Replicas: [{ ClusterId: dr.id, Region: 'us-west-2', SyncType: 'KEYS' }], Scope: { Keys: { All: true } } })
    const first = await aes('first')
    await waitFor(async () => (await record(first))?.Status === 'SYNCHRONIZED', { timeoutMs: 15_000, what: 'the first key SYNCHRONIZED' })
    const backup = await api.createBackup(primary.id)

    const task = { primaryClusterId: primary.id, primaryRegion: 'us-east-1', replicaClusterId: dr.id, syncType: 'KEYS' }
    const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')
    const forged = {
      authorization: `AWS4-HMAC-SHA256 Credential=hsmlab-peer/${amzDate.slice(0, 8)}/us-west-2/cloudhsm/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=${'0'.repeat(64)}`,
      'x-amz-date': amzDate
    }
    const intrusions: Array<{ endpoint: string, method: 'GET' | 'POST', path: string, body?: unknown }> = [
      { endpoint: west.endpoint, method: 'POST', path: '/_hsmlab/sync/disassociate', body: task },
      { endpoint: west.endpoint, method: 'POST', path: '/_hsmlab/sync/associate', body: task },
      { endpoint: west.endpoint, method: 'POST', path: '/_hsmlab/sync/apply', body: { primaryClusterId: primary.id, replicaClusterId: dr.id, objects: [], deleteKeys: [first], deleteUsers: ['alice'] } },
      { endpoint: west.endpoint, method: 'POST', path: '/_hsmlab/sync/inventory', body: task },
      { endpoint: west.endpoint, method: 'POST', path: '/_hsmlab/copies', body: {} },
      { endpoint: west.endpoint, method: 'GET', path: '/_hsmlab/copies/request-1' },
      { endpoint: west.endpoint, method: 'POST', path: '/_hsmlab/copies/request-1/cancel' },
      { endpoint: east.endpoint, method: 'GET', path: `/_hsmlab/backups/${backup.BackupId}?copy=request-1` }
    ]
    for (const { endpoint, method, path, body } of intrusions) {
      for (const headers of [{}, forged]) {
        const response = await fetch(new URL(path, endpoint), {
          method,
          headers: { 'content-type': 'application/json', ...headers },
          ...(body === undefined ? {} : { body: JSON.stringify(body) })
        })
        const what = `${method} ${path} ${Object.keys(headers).length === 0 ? 'unsigned' : 'forged'}`
        expect(response.status, what).toBe(403)
        const answer = await response.json() as { __type?: string, message?: string }
        expect(answer.__type, what).toMatch(/Exception$/)
        expect(answer.message, what).toContain('peer secret')
      }
    }
    // The public API and the health path are as before: unsigned requests are served.
    expect((await api.describeClusters()).Clusters.length).toBeGreaterThan(0)
    expect((await fetch(new URL('/_hsmlab/health', west.endpoint))).status).toBe(200)

    // Nothing changed: still ASSOCIATED, the key still on the replica, a new key carried.
    const [syncTask] = await api.describeSyncTasks({ ClusterId: primary.id })
    expect(syncTask?.Replicas).toEqual([expect.objectContaining({ ClusterId: dr.id, State: 'ASSOCIATED' })])
    const second = await aes('second')
    await waitFor(async () => (await record(second))?.Status === 'SYNCHRONIZED', { timeoutMs: 15_000, what: 'the second key SYNCHRONIZED' })
    for (const hsm of dr.hsms) {
      const drAdmin = await sessionOn(dr, hsm.endpoint, ADMIN)
      expect((await keysOf(drAdmin.connection, alice.userId)).handles).toEqual(expect.arrayContaining([first, second]))
    }
    expect(await record(first)).toMatchObject({ Status: 'SYNCHRONIZED', FailureCause: null })
  })
})
