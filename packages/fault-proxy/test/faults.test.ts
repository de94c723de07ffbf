/**
 * hsmlab's extensions and the proxy lifecycle over real sockets: disable/enable, group
 * partitions (connections reset, new ones refused), blackholes (data dropped, connections kept),
 * heal, the faults report, and the seeded PRNG (same seed and events, same draws).
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { describe, expect, it, onTestFinished } from 'vitest'
import { FAULT_PROXY_CHANNELS } from '../src/index.js'
import type { DrawEvent, FaultClient } from '../src/index.js'
import { connectTo, proxyTo, roundTrip, startServer, startUpstream, waitFor } from './helpers.js'
import type { Upstream } from './helpers.js'

async function expectRefused (port: number): Promise<void> {
  const peer = await connectTo(port)
  peer.socket.write('anyone?')
  await peer.waitForClose()
  expect(['ECONNRESET', 'ECONNREFUSED', 'EPIPE']).toContain(peer.error)
  expect(peer.data().length).toBe(0)
}

describe('disable and enable', () => {
  it('disabling closes the connections and stops listening; enabling listens on the same port again', async () => {
    const { client } = await startServer()
    const upstream = await startUpstream()
    const port = await proxyTo(client, 'svc', upstream)
    const peer = await connectTo(port)
    await roundTrip(peer, 'hi')
    expect((await client.disable('svc')).enabled).toBe(false)
    await peer.waitForClose()
    const refused = await connectTo(port)
    expect(refused.error).toBe('ECONNREFUSED')
    const enabled = await client.enable('svc')
    expect(enabled.listen).toBe(`127.0.0.1:${port}`)
    await roundTrip(await connectTo(port), 'back')
  })
})

describe('partition', () => {
  async function lab (client: FaultClient, upstream: Upstream): Promise<Record<string, number>> {
    return {
      hsm0: await proxyTo(client, 'us-east-1/primary/hsm-0', upstream),
      hsm1: await proxyTo(client, 'us-east-1/primary/hsm-1', upstream),
      west: await proxyTo(client, 'us-west-2/dr/hsm-0', upstream),
      wan: await proxyTo(client, 'wan/us-east-1->us-west-2', upstream, ['us-east-1', 'us-west-2'])
    }
  }

  it('cuts every proxy of a group (name prefix or hsmlab.groups) and heal restores them', async () => {
    const { client } = await startServer()
    const upstream = await startUpstream()
    const ports = await lab(client, upstream)
    const open = { hsm0: await connectTo(ports.hsm0 ?? 0), west: await connectTo(ports.west ?? 0), wan: await connectTo(ports.wan ?? 0) }
    for (const peer of Object.values(open)) await roundTrip(peer, 'hello')

    const cut = await client.partition('us-west-2')
    expect(cut.sort()).toEqual(['us-west-2/dr/hsm-0', 'wan/us-east-1->us-west-2'])
    // Open connections of the group are reset; the others are untouched.
    await open.west.waitForClose()
    expect(open.west.error).toBe('ECONNRESET')
    await open.wan.waitForClose()
    expect(open.wan.error).toBe('ECONNRESET')
    await roundTrip(open.hsm0, 'still here')
    // New connections to the group are refused.
    await expectRefused(ports.west ?? 0)
    await expectRefused(ports.wan ?? 0)
    await roundTrip(await connectTo(ports.hsm1 ?? 0), 'fine')

    const faults = await client.faults()
    expect(faults.healed).toBe(false)
    expect(faults.partitions).toEqual(['us-west-2'])
    expect(Object.keys(faults.proxies).sort()).toEqual(['us-west-2/dr/hsm-0', 'wan/us-east-1->us-west-2'])
    expect(faults.proxies['wan/us-east-1->us-west-2']).toMatchObject({ partitioned: true, blackholed: false, enabled: true })
    expect(faults.proxies['us-west-2/dr/hsm-0']?.groups).toEqual(['us-west-2', 'us-west-2/dr', 'us-west-2/dr/hsm-0'])

    // A proxy created in the group while it is partitioned is born partitioned.
    const late = await proxyTo(client, 'late', upstream, ['us-west-2'])
    await expectRefused(late)

    expect((await client.heal('us-west-2')).sort()).toEqual(['late', 'us-west-2/dr/hsm-0', 'wan/us-east-1->us-west-2'])
    expect(await client.isHealed()).toBe(true)
    await roundTrip(await connectTo(ports.west ?? 0), 'back')
    await roundTrip(await connectTo(ports.wan ?? 0), 'back')
    await roundTrip(await connectTo(late), 'back')
  })

  it('heal without a group lifts partitions and blackholes, removes toxics and enables every proxy', async () => {
    const { client, server } = await startServer()
    const upstream = await startUpstream()
    const ports = await lab(client, upstream)
    await client.partition('us-east-1/primary')
    await client.blackhole('us-west-2')
    await client.addToxic('us-east-1/primary/hsm-1', { type: 'latency', attributes: { latency: 1000 } })
    await client.disable('wan/us-east-1->us-west-2')
    // /reset leaves partitions and blackholes alone.
    await client.reset()
    const afterReset = await client.faults()
    expect(afterReset.partitions).toEqual(['us-east-1/primary'])
    expect(afterReset.blackholes).toEqual(['us-west-2'])
    await expectRefused(ports.hsm0 ?? 0)

    const res = await fetch(`${server.url}/hsmlab/heal`, { method: 'POST' })
    expect(res.status).toBe(200)
    expect(await client.faults()).toEqual({ seed: server.seed, healed: true, partitions: [], blackholes: [], proxies: {} })
    for (const port of Object.values(ports)) expect(await roundTrip(await connectTo(port), 'ok')).toBeLessThan(1000)
  })

  it('answers 400 without a group', async () => {
    const { server } = await startServer()
    const res = await fetch(`${server.url}/hsmlab/partition`, { method: 'POST', body: '{}' })
    expect(res.status).toBe(400)
    expect(await res.text()).toBe('{"error":"missing required field: group","status":400}\n')
  })
})

describe('blackhole', () => {
  it('drops data both ways and keeps connections open; heal closes those that lost data', async () => {
    const { client } = await startServer()
    const upstream = await startUpstream()
    const port = await proxyTo(client, 'us-east-1/primary/hsm-0', upstream)
    const quiet = await connectTo(port)
    const talker = await connectTo(port)
    await roundTrip(quiet, 'a')
    await roundTrip(talker, 'b')

    expect(await client.blackhole('us-east-1')).toEqual(['us-east-1/primary/hsm-0'])
    talker.socket.write('into the void')
    await waitFor(async () => (await client.faults()).proxies['us-east-1/primary/hsm-0']?.droppedBytes === 13, { what: '13 bytes dropped' })
    expect(talker.data().length).toBe(1)
    expect(talker.closed || talker.ended).toBe(false)
    // A connection opened during the blackhole is accepted and hears nothing; what it sends is dropped.
    const during = await connectTo(port)
    expect(during.error).toBeUndefined()
    const heldTalker = await connectTo(port)
    heldTalker.socket.write('lost')
    await waitFor(async () => (await client.faults()).proxies['us-east-1/primary/hsm-0']?.droppedBytes === 17, { what: '17 bytes dropped' })

    await client.heal('us-east-1')
    await talker.waitForClose()
    await heldTalker.waitForClose()
    expect(talker.data().length).toBe(1)
    expect(heldTalker.data().length).toBe(0)
    // Connections that lost nothing carry on, the one held during the blackhole too.
    await roundTrip(quiet, 'still open')
    await roundTrip(during, 'late but whole')
  })
})

describe('seeded draws', () => {
  async function run (seed: number): Promise<Array<Omit<DrawEvent, 'server'>>> {
    const { server, client } = await startServer({ seed })
    const draws: Array<Omit<DrawEvent, 'server'>> = []
    const onDraw = (message: unknown): void => {
      const { server: from, ...draw } = message as DrawEvent
      if (from === server.url) draws.push(draw)
    }
    subscribe(FAULT_PROXY_CHANNELS.draw, onDraw)
    onTestFinished(() => { unsubscribe(FAULT_PROXY_CHANNELS.draw, onDraw) })
    const upstream = await startUpstream()
    const port = await proxyTo(client, 'svc', upstream)
    // One chunk a message each way (the client writes once; the echo answers once), so the
    // events, and with them the draws, are the same from run to run.
    await client.addToxic('svc', { type: 'latency', stream: 'upstream', toxicity: 0.5, attributes: { latency: 5, jitter: 4 } })
    await client.addToxic('svc', { type: 'slicer', attributes: { average_size: 3, size_variation: 2, delay: 0 } })
    for (let i = 0; i < 6; i++) {
      const peer = await connectTo(port)
      await roundTrip(peer, `message number ${i}`)
      peer.socket.destroy()
    }
    expect(await client.seed()).toBe(seed)
    return draws
  }

  it('draws the same numbers for the same seed and events, and others for another seed', async () => {
    const first = await run(1234)
    const second = await run(1234)
    const other = await run(4321)
    expect(first.length).toBeGreaterThan(10)
    expect(first.some(d => d.kind === 'toxicity') && first.some(d => d.kind === 'slice')).toBe(true)
    expect(second).toEqual(first)
    expect(other.map(d => d.value)).not.toEqual(first.map(d => d.value))
  })
})

describe('groups', () => {
  it('follow PATCH and populate, and a proxy leaves a partition when it leaves the group', async () => {
    const { client, server } = await startServer()
    const upstream = await startUpstream()
    const port = await proxyTo(client, 'hsm-a', upstream, ['cluster-1'])
    await client.partition('cluster-1')
    await expectRefused(port)
    const moved = await client.updateProxy('hsm-a', { groups: ['cluster-2'] })
    expect(moved.hsmlab).toEqual({ groups: ['cluster-2'] })
    await roundTrip(await connectTo(port), 'free')
    // Populate with the same listen and upstream keeps the proxy and takes its groups.
    const [kept] = await client.populate([{ name: 'hsm-a', listen: moved.listen, upstream: upstream.address, groups: ['cluster-1'] }])
    expect(kept?.hsmlab).toEqual({ groups: ['cluster-1'] })
    await expectRefused(port)
    // A proxy without explicit groups prints exactly as Toxiproxy's.
    await client.createProxy({ name: 'plain', listen: '127.0.0.1:0', upstream: upstream.address, enabled: false })
    const plain = await fetch(`${server.url}/proxies/plain`)
    expect(await plain.text()).toBe(`{"name":"plain","listen":"127.0.0.1:0","upstream":"${upstream.address}","enabled":false,"toxics":[]}`)
    const bad = await fetch(`${server.url}/proxies/plain`, { method: 'PATCH', body: '{"hsmlab":{"groups":[1]}}' })
    expect(bad.status).toBe(400)
  })
})
