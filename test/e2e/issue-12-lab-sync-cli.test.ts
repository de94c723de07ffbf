/**
 * Goal (issue 12, the lab's side): the default lab comes up with a third region, eu-west-1, whose
 * cluster `replica` (1 HSM, a clone of us-east-1/primary) is the replica of a synchronisation task
 * that `hsmlab up` built from the topology (KEYS_AND_USERS, every key, the user alice); and the
 * seed's procedures work through the real `hsmlab sync` command line: view the synchronised
 * resources (`status`, its `--json` contract with exactly its keys, filtered by replica and
 * status), expand the scope (`add-resources`; `remove-resources` refused with the seed's
 * sentence), associate a replica (`add-replica`), and disassociate one (`remove-replica`, only
 * with `--yes`, and never again after). A partition of the replica's region makes a new key FAILED
 * with its cause; the heal makes it SYNCHRONIZED by itself. `hsmlab status` shows the task.
 * A second test makes a task from the command line on a topology without one (`sync create`).
 *
 * Method: the real `hsmlab` bin (startLab) in a temporary directory, keys made with the real KMU
 * bin as alice, `hsmlab fault partition/heal`; every wait is a condition with a deadline.
 */
import { describe, expect, it } from 'vitest'
import { startLab, waitFor } from '@hsmlab/testing'
import type { HsmlabRun, StartedLab } from '@hsmlab/testing'
import { clusterOf, fault, makeKey } from './regions-helpers.js'

const ALICE: [string, string] = ['alice', 'Alice1234']
const SYNC_WAIT_MS = 20_000

interface SyncStatus {
  primary: { region: string, cluster: string | null, clusterId: string }
  replicas: Array<{ region: string, cluster: string | null, clusterId: string, type: string, state: string }>
  scope: { keys: { all: boolean, owners: string[], handles: number[] }, users: string[] }
  resources: Array<{
    resourceId: string
    resourceType: 'KEY' | 'USER'
    replicaClusterId: string
    status: 'SYNCHRONIZING' | 'SYNCHRONIZED' | 'FAILED'
    failureCause: { code: string, message: string } | null
    lastAttemptAt: string | null
    lastSuccessAt: string | null
    attempts: number
  }>
}

interface ClusterWithTasks {
  id: string
  syncTasks: Array<{ id: string, replicas: Array<SyncStatus['replicas'][number] & { counts: Record<string, number> }>, scope: SyncStatus['scope'], counts: Record<string, number> }>
}

async function syncStatus (lab: StartedLab, args: string[] = []): Promise<SyncStatus> {
  const run = await lab.hsmlab(['sync', 'status', 'us-east-1/primary', '--json', ...args])
  expect(run.code, run.stderr).toBe(0)
  return JSON.parse(run.stdout) as SyncStatus
}

async function sync (lab: StartedLab, args: string[]): Promise<HsmlabRun> {
  return await lab.hsmlab(['sync', ...args])
}

/** Waits until the record of `resourceId` on `replicaClusterId` is `status`; resolves with it. */
async function recordIs (lab: StartedLab, resourceId: string, replicaClusterId: string, status: string): Promise<SyncStatus['resources'][number]> {
  return await waitFor(async () => {
    return (await syncStatus(lab)).resources.find(r => r.resourceId === resourceId && r.replicaClusterId === replicaClusterId && r.status === status)
  }, { timeoutMs: SYNC_WAIT_MS, what: `${resourceId} ${status} on ${replicaClusterId}` })
}

describe('issue 12: hsmlab sync on the default lab', () => {
  it('builds the topology\'s task, shows it, and runs the seed\'s procedures through the command line', async () => {
    const lab = await startLab({ lean: true })
    const primary = clusterOf(lab.status, 'us-east-1', 'primary')
    const replica = clusterOf(lab.status, 'eu-west-1', 'replica')
    const dr = clusterOf(lab.status, 'us-west-2', 'dr')
    expect(lab.status.regions.map(r => r.name)).toEqual(['us-east-1', 'us-west-2', 'eu-west-1'])
    expect(replica.hsms).toHaveLength(1)
    expect(replica.state).toBe('ACTIVE')

    // hsmlab status --json: the task under its primary, none under the other clusters.
    const tasks = (lab.status.regions[0]?.clusters[0] as unknown as ClusterWithTasks).syncTasks
    expect(tasks).toHaveLength(1)
    expect(tasks[0]?.scope).toEqual({ keys: { all: true, owners: [], handles: [] }, users: ['alice'] })
    expect(tasks[0]?.replicas.map(r => ({ region: r.region, cluster: r.cluster, clusterId: r.clusterId, type: r.type, state: r.state })))
      .toEqual([{ region: 'eu-west-1', cluster: 'replica', clusterId: replica.id, type: 'KEYS_AND_USERS', state: 'ASSOCIATED' }])
    expect(Object.keys(tasks[0]?.counts ?? {}).sort()).toEqual(['FAILED', 'SYNCHRONIZED', 'SYNCHRONIZING'])
    expect((clusterOf(lab.status, 'us-west-2', 'dr') as unknown as ClusterWithTasks).syncTasks).toEqual([])

    // hsmlab sync status --json: the contract's keys, exactly; alice reaches the replica.
    const alice = await recordIs(lab, 'alice', replica.id, 'SYNCHRONIZED')
    const first = await syncStatus(lab)
    expect(Object.keys(first).sort()).toEqual(['primary', 'replicas', 'resources', 'scope'])
    expect(first.primary).toEqual({ region: 'us-east-1', cluster: 'primary', clusterId: primary.id })
    expect(first.replicas).toEqual([{ region: 'eu-west-1', cluster: 'replica', clusterId: replica.id, type: 'KEYS_AND_USERS', state: 'ASSOCIATED' }])
    expect(first.scope).toEqual({ keys: { all: true, owners: [], handles: [] }, users: ['alice'] })
    expect(Object.keys(alice).sort()).toEqual(['attempts', 'failureCause', 'lastAttemptAt', 'lastSuccessAt', 'replicaClusterId', 'resourceId', 'resourceType', 'status'])
    expect(alice).toMatchObject({ resourceType: 'USER', failureCause: null })
    expect(Number.isNaN(Date.parse(alice.lastSuccessAt ?? ''))).toBe(false)

    // A new key on the primary reaches the replica by itself; its resource id is its handle.
    const key = await makeKey(lab.cwd, primary.cmuConfig, ALICE, 'synced-by-task')
    const record = await recordIs(lab, String(key), replica.id, 'SYNCHRONIZED')
    expect(record).toMatchObject({ resourceType: 'KEY', failureCause: null })
    expect(record.attempts).toBeGreaterThanOrEqual(1)

    // Filters: by status and by replica.
    expect((await syncStatus(lab, ['--status', 'FAILED'])).resources).toEqual([])
    expect((await syncStatus(lab, ['--replica', 'eu-west-1/replica'])).resources.every(r => r.replicaClusterId === replica.id)).toBe(true)
    const human = await sync(lab, ['status', 'us-east-1/primary'])
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout).toContain('eu-west-1/replica')
    expect(human.stdout).toMatch(new RegExp(`\\n${key}\\s+KEY\\s+eu-west-1/replica\\s+SYNCHRONIZED`))

    // A cluster that is not a primary, or that the lab does not have.
    const none = await sync(lab, ['status', 'us-west-2/dr'])
    expect(none.code).toBe(1)
    expect(none.stderr).toContain('[LAB_ERR_NO_SYNC_TASK] us-west-2/dr')
    const unknown = await sync(lab, ['status', 'us-east-1/nope'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain("the lab has no cluster 'us-east-1/nope'")

    // The scope only grows.
    const removal = await sync(lab, ['remove-resources', 'us-east-1/primary', '--users', 'alice'])
    expect(removal.code).toBe(1)
    expect(removal.stderr).toContain('Removing previously selected resources is not supported.')
    const added = await sync(lab, ['add-resources', 'us-east-1/primary', '--users', 'bob', '--json'])
    expect(added.code, added.stderr).toBe(0)
    expect(JSON.parse(added.stdout).scope.users).toEqual(['alice', 'bob'])

    // One task per primary.
    const again = await sync(lab, ['create', 'us-east-1/primary', '--replica', 'us-west-2/dr', '--type', 'KEYS'])
    expect(again.code).toBe(1)
    expect(again.stderr).toContain('[LAB_ERR_SYNC]')
    expect(again.stderr).toContain('already the primary of')

    // Associate dr (KEYS): the key made before reaches it too.
    const associated = await sync(lab, ['add-replica', 'us-east-1/primary', '--replica', 'us-west-2/dr', '--type', 'KEYS', '--json'])
    expect(associated.code, associated.stderr).toBe(0)
    expect(JSON.parse(associated.stdout).replicas.map((r: { cluster: string, type: string, state: string }) => [r.cluster, r.type, r.state]))
      .toEqual([['replica', 'KEYS_AND_USERS', 'ASSOCIATED'], ['dr', 'KEYS', 'ASSOCIATED']])
    await recordIs(lab, String(key), dr.id, 'SYNCHRONIZED')
    // A KEYS replica gets no users.
    expect((await syncStatus(lab, ['--replica', 'us-west-2/dr'])).resources.filter(r => r.resourceType === 'USER')).toEqual([])

    // Disassociation asks for --yes; without it nothing changes.
    const unconfirmed = await sync(lab, ['remove-replica', 'us-east-1/primary', '--replica', 'us-west-2/dr'])
    expect(unconfirmed.code).toBe(2)
    expect(unconfirmed.stderr).toContain('Disassociating a replica is irreversible')
    expect((await syncStatus(lab)).replicas.find(r => r.clusterId === dr.id)?.state).toBe('ASSOCIATED')
    const removed = await sync(lab, ['remove-replica', 'us-east-1/primary', '--replica', 'us-west-2/dr', '--yes', '--json'])
    expect(removed.code, removed.stderr).toBe(0)
    expect(JSON.parse(removed.stdout).replicas.find((r: { clusterId: string }) => r.clusterId === dr.id)?.state).toBe('DISASSOCIATED')
    // ... and is for good: dr keeps running, and cannot be associated again.
    const reassociated = await sync(lab, ['add-replica', 'us-east-1/primary', '--replica', 'us-west-2/dr', '--type', 'KEYS'])
    expect(reassociated.code).toBe(1)
    expect(reassociated.stderr).toMatch(/disassociated/i)
    expect(clusterOf(await lab.statusJson(), 'us-west-2', 'dr').state).toBe('ACTIVE')

    // A partition of the replica's region: a new key is FAILED with its cause, then SYNCHRONIZED after the heal.
    await fault(lab, ['partition', 'eu-west-1'])
    const cut = await makeKey(lab.cwd, primary.cmuConfig, ALICE, 'made-while-cut')
    const failed = await recordIs(lab, String(cut), replica.id, 'FAILED')
    expect(failed.failureCause?.code).toBe('REPLICA_UNREACHABLE')
    expect(failed.failureCause?.message).not.toBe('')
    const failing = await sync(lab, ['status', 'us-east-1/primary', '--status', 'FAILED', '--json'])
    expect(JSON.parse(failing.stdout).resources.map((r: { resourceId: string }) => r.resourceId)).toContain(String(cut))
    const shown = await lab.hsmlab(['status'])
    expect(shown.stdout).toMatch(/-> eu-west-1\/replica\s+KEYS_AND_USERS\s+ASSOCIATED\s+\d+ SYNCHRONIZED, \d+ SYNCHRONIZING, [1-9]\d* FAILED/)
    await fault(lab, ['heal'])
    await recordIs(lab, String(cut), replica.id, 'SYNCHRONIZED')

    // The topology's own replica disassociated: a later `hsmlab up` leaves it so (it does not try
    // to associate it again, which the control plane would refuse), and comes up.
    const gone = await sync(lab, ['remove-replica', 'us-east-1/primary', '--replica', 'eu-west-1/replica', '--yes'])
    expect(gone.code, gone.stderr).toBe(0)
    const again2 = await lab.up()
    const task = (clusterOf(again2, 'us-east-1', 'primary') as unknown as ClusterWithTasks).syncTasks[0]
    expect(task?.replicas.map(r => [r.cluster, r.state])).toEqual([['replica', 'DISASSOCIATED'], ['dr', 'DISASSOCIATED']])
  }, 180_000)
})

describe('issue 12: hsmlab sync create on a topology without a task', () => {
  it('makes a task of a KEYS replica with an owner\'s keys in scope, and refuses a replica of another lineage', async () => {
    const lab = await startLab({
      lean: true,
      topology: {
        regions: [
          { name: 'us-east-1', clusters: [{ name: 'main', hsms: 1, activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'alice', password: 'Alice1234' }] }, { name: 'other', hsms: 1, activate: { admin: 'Admin1234' } }] },
          { name: 'eu-west-1', clusters: [{ name: 'copy', hsms: 1, cloneOf: { region: 'us-east-1', cluster: 'main' } }, { name: 'stranger', hsms: 1, cloneOf: { region: 'us-east-1', cluster: 'other' } }] }
        ]
      }
    })
    const main = clusterOf(lab.status, 'us-east-1', 'main')
    const copy = clusterOf(lab.status, 'eu-west-1', 'copy')
    const noTask = await lab.hsmlab(['sync', 'status', 'us-east-1/main'])
    expect(noTask.code).toBe(1)
    expect(noTask.stderr).toContain('is not the primary of a synchronisation task')

    const stranger = await lab.hsmlab(['sync', 'create', 'us-east-1/main', '--replica', 'eu-west-1/stranger', '--type', 'KEYS'])
    expect(stranger.code).toBe(1)
    expect(stranger.stderr).toContain('[LAB_ERR_SYNC]')
    expect(stranger.stderr).toContain('lineage')

    const created = await lab.hsmlab(['sync', 'create', 'us-east-1/main', '--replica', 'eu-west-1/copy', '--type', 'KEYS', '--keys', 'owner:alice', '--users', 'alice', '--json'])
    expect(created.code, created.stderr).toBe(0)
    expect(JSON.parse(created.stdout)).toEqual({
      primary: { region: 'us-east-1', cluster: 'main', clusterId: main.id },
      replicas: [{ region: 'eu-west-1', cluster: 'copy', clusterId: copy.id, type: 'KEYS', state: 'ASSOCIATED' }],
      scope: { keys: { all: false, owners: ['alice'], handles: [] }, users: ['alice'] }
    })
    const key = await makeKey(lab.cwd, main.cmuConfig, ALICE, 'alice-key')
    const run = async (): Promise<SyncStatus> => JSON.parse((await lab.hsmlab(['sync', 'status', 'us-east-1/main', '--json'])).stdout) as SyncStatus
    await waitFor(async () => (await run()).resources.some(r => r.resourceId === String(key) && r.status === 'SYNCHRONIZED'), { timeoutMs: SYNC_WAIT_MS, what: `key ${key} SYNCHRONIZED on eu-west-1/copy` })
    // KEYS: alice is in scope but not carried to a KEYS replica.
    expect((await run()).resources.filter(r => r.resourceType === 'USER')).toEqual([])
  }, 120_000)
})
