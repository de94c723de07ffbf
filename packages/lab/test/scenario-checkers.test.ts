/**
 * The scenario checkers, one invariant at a time: a history and an observation in which every
 * invariant holds pass every checker; each test then breaks one invariant the way a faulty lab
 * would (a key lost on one HSM, a key twice, a torn user, a failure without a cause, HSMs that
 * disagree, a copy stuck CREATE_IN_PROGRESS, a synchronisation task that did not converge, a
 * FAILED record without its cause) and expects that checker, and only that invariant, to
 * say so with the details a person needs.
 */
import { describe, expect, it } from 'vitest'
import {
  CHECKERS, checkAcknowledgedNotLost, checkBackupsSettled, checkClusterAgreement, checkFailuresHaveCauses, checkNoDuplicates, checkNoHalfWrites,
  checkSyncConverged, checkSyncFailuresHaveCauses, runCheckers
} from '../src/scenario/index.js'
import type { Observation, ObservedHsm, OperationRecord } from '../src/scenario/index.js'

const AES = 31

function hsm (cluster: string, server: number, keys: Array<{ handle: number, label: string, kcv?: string, valueLen?: number }>, users: string[]): ObservedHsm {
  return {
    cluster,
    server,
    name: `${cluster}/hsm-${server}`,
    users: [{ userId: 1, userName: 'admin', userType: 'CO' }, { userId: 2, userName: 'alice', userType: 'CU' }, ...users.map((u, i) => ({ userId: 3 + i, userName: u, userType: 'CU' }))],
    keys: keys.map(k => ({ handle: k.handle, owner: 2, ownerName: 'alice', label: k.label, kcv: k.kcv ?? `kcv-${k.label}`, keyType: AES, valueLen: k.valueLen ?? 32 })),
    keyHashes: keys.length === 0 ? [] : [{ userId: 2, userName: 'alice', hash: `hash-${keys.map(k => k.handle).join('-')}`, handles: keys.map(k => k.handle) }],
    logins: users.map(u => ({ userName: u, ok: true }))
  }
}

/** A run where everything held: two keys created in primary, one synced to dr, a user created and synced, a backup copied. */
function healthy (): { history: OperationRecord[], observation: Observation } {
  const history: OperationRecord[] = [
    { id: 1, client: 'w#0', op: 'createKey', cluster: 'us-east-1/primary', invokedAtMs: 10, completedAtMs: 20, outcome: 'ok', server: 0, label: 'k1', sizeBytes: 32, owner: 'alice', handle: 101 },
    { id: 2, client: 'w#0', op: 'createKey', cluster: 'us-east-1/primary', invokedAtMs: 30, completedAtMs: 40, outcome: 'ok', server: 1, label: 'k2', sizeBytes: 32, owner: 'alice', handle: 262145 },
    { id: 3, client: 'w#0', op: 'createKey', cluster: 'us-east-1/primary', invokedAtMs: 50, completedAtMs: 60, outcome: 'failed', server: 1, label: 'k3', sizeBytes: 32, owner: 'alice', cause: '[CLIENT_ERR_CONNECT] cannot connect' },
    { id: 4, client: 's#0', op: 'syncKey', cluster: 'us-east-1/primary', to: 'us-west-2/dr', invokedAtMs: 70, completedAtMs: 80, outcome: 'ok', server: 0, destinationServers: [1], label: 'k1', handle: 101, destinationHandle: 101, sourceOp: 1 },
    { id: 5, client: 'u#0', op: 'createUser', cluster: 'us-east-1/primary', invokedAtMs: 90, completedAtMs: 100, outcome: 'ok', userName: 'u1', userType: 'CU', password: 'Secret123' },
    { id: 6, client: 'u#0', op: 'syncUser', cluster: 'us-east-1/primary', to: 'us-west-2/dr', invokedAtMs: 110, completedAtMs: 120, outcome: 'ok', server: 0, destinationServers: [0, 1], userName: 'u1', userType: 'CU', sourceOp: 5 },
    { id: 7, client: 'b#0', op: 'copyBackup', cluster: 'us-east-1/primary', to: 'us-west-2', invokedAtMs: 130, completedAtMs: 140, outcome: 'ok', backupId: 'backup-src' },
    { id: 8, client: 'b#0', op: 'copyBackup', cluster: 'us-east-1/primary', to: 'us-west-2', invokedAtMs: 150, completedAtMs: 160, outcome: 'unknown', backupId: 'backup-src', cause: '[CP_ERR_HTTP] CopyBackupToRegion failed: socket hang up' }
  ]
  const primaryKeys = [{ handle: 101, label: 'k1' }, { handle: 262145, label: 'k2' }]
  const observation: Observation = {
    clusters: [{ ref: 'us-east-1/primary', region: 'us-east-1', hsms: 2 }, { ref: 'us-west-2/dr', region: 'us-west-2', hsms: 2, cloneOf: 'us-east-1/primary' }],
    hsms: [
      hsm('us-east-1/primary', 0, primaryKeys, ['u1']),
      hsm('us-east-1/primary', 1, primaryKeys, ['u1']),
      hsm('us-west-2/dr', 0, [{ handle: 101, label: 'k1' }], ['u1']),
      hsm('us-west-2/dr', 1, [{ handle: 101, label: 'k1' }], ['u1'])
    ],
    backups: [
      { backupId: 'backup-src', region: 'us-east-1', state: 'READY', clusterId: 'cluster-a', preexisting: true },
      { backupId: 'backup-copy1', region: 'us-west-2', state: 'READY', sourceBackup: 'backup-src', sourceRegion: 'us-east-1', preexisting: false },
      { backupId: 'backup-copy2', region: 'us-west-2', state: 'DELETED', stateMessage: 'the copy could not be made within its retry window', sourceBackup: 'backup-src', sourceRegion: 'us-east-1', preexisting: false }
    ],
    // A synchronisation task of primary with dr as its replica, key 101 and user u1 in scope: converged.
    syncTasks: [{
      primary: 'us-east-1/primary',
      replicas: [{ cluster: 'us-west-2/dr', clusterId: 'cluster-dr', type: 'KEYS_AND_USERS', state: 'ASSOCIATED' }],
      scope: { allKeys: false, owners: [], handles: [101], users: ['u1'] },
      records: [
        { resourceId: '101', resourceType: 'KEY', replica: 'us-west-2/dr', status: 'SYNCHRONIZED', failureCause: null },
        { resourceId: 'u1', resourceType: 'USER', replica: 'us-west-2/dr', status: 'SYNCHRONIZED', failureCause: null }
      ]
    }],
    syncFailuresSeen: [
      { primary: 'us-east-1/primary', resourceId: '101', resourceType: 'KEY', replica: 'us-west-2/dr', status: 'FAILED', failureCause: { code: 'REPLICA_UNREACHABLE', message: 'us-west-2 cannot be reached: ECONNRESET' }, atMs: 2500 }
    ]
  }
  return { history, observation }
}

function hsmNamed (observation: Observation, name: string): ObservedHsm {
  const found = observation.hsms.find(h => h.name === name)
  if (found === undefined) throw new Error(`no ${name}`)
  return found
}

describe('scenario checkers', () => {
  it('pass a run in which every invariant held', () => {
    expect(runCheckers(healthy())).toEqual([])
    expect(CHECKERS.map(c => c.invariant)).toEqual([
      'acknowledged-not-lost', 'no-duplicates', 'no-half-writes', 'failures-have-causes', 'cluster-agreement', 'backups-settled', 'sync-converged', 'sync-failures-have-causes'
    ])
  })

  it('acknowledged-not-lost: an acknowledged key missing on one HSM, a synced key missing on the clone, a user, a copy', () => {
    const run = healthy()
    const primary1 = hsmNamed(run.observation, 'us-east-1/primary/hsm-1')
    primary1.keys = primary1.keys.filter(k => k.label !== 'k2')
    const dr0 = hsmNamed(run.observation, 'us-west-2/dr/hsm-0')
    dr0.keys = []
    dr0.users = dr0.users.filter(u => u.userName !== 'u1')
    dr0.logins = []
    run.observation.backups = run.observation.backups.filter(b => b.backupId !== 'backup-copy1' && b.backupId !== 'backup-copy2')
    const details = checkAcknowledgedNotLost(run).map(v => v.detail)
    expect(details).toEqual([
      expect.stringMatching(/^key k2 \(handle 262145, acknowledged by op #2 \(createKey by w#0 at 0\.030 s\)\) is not on us-east-1\/primary\/hsm-1$/),
      expect.stringMatching(/^key k1 \(handle 101, synced to us-west-2\/dr by op #4 .*\) is not on us-west-2\/dr\/hsm-0$/),
      expect.stringMatching(/^user u1 \(synced to us-west-2\/dr by op #6 .*\) is not on us-west-2\/dr\/hsm-0$/),
      expect.stringMatching(/^1 copies of backup backup-src to us-west-2 were acknowledged .* but us-west-2 holds 0$/)
    ])
    expect(checkAcknowledgedNotLost(run).every(v => v.invariant === 'acknowledged-not-lost')).toBe(true)
  })

  it('acknowledged-not-lost: a key found under another handle than the one acknowledged', () => {
    const run = healthy()
    for (const name of ['us-east-1/primary/hsm-0', 'us-east-1/primary/hsm-1']) {
      const key = hsmNamed(run.observation, name).keys.find(k => k.label === 'k2')
      if (key !== undefined) key.handle = 262146
    }
    expect(checkAcknowledgedNotLost(run).map(v => v.detail)).toEqual([
      expect.stringContaining('is not on us-east-1/primary/hsm-0; a key with its label is there under handle 262146'),
      expect.stringContaining('is not on us-east-1/primary/hsm-1; a key with its label is there under handle 262146')
    ])
  })

  it('no-duplicates: one label under two handles in a cluster, a user listed twice, more copies than asked for', () => {
    const run = healthy()
    hsmNamed(run.observation, 'us-east-1/primary/hsm-1').keys.push({ handle: 262150, owner: 2, label: 'k1', kcv: 'kcv-k1', keyType: AES, valueLen: 32 })
    hsmNamed(run.observation, 'us-west-2/dr/hsm-1').users.push({ userId: 9, userName: 'U1', userType: 'CU' })
    run.observation.backups.push({ backupId: 'backup-copy3', region: 'us-west-2', state: 'READY', sourceBackup: 'backup-src', preexisting: false })
    const violations = checkNoDuplicates(run)
    expect(violations.map(v => v.invariant)).toEqual(['no-duplicates', 'no-duplicates', 'no-duplicates'])
    expect(violations.map(v => v.detail)).toEqual([
      'key k1 exists 2 times in us-east-1/primary: handle 101 on us-east-1/primary/hsm-0, us-east-1/primary/hsm-1; handle 262150 on us-east-1/primary/hsm-1',
      'user u1 is listed 2 times on us-west-2/dr/hsm-1',
      'us-west-2 holds 3 new copies of backup backup-src (backup-copy1, backup-copy2, backup-copy3), but the run asked for 2'
    ])
  })

  it('no-half-writes: an unreadable key, a key of the wrong size, copies that are different keys, a user who cannot log in', () => {
    const run = healthy()
    const p0 = hsmNamed(run.observation, 'us-east-1/primary/hsm-0')
    const k2 = p0.keys.find(k => k.label === 'k2')
    if (k2 !== undefined) k2.valueLen = 16
    hsmNamed(run.observation, 'us-east-1/primary/hsm-1').keys.push({ handle: 300, owner: 2, unreadable: '[RET_INVALID_HANDLE] invalid handle' })
    const dr1 = hsmNamed(run.observation, 'us-west-2/dr/hsm-1')
    const k1 = dr1.keys.find(k => k.label === 'k1')
    if (k1 !== undefined) k1.kcv = 'other'
    dr1.logins = [{ userName: 'u1', ok: false, cause: '[RET_USER_LOGIN_FAILURE] bad password' }]
    const details = checkNoHalfWrites(run).map(v => v.detail)
    expect(details).toEqual([
      'key k2 (handle 262145) on us-east-1/primary/hsm-0 is 16 bytes long, not 32',
      'handle 300 on us-east-1/primary/hsm-1 is listed by findAllKeys but cannot be read: [RET_INVALID_HANDLE] invalid handle',
      'user u1 is on us-west-2/dr/hsm-1 but cannot log in with its password: [RET_USER_LOGIN_FAILURE] bad password',
      expect.stringMatching(/^key k1 is not the same key everywhere: KCV kcv-k1 on us-east-1\/primary\/hsm-0, us-east-1\/primary\/hsm-1, us-west-2\/dr\/hsm-0; KCV other on us-west-2\/dr\/hsm-1$/)
    ])
  })

  it('failures-have-causes: a failure without a cause, a fan-out failure with an empty cause, an operation that never ended', () => {
    const run = healthy()
    const history = [...run.history]
    history[2] = { ...history[2] as OperationRecord, cause: '' }
    history.push({ id: 9, client: 'u#0', op: 'createUser', cluster: 'us-east-1/primary', invokedAtMs: 200, completedAtMs: 210, outcome: 'failed', userName: 'u2', userType: 'CU', cause: '1 of 2 HSMs did not acknowledge it', causes: [{ target: 'us-east-1/primary/hsm-1', cause: 'Error' }], okServers: [0] })
    history.push({ id: 10, client: 'w#0', op: 'createKey', cluster: 'us-east-1/primary', invokedAtMs: 220, outcome: 'invoked', label: 'k4' })
    const details = checkFailuresHaveCauses({ history, observation: run.observation }).map(v => v.detail)
    expect(details).toEqual([
      'op #3 (createKey by w#0 at 0.050 s) failed without a cause ("")',
      'op #9 (createUser by u#0 at 0.200 s): us-east-1/primary/hsm-1 did not acknowledge it, and gave no cause ("Error")',
      'op #10 (createKey by w#0 at 0.220 s) never ended'
    ])
  })

  it('cluster-agreement: HSMs of a cluster with different keys and findAllKeys hashes', () => {
    const run = healthy()
    const p1 = hsmNamed(run.observation, 'us-east-1/primary/hsm-1')
    p1.keys.push({ handle: 262160, owner: 2, ownerName: 'alice', label: 'stray', kcv: 'x', keyType: AES, valueLen: 32 })
    p1.keyHashes = [{ userId: 2, userName: 'alice', hash: 'hash-other', handles: [101, 262145, 262160] }]
    const violations = checkClusterAgreement(run)
    expect(violations.map(v => v.invariant)).toEqual(['cluster-agreement', 'cluster-agreement'])
    expect(violations.map(v => v.detail)).toEqual([
      'us-east-1/primary/hsm-1 and us-east-1/primary/hsm-0 hold different keys: not on us-east-1/primary/hsm-0: 262160',
      'findAllKeys for alice differs across us-east-1/primary: us-east-1/primary/hsm-0: hash hash-101-262145, 2 keys; us-east-1/primary/hsm-1: hash hash-other, 3 keys'
    ])
  })

  it('backups-settled: a copy still CREATE_IN_PROGRESS, one DELETED without a reason; old backups are not judged', () => {
    const run = healthy()
    run.observation.backups.push(
      { backupId: 'backup-stuck', region: 'us-west-2', state: 'CREATE_IN_PROGRESS', sourceBackup: 'backup-src', preexisting: false },
      { backupId: 'backup-silent', region: 'us-west-2', state: 'DELETED', sourceBackup: 'backup-src', preexisting: false },
      { backupId: 'backup-old', region: 'us-east-1', state: 'CREATE_IN_PROGRESS', preexisting: true }
    )
    expect(checkBackupsSettled(run).map(v => v.detail)).toEqual([
      'copy of backup-src backup-stuck in us-west-2 is CREATE_IN_PROGRESS after the lab settled',
      'copy of backup-src backup-silent in us-west-2 is DELETED without a StateMessage saying why'
    ])
  })

  it('sync-converged: a record left FAILED, a key in scope missing or different on the replica, a deleted key still there, a user in scope missing', () => {
    const run = healthy()
    const task = run.observation.syncTasks?.[0]
    if (task === undefined) throw new Error('no task')
    expect(checkSyncConverged(run)).toEqual([])
    task.records[0] = { ...task.records[0] as typeof task.records[number], status: 'FAILED', failureCause: { code: 'HANDLE_TAKEN', message: 'a different key holds handle 101' } }
    hsmNamed(run.observation, 'us-west-2/dr/hsm-1').keys = []
    const dr0 = hsmNamed(run.observation, 'us-west-2/dr/hsm-0')
    dr0.keys = [{ ...dr0.keys[0] as ObservedHsm['keys'][number], kcv: 'other' }, { handle: 555, owner: 2, ownerName: 'alice', label: 'gone' }]
    task.scope.handles.push(555)
    dr0.users = dr0.users.filter(u => u.userName !== 'u1')
    const details = checkSyncConverged(run).map(v => v.detail)
    expect(details).toEqual([
      'KEY 101 is FAILED on replica us-west-2/dr of us-east-1/primary after the heal (HANDLE_TAKEN: a different key holds handle 101)',
      'key 101 on us-west-2/dr/hsm-0 is not the primary\'s (kcv other / kcv-k1, label k1 / k1, owner alice / alice)',
      'key 101 (k1) of us-east-1/primary is not on us-west-2/dr/hsm-1',
      'key 555 (gone) is on us-west-2/dr/hsm-0 but no longer on us-east-1/primary: its deletion did not arrive',
      'user u1 of us-east-1/primary is in scope but not on us-west-2/dr/hsm-0'
    ])
    // A disassociated replica is no longer judged.
    const replica = task.replicas[0]
    if (replica !== undefined) replica.state = 'DISASSOCIATED'
    expect(checkSyncConverged(run)).toEqual([])
  })

  it('sync-converged: with every key in scope, findAllKeys hashes must agree, and a key with no record is named', () => {
    const run = healthy()
    const task = run.observation.syncTasks?.[0]
    if (task === undefined) throw new Error('no task')
    task.scope.allKeys = true
    const details = checkSyncConverged(run).map(v => v.detail)
    expect(details).toContain('key 262145 (k2) of us-east-1/primary is in scope but has no record on replica us-west-2/dr of us-east-1/primary')
    expect(details).toContain('findAllKeys of alice hashes hash-101 on us-west-2/dr/hsm-0, hash-101-262145 on us-east-1/primary/hsm-0')
  })

  it('sync-failures-have-causes: a FAILED record seen without a cause, during the run or after it', () => {
    const run = healthy()
    expect(checkSyncFailuresHaveCauses(run)).toEqual([])
    run.observation.syncFailuresSeen?.push({ primary: 'us-east-1/primary', resourceId: 'u1', resourceType: 'USER', replica: 'us-west-2/dr', status: 'FAILED', failureCause: null, atMs: 3000 })
    const task = run.observation.syncTasks?.[0]
    if (task !== undefined) task.records[0] = { ...task.records[0] as typeof task.records[number], status: 'FAILED', failureCause: { code: 'REPLICA_UNREACHABLE', message: ' ' } }
    expect(checkSyncFailuresHaveCauses(run).map(v => v.detail)).toEqual([
      'USER u1 of us-east-1/primary was FAILED on us-west-2/dr at 3.000 s without a cause (null)',
      'KEY 101 of us-east-1/primary was FAILED on us-west-2/dr after the heal without a cause ({"code":"REPLICA_UNREACHABLE","message":" "})'
    ])
  })

  it('judge only HSMs that could be read, and leave keys and users of failed operations alone', () => {
    const run = healthy()
    // k3's creation failed: it may be anywhere or nowhere. A failed createUser may have reached some HSMs.
    hsmNamed(run.observation, 'us-east-1/primary/hsm-0').keys.push({ handle: 102, owner: 2, label: 'k3', kcv: 'kcv-k3', keyType: AES, valueLen: 32 })
    hsmNamed(run.observation, 'us-east-1/primary/hsm-1').keys.push({ handle: 102, owner: 2, label: 'k3', kcv: 'kcv-k3', keyType: AES, valueLen: 32 })
    for (const h of run.observation.hsms.filter(x => x.cluster === 'us-east-1/primary')) h.keyHashes = [{ userId: 2, userName: 'alice', hash: 'h3', handles: [101, 102, 262145] }]
    const dr0 = hsmNamed(run.observation, 'us-west-2/dr/hsm-0')
    dr0.unreachable = '[CLIENT_ERR_CONNECT] cannot connect'
    dr0.keys = []
    expect(runCheckers(run)).toEqual([])
  })
})
