/**
 * Slow clients (issue 9, §4): a connection that sends half a request (headers cut short, a body
 * shorter than its content-length, an upgrade request never finished) is closed by the control
 * plane's API and by an HSM host's API once its bound (`requestHeadersTimeoutMs`,
 * `requestReceiveTimeoutMs`, set small here) has passed, while whole requests are answered
 * meanwhile. Before the bounds, such connections stayed open for over a minute.
 */
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { describe, expect, it, onTestFinished } from 'vitest'
import { tmpDir, waitFor } from '@hsmlab/testing'
import { ControlPlaneClient, startHsmHost } from '../src/index.js'
import { manufacturerKeyFile, startTestControlPlane } from './helpers.js'

const HEADERS_MS = 300
const RECEIVE_MS = 600
const CONNECTIONS = 30

/** The ways to send half a request. */
const HALF_REQUESTS = [
  'POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: BaldrApiService.DescribeClusters\r\n',
  'GET /hsm HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n',
  'POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 100\r\n\r\n{"Filt',
  'P'
]

/** Opens `count` connections to `port` that each send half a request; resolves with them once all are open. */
async function halfRequests (port: number, count: number): Promise<Array<{ socket: Socket, closedAt?: number }>> {
  const out: Array<{ socket: Socket, closedAt?: number }> = []
  await Promise.all(Array.from({ length: count }, async (_, i) => {
    const socket = connect(port, '127.0.0.1')
    const entry: { socket: Socket, closedAt?: number } = { socket }
    out.push(entry)
    onTestFinished(() => { socket.destroy() })
    socket.on('error', () => {})
    // Read what the server sends (its 408), so that its close is seen here.
    socket.resume()
    socket.on('close', () => { entry.closedAt = Date.now() })
    await new Promise<void>(resolve => { socket.once('connect', resolve) })
    socket.write(HALF_REQUESTS[i % HALF_REQUESTS.length] ?? '')
  }))
  return out
}

async function expectClosedInTime (port: number, whole: () => Promise<unknown>): Promise<void> {
  const openedAt = Date.now()
  const sockets = await halfRequests(port, CONNECTIONS)
  // Whole requests are answered while the half ones wait.
  await whole()
  await waitFor(() => sockets.every(s => s.closedAt !== undefined) ? true : undefined,
    { timeoutMs: 10_000, intervalMs: 20, what: `the ${CONNECTIONS} half-sent requests closed by the server` })
  const longest = Math.max(...sockets.map(s => (s.closedAt ?? Infinity) - openedAt))
  // Each is closed within its bound and the checking interval (a quarter of the shorter bound), with room for a busy machine.
  expect(longest).toBeLessThan(RECEIVE_MS * 1.25 + 1_500)
  await whole()
}

describe('slow clients', () => {
  it('the control plane closes half-sent requests within its bounds and keeps serving', async () => {
    const cp = await startTestControlPlane('us-east-1', { tuning: { requestHeadersTimeoutMs: HEADERS_MS, requestReceiveTimeoutMs: RECEIVE_MS } })
    const api = new ControlPlaneClient({ endpoint: cp.url, region: 'us-east-1' })
    await expectClosedInTime(cp.port, async () => { expect((await api.describeClusters()).Clusters).toEqual([]) })
  })

  it('an HSM host closes half-sent requests within its bounds and keeps serving', async () => {
    const host = await startHsmHost({
      address: '127.0.0.1',
      dataDir: tmpDir('hsmlab-hsm-host-'),
      manufacturerKeyFile: await manufacturerKeyFile(),
      tuning: { requestHeadersTimeoutMs: HEADERS_MS, requestReceiveTimeoutMs: RECEIVE_MS }
    })
    onTestFinished(async () => { await host.stop() })
    await expectClosedInTime(host.port, async () => {
      const report = await (await fetch(`${host.url}/hsm`)).json() as { state: string }
      expect(report.state).toBe('none')
    })
  })
})
