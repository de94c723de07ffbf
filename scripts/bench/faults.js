// Issue 4 rows of npm run bench (run.js calls faultRows): what the fault layer costs when no fault
// is set, each beside a baseline measured in the same run.
// - a command round trip through the HSM's client link (its idle fault proxy: `endpoint` of
//   `hsmlab status --json`) against the same command on the HSM's own address (`directEndpoint`),
//   alternating batches so a noisy machine moves both;
// - bytes per second through an idle proxy of the lab's fault proxy against direct (the logic of
//   fault-proxy.js, tcp.js: 64 MiB one way to a sink in its own process, median of 5, direct and
//   proxied in turns), and the fault proxy process's CPU time per MiB it moved beside the sink's
//   per MiB received directly (steadier than throughput on a busy machine);
// - one shipped scenario run end to end (the one with the shortest workload) against the default
//   lab's up + down.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { HsmConnection } from '@hsmlab/client'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import { FaultClient } from '@hsmlab/fault-proxy'
import { percentile, msSince } from './stats.js'
import { compareThroughput, pingPong, open, startProcess, throughput } from './tcp.js'

const PEERS = fileURLToPath(new URL('./tcp-peers.js', import.meta.url))
const SCENARIOS = fileURLToPath(new URL('../scenarios/', import.meta.url))

/**
 * @param {{ row: Function, hsmlab: (args: string[]) => string, HSMLAB: string, work: string, labs: string[], children: any[] }} bench
 */
export async function faultRows ({ row, hsmlab, HSMLAB, work, labs, children }) {
  // The default lab (fault layer on, the default), up and later down, both timed.
  const dir = join(work, 'faults-default')
  const upStarted = process.hrtime.bigint()
  hsmlab(['up', '--dir', dir])
  const upMs = msSince(upStarted)
  labs.push(dir)
  let downMs = NaN
  try {
    const status = JSON.parse(hsmlab(['status', '--json', '--dir', dir]))
    const primary = status.regions[0].clusters[0]
    const anchor = decodeTrustAnchor(readFileSync(primary.trustAnchor, 'utf8'))
    const hsm = primary.hsms[0]
    if (hsm.endpoint === hsm.directEndpoint) throw new Error('the default lab has no fault layer: endpoint equals directEndpoint')

    const connect = async url => {
      const conn = await HsmConnection.connect({ url, trustAnchor: anchor })
      await conn.call('login', { userType: 'CU', userName: 'alice', password: 'Alice1234' })
      return conn
    }
    const proxied = await connect(hsm.endpoint)
    const direct = await connect(hsm.directEndpoint)
    const { handle } = await proxied.call('generateSymmetricKey', { keyType: 31, sizeBytes: 32, label: 'rtt' })
    const timed = async (conn, count, into) => {
      for (let i = 0; i < count; i++) {
        const start = process.hrtime.bigint()
        await conn.call('getKeyInfo', { handle })
        into.push(Number(process.hrtime.bigint() - start) / 1e3)
      }
    }
    await timed(proxied, 200, [])
    await timed(direct, 200, [])
    const proxiedUs = []
    const directUs = []
    for (let done = 0; done < 2000; done += 250) {
      await timed(direct, 250, directUs)
      await timed(proxied, 250, proxiedUs)
    }
    await proxied.close()
    await direct.close()
    const p50 = percentile(proxiedUs, 50)
    const base50 = percentile(directUs, 50)
    row('idle proxy: command round trip p50 (getKeyInfo)', p50, base50, 'µs', `added < 100 µs (added ${(p50 - base50).toFixed(1)} µs; baseline: directEndpoint)`)
    row('idle proxy: command round trip p99 (getKeyInfo)', percentile(proxiedUs, 99), percentile(directUs, 99), 'µs', '')

    // Throughput through an idle proxy of the lab's own fault proxy.
    const peers = await startProcess(PEERS, [], children)
    const faults = new FaultClient({ url: status.faults.endpoint })
    const made = await faults.createProxy({ name: 'bench/sink', listen: '127.0.0.1:0', upstream: `127.0.0.1:${peers.sinkPort}` })
    const sinkProxy = Number(made.listen.slice(made.listen.lastIndexOf(':') + 1))
    const mib = 64
    await throughput(peers.sinkPort, 16)
    await throughput(sinkProxy, 16)
    const t = await compareThroughput({ port: peers.sinkPort, pid: peers.pid }, { port: sinkProxy, pid: status.faults.pid }, mib, 5)
    row(`idle proxy: throughput, ${mib} MiB one way (median of 5)`, percentile(t.proxiedMiBs, 50), percentile(t.directMiBs, 50), 'MiB/s', `>= 0.50x (baseline: direct; median of the pairs: ${percentile(t.pairs, 50).toFixed(2)}x)`)
    row('idle proxy: CPU per MiB moved (fault proxy process)', percentile(t.proxyMsPerMiB, 50), percentile(t.sinkMsPerMiB, 50), 'ms/MiB', '(baseline: the sink, per MiB received directly)')
    // Keep the raw TCP round trip too: it isolates the proxy from the HSM.
    const tcpDirect = await open(peers.echoPort)
    const tcpProxied = await open(Number((await faults.createProxy({ name: 'bench/echo', listen: '127.0.0.1:0', upstream: `127.0.0.1:${peers.echoPort}` })).listen.split(':').pop()))
    await pingPong(tcpDirect, 1000)
    await pingPong(tcpProxied, 1000)
    const tcpD = []
    const tcpP = []
    for (let i = 0; i < 5; i++) { tcpD.push(...await pingPong(tcpDirect, 1000)); tcpP.push(...await pingPong(tcpProxied, 1000)) }
    tcpDirect.destroy()
    tcpProxied.destroy()
    row('idle proxy: 64 B TCP ping-pong p50', percentile(tcpP, 50), percentile(tcpD, 50), 'µs', `added < 100 µs (added ${(percentile(tcpP, 50) - percentile(tcpD, 50)).toFixed(1)} µs)`)
  } finally {
    const downStarted = process.hrtime.bigint()
    const down = spawnSync(process.execPath, [HSMLAB, 'down', '--dir', dir], { encoding: 'utf8', timeout: 60_000 })
    if (down.status === 0) downMs = msSince(downStarted)
  }

  // The shipped scenario with the shortest workload, end to end, against the default lab's up + down.
  const scenarios = readdirSync(SCENARIOS).filter(f => f.endsWith('.json')).sort()
    .map(f => ({ f, durationMs: JSON.parse(readFileSync(join(SCENARIOS, f), 'utf8')).durationMs }))
    .sort((a, b) => a.durationMs - b.durationMs)
  const fastest = scenarios[0]
  const started = process.hrtime.bigint()
  const run = spawnSync(process.execPath, [HSMLAB, 'scenario', 'run', join(SCENARIOS, fastest.f), '--seed', '1'], { cwd: work, encoding: 'utf8', timeout: 180_000 })
  if (run.status !== 0) throw new Error(`hsmlab scenario run ${fastest.f} failed (${run.status}):\n${run.stdout}\n${run.stderr}`)
  row(`scenario run end to end (${fastest.f.replace('.json', '')}, seed 1, workload ${fastest.durationMs / 1000} s)`, msSince(started) / 1000, (upMs + downMs) / 1000, 's', '(baseline: default lab up + down)')
}
