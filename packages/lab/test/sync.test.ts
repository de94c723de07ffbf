/**
 * Synchronisation tasks on the lab's side, without processes (issue 12): the `sync` field of a
 * topology and its refusals, the `hsmlab sync` command line (parsing, refusals and exit codes),
 * and the mapping of the control plane's answers to `hsmlab sync status --json`, whose exact keys
 * are a contract for scripts (docs/sync.md).
 */
import { describe, expect, it } from 'vitest'
import { tmpDir } from '@hsmlab/testing'
import { LAB_ERR_TOPOLOGY, main, parseSyncCommand, parseTopology, syncStatusJsonOf } from '../src/index.js'
import type { ApiSyncResourceRecord, ApiSyncTask } from '../src/index.js'

const primary = (sync?: unknown): Record<string, unknown> => ({
  name: 'primary', hsms: 2, activate: { admin: 'Admin1234' }, ...(sync === undefined ? {} : { sync })
})
const clone = (name: string, of = { region: 'us-east-1', cluster: 'primary' }): Record<string, unknown> => ({ name, hsms: 1, cloneOf: of })
const topo = (sync: unknown, more: { east?: unknown[], west?: unknown[], eu?: unknown[] } = {}): unknown => ({
  regions: [
    { name: 'us-east-1', clusters: [primary(sync), ...more.east ?? []] },
    { name: 'us-west-2', clusters: more.west ?? [clone('dr')] },
    { name: 'eu-west-1', clusters: more.eu ?? [clone('replica')] }
  ]
})
const replica = (region = 'eu-west-1', cluster = 'replica', type: unknown = 'KEYS'): Record<string, unknown> => ({ region, cluster, type })

function problems (json: unknown): string {
  try {
    parseTopology(json, 'topo.json')
  } catch (err) {
    expect((err as { code?: string }).code).toBe(LAB_ERR_TOPOLOGY)
    return (err as Error).message
  }
  throw new Error('the topology was accepted')
}

describe('a topology\'s sync', () => {
  it('accepts replicas of the primary\'s lineage in other regions, and keys and users in every spelling', () => {
    const t = parseTopology(topo({ replicas: [replica(), replica('us-west-2', 'dr', 'KEYS_AND_USERS')], keys: [7, 'owner:alice', '12'], users: ['alice', 'bob'] }))
    expect(t.regions[0]?.clusters[0]?.sync).toEqual({
      replicas: [{ region: 'eu-west-1', cluster: 'replica', type: 'KEYS' }, { region: 'us-west-2', cluster: 'dr', type: 'KEYS_AND_USERS' }],
      keys: { all: false, owners: ['alice'], handles: [7, 12] },
      users: ['alice', 'bob']
    })
    expect(parseTopology(topo({ replicas: [replica()], keys: 'owner:bob' })).regions[0]?.clusters[0]?.sync?.keys).toEqual({ all: false, owners: ['bob'], handles: [] })
    // A clone of a clone is of the same lineage.
    expect(() => parseTopology(topo({ replicas: [replica()] }, { eu: [clone('replica', { region: 'us-west-2', cluster: 'dr' })] }))).not.toThrow()
  })

  it('refuses each broken rule, naming the place and what is in the way', () => {
    expect(problems(topo({ replicas: [] }))).toContain('regions[0].clusters[0].sync.replicas: must list at least 1')
    expect(problems(topo({}))).toContain('regions[0].clusters[0].sync.replicas: is missing')
    expect(problems(topo({ replicas: [replica()], extra: 1 }))).toContain('regions[0].clusters[0].sync: unknown field "extra"')
    expect(problems(topo({ replicas: [replica('eu-west-1', 'replica', 'ALL')] }))).toContain('sync.replicas[0].type: must be KEYS or KEYS_AND_USERS, not "ALL"')
    expect(problems(topo({ replicas: [{ region: 'eu-west-1', cluster: 'replica' }] }))).toContain('sync.replicas[0].type: is missing (KEYS or KEYS_AND_USERS)')
    expect(problems(topo({ replicas: [replica(), replica()] }))).toContain('sync.replicas[1]: eu-west-1/replica is listed twice')
    const four = [replica(), replica('us-west-2', 'dr'), replica('us-west-2', 'b'), replica('eu-west-1', 'c')]
    expect(problems(topo({ replicas: four }, { west: [clone('dr'), clone('b')], eu: [clone('replica'), clone('c')] }))).toContain('lists 4 replicas; a synchronisation task has at most 3')
    expect(problems(topo({ replicas: [replica('eu-west-1', 'nope')] }))).toContain('sync.replicas[0]: names eu-west-1/nope, which this topology does not define')
    expect(problems(topo({ replicas: [replica('us-east-1', 'copy')] }, { east: [clone('copy')] }))).toContain('sync.replicas[0].region: us-east-1/copy is in the primary\'s region us-east-1; a replica is in another region')
    const other = { name: 'other', hsms: 1, activate: { admin: 'Admin1234' } }
    expect(problems(topo({ replicas: [replica()] }, { eu: [clone('replica', { region: 'us-east-1', cluster: 'other' })], east: [other] })))
      .toContain('sync.replicas[0]: eu-west-1/replica is not of us-east-1/primary\'s lineage')
    expect(problems(topo({ replicas: [replica()], keys: 'some' }))).toContain('sync.keys: "some" is not "all", "owner:NAME"')
    expect(problems(topo({ replicas: [replica()], keys: [0] }))).toContain('sync.keys: 0 is not a key handle')
    expect(problems(topo({ replicas: [replica()], keys: 'owner:a-b' }))).toContain('does not name a user')
    expect(problems(topo({ replicas: [replica()], users: ['al ice'] }))).toContain('sync.users: "al ice" is not a user name')
    expect(parseTopology(topo({ replicas: [replica()], users: 'alice' })).regions[0]?.clusters[0]?.sync?.users).toEqual(['alice'])
  })

  it('refuses a replica that is a primary itself, or the replica of two tasks', () => {
    const twoTasks = {
      regions: [
        { name: 'us-east-1', clusters: [primary({ replicas: [replica()] }), { ...clone('second'), sync: { replicas: [replica()] } }] },
        { name: 'eu-west-1', clusters: [clone('replica')] }
      ]
    }
    expect(problems(twoTasks)).toContain('regions[0].clusters[1].sync.replicas[0]: eu-west-1/replica is already a replica of us-east-1/primary')
    const chained = {
      regions: [
        { name: 'us-east-1', clusters: [primary({ replicas: [replica()] })] },
        { name: 'eu-west-1', clusters: [{ ...clone('replica'), sync: { replicas: [replica('us-west-2', 'dr')] } }] },
        { name: 'us-west-2', clusters: [clone('dr')] }
      ]
    }
    expect(problems(chained)).toContain('regions[0].clusters[0].sync.replicas[0]: eu-west-1/replica is the primary of a synchronisation task itself')
  })
})

describe('hsmlab sync command line', () => {
  it('parses each command into what the lab asks the control plane', () => {
    expect(parseSyncCommand(['create', 'us-east-1/primary', '--replica', 'eu-west-1/replica', '--type', 'KEYS_AND_USERS', '--keys', 'all', '--users', 'alice,bob', '--dir', 'd']))
      .toEqual({ dir: 'd', command: { sub: 'create', primary: 'us-east-1/primary', replicas: [{ cluster: 'eu-west-1/replica', type: 'KEYS_AND_USERS' }], scope: { keys: { all: true, owners: [], handles: [] }, users: ['alice', 'bob'] }, json: false } })
    expect(parseSyncCommand(['create', 'us-east-1/primary', '--replica', 'eu-west-1/a', '--replica', 'us-west-2/b', '--type', 'KEYS']).command)
      .toMatchObject({ replicas: [{ cluster: 'eu-west-1/a', type: 'KEYS' }, { cluster: 'us-west-2/b', type: 'KEYS' }], scope: {} })
    expect(parseSyncCommand(['add-resources', 'us-east-1/primary', '--keys', '7,owner:bob,9']).command)
      .toEqual({ sub: 'add-resources', primary: 'us-east-1/primary', scope: { keys: { all: false, owners: ['bob'], handles: [7, 9] } }, json: false })
    expect(parseSyncCommand(['add-replica', 'us-east-1/primary', '--replica', 'eu-west-1/replica', '--type', 'KEYS', '--json']).command)
      .toEqual({ sub: 'add-replica', primary: 'us-east-1/primary', replica: 'eu-west-1/replica', type: 'KEYS', json: true })
    expect(parseSyncCommand(['remove-replica', 'us-east-1/primary', '--replica', 'eu-west-1/replica', '--yes']).command)
      .toEqual({ sub: 'remove-replica', primary: 'us-east-1/primary', replica: 'eu-west-1/replica', confirm: true, json: false })
    expect(parseSyncCommand(['status', 'us-east-1/primary', '--status', 'failed', '--json']).command)
      .toEqual({ sub: 'status', primary: 'us-east-1/primary', status: 'FAILED', json: true })
  })

  it('refuses what it cannot understand with exit code 2 and the help, before it looks for a lab', async () => {
    const cwd = tmpDir()
    const cases: Array<[string[], string]> = [
      [['sync'], 'name a sync command'],
      [['sync', 'move', 'us-east-1/primary'], "unknown sync command 'move'"],
      [['sync', 'create', 'us-east-1/primary', '--type', 'KEYS'], 'needs --replica REGION/CLUSTER'],
      [['sync', 'create', 'us-east-1/primary', '--replica', 'eu-west-1/replica'], '--type KEYS|KEYS_AND_USERS is required'],
      [['sync', 'create', 'us-east-1/primary', '--replica', 'eu-west-1/replica', '--type', 'KEY'], '--type: must be KEYS or KEYS_AND_USERS, not "KEY"'],
      [['sync', 'create', 'primary', '--replica', 'eu-west-1/replica', '--type', 'KEYS'], "the primary: 'primary' does not name a cluster as REGION/CLUSTER"],
      [['sync', 'create', 'us-east-1/primary', '--replica', 'eu-west-1/replica', '--type', 'KEYS', '--keys', 'some'], '--keys: "some" is not "all"'],
      [['sync', 'create', 'us-east-1/primary', '--replica', 'a/b', '--replica', 'c/d', '--replica', 'e/f', '--replica', 'g/h', '--type', 'KEYS'], 'at most 3 replicas'],
      [['sync', 'add-resources', 'us-east-1/primary'], 'needs --keys or --users'],
      [['sync', 'add-replica', 'us-east-1/primary', '--replica', 'eu-west-1/replica'], '--type KEYS|KEYS_AND_USERS is required'],
      [['sync', 'status', 'us-east-1/primary', '--status', 'LOST'], '--status: must be one of SYNCHRONIZING, SYNCHRONIZED, FAILED'],
      [['sync', 'status', 'us-east-1/primary', '--yes'], "--yes does not apply to 'hsmlab sync status'"],
      [['sync', 'status'], 'takes one primary cluster'],
      [['sync', 'remove-replica', 'us-east-1/primary', '--replica', 'eu-west-1/replica'], 'Disassociating a replica is irreversible']
    ]
    for (const [argv, message] of cases) {
      let stderr = ''
      const code = await main(argv, { stdout: () => {}, stderr: t => { stderr += t }, cwd })
      expect(code, argv.join(' ')).toBe(2)
      expect(stderr, argv.join(' ')).toContain(message)
    }
  })

  it('refuses remove-resources with the seed\'s sentence (exit 1), and sync status without a lab (exit 1)', async () => {
    const cwd = tmpDir()
    let stderr = ''
    const io = { stdout: () => {}, stderr: (t: string) => { stderr += t }, cwd }
    expect(await main(['sync', 'remove-resources', 'us-east-1/primary', '--keys', '7'], io)).toBe(1)
    expect(stderr).toContain('[LAB_ERR_SYNC_SCOPE_ADD_ONLY] You can only add resources to synchronize. Removing previously selected resources is not supported.')
    stderr = ''
    expect(await main(['sync', 'status', 'us-east-1/primary'], io)).toBe(1)
    expect(stderr).toContain('[LAB_ERR_NO_LAB]')
    let help = ''
    expect(await main(['sync', '--help'], { stdout: t => { help += t }, stderr: () => {}, cwd })).toBe(0)
    expect(help).toContain('usage: hsmlab sync')
  })
})

describe('hsmlab sync status --json', () => {
  it('maps the API\'s task and records to exactly the contract\'s keys', () => {
    const task: ApiSyncTask = {
      SyncTaskId: 'sync-abc',
      PrimaryClusterId: 'cluster-p',
      PrimaryRegion: 'us-east-1',
      CreatedAt: 1_700_000_000,
      Replicas: [
        { ClusterId: 'cluster-r', Region: 'eu-west-1', SyncType: 'KEYS_AND_USERS', State: 'ASSOCIATED', AssociatedAt: 1_700_000_001 },
        { ClusterId: 'cluster-x', Region: 'us-west-2', SyncType: 'KEYS', State: 'DISASSOCIATED', AssociatedAt: 1_700_000_001, DisassociatedAt: 1_700_000_002 }
      ],
      Scope: { Keys: { Owners: ['alice'] }, Users: ['alice'] }
    }
    const records: ApiSyncResourceRecord[] = [
      { ResourceId: '7', ResourceType: 'KEY', ReplicaClusterId: 'cluster-r', Status: 'FAILED', FailureCause: { Code: 'REPLICA_UNREACHABLE', Message: 'eu-west-1 does not answer' }, LastAttemptAt: 1_700_000_010.5, LastSuccessAt: null, Attempts: 3 },
      { ResourceId: 'alice', ResourceType: 'USER', ReplicaClusterId: 'cluster-r', Status: 'SYNCHRONIZED', FailureCause: null, LastAttemptAt: 1_700_000_009, LastSuccessAt: 1_700_000_009, Attempts: 1 }
    ]
    const names = new Map([['cluster-p', { region: 'us-east-1', cluster: 'primary' }], ['cluster-r', { region: 'eu-west-1', cluster: 'replica' }]])
    const json = syncStatusJsonOf(task, records, id => names.get(id))
    expect(json).toEqual({
      primary: { region: 'us-east-1', cluster: 'primary', clusterId: 'cluster-p' },
      replicas: [
        { region: 'eu-west-1', cluster: 'replica', clusterId: 'cluster-r', type: 'KEYS_AND_USERS', state: 'ASSOCIATED' },
        { region: 'us-west-2', cluster: null, clusterId: 'cluster-x', type: 'KEYS', state: 'DISASSOCIATED' }
      ],
      scope: { keys: { all: false, owners: ['alice'], handles: [] }, users: ['alice'] },
      resources: [
        { resourceId: '7', resourceType: 'KEY', replicaClusterId: 'cluster-r', status: 'FAILED', failureCause: { code: 'REPLICA_UNREACHABLE', message: 'eu-west-1 does not answer' }, lastAttemptAt: '2023-11-14T22:13:30.500Z', lastSuccessAt: null, attempts: 3 },
        { resourceId: 'alice', resourceType: 'USER', replicaClusterId: 'cluster-r', status: 'SYNCHRONIZED', failureCause: null, lastAttemptAt: '2023-11-14T22:13:29.000Z', lastSuccessAt: '2023-11-14T22:13:29.000Z', attempts: 1 }
      ]
    })
  })
})
