/**
 * Goal (issue 9, §4): a client that connects and then sends half an HTTP request, or nothing,
 * cannot hold a socket of an HSM (`hsmlab-hsm`) or of the fault proxy's API
 * (`hsmlab-fault-proxy`) past the listener's headers timeout, while a normal client is served
 * meanwhile. (Before, Node's defaults kept 300 half-sent upgrade requests open for over 65 s.)
 * Method: the real processes with a small bound (`--headers-timeout-ms 500`,
 * `--api-headers-timeout-ms 500`), raw TCP sockets that send part of an upgrade request (or of
 * an API request) and stop, a wait with a deadline for the server to close every one of them,
 * and a real client (the client library, fetch) connecting and working while they hang.
 */
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { HsmConnection } from '@hsmlab/client'
import { FAULT_PROXY_BIN_PATH } from '@hsmlab/fault-proxy'
import { HSM_BIN_PATH, createClusterSecrets, createManufacturerKey, provisionHsm, writeManufacturerKey } from '@hsmlab/hsm'
import { spawnNode, tmpDir, waitFor } from '@hsmlab/testing'
import type { SpawnedProcess } from '@hsmlab/testing'

const BOUND_MS = 500
const SLOW_CLIENTS = 40

/** The first stdout line of a server, parsed, once it is there. */
async function readyLine (proc: SpawnedProcess): Promise<{ port: number }> {
  let exit: number | string | undefined
  void proc.exited.then(code => { exit = code })
  const line = await waitFor(() => {
    if (exit !== undefined) throw new Error(`exited with ${exit} before it was ready: ${proc.stderr()}`)
    return proc.stdout().includes('\n') ? proc.stdout().split('\n')[0] : undefined
  }, { what: 'the ready line', timeoutMs: 15_000 })
  return JSON.parse(String(line)) as { port: number }
}

/** Sockets that send `data` (maybe nothing) and then nothing more; each records when it was closed. */
function slowClients (port: number, data: (i: number) => string): Array<{ socket: Socket, closed: boolean }> {
  return Array.from({ length: SLOW_CLIENTS }, (_, i) => {
    const client = { socket: connect(port, '127.0.0.1'), closed: false }
    onTestFinished(() => { client.socket.destroy() })
    client.socket.on('error', () => {})
    client.socket.on('close', () => { client.closed = true })
    // Read (and drop) what comes, so that the server's close is seen.
    client.socket.resume()
    const text = data(i)
    if (text !== '') client.socket.write(text)
    return client
  })
}

const HALF_UPGRADE = (i: number): string => i % 4 === 0
  ? ''
  : i % 4 === 1
    ? 'GET / HTTP/1.1\r\n'
    : 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n'

describe('issue 9: slow clients', () => {
  it('an HSM closes connections that do not finish their upgrade request in time, and serves others meanwhile', async () => {
    const dir = tmpDir('hsmlab-issue-9-')
    const manufacturerKey = createManufacturerKey()
    const keyFile = join(dir, 'manufacturer.key')
    await writeManufacturerKey(keyFile, manufacturerKey)
    const cluster = createClusterSecrets()
    await provisionHsm({ dataDir: join(dir, 'hsm'), manufacturerKey, slot: 0, cluster })
    const hsm = spawnNode(HSM_BIN_PATH, ['--data-dir', join(dir, 'hsm'), '--manufacturer-key-file', keyFile, '--port', '0', '--headers-timeout-ms', String(BOUND_MS)], { name: 'hsmlab-hsm' })
    const { port } = await readyLine(hsm)

    const started = performance.now()
    const slow = slowClients(port, HALF_UPGRADE)
    // A real client connects and works while they hang.
    const conn = await HsmConnection.connect({ url: `ws://127.0.0.1:${port}`, trustAnchor: cluster.anchor.publicKey })
    onTestFinished(async () => { await conn.close() })
    expect((await conn.call('listUsers', {})).users).toHaveLength(2)

    await waitFor(() => slow.every(c => c.closed), { what: `the HSM to close ${SLOW_CLIENTS} slow clients`, timeoutMs: 10_000 })
    // Closed by the bound, not by something else much later: within the bound and its checks.
    expect(performance.now() - started).toBeLessThan(BOUND_MS * 8)
    // The established connection outlives the bound: it finished its upgrade in time.
    expect((await conn.call('getHsmInfo', {})).userCount).toBe(2)
  })

  it('the fault proxy API closes connections that do not finish a request in time, and serves others meanwhile', async () => {
    const proxy = spawnNode(FAULT_PROXY_BIN_PATH, ['--port', '0', '--api-headers-timeout-ms', String(BOUND_MS)], { name: 'hsmlab-fault-proxy' })
    const { port } = await readyLine(proxy)
    const url = `http://127.0.0.1:${port}`

    const started = performance.now()
    const slow = slowClients(port, i => i % 2 === 0 ? '' : 'POST /proxies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n')
    const created = await fetch(`${url}/proxies`, { method: 'POST', body: JSON.stringify({ name: 'p', listen: '127.0.0.1:0', upstream: '127.0.0.1:9' }) })
    expect(created.status).toBe(201)

    await waitFor(() => slow.every(c => c.closed), { what: `the fault proxy to close ${SLOW_CLIENTS} slow clients`, timeoutMs: 10_000 })
    expect(performance.now() - started).toBeLessThan(BOUND_MS * 8)
    expect((await fetch(`${url}/proxies/p`)).status).toBe(200)
  })
})
