// The fault proxy's cost with no toxic, beside a direct connection measured in the same run:
// round-trip time of a 64-byte ping-pong over one connection (p50, p99), one-way throughput
// of 128 MiB written in 64 KiB chunks (median of 5), and the proxy process's CPU time per MiB
// it moved beside the sink's per MiB it received directly (the proxy reads and writes each
// byte, the sink only reads it). The peers and the proxy each run in their own process (the
// proxy through its bin, as a lab runs it); samples alternate between direct and proxied, in
// turns, so that a noisy machine moves both. On a busy machine throughput swings by 2x from run
// to run; CPU per MiB barely moves, so compare versions of the proxy on it.
//
//   node scripts/bench/fault-proxy.js [--rounds 20000] [--mib 128]   (after npm run build)
//
// Goals (the issue's): added p50 round trip < 100 µs; proxied throughput ≥ 50% of direct.
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { FaultClient } from '@hsmlab/fault-proxy'
import { percentile, printTable } from './stats.js'
import { compareThroughput, open, pingPong, startProcess, throughput } from './tcp.js'

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '20000' }, mib: { type: 'string', default: '128' } } })
const ROUNDS = Number(values.rounds)
const MIB = Number(values.mib)
const BIN = fileURLToPath(new URL('../../packages/fault-proxy/bin/fault-proxy.js', import.meta.url))
const PEERS = fileURLToPath(new URL('./tcp-peers.js', import.meta.url))
const rows = []
const children = []

function row (measure, value, baseline, unit, goal) {
  rows.push({ measure, value, baseline, unit, goal })
}

async function main () {
  const peers = await startProcess(PEERS, [], children)
  const ready = await startProcess(BIN, ['--host', '127.0.0.1', '--port', '0'], children)
  const faults = new FaultClient({ url: `http://127.0.0.1:${ready.port}` })
  const portOf = proxy => Number(proxy.listen.slice(proxy.listen.lastIndexOf(':') + 1))
  const echoProxy = portOf(await faults.createProxy({ name: 'bench/echo', listen: '127.0.0.1:0', upstream: `127.0.0.1:${peers.echoPort}` }))
  const sinkProxy = portOf(await faults.createProxy({ name: 'bench/sink', listen: '127.0.0.1:0', upstream: `127.0.0.1:${peers.sinkPort}` }))

  const direct = await open(peers.echoPort)
  const proxied = await open(echoProxy)
  await pingPong(direct, 2000)
  await pingPong(proxied, 2000)
  const directUs = []
  const proxiedUs = []
  const batch = 1000
  for (let done = 0; done < ROUNDS; done += batch) {
    directUs.push(...await pingPong(direct, batch))
    proxiedUs.push(...await pingPong(proxied, batch))
  }
  direct.destroy()
  proxied.destroy()
  const p50 = percentile(proxiedUs, 50)
  const base50 = percentile(directUs, 50)
  row('round trip p50, 64 B ping-pong', p50, base50, 'µs', `added < 100 µs (added ${(p50 - base50).toFixed(1)} µs)`)
  row('round trip p99, 64 B ping-pong', percentile(proxiedUs, 99), percentile(directUs, 99), 'µs', '')

  await throughput(peers.sinkPort, 32)
  await throughput(sinkProxy, 32)
  const t = await compareThroughput({ port: peers.sinkPort, pid: peers.pid }, { port: sinkProxy, pid: ready.pid }, MIB, 5)
  // The median of the pairs (each proxied run over the direct one beside it) is steadier than the
  // ratio of the two medians when the machine's load changes during the run.
  row(`throughput, ${MIB} MiB one way (median of 5)`, percentile(t.proxiedMiBs, 50), percentile(t.directMiBs, 50), 'MiB/s', `>= 0.50x direct (median of the pairs: ${percentile(t.pairs, 50).toFixed(2)}x)`)
  row('CPU per MiB: proxy process (direct: the sink)', percentile(t.proxyMsPerMiB, 50), percentile(t.sinkMsPerMiB, 50), 'ms/MiB', '')
}

try {
  await main()
  printTable(rows, 'proxied', 'direct')
} catch (err) {
  printTable(rows, 'proxied', 'direct')
  console.error(err)
  process.exitCode = 1
} finally {
  for (const child of children) child.kill('SIGKILL')
}
