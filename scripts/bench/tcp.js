// TCP helpers of the fault-proxy benchmarks (fault-proxy.js, faults.js): peers in their own
// process, 64-byte ping-pong round trips, one-way throughput to a sink, and the CPU time a
// process spent meanwhile (a figure that a busy machine moves much less than throughput).
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { connect } from 'node:net'

/** Starts `node script ...args`, records the child in `children`, resolves with its first stdout line (JSON). */
export function startProcess (script, args, children) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(child)
    let out = ''
    child.stdout.setEncoding('utf8').on('data', chunk => {
      out += chunk
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]))
    })
    child.on('exit', code => { reject(new Error(`${script} exited with ${code}`)) })
  })
}

export function open (port) {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, noDelay: true })
    socket.once('connect', () => resolve(socket))
    socket.once('error', reject)
  })
}

/** `count` sequential round trips of `size` bytes; returns each one's time in microseconds. */
export async function pingPong (socket, count, size = 64) {
  const payload = Buffer.alloc(size, 1)
  const samples = new Array(count)
  let received = 0
  let started = 0n
  let i = 0
  await new Promise(resolve => {
    const onData = chunk => {
      received += chunk.length
      if (received < size) return
      received -= size
      samples[i++] = Number(process.hrtime.bigint() - started) / 1e3
      if (i === count) {
        socket.off('data', onData)
        resolve()
        return
      }
      started = process.hrtime.bigint()
      socket.write(payload)
    }
    socket.on('data', onData)
    started = process.hrtime.bigint()
    socket.write(payload)
  })
  return samples
}

/** Writes `mib` MiB to the sink and waits for its answer; returns MiB/s. */
export async function throughput (port, mib) {
  const socket = await open(port)
  const chunk = Buffer.alloc(64 * 1024, 7)
  const total = mib * 16
  const started = process.hrtime.bigint()
  const answered = new Promise(resolve => {
    let text = ''
    socket.setEncoding('utf8').on('data', t => { text += t })
    socket.on('end', () => resolve(text))
  })
  for (let i = 0; i < total; i++) {
    if (!socket.write(chunk)) await new Promise(resolve => socket.once('drain', resolve))
  }
  socket.end()
  const answer = await answered
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  socket.destroy()
  if (answer !== `done ${mib * 1024 * 1024}`) throw new Error(`sink answered '${answer}'`)
  return mib / seconds
}

/**
 * One-way throughput direct (to the sink at `direct.port`) and through a proxy (`proxied.port`,
 * its process `proxied.pid`), `rounds` times each, in turns (direct first, then proxied first,
 * and so on), so that a change of the machine's load moves both. Returns MiB/s of each run,
 * each proxied run over the direct one beside it, and the CPU time per MiB of the sink's process
 * (direct) and of the proxy's process (proxied), in milliseconds.
 */
export async function compareThroughput (direct, proxied, mib, rounds) {
  const result = { directMiBs: [], proxiedMiBs: [], pairs: [], sinkMsPerMiB: [], proxyMsPerMiB: [] }
  const timed = async (target, into, cpuInto) => {
    const before = cpuMs(target.pid)
    into.push(await throughput(target.port, mib))
    cpuInto.push((cpuMs(target.pid) - before) / mib)
  }
  for (let i = 0; i < rounds; i++) {
    const runDirect = () => timed(direct, result.directMiBs, result.sinkMsPerMiB)
    const runProxied = () => timed(proxied, result.proxiedMiBs, result.proxyMsPerMiB)
    if (i % 2 === 0) { await runDirect(); await runProxied() } else { await runProxied(); await runDirect() }
    result.pairs.push(result.proxiedMiBs[i] / result.directMiBs[i])
  }
  return result
}

/** CPU time a process has spent so far, every thread, in milliseconds (Linux: /proc/<pid>/task/<tid>/schedstat). */
export function cpuMs (pid) {
  let ns = 0
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0])
    } catch {
      // A thread that ended meanwhile.
    }
  }
  return ns / 1e6
}
