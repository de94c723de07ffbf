// hsmlab's routes to HSMs (HsmlabSetHsmRoutes / HsmlabDescribeHsmRoutes) on an in-process control
// plane with real HSM processes: what the operation accepts and refuses, that a route is used only
// while its HSM is at its Upstream, and that the control plane's own calls follow a route from
// `control-plane` (through a counting TCP relay standing in for the fault proxy). Peer lists
// through routes, and the lab's fault proxy on every link: test/e2e/faults-*.test.ts.
import { connect, createServer } from 'node:net'
import type { AddressInfo, Server, Socket } from 'node:net'
import { describe, expect, it, onTestFinished } from 'vitest'
import { waitFor } from '@hsmlab/testing'
import { ControlPlaneClient } from '../src/index.js'
import { expectAwsError, startTestControlPlane } from './helpers.js'

const INVALID = 'CloudHsmInvalidRequestException'
// (The relay stands in for @hsmlab/fault-proxy, which the control plane does not depend on.)
const NOT_FOUND = 'CloudHsmResourceNotFoundException'

/** A TCP relay to `upstream` (`host:port`) on 127.0.0.1 that counts the connections it carried. */
async function relay (upstream: string): Promise<{ endpoint: string, connections: () => number }> {
  const [host, port] = upstream.split(':')
  let count = 0
  const sockets = new Set<Socket>()
  const server: Server = createServer(client => {
    count++
    const target = connect(Number(port), host ?? '127.0.0.1')
    for (const s of [client, target]) { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => {}) }
    client.pipe(target).pipe(client)
  })
  await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', resolve) })
  onTestFinished(async () => {
    for (const s of sockets) s.destroy()
    await new Promise(resolve => server.close(resolve))
  })
  return { endpoint: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => count }
}

describe('HsmlabSetHsmRoutes / HsmlabDescribeHsmRoutes', () => {
  it('checks routes, uses one only while its HSM is at its Upstream, and dials through a route from the control plane', async () => {
    const cp = await startTestControlPlane()
    const api = new ControlPlaneClient({ endpoint: cp.url, region: 'us-east-1' })
    expect(await api.describeHsmRoutes()).toEqual([])
    const subnets = ['subnet-0123456789abcdef0']
    const clusters = await Promise.all([0, 1].map(async () => {
      const cluster = await api.createCluster({ HsmType: 'hsm1.medium', SubnetIds: subnets })
      const id = cluster.ClusterId ?? ''
      await api.waitForCluster(id, 'UNINITIALIZED', { timeoutMs: 20_000, intervalMs: 20 })
      const hsm = await api.createHsm({ ClusterId: id, AvailabilityZone: 'us-east-1a' })
      return { id, hsm: await api.waitForHsm(id, hsm.HsmId, 'ACTIVE', { timeoutMs: 20_000, intervalMs: 20 }) }
    }))
    const [a, b] = clusters as [typeof clusters[0], typeof clusters[0]]
    const direct = a.hsm.HsmlabEndpoint ?? ''
    expect(direct).toMatch(/^ws:\/\//)

    // Refusals change nothing.
    await expectAwsError(api.call('HsmlabSetHsmRoutes', { Routes: [{ HsmId: 'hsm-aaaaaaaaaaa', From: 'control-plane', Endpoint: 'ws://127.0.0.1:1' }] }), NOT_FOUND, /HSM hsm-aaaaaaaaaaa not found in us-east-1/)
    await expectAwsError(api.call('HsmlabSetHsmRoutes', { Routes: [{ HsmId: a.hsm.HsmId, From: b.hsm.HsmId, Endpoint: 'ws://127.0.0.1:1' }] }), INVALID, /joins two clusters/)
    await expectAwsError(api.call('HsmlabSetHsmRoutes', { Routes: [{ HsmId: a.hsm.HsmId, From: a.hsm.HsmId, Endpoint: 'ws://127.0.0.1:1' }] }), INVALID, /from the HSM itself/)
    await expectAwsError(api.call('HsmlabSetHsmRoutes', { Routes: [{ HsmId: a.hsm.HsmId, From: 'someone', Endpoint: 'http://x' }] }), INVALID, /2 validation errors detected: .*'routes.1.member.from'.*'routes.1.member.endpoint'/)
    const twice = { HsmId: a.hsm.HsmId, From: 'control-plane', Endpoint: 'ws://127.0.0.1:1' }
    await expectAwsError(api.call('HsmlabSetHsmRoutes', { Routes: [twice, twice] }), INVALID, /given twice/)
    await expectAwsError(api.call('HsmlabSetHsmRoutes', {} as never), INVALID, /'routes' failed to satisfy constraint: Member must not be null/)
    expect(await api.describeHsmRoutes()).toEqual([])

    // A route whose Upstream is not where the HSM is is kept but not used.
    const stale = await api.setHsmRoutes([{ HsmId: a.hsm.HsmId, From: 'control-plane', Endpoint: 'ws://127.0.0.1:1', Upstream: 'ws://127.0.0.1:2' }])
    expect(stale).toEqual([{ HsmId: a.hsm.HsmId, From: 'control-plane', Endpoint: 'ws://127.0.0.1:1', Upstream: 'ws://127.0.0.1:2', InUse: false, Delivered: false }])

    // A route from the control plane through a relay: its next call to the HSM goes through it.
    const proxy = await relay(direct.slice('ws://'.length))
    const routes = await api.setHsmRoutes([{ HsmId: a.hsm.HsmId, From: 'control-plane', Endpoint: proxy.endpoint, Upstream: direct }])
    expect(routes).toEqual([{ HsmId: a.hsm.HsmId, From: 'control-plane', Endpoint: proxy.endpoint, Upstream: direct, InUse: true, Delivered: true }])
    expect(await api.describeHsmRoutes()).toEqual(routes)
    expect(proxy.connections()).toBe(0)
    // The HSM dies; the control plane restarts it on its port and asks it getHsmInfo: through the relay.
    process.kill(a.hsm.HsmlabPid ?? 0, 'SIGKILL')
    await waitFor(async () => {
      const hsm = (await api.getCluster(a.id))?.Hsms?.[0]
      return hsm?.State === 'ACTIVE' && hsm.HsmlabPid !== a.hsm.HsmlabPid && hsm.HsmlabEndpoint === direct ? true : undefined
    }, { timeoutMs: 20_000, what: 'the HSM restarted at its endpoint' })
    await waitFor(() => proxy.connections() > 0 ? true : undefined, { timeoutMs: 10_000, what: 'the control plane to dial the HSM through its route' })
    // Removing every route: the table is empty again.
    expect(await api.setHsmRoutes([])).toEqual([])
    expect(await api.describeHsmRoutes()).toEqual([])
  })
})
