// Issue 12 rows of npm run bench (run.js calls syncRows): synchronisation tasks, each beside a
// baseline measured in the same run.
// - a new key on the primary to SYNCHRONIZED on 3 replicas (us-east-1/primary, 3 HSMs; replicas in
//   eu-west-1, us-west-2, ap-southeast-2), p50 and p99, against the in-cluster replication lag of
//   the same primary (a key stored on all 3 HSMs against on 1, as run.js measures it);
// - after a 10 s partition of one replica's region (keys made meanwhile), time from the heal to
//   every record SYNCHRONIZED, against the same keys synchronised with no fault;
// - the initial synchronisation of 3,300 keys and 1,000 users to a new replica (resources/s),
//   against the rate those keys were made at on the primary (64 in flight);
// - `hsmlab sync status --json` with at least 10,000 records (12,900: 3,300 keys and 1,000 users
//   on three replicas; an HSM holds 3,300 keys and 1,024 users at most), against a bare node
//   process started.
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { HsmConnection } from '@hsmlab/client'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import { percentile, msSince } from './stats.js'

const KEYS = 3300
const USERS = 1000
// At least 10,000 records: the 3,300 keys (an HSM's most) and 1,000 users (it holds 1,024 users
// at most) on each of three replicas, 12,900.
const RECORDS = 3 * (KEYS + USERS)

async function pool (count, inFlight, worker) {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(count, inFlight) }, async () => {
    while (next < count) { const i = next++; await worker(i) }
  }))
}

async function login (hsm, anchorFile, userType, userName, password) {
  const conn = await HsmConnection.connect({ url: hsm.endpoint, trustAnchor: decodeTrustAnchor(readFileSync(anchorFile, 'utf8')) })
  await conn.call('login', { userType, userName, password })
  return conn
}

/** Polls until `done()` (no sleep: the time it answers is the measure); throws after `timeoutMs`. */
async function until (what, done, timeoutMs = 60_000) {
  const started = process.hrtime.bigint()
  while (!(await done())) {
    if (msSince(started) > timeoutMs) throw new Error(`bench: ${what} did not happen within ${timeoutMs} ms`)
  }
}

function up (hsmlab, work, labs, name, topology) {
  const dir = join(work, name)
  const file = join(work, `${name}.json`)
  writeFileSync(file, JSON.stringify(topology))
  hsmlab(['up', '--topology', file, '--dir', dir])
  labs.push(dir)
  return { dir, status: JSON.parse(hsmlab(['status', '--json', '--dir', dir])) }
}

const PRIMARY = (hsms, sync) => ({
  name: 'primary', hsms, activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'bench', password: 'Bench1234' }], ...(sync === undefined ? {} : { sync })
})
const CLONE = { name: 'replica', hsms: 1, cloneOf: { region: 'us-east-1', cluster: 'primary' } }

/**
 * @param {{ row: Function, hsmlab: (args: string[]) => string, HSMLAB: string, work: string, labs: string[] }} bench
 */
export async function syncRows ({ row, hsmlab, HSMLAB, work, labs }) {
  // A primary of 3 HSMs with a replica in each of three other regions, under one task.
  const replicaRegions = ['eu-west-1', 'us-west-2', 'ap-southeast-2']
  const three = up(hsmlab, work, labs, 'sync-three', {
    regions: [
      { name: 'us-east-1', clusters: [PRIMARY(3, { replicas: replicaRegions.map(region => ({ region, cluster: 'replica', type: 'KEYS_AND_USERS' })), keys: 'all', users: ['bench'] })] },
      ...replicaRegions.map(name => ({ name, clusters: [CLONE] }))
    ]
  })
  const primary = three.status.regions[0].clusters[0]
  const api = new ControlPlaneClient({ endpoint: three.status.regions[0].controlPlane.endpoint, region: 'us-east-1' })
  const c0 = await login(primary.hsms[0], primary.trustAnchor, 'CU', 'bench', 'Bench1234')
  const synchronizedOn = async handle => (await api.allSyncResources({ ClusterId: primary.id, ResourceType: 'KEY', Status: 'SYNCHRONIZED' }))
    .filter(r => r.ResourceId === String(handle)).length
  await until('the user bench SYNCHRONIZED on 3 replicas', async () =>
    (await api.allSyncResources({ ClusterId: primary.id, ResourceType: 'USER', Status: 'SYNCHRONIZED' })).length === 3)

  // In-cluster replication lag of this primary (run.js's method): minServers 3 against 1.
  const lags = []
  for (let i = 0; i < 100; i++) {
    const one = process.hrtime.bigint()
    await c0.call('generateSymmetricKey', { keyType: 31, sizeBytes: 32, label: `lag${i}`, minServers: 1 })
    const oneMs = msSince(one)
    const all = process.hrtime.bigint()
    await c0.call('generateSymmetricKey', { keyType: 31, sizeBytes: 32, label: `lag${i}`, minServers: 3 })
    lags.push(msSince(all) - oneMs)
  }
  await until('the lag keys SYNCHRONIZED', async () => (await api.allSyncResources({ ClusterId: primary.id, Status: 'SYNCHRONIZED' })).length === 3 * 201)
  const toSynchronized = []
  for (let i = 0; i < 40; i++) {
    const started = process.hrtime.bigint()
    const { handle } = await c0.call('generateSymmetricKey', { keyType: 31, sizeBytes: 32, label: `task${i}` })
    await until(`key ${handle} SYNCHRONIZED on 3 replicas`, async () => await synchronizedOn(handle) === 3)
    toSynchronized.push(msSince(started))
  }
  const lagP50 = percentile(lags, 50)
  row('new key to SYNCHRONIZED on 3 replicas p50 (idle lab)', percentile(toSynchronized, 50), lagP50, 'ms', 'p50 within 3x (baseline: in-cluster replication lag p50)')
  row('new key to SYNCHRONIZED on 3 replicas p99', percentile(toSynchronized, 99), percentile(lags, 99), 'ms', '(baseline: in-cluster replication lag p99)')

  // 20 keys synchronised with no fault, then 20 made while eu-west-1 is partitioned for 10 s.
  const allSynchronized = async () => (await api.allSyncResources({ ClusterId: primary.id })).every(r => r.Status === 'SYNCHRONIZED')
  let started = process.hrtime.bigint()
  for (let i = 0; i < 20; i++) await c0.call('generateSymmetricKey', { keyType: 31, sizeBytes: 32, label: `calm${i}` })
  await until('the calm keys SYNCHRONIZED', allSynchronized)
  const calmMs = msSince(started)
  hsmlab(['fault', 'partition', 'eu-west-1', '--dir', three.dir])
  const partitioned = process.hrtime.bigint()
  for (let i = 0; i < 20; i++) await c0.call('generateSymmetricKey', { keyType: 31, sizeBytes: 32, label: `cut${i}` })
  await until('a FAILED record', async () => (await api.allSyncResources({ ClusterId: primary.id, Status: 'FAILED' })).length > 0)
  // The partition lasts 10 s: this wait is the scenario being measured, not a test's sleep.
  await new Promise(resolve => setTimeout(resolve, Math.max(0, 10_000 - msSince(partitioned))))
  hsmlab(['fault', 'heal', '--dir', three.dir])
  started = process.hrtime.bigint()
  await until('every record SYNCHRONIZED after the heal', allSynchronized)
  row('after a 10 s partition heals: every record SYNCHRONIZED', msSince(started), calmMs, 'ms', '< 2000 ms + one backoff step (baseline: 20 keys with no fault)')
  await c0.close()

  // Initial synchronisation: a primary of one HSM filled with 3,300 keys and 1,000 users, then a
  // task to its clone (made at `up`, empty) with every key and those users in scope.
  const fill = up(hsmlab, work, labs, 'sync-initial', {
    regions: [{ name: 'us-east-1', clusters: [PRIMARY(1)] }, { name: 'eu-west-1', clusters: [CLONE] }, { name: 'us-west-2', clusters: [CLONE] }, { name: 'ap-southeast-2', clusters: [CLONE] }]
  })
  const fillPrimary = fill.status.regions[0].clusters[0]
  const fillReplica = fill.status.regions[1].clusters[0]
  const fillApi = new ControlPlaneClient({ endpoint: fill.status.regions[0].controlPlane.endpoint, region: 'us-east-1' })
  const cu = await login(fillPrimary.hsms[0], fillPrimary.trustAnchor, 'CU', 'bench', 'Bench1234')
  const co = await login(fillPrimary.hsms[0], fillPrimary.trustAnchor, 'CO', 'admin', 'Admin1234')
  started = process.hrtime.bigint()
  await pool(KEYS, 64, i => cu.call('generateSymmetricKey', { keyType: 31, sizeBytes: 32, label: `k${i}` }))
  const makeRate = KEYS / (msSince(started) / 1000)
  const users = Array.from({ length: USERS }, (_, i) => `user${i}`)
  await pool(USERS, 64, i => co.call('createUser', { userType: 'CU', userName: users[i], password: 'Password1' }))
  started = process.hrtime.bigint()
  await fillApi.createSyncTask({ ClusterId: fillPrimary.id, Replicas: [{ ClusterId: fillReplica.id, Region: 'eu-west-1', SyncType: 'KEYS_AND_USERS' }], Scope: { Keys: { All: true }, Users: users } })
  const synchronizedCount = async () => (await fillApi.allSyncResources({ ClusterId: fillPrimary.id, Status: 'SYNCHRONIZED' })).length
  await until(`${KEYS + USERS} resources SYNCHRONIZED`, async () => await synchronizedCount() === KEYS + USERS, 120_000)
  row(`initial synchronisation of ${KEYS} keys + ${USERS} users to a new replica`, (KEYS + USERS) / (msSince(started) / 1000), makeRate, 'resources/s', '>= 2000/s (baseline: the keys made on the primary, 64 in flight)')

  // At least 10,000 records: the second and third replicas; then `hsmlab sync status --json`.
  for (const r of [2, 3]) {
    const replica = fill.status.regions[r]
    await fillApi.associateSyncReplica({ ClusterId: fillPrimary.id, ReplicaClusterId: replica.clusters[0].id, ReplicaRegion: replica.name, SyncType: 'KEYS_AND_USERS' })
  }
  await until(`${RECORDS} records SYNCHRONIZED`, async () => await synchronizedCount() === RECORDS, 120_000)
  await Promise.all([cu.close(), co.close()])
  const statusRuns = []
  const bare = []
  for (let i = 0; i < 7; i++) {
    let t = process.hrtime.bigint()
    const run = spawnSync(process.execPath, [HSMLAB, 'sync', 'status', 'us-east-1/primary', '--json', '--dir', fill.dir], { encoding: 'utf8', maxBuffer: 64 << 20 })
    statusRuns.push(msSince(t))
    if (run.status !== 0 || JSON.parse(run.stdout).resources.length !== RECORDS) throw new Error(`hsmlab sync status failed (${run.status}): ${run.stderr}`)
    t = process.hrtime.bigint()
    spawnSync(process.execPath, ['-e', '0'])
    bare.push(msSince(t))
  }
  row(`hsmlab sync status --json, ${RECORDS.toLocaleString('en')} records (p50 of 7)`, percentile(statusRuns, 50), percentile(bare, 50), 'ms', '< 200 ms (baseline: a bare node process)')
}
