// Unit tests of the reconcilers (src/reconcilers/), each on its own, without processes or
// sockets: a fake HSM supervisor (HsmProcesses), fake links to the HSMs (scripted answers to
// listUsers, getHsmInfo, exportBackup, setPeers...), a fake region client, and a runtime whose
// real clock is a number the test moves. The state store, keyring and backup files are the real
// ones, in a temporary directory. Each test runs passes itself and waits for their tasks.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { tmpDir, waitFor } from '@hsmlab/testing'
import { createLogger } from '@hsmlab/process'
import { AnchorKeyring } from '../src/anchor-keyring.js'
import { BackupFiles } from '../src/backup-files.js'
import { LabClock } from '../src/clock.js'
import { controlPlaneDefaults } from '../src/defaults.js'
import type { ControlPlaneTuning } from '../src/defaults.js'
import type { HsmAddress, HsmCaller } from '../src/hsm-links.js'
import { HsmStartError } from '../src/hsm-supervisor.js'
import type { HsmExit, HsmPaths, HsmProcesses } from '../src/hsm-supervisor.js'
import { BackupReconciler } from '../src/reconcilers/backups.js'
import type { BackupMaker } from '../src/reconcilers/backups.js'
import { ClusterReconciler } from '../src/reconcilers/clusters.js'
import { CopyReconciler } from '../src/reconcilers/copies.js'
import { HsmDirectory } from '../src/reconcilers/hsm-directory.js'
import { HsmReconciler } from '../src/reconcilers/hsms.js'
import { PeerReconciler } from '../src/reconcilers/peers.js'
import { Runtime } from '../src/reconcilers/runtime.js'
import type { ReconcilerComponents } from '../src/reconcilers/runtime.js'
import type { RegionRequest, RegionResponse } from '../src/regions.js'
import { StateStore } from '../src/state-store.js'
import type { BackupRecord, ClusterRecord, HsmRecord } from '../src/state-store.js'

const DAY_MS = 86_400_000

/** A supervisor that runs nothing: it records what it is asked, and `start` answers as told. */
class FakeSupervisor implements HsmProcesses {
  readonly pids = new Map<string, number>()
  readonly calls: string[] = []
  nextPid = 1000
  /** What `start` does: resolve ready on a port, or throw. */
  startResult: (hsmId: string) => { port: number } | Error = () => ({ port: 4000 })

  pidOf (hsmId: string): number | undefined { return this.pids.get(hsmId) }
  async start (hsmId: string, _paths: HsmPaths, net: { host: string, port: number }, provision: boolean, onSpawn?: (pid: number) => Promise<void>): Promise<{ pid: number, port: number }> {
    this.calls.push(`start ${hsmId} provision=${String(provision)} port=${net.port}`)
    const result = this.startResult(hsmId)
    if (result instanceof Error) throw result
    const pid = this.nextPid++
    await onSpawn?.(pid)
    this.pids.set(hsmId, pid)
    return { pid, port: result.port }
  }

  async adopt (hsmId: string, pid: number): Promise<boolean> { this.calls.push(`adopt ${hsmId}`); this.pids.set(hsmId, pid); return true }
  async stop (hsmId: string): Promise<void> { this.calls.push(`stop ${hsmId}`); this.pids.delete(hsmId) }
  async kill (hsmId: string): Promise<void> { this.calls.push(`kill ${hsmId}`); this.pids.delete(hsmId) }
  async removeData (hsmId: string): Promise<void> { this.calls.push(`removeData ${hsmId}`) }
  async stopAll (): Promise<void> { this.pids.clear() }
  detachAll (): void { this.pids.clear() }
}

type Answer = (to: HsmAddress, args: Record<string, unknown>) => unknown

/** Links to HSMs that answer from a script, by operation; they record each call. */
class FakeLinks {
  readonly calls: Array<{ hsmId: string, op: string, args: Record<string, unknown> }> = []
  readonly dropped: string[] = []
  readonly answers = new Map<string, Answer>()

  async call (to: HsmAddress, op: string, args: Record<string, unknown>): Promise<unknown> {
    this.calls.push({ hsmId: to.hsmId, op, args })
    const answer = this.answers.get(op)
    if (answer === undefined) throw new Error(`no answer scripted for ${op}`)
    return answer(to, args)
  }

  drop (hsmId: string): void { this.dropped.push(hsmId) }
  ops (op: string): string[] { return this.calls.filter(c => c.op === op).map(c => c.hsmId) }
}

/** Bytes with a readable backup header (what readBackupHeader reads; the sealed parts are empty). */
function fakeBackup (lineage: string, counts = { keys: 2, users: 3 }): Uint8Array {
  const header = Buffer.from(JSON.stringify({
    format: 'hsmlab/backup/v1', clusterId: 'cluster-abcdefghijk', lineage, sourceHsmId: 'hsm-abcdefghijk', createdAtMs: 1,
    keyCount: counts.keys, deletedKeyCount: 0, userCount: counts.users, backupKeyId: '0123456789abcdef'
  }))
  const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b }
  return new Uint8Array(Buffer.concat([Buffer.from('HSMLABBK'), Buffer.of(1), u32(header.length), header, u32(0)]))
}

/** Everything a reconciler is given, fake where it would run processes or reach the network. */
async function setup (): Promise<{
  dir: string, store: StateStore, keyring: AnchorKeyring, files: BackupFiles, supervisor: FakeSupervisor, links: FakeLinks, directory: HsmDirectory,
  runtime: Runtime, shared: ReconcilerComponents, now: { real: number }, fetches: RegionRequest[], regionAnswer: { next: (request: RegionRequest) => Promise<RegionResponse> }
}> {
  const dir = tmpDir('hsmlab-cp-reconcilers-')
  const store = await StateStore.open(dir, 'us-east-1', '111122223333')
  const keyring = await AnchorKeyring.open(dir)
  const now = { real: 1_000_000 }
  const fetches: RegionRequest[] = []
  const regionAnswer = { next: async (_request: RegionRequest): Promise<RegionResponse> => ({ status: 503, headers: {}, body: Buffer.from('{}') }) }
  const runtime = new Runtime({
    log: createLogger('silent'),
    realNow: () => now.real,
    regionClient: {
      regions: async () => ({ 'us-west-2': 'http://127.0.0.1:1' }),
      fetch: async (_region, request) => { fetches.push(request); return await regionAnswer.next(request) }
    }
  })
  const clock = new LabClock({ realMs: now.real, labMs: 5 * DAY_MS, speed: 1 }, () => now.real)
  const tuning: ControlPlaneTuning = { ...(controlPlaneDefaults as unknown as ControlPlaneTuning), copyRetryDelayMs: 1, copyRetryDelayMaxMs: 1 }
  const supervisor = new FakeSupervisor()
  const links = new FakeLinks()
  const shared: ReconcilerComponents = { store, clock, tuning, log: createLogger('silent'), runtime }
  // Before the directory goes (hooks run last first): no task writes in it any more.
  onTestFinished(async () => { await runtime.stop(); await runtime.settled() })
  return {
    dir, store, keyring, files: new BackupFiles(dir), supervisor, links, directory: new HsmDirectory(store, supervisor), runtime, shared, now, fetches, regionAnswer
  }
}

async function addCluster (store: StateStore, keyring: AnchorKeyring, clusterId: string, fields: Partial<ClusterRecord> = {}): Promise<void> {
  const anchor = await keyring.create(clusterId)
  await store.transact(draft => {
    draft.clusters[clusterId] = {
      clusterId, createdAtMs: 0, hsmType: 'hsm2m.medium', networkType: 'IPV4', state: 'ACTIVE', subnetMapping: { 'us-east-1a': 'subnet-0123abcd' },
      vpcId: 'vpc-1', securityGroup: 'sg-1', retentionDays: 90, tags: [], anchorPublicKey: Buffer.from(anchor).toString('base64'),
      certificates: {}, nextSlot: 0, peersVersion: 0, ...fields
    }
  })
}

async function addHsm (store: StateStore, hsmId: string, clusterId: string, fields: Partial<HsmRecord> = {}): Promise<void> {
  await store.transact(draft => {
    draft.hsms[hsmId] = {
      hsmId, clusterId, availabilityZone: 'us-east-1a', subnetId: 'subnet-0123abcd', eniId: 'eni-01234567', eniIp: '127.0.0.1', hsmType: 'hsm2m.medium',
      state: 'ACTIVE', slot: 0, createdAtMs: 0, provisioned: true, failures: 0, port: 4000, ...fields
    }
  })
}

async function addBackup (store: StateStore, backupId: string, fields: Partial<BackupRecord> = {}): Promise<void> {
  await store.transact(draft => {
    draft.backups[backupId] = { backupId, state: 'READY', createdAtMs: 0, neverExpires: false, tags: [], hsmType: 'hsm2m.medium', reason: 'requested', nextSlot: 0, ...fields }
  })
}

/** A BackupMaker that records what it was asked and makes nothing. */
function fakeBackups (): BackupMaker & { made: string[] } {
  const made: string[] = []
  return { made, make: async (clusterId, reason) => { made.push(`${clusterId} ${reason}`); return { backupId: 'backup-made', done: Promise.resolve() } } }
}

describe('the cluster reconciler', () => {
  it('moves clusters on once their delays passed, drops deleted clusters\' anchors, activates once no PRECO is left', async () => {
    const t = await setup()
    const backups = fakeBackups()
    const clusters = new ClusterReconciler({ ...t.shared, keyring: t.keyring, directory: t.directory, links: t.links as unknown as HsmCaller, backups })
    await addCluster(t.store, t.keyring, 'cluster-creating', { state: 'CREATE_IN_PROGRESS', transitionAtRealMs: t.now.real + 100 })
    await addCluster(t.store, t.keyring, 'cluster-initing', { state: 'INITIALIZE_IN_PROGRESS', transitionAtRealMs: t.now.real + 100 })
    await addCluster(t.store, t.keyring, 'cluster-deleting', { state: 'DELETE_IN_PROGRESS', transitionAtRealMs: t.now.real + 100, csrPem: 'pem' })
    const labNow = t.shared.clock.now()
    await clusters.pass(labNow)
    expect(Object.values(t.store.state.clusters).map(c => c.state)).toEqual(['CREATE_IN_PROGRESS', 'INITIALIZE_IN_PROGRESS', 'DELETE_IN_PROGRESS'])
    t.now.real += 100
    await clusters.pass(t.shared.clock.now())
    const state = t.store.state.clusters
    expect([state['cluster-creating']?.state, state['cluster-initing']?.state, state['cluster-deleting']?.state]).toEqual(['UNINITIALIZED', 'INITIALIZED', 'DELETED'])
    expect(state['cluster-deleting']?.csrPem).toBeUndefined()
    expect(t.keyring.has('cluster-deleting')).toBe(false)
    expect(t.keyring.has('cluster-creating')).toBe(true)

    // INITIALIZED: polled only while an HSM of it runs; ACTIVE once no HSM lists a PRECO, then a backup.
    let users = [{ userType: 'PRECO' }]
    t.links.answers.set('listUsers', () => ({ users }))
    await addHsm(t.store, 'hsm-one', 'cluster-initing')
    await clusters.pass(t.shared.clock.now())
    await t.runtime.settled()
    expect(t.links.ops('listUsers')).toEqual([])
    t.supervisor.pids.set('hsm-one', 1)
    await clusters.pass(t.shared.clock.now())
    await t.runtime.settled()
    expect(t.links.ops('listUsers')).toEqual(['hsm-one'])
    expect(t.store.state.clusters['cluster-initing']?.state).toBe('INITIALIZED')
    // Not again before ACTIVATION_POLL_MS.
    await clusters.pass(t.shared.clock.now())
    await t.runtime.settled()
    expect(t.links.ops('listUsers')).toHaveLength(1)
    users = [{ userType: 'CO' }]
    t.now.real += 50
    await clusters.pass(t.shared.clock.now())
    await t.runtime.settled()
    expect(t.store.state.clusters['cluster-initing']?.state).toBe('ACTIVE')
    expect(backups.made).toEqual(['cluster-initing activation'])

    // A DELETED cluster's record goes once it has been kept long enough.
    t.now.real += 8 * DAY_MS
    await clusters.pass(t.shared.clock.now())
    expect(t.store.state.clusters['cluster-deleting']).toBeUndefined()
  })
})

describe('the HSM reconciler', () => {
  function hsmReconciler (t: Awaited<ReturnType<typeof setup>>, forgotten: string[] = [], backups: BackupMaker = fakeBackups()): HsmReconciler {
    return new HsmReconciler({
      ...t.shared, dataDir: t.dir, supervisor: t.supervisor, keyring: t.keyring, directory: t.directory, links: t.links as unknown as HsmCaller,
      files: t.files, backups, peers: { forget: hsmId => { forgotten.push(hsmId) } }
    })
  }

  it('provisions a new cluster\'s first HSM, makes it ACTIVE with its lineage and certificates, and restarts it after an exit, not before its delay', async () => {
    const t = await setup()
    const hsms = hsmReconciler(t)
    await addCluster(t.store, t.keyring, 'cluster-newaaaaaaaa', { state: 'UNINITIALIZED', csrPem: 'the csr' })
    await addHsm(t.store, 'hsm-firstaaaaaa', 'cluster-newaaaaaaaa', { state: 'CREATE_IN_PROGRESS', provisioned: false, port: undefined })
    t.links.answers.set('getHsmInfo', () => ({ lineage: 'lineage-1' }))
    t.links.answers.set('getCertificate', (_to, args) => ({ pem: `cert ${String(args.certType)}` }))
    await hsms.pass(t.shared.clock.now())
    await t.runtime.settled()
    expect(t.supervisor.calls).toEqual(['start hsm-firstaaaaaa provision=true port=0'])
    const provision = JSON.parse(readFileSync(join(t.dir, 'hsms', 'hsm-firstaaaaaa', 'provision.json'), 'utf8')) as { hsmId: string, clusterId: string }
    expect([provision.hsmId, provision.clusterId]).toEqual(['hsm-firstaaaaaa', 'cluster-newaaaaaaaa'])
    const hsm = t.store.state.hsms['hsm-firstaaaaaa']
    expect([hsm?.state, hsm?.port, hsm?.pid, hsm?.provisioned]).toEqual(['ACTIVE', 4000, 1000, true])
    const cluster = t.store.state.clusters['cluster-newaaaaaaaa']
    expect(cluster?.lineage).toBe('lineage-1')
    expect(cluster?.certificates).toEqual({ ClusterCsr: 'the csr', ManufacturerHardwareCertificate: 'cert 2', HsmCertificate: 'cert 16', AwsHardwareCertificate: 'cert 32' })

    // Its process dies: DEGRADED at once, started again only once its delay passed, on its port.
    t.supervisor.pids.delete('hsm-firstaaaaaa')
    await hsms.exited('hsm-firstaaaaaa', { code: 1, signal: null, logTail: '' } satisfies HsmExit)
    expect(t.store.state.hsms['hsm-firstaaaaaa']?.state).toBe('DEGRADED')
    expect(t.links.dropped).toEqual(['hsm-firstaaaaaa'])
    await hsms.pass(t.shared.clock.now())
    await t.runtime.settled()
    expect(t.supervisor.calls).toHaveLength(1)
    t.now.real += t.shared.tuning.hsmRestartDelayMs
    await hsms.pass(t.shared.clock.now())
    await t.runtime.settled()
    expect(t.supervisor.calls[1]).toBe('start hsm-firstaaaaaa provision=true port=4000')
    expect([t.store.state.hsms['hsm-firstaaaaaa']?.state, t.store.state.hsms['hsm-firstaaaaaa']?.failures]).toEqual(['ACTIVE', 0])
  })

  it('halts an HSM whose data cannot be loaded, and deletes one after a backup of it, forgetting its peers', async () => {
    const t = await setup()
    const forgotten: string[] = []
    const backups = fakeBackups()
    const hsms = hsmReconciler(t, forgotten, backups)
    await addCluster(t.store, t.keyring, 'cluster-one')
    await addHsm(t.store, 'hsm-broken', 'cluster-one', { state: 'DEGRADED' })
    t.supervisor.startResult = () => new HsmStartError('the store cannot be loaded', 2)
    await hsms.pass(t.shared.clock.now())
    await t.runtime.settled()
    const broken = t.store.state.hsms['hsm-broken']
    expect([broken?.state, broken?.halted, broken?.stateMessage]).toEqual(['DEGRADED', true, 'The HSM cannot be started: the store cannot be loaded'])
    // Halted: never started again.
    t.now.real += DAY_MS
    await hsms.pass(t.shared.clock.now())
    await t.runtime.settled()
    expect(t.supervisor.calls).toHaveLength(1)

    await addHsm(t.store, 'hsm-going', 'cluster-one', { state: 'DELETE_IN_PROGRESS', pid: 77 })
    t.supervisor.pids.set('hsm-going', 77)
    await hsms.pass(t.shared.clock.now())
    await t.runtime.settled()
    expect(backups.made).toEqual(['cluster-one hsm-removed'])
    expect(t.supervisor.calls.slice(1)).toEqual(['stop hsm-going', 'removeData hsm-going'])
    expect(t.store.state.hsms['hsm-going']?.state).toBe('DELETED')
    expect(forgotten).toEqual(['hsm-going'])
  })
})

describe('the backup reconciler', () => {
  it('exports a backup from a running HSM into its file, records why one failed, and deletes backups past their window or retention', async () => {
    const t = await setup()
    const backups = new BackupReconciler({ ...t.shared, keyring: t.keyring, directory: t.directory, links: t.links as unknown as HsmCaller, files: t.files })
    // Made now: no daily backup is due meanwhile.
    await addCluster(t.store, t.keyring, 'cluster-one', { retentionDays: 7, createdAtMs: t.shared.clock.now() })
    await addHsm(t.store, 'hsm-one', 'cluster-one')
    t.supervisor.pids.set('hsm-one', 1)
    const bytes = fakeBackup('lineage-9')
    t.links.answers.set('exportBackup', () => ({ backup: bytes, createdAtMs: 1, keyCount: 2, userCount: 3 }))
    const made = await backups.make('cluster-one', 'requested')
    await made.done
    const backup = t.store.state.backups[made.backupId]
    expect([backup?.state, backup?.sourceHsmId, backup?.keyCount, backup?.userCount, backup?.lineage]).toEqual(['READY', 'hsm-one', 2, 3, 'lineage-9'])
    expect(new Uint8Array(readFileSync(join(t.dir, backup?.file ?? 'none')))).toEqual(bytes)
    expect(t.store.state.clusters['cluster-one']?.lineage).toBe('lineage-9')

    t.links.answers.set('exportBackup', () => { throw new Error('the HSM is busy') })
    const failed = await backups.make('cluster-one', 'requested')
    await failed.done
    expect(t.store.state.backups[failed.backupId]?.state).toBe('DELETED')
    expect(t.store.state.backups[failed.backupId]?.stateMessage).toBe('The backup could not be made: the HSM is busy')

    // Past its deletion window: DELETED, its file gone. Older than the retention, but the newest: kept.
    await addBackup(t.store, 'backup-pending', { clusterId: 'cluster-one', state: 'PENDING_DELETION', deleteAtMs: t.shared.clock.now() + 10, file: backup?.file ?? '' })
    await backups.pass(t.shared.clock.now())
    expect(t.store.state.backups['backup-pending']?.state).toBe('PENDING_DELETION')
    t.now.real += 10
    await backups.pass(t.shared.clock.now())
    expect(t.store.state.backups['backup-pending']?.state).toBe('DELETED')
    expect(existsSync(join(t.dir, backup?.file ?? 'none'))).toBe(false)
    t.now.real += 8 * DAY_MS
    await addBackup(t.store, 'backup-older', { clusterId: 'cluster-one', createdAtMs: 0 })
    await backups.pass(t.shared.clock.now())
    expect(t.store.state.backups['backup-older']?.stateMessage).toBe("Deleted by the cluster's backup retention policy (7 days).")
    expect(t.store.state.backups[made.backupId]?.state).toBe('READY')
  })

  it('makes a daily backup of an ACTIVE cluster a backup interval after its last one, and waits before it tries a failed one again', async () => {
    const t = await setup()
    const backups = new BackupReconciler({ ...t.shared, keyring: t.keyring, directory: t.directory, links: t.links as unknown as HsmCaller, files: t.files })
    await addCluster(t.store, t.keyring, 'cluster-one', { createdAtMs: t.shared.clock.now() })
    await addHsm(t.store, 'hsm-one', 'cluster-one')
    t.supervisor.pids.set('hsm-one', 1)
    t.links.answers.set('exportBackup', () => { throw new Error('not now') })
    await backups.pass(t.shared.clock.now())
    await t.runtime.settled()
    expect(t.links.ops('exportBackup')).toEqual([])
    t.now.real += DAY_MS
    await backups.pass(t.shared.clock.now())
    await t.runtime.settled()
    expect(t.links.ops('exportBackup')).toEqual(['hsm-one'])
    expect(Object.values(t.store.state.backups).map(b => [b.reason, b.state])).toEqual([['daily', 'DELETED']])
    await backups.pass(t.shared.clock.now())
    await t.runtime.settled()
    expect(t.links.ops('exportBackup')).toHaveLength(1)
    t.now.real += 10_000
    await backups.pass(t.shared.clock.now())
    await t.runtime.settled()
    expect(t.links.ops('exportBackup')).toHaveLength(2)
  })
})

describe('the copy reconciler', () => {
  function copyRequest (requestId: string): Record<string, unknown> {
    return { requestId, sourceRegion: 'us-west-2', sourceBackup: 'backup-abcdefghijk', createdAtMs: 7, hsmType: 'hsm2m.medium', tags: [{ Key: 'k', Value: 'v' }], nextSlot: 4 }
  }

  it('records a copy, takes the bytes asked for while it was recorded, and is READY with them', async () => {
    const t = await setup()
    const copies = new CopyReconciler({ ...t.shared, files: t.files, region: 'us-east-1' })
    const bytes = fakeBackup('lineage-c')
    t.regionAnswer.next = async () => ({ status: 200, headers: {}, body: Buffer.from(bytes) })
    const { BackupId } = await copies.receive(copyRequest('request-1'))
    await t.runtime.settled()
    expect(t.fetches.map(f => `${f.method} ${f.path}`)).toEqual(['GET /_hsmlab/backups/backup-abcdefghijk?copy=request-1'])
    const copy = t.store.state.backups[BackupId]
    expect([copy?.state, copy?.lineage, copy?.sourceRegion, copy?.nextSlot, copy?.copy?.attempts]).toEqual(['READY', 'lineage-c', 'us-west-2', 4, 1])
    expect(copies.recorded('request-1')).toEqual({ status: 200, body: { BackupId } })
    expect(copies.recorded('constructor').status).toBe(404)
    // Asked again for the same request: the same copy, nothing fetched.
    expect((await copies.receive(copyRequest('request-1'))).BackupId).toBe(BackupId)
    expect(t.fetches).toHaveLength(1)
    // Served to another region as it was stored.
    const served = copies.bytes(BackupId)
    expect(served.status).toBe(200)
    expect(new Uint8Array(served.body as Uint8Array)).toEqual(bytes)
  })

  it('ends a copy DELETED when the source backup is gone, removes it when the source abandoned the request, retries otherwise until its window ends', async () => {
    const t = await setup()
    const copies = new CopyReconciler({ ...t.shared, files: t.files, region: 'us-east-1' })
    t.regionAnswer.next = async () => ({ status: 404, headers: {}, body: Buffer.from('{"message":"gone"}') })
    const gone = await copies.receive(copyRequest('request-gone'))
    await t.runtime.settled()
    expect(t.store.state.backups[gone.BackupId]?.stateMessage).toBe('The source backup backup-abcdefghijk no longer exists in us-west-2: gone')
    expect(existsSync(join(t.dir, 'backups', `${gone.BackupId}.backup`))).toBe(false)

    t.regionAnswer.next = async () => ({ status: 410, headers: {}, body: Buffer.from('{"message":"abandoned"}') })
    const abandoned = await copies.receive(copyRequest('request-abandoned'))
    await t.runtime.settled()
    expect(t.store.state.backups[abandoned.BackupId]).toBeUndefined()

    // The source does not answer: attempts go on until the lab clock passes the copy's window.
    t.regionAnswer.next = async () => { throw new Error('connection refused') }
    const asked = t.fetches.length
    const stuck = await copies.receive(copyRequest('request-stuck'))
    await waitFor(() => t.fetches.length >= asked + 3)
    expect(t.store.state.backups[stuck.BackupId]?.state).toBe('CREATE_IN_PROGRESS')
    t.now.real += t.shared.tuning.copyRetryWindowLabSeconds * 1000
    await t.runtime.settled()
    expect(t.store.state.backups[stuck.BackupId]?.stateMessage).toMatch(/did not complete within its retry window of 60 seconds: us-west-2 cannot be reached: connection refused/)
  })

  it('refuses the bytes to an abandoned request, tells its destination to drop the copy, and drops one when told to', async () => {
    const t = await setup()
    const copies = new CopyReconciler({ ...t.shared, files: t.files, region: 'us-east-1' })
    await addBackup(t.store, 'backup-source', { clusterId: 'cluster-one' })
    await t.store.transact(draft => { draft.abandonedCopies = { 'request-x': { region: 'us-west-2', backupId: 'backup-source', atLabMs: t.shared.clock.now() } } })
    expect(copies.bytes('backup-source', 'request-x').status).toBe(410)
    t.regionAnswer.next = async () => ({ status: 200, headers: {}, body: Buffer.from('{"dropped":[]}') })
    copies.pass(t.shared.clock.now())
    await t.runtime.settled()
    expect(t.fetches.map(f => `${f.method} ${f.path}`)).toEqual(['POST /_hsmlab/copies/request-x/cancel'])
    expect(t.store.state.abandonedCopies).toEqual({})

    await addBackup(t.store, 'backup-copied', { state: 'READY', copy: { requestId: 'request-y', deadlineLabMs: 0, attempts: 1 }, file: 'backups/backup-copied.backup' })
    await t.files.store('backup-copied', fakeBackup('l'))
    expect(await copies.cancel('request-y')).toEqual({ dropped: ['backup-copied'] })
    expect(t.store.state.backups['backup-copied']).toBeUndefined()
    expect(existsSync(join(t.dir, 'backups', 'backup-copied.backup'))).toBe(false)
  })
})

describe('the peer reconciler', () => {
  it('sends each running HSM its signed peer list once, again when the set changes, and reports routes delivered', async () => {
    const t = await setup()
    const peers = new PeerReconciler({ ...t.shared, keyring: t.keyring, directory: t.directory, links: t.links as unknown as HsmCaller })
    await addCluster(t.store, t.keyring, 'cluster-one')
    await addHsm(t.store, 'hsm-a', 'cluster-one', { port: 4001 })
    await addHsm(t.store, 'hsm-b', 'cluster-one', { port: 4002, createdAtMs: 1 })
    t.supervisor.pids.set('hsm-a', 1)
    const sent: Array<{ hsmId: string, peers: unknown, version: unknown }> = []
    t.links.answers.set('setPeers', (to, args) => { sent.push({ hsmId: to.hsmId, peers: args.peers, version: args.version }); return {} })
    peers.pass()
    await t.runtime.settled()
    expect(sent.map(s => [s.hsmId, s.peers])).toEqual([['hsm-a', [{ hsmId: 'hsm-a', endpoint: 'ws://127.0.0.1:4001' }]]])
    peers.pass()
    await t.runtime.settled()
    expect(sent).toHaveLength(1)
    // hsm-b runs too, and hsm-a reaches it through a route: both get new lists, under a new version.
    t.supervisor.pids.set('hsm-b', 2)
    await t.store.transact(draft => { draft.hsmRoutes = [{ hsmId: 'hsm-b', from: 'hsm-a', endpoint: 'ws://127.0.0.9:9', upstream: 'ws://127.0.0.1:4002' }] })
    const route = t.store.state.hsmRoutes?.[0]
    if (route === undefined) throw new Error('no route')
    expect(peers.routeStatus(route)).toEqual({ inUse: true, delivered: false })
    peers.pass()
    await t.runtime.settled()
    expect(sent.slice(1).map(s => s.hsmId).sort()).toEqual(['hsm-a', 'hsm-b'])
    expect(sent.find((s, i) => i > 0 && s.hsmId === 'hsm-a')?.peers).toEqual([{ hsmId: 'hsm-a', endpoint: 'ws://127.0.0.1:4001' }, { hsmId: 'hsm-b', endpoint: 'ws://127.0.0.9:9' }])
    expect(Number(sent[1]?.version)).toBeGreaterThan(Number(sent[0]?.version))
    expect(t.store.state.clusters['cluster-one']?.peersVersion).toBe(sent[1]?.version)
    expect(peers.routeStatus(route)).toEqual({ inUse: true, delivered: true })
    peers.forget('hsm-a')
    expect(peers.routeStatus(route)).toEqual({ inUse: true, delivered: false })
  })
})
