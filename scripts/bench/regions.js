// Issue 3 rows of npm run bench (run.js calls regionRows): regions, copies of backups and clones,
// each beside a baseline measured in the same run.
// - the default lab ready (hsmlab up: three regions, two clones, a synchronisation task) against
//   three bare node processes started;
// - syncKey (extractMaskedObject + insertMaskedObject sameHandle) from primary's HSM 0 to dr's
//   HSM 0 against the same from primary's HSM 0 to its HSM 1, alternating, p50;
// - a source cluster holding 3,300 keys and 1,024 users (built through the client library), its
//   backup copied to us-west-2 (request to READY there) against the same bytes sent over a bare
//   WebSocket between two processes (p50 of 5 each); a clone from the copy to ACTIVE against one
//   HSM process (a copy of the clone's loaded data directory) started to ready; the 3,300 keys
//   synced to a clone (keys/s) against the in-cluster extract + insert rate.
import { spawn } from 'node:child_process'
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { HsmConnection } from '@hsmlab/client'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import { HSM_BIN_PATH } from '@hsmlab/hsm'
import { percentile, msSince } from './stats.js'

const KEYS = 3300
const USERS = 1024

/** Runs `worker(i)` for i in 0..count-1, `inFlight` at a time. */
async function pool (count, inFlight, worker) {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(count, inFlight) }, async () => {
    while (next < count) { const i = next++; await worker(i) }
  }))
}

async function login (url, anchorFile, userType, userName, password) {
  const conn = await HsmConnection.connect({ url, trustAnchor: decodeTrustAnchor(readFileSync(anchorFile, 'utf8')) })
  await conn.call('login', { userType, userName, password })
  return conn
}

async function syncKey (from, to, handle) {
  const { blob } = await from.call('extractMaskedObject', { kind: 'key', handle })
  await to.call('insertMaskedObject', { blob, sameHandle: true })
}

/** Time from spawning a process to its first stdout line. */
function timeToFirstLine (args, children) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint()
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(child)
    let out = ''
    child.stdout.setEncoding('utf8').on('data', chunk => {
      out += chunk
      if (out.includes('\n')) { const ms = msSince(started); child.kill('SIGKILL'); resolve({ ms, line: out.split('\n')[0] }) }
    })
    child.on('exit', code => { if (!out.includes('\n')) reject(new Error(`${args[0]} exited with ${code}`)) })
  })
}

/** Sends `file`'s bytes over a bare WebSocket from a process of its own to this one; ms from spawn to received. */
async function bareWebSocketCopy (file, children) {
  const code = `
    import { readFileSync } from 'node:fs'
    import { WebSocketServer } from 'ws'
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 1 << 30 })
    server.on('connection', socket => { socket.send(readFileSync(${JSON.stringify(file)})) })
    server.on('listening', () => { process.stdout.write(JSON.stringify({ port: server.address().port }) + '\\n') })`
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'], cwd: new URL('.', import.meta.url).pathname })
  children.push(child)
  const port = await new Promise((resolve, reject) => {
    let out = ''
    child.stdout.setEncoding('utf8').on('data', c => { out += c; if (out.includes('\n')) resolve(JSON.parse(out).port) })
    child.on('exit', c => reject(new Error(`bare WebSocket sender exited with ${c}`)))
  })
  const { default: WebSocket } = await import('ws')
  const samples = []
  for (let i = 0; i < 5; i++) {
    const started = process.hrtime.bigint()
    const bytes = await new Promise((resolve, reject) => {
      const socket = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false, maxPayload: 1 << 30 })
      socket.once('message', data => { socket.close(); resolve(data.length) })
      socket.once('error', reject)
    })
    samples.push(msSince(started))
    if (bytes !== readFileSync(file).length) throw new Error('bare WebSocket copy lost bytes')
  }
  child.kill('SIGKILL')
  return percentile(samples, 50)
}

/**
 * @param {{ row: Function, hsmlab: (args: string[]) => string, work: string, labs: string[], children: any[], bareReadyMs: number }} bench
 */
export async function regionRows ({ row, hsmlab, work, labs, children, bareReadyMs }) {
  // The default lab: time to ready, then syncKey within primary and from primary to dr.
  const dir = join(work, 'regions-default')
  const upStarted = process.hrtime.bigint()
  hsmlab(['up', '--dir', dir])
  row('default lab up to ready (3 regions: 2+2+1 HSMs, two clones, a sync task)', msSince(upStarted), bareReadyMs, 'ms', '< 3000 ms (baseline: 3 bare processes)')
  labs.push(dir)
  const status = JSON.parse(hsmlab(['status', '--json', '--dir', dir]))
  const primary = status.regions[0].clusters[0]
  const dr = status.regions[1].clusters[0]
  const p0 = await login(primary.hsms[0].endpoint, primary.trustAnchor, 'CU', 'alice', 'Alice1234')
  const p1 = await login(primary.hsms[1].endpoint, primary.trustAnchor, 'CU', 'alice', 'Alice1234')
  const d0 = await login(dr.hsms[0].endpoint, dr.trustAnchor, 'CU', 'alice', 'Alice1234')
  const inCluster = []
  const crossCluster = []
  for (let i = 0; i < 150; i++) {
    const { handle } = await p0.call('generateSymmetricKey', { keyType: 31, sizeBytes: 32, label: `sync${i}` })
    let start = process.hrtime.bigint()
    await syncKey(p0, p1, handle)
    inCluster.push(msSince(start))
    start = process.hrtime.bigint()
    await syncKey(p0, d0, handle)
    crossCluster.push(msSince(start))
  }
  row('cross-cluster syncKey p50 (primary -> dr)', percentile(crossCluster, 50), percentile(inCluster, 50), 'ms', 'within 1.5x (baseline: in-cluster, primary HSM 0 -> 1)')

  // In-cluster extract + insert rate (64 in flight): the baseline of the bulk sync to a clone.
  const rateKeys = 1000
  const handles = new Array(rateKeys)
  await pool(rateKeys, 64, async i => { handles[i] = (await p0.call('generateSymmetricKey', { keyType: 31, sizeBytes: 32, label: 'rate' })).handle })
  let started = process.hrtime.bigint()
  await pool(rateKeys, 64, i => syncKey(p0, p1, handles[i]))
  const inClusterRate = rateKeys / (msSince(started) / 1000)
  await Promise.all([p0.close(), p1.close(), d0.close()])

  // A source cluster of one HSM (so 1,024 users are made on one HSM, not replicated to peers)
  // with a clone in us-west-2 made at `up` from its activation backup (empty).
  const bigDir = join(work, 'regions-big')
  const topology = join(work, 'regions-big.json')
  writeFileSync(topology, JSON.stringify({
    regions: [
      { name: 'us-east-1', clusters: [{ name: 'src', hsms: 1, activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'bench', password: 'Bench1234' }] }] },
      { name: 'us-west-2', clusters: [{ name: 'dst', hsms: 1, cloneOf: { region: 'us-east-1', cluster: 'src' } }] }
    ]
  }))
  hsmlab(['up', '--topology', topology, '--dir', bigDir])
  labs.push(bigDir)
  const big = JSON.parse(hsmlab(['status', '--json', '--dir', bigDir]))
  const [east, west] = big.regions
  const src = east.clusters[0]
  const dst = west.clusters[0]
  const co = await login(src.hsms[0].directEndpoint, src.trustAnchor, 'CO', 'admin', 'Admin1234')
  const have = (await co.call('listUsers', {})).users.length
  const fillStarted = process.hrtime.bigint()
  await pool(USERS - have, 16, i => co.call('createUser', { userType: 'CU', userName: `user${i}`, password: 'User12345' }))
  await co.close()
  const cu = await login(src.hsms[0].endpoint, src.trustAnchor, 'CU', 'bench', 'Bench1234')
  const keys = new Array(KEYS)
  await pool(KEYS, 64, async i => { keys[i] = (await cu.call('generateSymmetricKey', { keyType: 31, sizeBytes: 32, label: `k${i}` })).handle })
  const fillS = msSince(fillStarted) / 1000
  process.stderr.write(`regions bench: ${USERS - have} users and ${KEYS} keys made in ${fillS.toFixed(1)} s\n`)

  const eastApi = new ControlPlaneClient({ endpoint: east.controlPlane.endpoint, region: 'us-east-1' })
  const westApi = new ControlPlaneClient({ endpoint: west.controlPlane.endpoint, region: 'us-west-2' })
  const backup = await eastApi.createBackup(src.id)
  await eastApi.waitForBackup(backup.BackupId, 'READY', { intervalMs: 10, timeoutMs: 120_000 })
  const backupFile = join(east.controlPlane.dataDir, 'backups', `${backup.BackupId}.backup`)
  const bytes = readFileSync(backupFile).length

  // p50 of 5 copies, as the baseline is the p50 of 5 sends; each copy is told from the earlier
  // ones by its id. DescribeBackups is asked every 1 ms (a poll every 5 ms added 2.5 ms on
  // average of its own; the polls, ~0.6 ms each on us-west-2, did not slow the copy itself).
  const copySamples = []
  let copy
  for (let i = 0; i < 5; i++) {
    const earlier = new Set((await westApi.copiesOf(backup.BackupId)).map(b => b.BackupId))
    started = process.hrtime.bigint()
    await eastApi.copyBackupToRegion({ BackupId: backup.BackupId, DestinationRegion: 'us-west-2' })
    for (;;) {
      copy = (await westApi.copiesOf(backup.BackupId)).find(b => !earlier.has(b.BackupId))
      if (copy?.BackupState === 'READY') break
      if (copy?.BackupState === 'DELETED') throw new Error(`copy failed: ${copy.StateMessage}`)
      await new Promise(resolve => setTimeout(resolve, 1))
    }
    copySamples.push(msSince(started))
  }
  const bareMs = await bareWebSocketCopy(backupFile, children)
  row(`copy-backup-to-region p50, ${KEYS} keys + ${USERS} users (${(bytes / 1024 / 1024).toFixed(2)} MiB; 1-HSM source), to READY`, percentile(copySamples, 50), bareMs, 'ms', 'within 3x (baseline: same bytes, bare WebSocket)')

  // A clone from the copy, to ACTIVE.
  const dstCluster = await westApi.getCluster(dst.id)
  const az = Object.keys(dstCluster.SubnetMapping)[0]
  started = process.hrtime.bigint()
  const clone = await westApi.createCluster({ HsmType: dstCluster.HsmType, SubnetIds: Object.values(dstCluster.SubnetMapping), SourceBackupId: copy.BackupId })
  await westApi.waitForCluster(clone.ClusterId, 'UNINITIALIZED', { intervalMs: 10 })
  const hsm = await westApi.createHsm({ ClusterId: clone.ClusterId, AvailabilityZone: az })
  await westApi.waitForHsm(clone.ClusterId, hsm.HsmId, 'ACTIVE', { intervalMs: 10, timeoutMs: 120_000 })
  await westApi.waitForCluster(clone.ClusterId, 'ACTIVE', { intervalMs: 10 })
  const cloneMs = msSince(started)
  // Baseline: one HSM process started on a copy of the clone HSM's data directory (same content).
  const copyDir = join(work, 'hsm-start-copy')
  cpSync(join(west.controlPlane.dataDir, 'hsms', hsm.HsmId, 'data'), copyDir, { recursive: true })
  rmSync(join(copyDir, 'hsm.pid'), { force: true })
  const hsmStart = await timeToFirstLine([HSM_BIN_PATH, '--data-dir', copyDir, '--manufacturer-key-file', join(bigDir, 'manufacturer.key'), '--host', '127.0.0.1', '--port', '0', '--log-level', 'silent'], children)
  row('clone from the copy to ACTIVE (CreateCluster + CreateHsm)', cloneMs, hsmStart.ms, 'ms', '(baseline: one HSM process, same content, start to ready)')

  // Bulk sync of the 3,300 keys to the clone made at up (it has none of them), 64 in flight.
  const to = await login(dst.hsms[0].endpoint, dst.trustAnchor, 'CU', 'bench', 'Bench1234')
  started = process.hrtime.bigint()
  await pool(KEYS, 64, i => syncKey(cu, to, keys[i]))
  const syncRate = KEYS / (msSince(started) / 1000)
  row(`bulk syncKey of ${KEYS} keys to a clone (64 in flight)`, syncRate, inClusterRate, 'keys/s', '>= 2000 keys/s (baseline: in-cluster extract + insert)')
  await Promise.all([cu.close(), to.close()])
}
