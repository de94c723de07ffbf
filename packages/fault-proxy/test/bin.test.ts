/**
 * `hsmlab-fault-proxy` as a process (through its committed launcher) and in process (`main`):
 * the ready line, `--config` populated at start, Toxiproxy's single-dash flags, bad arguments.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { spawnNode, tmpDir } from '@hsmlab/testing'
import { main } from '../src/bin/fault-proxy.js'
import { FaultClient } from '../src/index.js'
import { connectTo, listenPort, roundTrip, startUpstream, waitFor } from './helpers.js'

const LAUNCHER = fileURLToPath(new URL('../bin/fault-proxy.js', import.meta.url))

interface Ready { event: string, pid: number, port: number, seed: number }

describe('hsmlab-fault-proxy', () => {
  it('prints one ready line, populates --config, serves the API, and exits 0 on SIGTERM', async () => {
    const upstream = await startUpstream()
    const config = join(tmpDir('hsmlab-fault-proxy-'), 'proxies.json')
    await writeFile(config, JSON.stringify([
      { name: 'us-east-1/primary/hsm-0', listen: '127.0.0.1:0', upstream: upstream.address, hsmlab: { groups: ['cluster-a'] } }
    ]))
    const child = spawnNode(LAUNCHER, ['--host', '127.0.0.1', '--port', '0', '--seed', '77', '--config', config], { name: 'fault-proxy' })
    const line = await waitFor(() => child.stdout().split('\n')[0]?.includes('"ready"') === true ? child.stdout().split('\n')[0] : undefined, { what: 'ready line' })
    const ready = JSON.parse(line ?? '') as Ready
    expect(ready).toEqual({ event: 'ready', pid: child.child.pid, port: ready.port, seed: 77 })
    const client = new FaultClient({ url: `http://127.0.0.1:${ready.port}` })
    const proxy = await client.getProxy('us-east-1/primary/hsm-0')
    expect(proxy.hsmlab).toEqual({ groups: ['cluster-a'] })
    await roundTrip(await connectTo(listenPort(proxy.listen)), 'through the bin')
    expect(await client.seed()).toBe(77)
    child.child.kill('SIGTERM')
    expect(await child.exited).toBe(0)
    expect(child.stdout().trim().split('\n')).toHaveLength(1)
  })

  it('reads Toxiproxy\'s single-dash flags, and says what is wrong with bad ones', async () => {
    let out = ''
    let err = ''
    const io = { stdout: (t: string) => { out += t }, stderr: (t: string) => { err += t } }
    let stop: () => void = () => {}
    const stopRequested = new Promise<void>(resolve => { stop = resolve })
    const running = main(['-host', '127.0.0.1', '-port', '0'], { ...io, stopRequested })
    const ready = await waitFor(() => out.includes('\n') ? JSON.parse(out) as Ready : undefined, { what: 'ready line' })
    expect(Number.isSafeInteger(ready.seed)).toBe(true)
    stop()
    expect(await running).toBe(0)

    expect(await main(['--seed', '1.5'], io)).toBe(1)
    expect(err).toContain('--seed must be an integer')
    expect(await main(['--port', '0', '--config', '/nonexistent/proxies.json'], io)).toBe(1)
    expect(err).toContain('[FAULT_ERR_CONFIG]')
    expect(await main(['--bogus'], io)).toBe(1)
    expect(err).toContain('usage: hsmlab-fault-proxy')
  })
})
