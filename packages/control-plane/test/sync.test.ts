// Unit tests of the synchronisation tasks (issue 12) without processes or sockets: two regions in
// one process, each with its real state store and keyring in a temporary directory, its
// reconciler (the primary's service, the replica's side) and fake HSMs that keep resources with
// digests in memory and answer syncChanges (with its long poll), syncExtract, syncApply and
// setSyncRole as the contract says. The primary's region reaches the replica's internal paths
// through a fake region client that a test can partition. The API handlers run through the
// operation table (request shapes checked), with a context whose services are the reconcilers'.
import { createHash } from 'node:crypto'
import { describe, expect, it, onTestFinished } from 'vitest'
import type { SyncResource, SyncRole } from '@hsmlab/protocol'
import { createLogger } from '@hsmlab/process'
import { tmpDir, waitFor } from '@hsmlab/testing'
import { AnchorKeyring } from '../src/anchor-keyring.js'
import type { ApiContext, ApiSettings } from '../src/api/context.js'
import { OPERATIONS } from '../src/api/operations.js'
import type { SyncResourceRecord, SyncTask } from '../src/api-types.js'
import { LabClock } from '../src/clock.js'
import { controlPlaneDefaults } from '../src/defaults.js'
import type { ControlPlaneTuning } from '../src/defaults.js'
import type { HsmAddress } from '../src/hsm-links.js'
import { HsmDirectory } from '../src/reconcilers/hsm-directory.js'
import { Runtime } from '../src/reconcilers/runtime.js'
import { SyncReplicaReconciler } from '../src/reconcilers/sync-replicas.js'
import { SyncTaskReconciler } from '../src/reconcilers/sync-tasks.js'
import type { RegionRequest, RegionResponse } from '../src/regions.js'
import { StateStore } from '../src/state-store.js'
import { SyncRecords } from '../src/sync-records.js'

const PRIMARY = 'cluster-primaryAAAAA'
const REPLICA = 'cluster-replicaBBBBB'
const OTHER = 'cluster-otherCCCCCCC'
const tuning: ControlPlaneTuning = {
  ...(controlPlaneDefaults as unknown as ControlPlaneTuning),
  syncRetryDelayMs: 20, syncRetryFactor: 2, syncRetryDelayMaxMs: 80, syncWatchWaitMs: 200, syncRequestTimeoutMs: 200
}

type Held = SyncResource & { digest: string, label: string }

/** A digest (hex, as the HSMs give them) for a readable label. */
const hex = (label: string): string => createHash('sha256').update(label).digest('hex')

/** An HSM that keeps resources with digests in memory and answers the sync operations as the contract says. */
class FakeSyncHsm {
  readonly resources = new Map<string, Held>()
  role: SyncRole = 'none'
  roleVersion = 0
  readonly epoch = `epoch-${Math.random()}`
  seq = 0
  private readonly log: Array<{ seq: number, key: string }> = []
  private waiters: Array<() => void> = []
  /** Handles whose apply this HSM refuses (a different key there). */
  readonly taken = new Set<number>()
  /** Handles of deleted keys (tombstones): never given out again; a full syncChanges lists them. */
  readonly tombstones = new Set<number>()
  /** Names of users deleteUser deleted here (user tombstones): a full syncChanges lists them. */
  readonly userTombstones = new Set<string>()
  applied = 0
  extractCalls = 0
  /** The keys and users syncApply inserted, in order. */
  readonly inserted: string[] = []

  static key (r: { kind: 'key' | 'user', handle?: number, name?: string }): string { return r.kind === 'key' ? `k:${r.handle ?? 0}` : `u:${r.name ?? ''}` }

  put (r: Held): void { if (r.kind === 'user') this.userTombstones.delete(r.name); this.resources.set(FakeSyncHsm.key(r), r); this.changed(FakeSyncHsm.key(r)) }
  /** The resource is not here (never arrived, or lost); `delete` is a deletion. */
  drop (key: string): void { this.resources.delete(key); this.changed(key) }
  delete (key: string): void { if (key.startsWith('k:')) this.tombstones.add(Number(key.slice(2))); else this.userTombstones.add(key.slice(2)); this.drop(key) }
  key (handle: number, owner: string, label = `d${handle}`): void { this.put({ kind: 'key', handle, owner, digest: hex(label), label }) }
  user (name: string, label = `u${name}`): void { this.put({ kind: 'user', name, userType: 'CU', digest: hex(label), label }) }
  /** The label of the content a resource holds here. */
  digestOf (key: string): string | undefined { return this.resources.get(key)?.label }

  private changed (key: string): void {
    this.seq++
    this.log.push({ seq: this.seq, key })
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }

  async answer (op: string, args: Record<string, unknown>): Promise<unknown> {
    switch (op) {
      case 'syncChanges': {
        const sinceSeq = args.sinceSeq as number | undefined
        if (args.epoch !== this.epoch || sinceSeq === undefined) {
          return { epoch: this.epoch, seq: this.seq, full: true, resources: [...this.resources.values()], deletedKeys: [...this.tombstones], deletedUsers: [...this.userTombstones] }
        }
        if (this.seq === sinceSeq && (args.waitMs as number) > 0) {
          await new Promise<void>(resolve => { const t = setTimeout(resolve, args.waitMs as number); this.waiters.push(() => { clearTimeout(t); resolve() }) })
        }
        const keys = new Set(this.log.filter(l => l.seq > sinceSeq).map(l => l.key))
        const resources = [...keys].map(k => this.resources.get(k) ?? (k.startsWith('k:')
          ? { kind: 'key', handle: Number(k.slice(2)), owner: '', digest: null }
          : { kind: 'user', name: k.slice(2), userType: 'CU', digest: null }))
        return { epoch: this.epoch, seq: this.seq, full: false, resources }
      }
      case 'syncExtract': {
        this.extractCalls++
        const wanted = [...(args.keys as number[]).map(h => `k:${h}`), ...(args.users as string[]).map(n => `u:${n}`)]
        const objects = wanted.flatMap(k => {
          const r = this.resources.get(k)
          if (r === undefined) return []
          return [{ kind: r.kind, ...(r.kind === 'key' ? { handle: r.handle } : { name: r.name }), digest: r.digest, blob: new Uint8Array(Buffer.from(JSON.stringify(r))) }]
        })
        return { objects }
      }
      case 'syncApply': {
        this.applied++
        const outcomes: unknown[] = []
        for (const blob of args.objects as Uint8Array[]) {
          const r = JSON.parse(Buffer.from(blob).toString('utf8')) as Held
          const id = r.kind === 'key' ? { handle: r.handle } : { name: r.name }
          if (this.role !== 'replica') outcomes.push({ kind: r.kind, ...id, ok: false, code: 'NOT_A_REPLICA', message: 'not a replica' })
          else if (r.kind === 'key' && this.taken.has(r.handle)) outcomes.push({ kind: 'key', ...id, ok: false, code: 'HANDLE_TAKEN', message: `handle ${r.handle} holds another key` })
          else if (r.kind === 'key' && this.tombstones.has(r.handle)) outcomes.push({ kind: 'key', ...id, ok: false, code: 'HANDLE_TAKEN', message: `handle ${r.handle} was deleted` })
          else { this.put(r); this.inserted.push(FakeSyncHsm.key(r)); outcomes.push({ kind: r.kind, ...id, ok: true, digest: r.digest }) }
        }
        for (const h of args.deleteKeys as number[]) { this.delete(`k:${h}`); outcomes.push({ kind: 'key', handle: h, ok: true }) }
        for (const n of args.deleteUsers as string[]) { this.drop(`u:${n}`); outcomes.push({ kind: 'user', name: n, ok: true }) }
        return { outcomes }
      }
      case 'setSyncRole': {
        if ((args.version as number) < this.roleVersion) throw new Error(`refused: stored version ${this.roleVersion}`)
        this.role = args.role as SyncRole
        this.roleVersion = args.version as number
        return {}
      }
      default: throw new Error(`no fake answer for ${op}`)
    }
  }
}

interface Region {
  name: string
  store: StateStore
  keyring: AnchorKeyring
  runtime: Runtime
  records: SyncRecords
  tasks: SyncTaskReconciler
  replicas: SyncReplicaReconciler
  ctx: ApiContext
}

/** Two regions (us-east-1 with the primary, us-west-2 with replicas), fake HSMs, a partitionable WAN. */
async function setup (overrides: Partial<ControlPlaneTuning> = {}): Promise<{ east: Region, west: Region, hsms: Map<string, FakeSyncHsm>, wan: { partitioned: boolean, requests: RegionRequest[] } }> {
  const hsms = new Map<string, FakeSyncHsm>()
  const wan = { partitioned: false, requests: [] as RegionRequest[] }
  const regions = new Map<string, Region>()
  const caller = {
    call: async (to: HsmAddress, op: string, args: unknown): Promise<never> => {
      const hsm = hsms.get(to.hsmId)
      if (hsm === undefined) throw new Error(`no HSM ${to.hsmId}`)
      return await hsm.answer(op, args as Record<string, unknown>) as never
    },
    drop: () => {}
  }
  const make = async (name: string, other: () => Region): Promise<Region> => {
    const dir = tmpDir('hsmlab-cp-sync-')
    const store = await StateStore.open(dir, name, '111122223333')
    const keyring = await AnchorKeyring.open(dir)
    const records = await SyncRecords.open(dir)
    const fetch = async (_region: string, request: RegionRequest): Promise<RegionResponse> => {
      wan.requests.push(request)
      if (wan.partitioned) throw new Error('no answer within 200 ms')
      const endpoints = other().replicas
      const body = JSON.parse(JSON.stringify(request.body)) as unknown
      const path = request.path.replace('/_hsmlab/sync/', '') as 'inventory' | 'associate' | 'disassociate' | 'apply'
      const answer = await endpoints[path](body)
      return { status: answer.status, headers: {}, body: Buffer.from(JSON.stringify(answer.body)) }
    }
    const runtime = new Runtime({ log: createLogger('silent'), regionClient: { regions: async () => ({ 'us-east-1': 'http://e', 'us-west-2': 'http://w' }), fetch } })
    const clock = LabClock.anchored(undefined, 1)
    const supervisor = { pidOf: (hsmId: string) => hsms.has(hsmId) ? 1 : undefined }
    const directory = new HsmDirectory(store, supervisor)
    const shared = { store, clock, tuning: { ...tuning, ...overrides }, log: createLogger('silent'), runtime }
    const tasks = new SyncTaskReconciler({ ...shared, directory, sync: caller, records, region: name })
    const replicas = new SyncReplicaReconciler({ ...shared, keyring, directory, links: caller, sync: caller, region: name })
    const settings = { region: name, accountId: '111122223333', syncReplicasMax: 3, syncRequestTimeoutMs: 200 } as unknown as ApiSettings
    const ctx = {
      store, clock, settings, kick: () => { runtime.kick() }, regions: async () => ({ 'us-east-1': 'http://e', 'us-west-2': 'http://w' }), regionFetch: fetch,
      sync: {
        primaryInventory: async (id: string) => await tasks.primaryInventory(id),
        confirmNow: async (p: string, r: string) => await tasks.confirmNow(p, r),
        wake: (p: string) => { tasks.wake(p) },
        records: (p: string) => records.list(p)
      }
    } as unknown as ApiContext
    runtime.start(async () => { replicas.pass(); tasks.pass() }, 20)
    onTestFinished(async () => { await runtime.stop() })
    return { name, store, keyring, runtime, records, tasks, replicas, ctx }
  }
  const east = await make('us-east-1', () => regions.get('us-west-2') as Region)
  const west = await make('us-west-2', () => regions.get('us-east-1') as Region)
  regions.set('us-east-1', east)
  regions.set('us-west-2', west)
  return { east, west, hsms, wan }
}

async function addCluster (region: Region, clusterId: string, lineage: string, hsmIds: string[], hsms: Map<string, FakeSyncHsm>): Promise<FakeSyncHsm[]> {
  const anchor = await region.keyring.create(clusterId)
  await region.store.transact(draft => {
    draft.clusters[clusterId] = {
      clusterId, createdAtMs: 0, hsmType: 'hsm2m.medium', networkType: 'IPV4', state: 'ACTIVE', subnetMapping: {}, vpcId: 'vpc-1', securityGroup: 'sg-1',
      retentionDays: 90, tags: [], anchorPublicKey: Buffer.from(anchor).toString('base64'), certificates: {}, nextSlot: 0, peersVersion: 0, lineage
    }
    for (const [i, hsmId] of hsmIds.entries()) {
      draft.hsms[hsmId] = {
        hsmId, clusterId, availabilityZone: 'a', subnetId: 's', eniId: 'e', eniIp: '127.0.0.1', hsmType: 'hsm2m.medium', state: 'ACTIVE', slot: i,
        createdAtMs: i, provisioned: true, failures: 0, port: 4000 + i
      }
    }
  })
  return hsmIds.map(id => { const h = new FakeSyncHsm(); hsms.set(id, h); return h })
}

async function api<T> (region: Region, operation: string, input: unknown): Promise<T> {
  const run = OPERATIONS.get(operation as never)
  if (run === undefined) throw new Error(`no operation ${operation}`)
  return await run(region.ctx, input) as T
}

async function refusal (promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (err) {
    return `${(err as { type?: string }).type ?? ''}: ${(err as Error).message}`
  }
  throw new Error('expected a refusal')
}

function recordsOf (region: Region): Map<string, SyncResourceRecord> {
  return new Map(region.records.list(PRIMARY).map(r => [`${r.resourceType} ${r.resourceId}`, {
    ResourceId: r.resourceId, ResourceType: r.resourceType, ReplicaClusterId: r.replicaClusterId, Status: r.status,
    FailureCause: r.failureCause === null ? null : { Code: r.failureCause.code, Message: r.failureCause.message }, LastAttemptAt: r.lastAttemptAt, LastSuccessAt: r.lastSuccessAt, Attempts: r.attempts
  }]))
}

/** A primary with keys 1 (alice) and 2 (bob), users alice and bob, and a clone of it in us-west-2 (two HSMs). */
async function twoClusters (overrides: Partial<ControlPlaneTuning> = {}): Promise<{ t: Awaited<ReturnType<typeof setup>>, primary: FakeSyncHsm, replica: FakeSyncHsm, replica2: FakeSyncHsm }> {
  const t = await setup(overrides)
  const [primary] = await addCluster(t.east, PRIMARY, 'lineage-1', ['hsm-primaryAAAAAA'], t.hsms)
  const [replica, replica2] = await addCluster(t.west, REPLICA, 'lineage-1', ['hsm-replicaBBBBBB', 'hsm-replicaBBBBB2'], t.hsms)
  for (const hsm of [primary, replica, replica2] as FakeSyncHsm[]) { hsm.key(1, 'alice'); hsm.key(2, 'bob'); hsm.user('alice'); hsm.user('bob') }
  return { t, primary: primary as FakeSyncHsm, replica: replica as FakeSyncHsm, replica2: replica2 as FakeSyncHsm }
}

describe('the synchronisation service', () => {
  it('carries what is in scope (later keys of an owner too, users only to KEYS_AND_USERS), changes and deletions, and records each resource SYNCHRONIZED', async () => {
    const { t, primary, replica, replica2 } = await twoClusters()
    const task = await api<{ SyncTask: SyncTask }>(t.east, 'HsmlabCreateSyncTask', {
      ClusterId: PRIMARY, Replicas: [{ ClusterId: REPLICA, Region: 'us-west-2', SyncType: 'KEYS_AND_USERS' }], Scope: { Keys: { Owners: ['alice'] }, Users: ['alice'] }
    })
    expect(task.SyncTask).toMatchObject({ PrimaryClusterId: PRIMARY, PrimaryRegion: 'us-east-1', Scope: { Keys: { Owners: ['alice'] }, Users: ['alice'] } })
    expect(task.SyncTask.Replicas).toEqual([expect.objectContaining({ ClusterId: REPLICA, Region: 'us-west-2', SyncType: 'KEYS_AND_USERS', State: 'ASSOCIATED' })])
    // The replica's HSMs are read-only replicas once the association is answered (the second one by the pass).
    expect(replica.role).toBe('replica')
    await waitFor(() => replica2.role === 'replica')
    expect(t.west.store.state.syncReplicaOf?.[REPLICA]).toMatchObject({ primaryClusterId: PRIMARY, primaryRegion: 'us-east-1', state: 'ASSOCIATED' })

    // What was equal from the start is SYNCHRONIZED; bob's key and user are out of scope.
    await waitFor(() => recordsOf(t.east).get('KEY 1')?.Status === 'SYNCHRONIZED' && recordsOf(t.east).get('USER alice')?.Status === 'SYNCHRONIZED')
    expect([...recordsOf(t.east).keys()].sort()).toEqual(['KEY 1', 'USER alice'])

    // A new key of alice joins by itself; bob's does not; a change of alice's user and key and a deletion follow.
    primary.key(3, 'alice')
    primary.key(4, 'bob')
    await waitFor(() => replica.digestOf('k:3') === 'd3')
    primary.user('alice', 'alice-new-password')
    primary.key(1, 'alice', 'd1-shared-with-bob')
    await waitFor(() => replica.digestOf('u:alice') === 'alice-new-password' && replica.digestOf('k:1') === 'd1-shared-with-bob')
    primary.drop('k:3')
    await waitFor(() => !replica.resources.has('k:3'))
    await waitFor(() => recordsOf(t.east).get('KEY 1')?.Status === 'SYNCHRONIZED' && !recordsOf(t.east).has('KEY 3'))
    expect(replica.resources.has('k:4')).toBe(false)
    const records = recordsOf(t.east)
    expect([...records.keys()].sort()).toEqual(['KEY 1', 'USER alice'])
    expect(records.get('KEY 1')).toMatchObject({ ReplicaClusterId: REPLICA, Status: 'SYNCHRONIZED', FailureCause: null, Attempts: 1 })
    expect(records.get('KEY 1')?.LastSuccessAt).toBeGreaterThan(0)

    // The scope grows: bob's keys now, all of them; listing pages through the records.
    await api(t.east, 'HsmlabAddSyncResources', { ClusterId: PRIMARY, Scope: { Keys: { Handles: [4] } } })
    await waitFor(() => replica.digestOf('k:4') === 'd4')
    const page = await api<{ Resources: SyncResourceRecord[], NextToken?: string }>(t.east, 'HsmlabListSyncResources', { ClusterId: PRIMARY, MaxResults: 2 })
    expect(page.Resources.map(r => `${r.ResourceType} ${r.ResourceId}`)).toEqual(['KEY 1', 'KEY 4'])
    const rest = await api<{ Resources: SyncResourceRecord[], NextToken?: string }>(t.east, 'HsmlabListSyncResources', { ClusterId: PRIMARY, MaxResults: 2, NextToken: page.NextToken })
    expect(rest.Resources.map(r => `${r.ResourceType} ${r.ResourceId}`)).toEqual(['USER alice'])
    expect(rest.NextToken).toBeUndefined()
  })

  it('a KEYS replica gets no users', async () => {
    const { t, primary, replica } = await twoClusters()
    await api(t.east, 'HsmlabCreateSyncTask', { ClusterId: PRIMARY, Replicas: [{ ClusterId: REPLICA, Region: 'us-west-2', SyncType: 'KEYS' }], Scope: { Keys: { All: true }, Users: ['alice'] } })
    primary.user('alice', 'changed')
    primary.key(5, 'alice')
    await waitFor(() => replica.digestOf('k:5') === 'd5')
    expect(replica.digestOf('u:alice')).toBe('ualice')
    expect([...recordsOf(t.east).keys()].sort()).toEqual(['KEY 1', 'KEY 2', 'KEY 5'])
  })

  it('makes records FAILED with REPLICA_UNREACHABLE while the replica region is cut off, retries with backoff, and SYNCHRONIZED once it heals', async () => {
    const { t, primary, replica } = await twoClusters()
    await api(t.east, 'HsmlabCreateSyncTask', { ClusterId: PRIMARY, Replicas: [{ ClusterId: REPLICA, Region: 'us-west-2', SyncType: 'KEYS_AND_USERS' }], Scope: { Keys: { All: true } } })
    await waitFor(() => recordsOf(t.east).get('KEY 2')?.Status === 'SYNCHRONIZED')
    t.wan.partitioned = true
    primary.key(6, 'bob')
    const failed = await waitFor(() => { const r = recordsOf(t.east).get('KEY 6'); return r?.Status === 'FAILED' ? r : undefined })
    expect(failed.FailureCause?.Code).toBe('REPLICA_UNREACHABLE')
    expect(failed.FailureCause?.Message).toMatch(/us-west-2 of replica cluster-replicaBBBBB cannot be reached: no answer within 200 ms/)
    // What was SYNCHRONIZED stays so; attempts go on, spaced by a growing delay.
    expect(recordsOf(t.east).get('KEY 2')?.Status).toBe('SYNCHRONIZED')
    const asked = t.wan.requests.length
    await waitFor(() => t.wan.requests.length >= asked + 4)
    // A key made during the cut is FAILED at once with the replica's cause, not left SYNCHRONIZING.
    primary.key(7, 'bob')
    await waitFor(() => recordsOf(t.east).get('KEY 7')?.Status === 'FAILED')
    t.wan.partitioned = false
    await waitFor(() => [...recordsOf(t.east).values()].every(r => r.Status === 'SYNCHRONIZED'))
    expect(replica.digestOf('k:6')).toBe('d6')
    expect(replica.digestOf('k:7')).toBe('d7')
    const six = recordsOf(t.east).get('KEY 6')
    expect(six?.Attempts).toBeGreaterThan(1)
    expect(six?.FailureCause).toBeNull()
    expect(six?.LastSuccessAt).toBeGreaterThanOrEqual(six?.LastAttemptAt ?? Infinity)
  })

  it('records a resource the replica refuses as FAILED with its cause, and SYNCHRONIZED by itself once the cause is gone', async () => {
    const { t, primary, replica } = await twoClusters()
    await api(t.east, 'HsmlabCreateSyncTask', { ClusterId: PRIMARY, Replicas: [{ ClusterId: REPLICA, Region: 'us-west-2', SyncType: 'KEYS' }], Scope: { Keys: { All: true } } })
    replica.taken.add(8)
    primary.key(8, 'alice')
    primary.key(9, 'alice')
    const failed = await waitFor(() => { const r = recordsOf(t.east).get('KEY 8'); return r?.Status === 'FAILED' ? r : undefined })
    expect(failed.FailureCause).toEqual({ Code: 'HANDLE_TAKEN', Message: 'handle 8 holds another key' })
    await waitFor(() => recordsOf(t.east).get('KEY 9')?.Status === 'SYNCHRONIZED')
    const applied = replica.applied
    await waitFor(() => replica.applied >= applied + 2)
    replica.taken.delete(8)
    await waitFor(() => recordsOf(t.east).get('KEY 8')?.Status === 'SYNCHRONIZED')
    expect(replica.digestOf('k:8')).toBe('d8')
  })

  it('sends again what one HSM of the replica lacks (it was away), since the replica\'s inventory asks every HSM', async () => {
    const { t, replica, replica2 } = await twoClusters()
    replica2.drop('k:1')
    await api(t.east, 'HsmlabCreateSyncTask', { ClusterId: PRIMARY, Replicas: [{ ClusterId: REPLICA, Region: 'us-west-2', SyncType: 'KEYS' }], Scope: { Keys: { All: true } } })
    await waitFor(() => replica.inserted.includes('k:1'))
    expect(replica.inserted).toEqual(['k:1'])
    await waitFor(() => [...recordsOf(t.east).values()].every(r => r.Status === 'SYNCHRONIZED') && recordsOf(t.east).size === 2)
  })

  it('extracts a change once for all the replicas of a task', async () => {
    const { t, primary, replica } = await twoClusters()
    const [other] = await addCluster(t.west, OTHER, 'lineage-1', ['hsm-otherCCCCCCCC'], t.hsms)
    other?.key(1, 'alice')
    other?.key(2, 'bob')
    await api(t.east, 'HsmlabCreateSyncTask', {
      ClusterId: PRIMARY, Replicas: [REPLICA, OTHER].map(id => ({ ClusterId: id, Region: 'us-west-2', SyncType: 'KEYS' })), Scope: { Keys: { All: true } }
    })
    await waitFor(() => t.east.records.list(PRIMARY).length === 4 && t.east.records.list(PRIMARY).every(r => r.status === 'SYNCHRONIZED'))
    const before = primary.extractCalls
    primary.key(3, 'alice')
    await waitFor(() => replica.digestOf('k:3') === 'd3' && other?.digestOf('k:3') === 'd3')
    expect(primary.extractCalls - before).toBe(1)
  })

  it('applies in batches of at most syncApplyBatchObjectsMax objects', async () => {
    const { t, primary, replica } = await twoClusters({ syncApplyBatchObjectsMax: 2 })
    for (let h = 10; h < 15; h++) primary.key(h, 'alice')
    await api(t.east, 'HsmlabCreateSyncTask', { ClusterId: PRIMARY, Replicas: [{ ClusterId: REPLICA, Region: 'us-west-2', SyncType: 'KEYS' }], Scope: { Keys: { All: true } } })
    await waitFor(() => t.east.records.list(PRIMARY).length === 7 && t.east.records.list(PRIMARY).every(r => r.status === 'SYNCHRONIZED'))
    expect(replica.inserted.sort()).toEqual(['k:10', 'k:11', 'k:12', 'k:13', 'k:14'])
    expect(replica.applied).toBe(3)
  })

  // Issue 12, hsm-kill-during-key-creation: the watched HSM of the primary is killed and the watch
  // moves to the other one, which has not received every key the first one made yet. Its full
  // answer lacks key 7 (no tombstone: not deleted); carrying that as a deletion tombstoned 7 on
  // the replica, and once the HSM caught up the key was FAILED, HANDLE_TAKEN, for good.
  it('carries no deletion of a key the watched HSM merely lacks (the watch moved to an HSM of the primary that is catching up)', async () => {
    const t = await setup()
    const [p0, p1] = await addCluster(t.east, PRIMARY, 'lineage-1', ['hsm-primaryAAAAAA', 'hsm-primaryAAAAA2'], t.hsms) as [FakeSyncHsm, FakeSyncHsm]
    const [replica] = await addCluster(t.west, REPLICA, 'lineage-1', ['hsm-replicaBBBBBB'], t.hsms) as [FakeSyncHsm]
    for (const hsm of [p0, p1, replica]) { hsm.key(1, 'alice'); hsm.user('alice') }
    await api(t.east, 'HsmlabCreateSyncTask', { ClusterId: PRIMARY, Replicas: [{ ClusterId: REPLICA, Region: 'us-west-2', SyncType: 'KEYS' }], Scope: { Keys: { All: true } } })
    // Key 7 made on the watched HSM (the first), carried; the second HSM does not have it yet.
    p0.key(7, 'alice')
    await waitFor(() => replica.digestOf('k:7') === 'd7' && recordsOf(t.east).get('KEY 7')?.Status === 'SYNCHRONIZED')
    // The first HSM dies: the watch moves to the second. A round after that carries key 8 ...
    t.hsms.delete('hsm-primaryAAAAAA')
    p1.key(8, 'alice')
    await waitFor(() => replica.digestOf('k:8') === 'd8')
    // ... then the second HSM catches up (key 7 from its peer) and makes key 9.
    p1.key(7, 'alice')
    p1.key(9, 'alice')
    await waitFor(() => replica.digestOf('k:9') === 'd9' && recordsOf(t.east).get('KEY 9')?.Status === 'SYNCHRONIZED')
    const deletions = t.wan.requests.flatMap(r => (r.body as { deleteKeys?: number[] }).deleteKeys ?? [])
    expect(deletions).toEqual([])
    expect(replica.tombstones.has(7)).toBe(false)
    await waitFor(() => recordsOf(t.east).get('KEY 7')?.Status === 'SYNCHRONIZED')
    expect(recordsOf(t.east).get('KEY 7')?.FailureCause).toBeNull()
    expect(replica.digestOf('k:7')).toBe('d7')
    // A real deletion on the (new) watched HSM is still carried: it holds the tombstone.
    p1.delete('k:8')
    await waitFor(() => replica.tombstones.has(8) && !recordsOf(t.east).has('KEY 8'))
  })

  it('carries a deletion the watched HSM made while the watch was elsewhere (its tombstone is in the full answer)', async () => {
    const t = await setup()
    const [p0, p1] = await addCluster(t.east, PRIMARY, 'lineage-1', ['hsm-primaryAAAAAA', 'hsm-primaryAAAAA2'], t.hsms) as [FakeSyncHsm, FakeSyncHsm]
    const [replica] = await addCluster(t.west, REPLICA, 'lineage-1', ['hsm-replicaBBBBBB'], t.hsms) as [FakeSyncHsm]
    for (const hsm of [p0, p1, replica]) { hsm.key(1, 'alice'); hsm.key(2, 'alice'); hsm.user('alice') }
    await api(t.east, 'HsmlabCreateSyncTask', { ClusterId: PRIMARY, Replicas: [{ ClusterId: REPLICA, Region: 'us-west-2', SyncType: 'KEYS' }], Scope: { Keys: { All: true } } })
    await waitFor(() => recordsOf(t.east).get('KEY 2')?.Status === 'SYNCHRONIZED')
    p1.delete('k:2')
    t.hsms.delete('hsm-primaryAAAAAA')
    await waitFor(() => replica.tombstones.has(2) && !recordsOf(t.east).has('KEY 2'))
    expect(replica.digestOf('k:1')).toBe('d1')
  })

  it('deletes no user on the replica that the watched HSM merely lacks (users are not replicated inside the primary), and carries real user deletions', async () => {
    const t = await setup()
    const [p0, p1] = await addCluster(t.east, PRIMARY, 'lineage-1', ['hsm-primaryAAAAAA', 'hsm-primaryAAAAA2'], t.hsms) as [FakeSyncHsm, FakeSyncHsm]
    const [replica] = await addCluster(t.west, REPLICA, 'lineage-1', ['hsm-replicaBBBBBB'], t.hsms) as [FakeSyncHsm]
    for (const hsm of [p0, p1, replica]) { hsm.key(1, 'alice'); hsm.user('alice'); hsm.user('erin') }
    await api(t.east, 'HsmlabCreateSyncTask', {
      ClusterId: PRIMARY, Replicas: [{ ClusterId: REPLICA, Region: 'us-west-2', SyncType: 'KEYS_AND_USERS' }], Scope: { Keys: { All: true }, Users: ['alice', 'carol', 'dave', 'erin'] }
    })
    // carol made while the second HSM was down: only the watched (first) one has her; carried.
    p0.user('carol')
    await waitFor(() => replica.digestOf('u:carol') === 'ucarol' && recordsOf(t.east).get('USER carol')?.Status === 'SYNCHRONIZED')
    // erin deleted on the second HSM only, while the watch is on the first.
    p1.delete('u:erin')
    // The watched HSM dies: the watch moves to the second, which never got carol.
    t.hsms.delete('hsm-primaryAAAAAA')
    p1.user('dave')
    await waitFor(() => replica.digestOf('u:dave') === 'udave' && recordsOf(t.east).get('USER dave')?.Status === 'SYNCHRONIZED')
    // erin's deletion is real (the second HSM holds its tombstone, from its full answer): carried.
    await waitFor(() => !replica.resources.has('u:erin') && !recordsOf(t.east).has('USER erin'))
    const deletions = t.wan.requests.flatMap(r => (r.body as { deleteUsers?: string[] }).deleteUsers ?? [])
    expect(deletions).toEqual(['erin'])
    expect(replica.digestOf('u:carol')).toBe('ucarol')
    expect(recordsOf(t.east).get('USER carol')?.Status).toBe('SYNCHRONIZED')
    // A deletion the watched HSM makes now is carried too.
    p1.delete('u:dave')
    await waitFor(() => !replica.resources.has('u:dave') && !recordsOf(t.east).has('USER dave'))
    expect(replica.digestOf('u:carol')).toBe('ucarol')
  })

  it('deletes a user on the replica only once no other reachable HSM of the primary holds it', async () => {
    const t = await setup()
    const [p0, p1] = await addCluster(t.east, PRIMARY, 'lineage-1', ['hsm-primaryAAAAAA', 'hsm-primaryAAAAA2'], t.hsms) as [FakeSyncHsm, FakeSyncHsm]
    const [replica] = await addCluster(t.west, REPLICA, 'lineage-1', ['hsm-replicaBBBBBB'], t.hsms) as [FakeSyncHsm]
    for (const hsm of [p0, p1, replica]) { hsm.user('alice'); hsm.user('gina') }
    await api(t.east, 'HsmlabCreateSyncTask', {
      ClusterId: PRIMARY, Replicas: [{ ClusterId: REPLICA, Region: 'us-west-2', SyncType: 'KEYS_AND_USERS' }], Scope: { Users: ['alice', 'gina', 'hank'] }
    })
    await waitFor(() => recordsOf(t.east).get('USER gina')?.Status === 'SYNCHRONIZED')
    // deleteUser has run on the watched HSM only so far: the other one still holds gina.
    p0.delete('u:gina')
    p0.user('hank')
    await waitFor(() => replica.digestOf('u:hank') === 'uhank' && recordsOf(t.east).get('USER hank')?.Status === 'SYNCHRONIZED')
    expect(replica.digestOf('u:gina')).toBe('ugina')
    // The other HSM was asked (it is the only reason gina stays).
    expect(p1.extractCalls).toBeGreaterThan(0)
    // Once it runs there too, the deletion is carried.
    p1.delete('u:gina')
    await waitFor(() => !replica.resources.has('u:gina') && !recordsOf(t.east).has('USER gina'))
    expect(t.wan.requests.flatMap(r => (r.body as { deleteUsers?: string[] }).deleteUsers ?? [])).toEqual(['gina'])
  })

  it('computes its retry delays from the first step, the factor and the most', async () => {
    const t = await setup()
    expect([1, 2, 3, 4, 5].map(n => t.east.tasks.retryDelayMs(n))).toEqual([20, 40, 80, 80, 80])
  })
})

describe('the association rules', () => {
  it('refuses a replica in the primary\'s region, of another lineage, holding what the primary does not, already a replica, or beyond 3', async () => {
    const { t, replica } = await twoClusters()
    const [sameRegion] = await addCluster(t.east, 'cluster-sameRegionAAA', 'lineage-1', ['hsm-sameRegionAAAA'], t.hsms)
    sameRegion?.key(1, 'alice')
    const create = (replicas: unknown[], clusterId = PRIMARY): Promise<unknown> => api(t.east, 'HsmlabCreateSyncTask', { ClusterId: clusterId, Replicas: replicas })
    expect(await refusal(create([{ ClusterId: 'cluster-sameRegionAAA', Region: 'us-east-1', SyncType: 'KEYS' }])))
      .toMatch(/^CloudHsmInvalidRequestException: Replica cluster-sameRegionAAA is in us-east-1, the region of primary cluster-primaryAAAAA: a replica must be in another region$/)
    await addCluster(t.west, OTHER, 'lineage-2', ['hsm-otherCCCCCCCC'], t.hsms)
    expect(await refusal(create([{ ClusterId: OTHER, Region: 'us-west-2', SyncType: 'KEYS' }]))).toMatch(/is of another lineage \(lineage-2\) than primary cluster-primaryAAAAA \(lineage-1\)/)
    replica.key(77, 'carol')
    replica.user('carol')
    expect(await refusal(create([{ ClusterId: REPLICA, Region: 'us-west-2', SyncType: 'KEYS_AND_USERS' }])))
      .toMatch(/holds 2 resources that primary cluster-primaryAAAAA does not: key 77 \(owner carol\), user carol \(CU\)/)
    // A KEYS replica: its users do not count.
    replica.drop('k:77')
    await create([{ ClusterId: REPLICA, Region: 'us-west-2', SyncType: 'KEYS' }])
    expect(await refusal(create([{ ClusterId: REPLICA, Region: 'us-west-2', SyncType: 'KEYS' }]))).toMatch(/already the primary of synchronisation task sync-/)
    // The replica cannot be the primary of a task, nor a replica of another primary.
    expect(await refusal(api(t.west, 'HsmlabCreateSyncTask', { ClusterId: REPLICA, Replicas: [{ ClusterId: PRIMARY, Region: 'us-east-1', SyncType: 'KEYS' }] })))
      .toMatch(/Cluster cluster-replicaBBBBB is replica of primary cluster-primaryAAAAA \(us-east-1\); a replica cannot be the primary of a task/)
    expect(await refusal(create([{ ClusterId: REPLICA, Region: 'us-west-2', SyncType: 'KEYS' }], 'cluster-sameRegionAAA')))
      .toMatch(/Cluster cluster-replicaBBBBB \(us-west-2\) is already a replica of primary cluster-primaryAAAAA/)
    expect(await refusal(create([1, 2, 3, 4].map(i => ({ ClusterId: `cluster-many${'ABCD'[i - 1] ?? ''}AAAAAAA`, Region: 'us-west-2', SyncType: 'KEYS' })), 'cluster-sameRegionAAA')))
      .toMatch(/A synchronisation task has at most 3 replicas; 4 were given/)
  })

  it('keeps the scope add-only, asks for confirmation, and never re-establishes a disassociation', async () => {
    const { t, primary, replica, replica2 } = await twoClusters()
    await api(t.east, 'HsmlabCreateSyncTask', { ClusterId: PRIMARY, Replicas: [{ ClusterId: REPLICA, Region: 'us-west-2', SyncType: 'KEYS' }], Scope: { Keys: { Handles: [1] } } })
    expect(await refusal(api(t.east, 'HsmlabRemoveSyncResources', { ClusterId: PRIMARY, Scope: { Keys: { Handles: [1] } } })))
      .toMatch(/^CloudHsmInvalidRequestException: Removing previously selected resources is not supported/)
    const grown = await api<{ SyncTask: SyncTask }>(t.east, 'HsmlabAddSyncResources', { ClusterId: PRIMARY, Scope: { Keys: { Handles: [2, 1], Owners: ['bob'] } } })
    expect(grown.SyncTask.Scope).toEqual({ Keys: { Owners: ['bob'], Handles: [1, 2] } })
    expect(await refusal(api(t.east, 'HsmlabAddSyncResources', { ClusterId: PRIMARY, Scope: {} }))).toMatch(/Scope names no resource/)

    expect(await refusal(api(t.east, 'HsmlabDisassociateSyncReplica', { ClusterId: PRIMARY, ReplicaClusterId: REPLICA })))
      .toMatch(/^CloudHsmInvalidRequestException: Disassociating replica cluster-replicaBBBBB from primary cluster-primaryAAAAA is irreversible.*Send Confirm: true to proceed$/)
    expect(await refusal(api(t.east, 'HsmlabDisassociateSyncReplica', { ClusterId: PRIMARY, ReplicaClusterId: REPLICA, Confirm: false }))).toMatch(/is irreversible/)
    const gone = await api<{ SyncTask: SyncTask }>(t.east, 'HsmlabDisassociateSyncReplica', { ClusterId: PRIMARY, ReplicaClusterId: REPLICA, Confirm: true })
    expect(gone.SyncTask.Replicas[0]).toMatchObject({ ClusterId: REPLICA, State: 'DISASSOCIATED' })
    expect(gone.SyncTask.Replicas[0]?.DisassociatedAt).toBeGreaterThan(0)
    // The replica's HSMs stay read-only for good, and the replica keeps what it has.
    expect(replica.role).toBe('disassociated')
    await waitFor(() => replica2.role === 'disassociated')
    expect(t.west.store.state.syncReplicaOf?.[REPLICA]?.state).toBe('DISASSOCIATED')
    primary.key(2, 'bob', 'changed')
    expect(await refusal(api(t.east, 'HsmlabAssociateSyncReplica', { ClusterId: PRIMARY, ReplicaClusterId: REPLICA, ReplicaRegion: 'us-west-2', SyncType: 'KEYS' })))
      .toMatch(/Replica cluster-replicaBBBBB \(us-west-2\) was disassociated from primary cluster-primaryAAAAA at .*; the association cannot be re-established/)
    // Even when the primary's region forgot it (another task), the replica's region refuses.
    await t.east.store.transact(draft => { delete draft.syncTasks?.[PRIMARY] })
    expect(await refusal(api(t.east, 'HsmlabCreateSyncTask', { ClusterId: PRIMARY, Replicas: [{ ClusterId: REPLICA, Region: 'us-west-2', SyncType: 'KEYS' }] })))
      .toMatch(/was disassociated from primary cluster-primaryAAAAA \(us-east-1\) at .*; the association cannot be re-established/)
    expect(replica.digestOf('k:2')).toBe('d2')
  })

  it('answers malformed or unassociated requests on the replica\'s internal paths with 4xx', async () => {
    const { t } = await twoClusters()
    expect((await t.west.replicas.apply({ primaryClusterId: PRIMARY })).status).toBe(400)
    expect((await t.west.replicas.inventory('x')).status).toBe(400)
    const answer = await t.west.replicas.apply({ primaryClusterId: PRIMARY, replicaClusterId: REPLICA, objects: [], deleteKeys: [1], deleteUsers: [] })
    expect(answer).toMatchObject({ status: 409, body: { code: 'REPLICA_NOT_ASSOCIATED' } })
    expect((await t.west.replicas.inventory({ primaryClusterId: PRIMARY, primaryRegion: 'us-east-1', replicaClusterId: 'cluster-nothereAAAAA', check: true })).status).toBe(404)
  })
})

describe('the synchronisation records', () => {
  it('are written in groups and read back in listing order', async () => {
    const dir = tmpDir('hsmlab-cp-sync-records-')
    const records = await SyncRecords.open(dir)
    for (let i = 10_000; i > 0; i--) {
      records.set(PRIMARY, { resourceId: String(i), resourceType: 'KEY', replicaClusterId: REPLICA, status: 'SYNCHRONIZED', failureCause: null, lastAttemptAt: 1.5, lastSuccessAt: 1.5, attempts: 1 })
    }
    records.set(PRIMARY, { resourceId: 'alice', resourceType: 'USER', replicaClusterId: REPLICA, status: 'FAILED', failureCause: { code: 'OWNER_MISSING', message: 'm' }, lastAttemptAt: 2, lastSuccessAt: null, attempts: 3 })
    await records.flush()
    const again = await SyncRecords.open(dir)
    const listed = again.list(PRIMARY)
    expect(listed).toHaveLength(10_001)
    expect(listed.slice(0, 3).map(r => r.resourceId)).toEqual(['1', '2', '3'])
    expect(listed[10_000]).toEqual({ resourceId: 'alice', resourceType: 'USER', replicaClusterId: REPLICA, status: 'FAILED', failureCause: { code: 'OWNER_MISSING', message: 'm' }, lastAttemptAt: 2, lastSuccessAt: null, attempts: 3 })
  })
})
