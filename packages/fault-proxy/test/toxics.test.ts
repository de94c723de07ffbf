/**
 * What each toxic does to real connections (toxics/*.go semantics): latency, bandwidth,
 * slow_close, timeout, reset_peer, slicer, limit_data, toxicity, and changes to the chain while
 * connections are open. Delays are measured with generous upper bounds: a busy machine only
 * ever makes things later.
 */
import { performance } from 'node:perf_hooks'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { describe, expect, it, onTestFinished } from 'vitest'
import { FAULT_PROXY_CHANNELS } from '../src/index.js'
import type { ConnectionEvent } from '../src/index.js'
import { connectTo, proxyTo, roundTrip, startServer, startUpstream, waitFor } from './helpers.js'

const SLACK_MS = 1_500

describe('latency', () => {
  it('delays each direction by at least its latency, and the toxic applies to open connections', async () => {
    const { client } = await startServer()
    const upstream = await startUpstream()
    const port = await proxyTo(client, 'svc', upstream)
    const peer = await connectTo(port)
    const direct = await roundTrip(peer, 'warm-up')
    expect(direct).toBeLessThan(SLACK_MS)

    await client.addToxic('svc', { type: 'latency', attributes: { latency: 150 } })
    const down = await roundTrip(peer, 'ping')
    expect(down).toBeGreaterThanOrEqual(150)
    expect(down).toBeLessThan(150 + SLACK_MS)

    await client.addToxic('svc', { type: 'latency', stream: 'upstream', attributes: { latency: 100 } })
    const both = await roundTrip(peer, 'ping')
    expect(both).toBeGreaterThanOrEqual(250)
    expect(both).toBeLessThan(250 + SLACK_MS)

    await client.updateToxic('svc', 'latency_downstream', { attributes: { latency: 10 } })
    const updated = await roundTrip(peer, 'ping')
    expect(updated).toBeGreaterThanOrEqual(110)
    expect(updated).toBeLessThan(110 + SLACK_MS)

    await client.updateToxic('svc', 'latency_upstream', { attributes: { latency: 5_000 } })
    await client.removeToxic('svc', 'latency_downstream')
    await client.removeToxic('svc', 'latency_upstream')
    expect(await roundTrip(peer, 'ping')).toBeLessThan(5_000)
  })

  it('hands on at once what it held when removed, in order', async () => {
    const { client } = await startServer()
    const upstream = await startUpstream()
    const port = await proxyTo(client, 'svc', upstream)
    await client.addToxic('svc', { type: 'latency', attributes: { latency: 60_000 } })
    const peer = await connectTo(port)
    peer.socket.write('one,')
    peer.socket.write('two')
    await waitFor(() => upstream.peers[0]?.text() === 'one,two', { what: 'upstream got the request' })
    const started = performance.now()
    await client.removeToxic('svc', 'latency_downstream')
    await peer.waitForBytes(7)
    expect(peer.text()).toBe('one,two')
    expect(performance.now() - started).toBeLessThan(SLACK_MS)
  })

  it('keeps jitter within latency ± jitter', async () => {
    const { client } = await startServer({ seed: 3 })
    const upstream = await startUpstream()
    const port = await proxyTo(client, 'svc', upstream)
    await client.addToxic('svc', { type: 'latency', attributes: { latency: 100, jitter: 50 } })
    const peer = await connectTo(port)
    for (let i = 0; i < 5; i++) {
      const ms = await roundTrip(peer, `m${i}`)
      expect(ms).toBeGreaterThanOrEqual(50)
      expect(ms).toBeLessThan(150 + SLACK_MS)
    }
  })
})

describe('bandwidth', () => {
  it('limits the rate to about rate KB/s', async () => {
    const { client } = await startServer()
    const upstream = await startUpstream('record')
    const port = await proxyTo(client, 'svc', upstream)
    await client.addToxic('svc', { type: 'bandwidth', attributes: { rate: 100 } })
    const peer = await connectTo(port)
    const server = await upstream.waitForPeer()
    const started = performance.now()
    server.socket.write(Buffer.alloc(50_000, 7))
    await peer.waitForBytes(50_000)
    const elapsed = performance.now() - started
    // 50,000 bytes at 100 KB/s (100,000 B/s) take 500 ms.
    expect(elapsed).toBeGreaterThanOrEqual(450)
    expect(elapsed).toBeLessThan(500 + SLACK_MS)
    // It went in pieces of at most 100 ms worth (10,000 bytes).
    expect(peer.chunks.length).toBeGreaterThanOrEqual(5)
  })
})

describe('slow_close', () => {
  it('lets data pass at once and delays the close', async () => {
    const { client } = await startServer()
    const upstream = await startUpstream('record')
    const port = await proxyTo(client, 'svc', upstream)
    await client.addToxic('svc', { type: 'slow_close', attributes: { delay: 300 } })
    const peer = await connectTo(port)
    const server = await upstream.waitForPeer()
    const started = performance.now()
    server.socket.end('bye')
    await peer.waitForBytes(3)
    expect((peer.times[0] ?? Infinity) - started).toBeLessThan(300)
    await waitFor(() => peer.ended, { what: 'client saw the end' })
    expect(performance.now() - started).toBeGreaterThanOrEqual(300)
  })
})

describe('timeout', () => {
  it('drops data and closes the connection after the timeout', async () => {
    const { client } = await startServer()
    const upstream = await startUpstream()
    const port = await proxyTo(client, 'svc', upstream)
    await client.addToxic('svc', { type: 'timeout', attributes: { timeout: 300 } })
    const started = performance.now()
    const peer = await connectTo(port)
    peer.socket.write('lost')
    await peer.waitForClose()
    expect(performance.now() - started).toBeGreaterThanOrEqual(300)
    expect(performance.now() - started).toBeLessThan(300 + SLACK_MS)
    expect(peer.data().length).toBe(0)
    expect(peer.error).toBeUndefined()
  })

  it('with 0 holds the connection open, dropping data, until removed; removing it closes the connection', async () => {
    const { client } = await startServer()
    const upstream = await startUpstream()
    const port = await proxyTo(client, 'svc', upstream)
    await client.addToxic('svc', { type: 'timeout', stream: 'upstream', attributes: { timeout: 0 } })
    const peer = await connectTo(port)
    peer.socket.write('dropped')
    const server = await upstream.waitForPeer()
    // The server's bytes still reach the client (only upstream is cut) ...
    server.socket.write('hello')
    await peer.waitForBytes(5)
    // ... while the client's never reach the server.
    expect(server.data().length).toBe(0)
    expect(peer.closed).toBe(false)
    await client.removeToxic('svc', 'timeout_upstream')
    await peer.waitForClose()
    expect(server.data().length).toBe(0)
    // A new connection works.
    const fresh = await connectTo(port)
    await roundTrip(fresh, 'ok')
  })
})

describe('reset_peer', () => {
  it('resets the connection when data comes (TCP RST: ECONNRESET)', async () => {
    const { client } = await startServer()
    const upstream = await startUpstream()
    const port = await proxyTo(client, 'svc', upstream)
    await client.addToxic('svc', { type: 'reset_peer', stream: 'upstream', attributes: { timeout: 0 } })
    const peer = await connectTo(port)
    peer.socket.write('hello')
    await peer.waitForClose()
    expect(peer.error).toBe('ECONNRESET')
    expect(peer.data().length).toBe(0)
  })

  it('resets after its timeout', async () => {
    const { client } = await startServer()
    const upstream = await startUpstream()
    const port = await proxyTo(client, 'svc', upstream)
    await client.addToxic('svc', { type: 'reset_peer', attributes: { timeout: 200 } })
    const peer = await connectTo(port)
    const started = performance.now()
    peer.socket.write('hello')
    await peer.waitForClose()
    expect(performance.now() - started).toBeGreaterThanOrEqual(200)
    expect(peer.error).toBe('ECONNRESET')
  })
})

describe('limit_data', () => {
  it('lets the first N bytes through, then closes', async () => {
    const { client } = await startServer()
    const upstream = await startUpstream()
    const port = await proxyTo(client, 'svc', upstream)
    await client.addToxic('svc', { type: 'limit_data', attributes: { bytes: 10 } })
    const peer = await connectTo(port)
    peer.socket.write('0123456')
    await peer.waitForBytes(7)
    peer.socket.write('789abcdef')
    await peer.waitForClose()
    expect(peer.text()).toBe('0123456789')
    expect(peer.ended).toBe(true)
  })
})

describe('slicer', () => {
  it('splits data into small writes and keeps it whole and in order', async () => {
    const { client } = await startServer({ seed: 11 })
    const upstream = await startUpstream('record')
    const port = await proxyTo(client, 'svc', upstream)
    await client.addToxic('svc', { type: 'slicer', attributes: { average_size: 100, size_variation: 20, delay: 3_000 } })
    const peer = await connectTo(port)
    const server = await upstream.waitForPeer()
    const payload = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251))
    server.socket.write(payload)
    await peer.waitForBytes(1000)
    expect(peer.data().equals(payload)).toBe(true)
    // About 1000 / 100 pieces, 3 ms apart: the client reads them one by one.
    expect(peer.chunks.length).toBeGreaterThanOrEqual(5)
    for (const chunk of peer.chunks) expect(chunk.length).toBeLessThanOrEqual(240)
  })
})

describe('toxicity', () => {
  it('0 never applies', async () => {
    const { client } = await startServer()
    const upstream = await startUpstream()
    const port = await proxyTo(client, 'svc', upstream)
    await client.addToxic('svc', { type: 'timeout', toxicity: 0, attributes: { timeout: 0 } })
    for (let i = 0; i < 10; i++) {
      const peer = await connectTo(port)
      expect(await roundTrip(peer, `ping${i}`)).toBeLessThan(SLACK_MS)
      peer.socket.destroy()
    }
  })

  it('applies per connection with about the given probability', async () => {
    const { client } = await startServer({ seed: 5 })
    const upstream = await startUpstream()
    const port = await proxyTo(client, 'svc', upstream)
    await client.addToxic('svc', { type: 'latency', toxicity: 0.5, attributes: { latency: 300 } })
    let slow = 0
    for (let i = 0; i < 16; i++) {
      const peer = await connectTo(port)
      if (await roundTrip(peer, 'x') >= 300) slow++
      peer.socket.destroy()
    }
    expect(slow).toBeGreaterThan(0)
    expect(slow).toBeLessThan(16)
  })
})

describe('the pipe', () => {
  it('passes a half-close through: the client\'s FIN reaches the server, which can still answer', async () => {
    const { client } = await startServer()
    const upstream = await startUpstream('record')
    const port = await proxyTo(client, 'svc', upstream)
    const peer = await connectTo(port)
    peer.socket.end('request')
    const server = await upstream.waitForPeer()
    await waitFor(() => server.ended, { what: 'server saw the FIN' })
    expect(server.text()).toBe('request')
    server.socket.end('answer')
    await peer.waitForBytes(6)
    await waitFor(() => peer.ended, { what: 'client saw the FIN' })
    expect(peer.text()).toBe('answer')
  })

  it('accepts a client when the upstream is down, then closes it (Toxiproxy #265)', async () => {
    const { client, server } = await startServer()
    const upstream = await startUpstream()
    const port = await proxyTo(client, 'svc', upstream)
    await new Promise<void>(resolve => { upstream.server.close(() => { resolve() }) })
    const events: ConnectionEvent[] = []
    const onEvent = (message: unknown): void => {
      if ((message as ConnectionEvent).server === server.url) events.push(message as ConnectionEvent)
    }
    subscribe(FAULT_PROXY_CHANNELS.connection, onEvent)
    onTestFinished(() => { unsubscribe(FAULT_PROXY_CHANNELS.connection, onEvent) })
    const peer = await connectTo(port)
    expect(peer.error).toBeUndefined()
    await peer.waitForClose()
    expect(peer.data().length).toBe(0)
    await waitFor(() => events.some(e => e.event === 'close'), { what: 'connection close event' })
    expect(events.map(e => e.event)).toEqual(['upstream-failed', 'close'])
  })

  it('keeps bytes whole and in order while they wait for a client that does not read', async () => {
    // Each link reads into a buffer it reuses (SocketReader): bytes that wait in the write queue
    // to a client that does not read must not be overwritten by the next read. Small writes, so
    // that the proxy reads them one by one and its writes queue a few bytes at a time.
    const { client } = await startServer()
    const upstream = await startUpstream('record')
    const port = await proxyTo(client, 'svc', upstream)
    const peer = await connectTo(port)
    peer.socket.pause()
    const server = (await upstream.waitForPeer()).socket
    const total = 8 * 1024 * 1024
    const sent = Buffer.alloc(total)
    for (let offset = 0; offset < total; offset += 4) sent.writeUInt32LE(offset / 4, offset)
    let offset = 0
    let size = 1
    const writeNext = (): boolean => {
      const end = Math.min(total, offset + size)
      const more = server.write(sent.subarray(offset, end))
      offset = end
      size = (size * 7 + 13) % 6_000 + 1
      return more
    }
    // Until the bytes back up all the way to the server (or all are written), one write per turn
    // of the event loop; long before that, the proxy's writes to the client queue.
    while (offset < total && writeNext()) await new Promise(resolve => { setImmediate(resolve) })
    peer.socket.resume()
    while (offset < total) {
      if (!writeNext()) await new Promise(resolve => { server.once('drain', resolve) })
    }
    await peer.waitForBytes(total, 30_000)
    expect(peer.data().equals(sent)).toBe(true)
  })

  it('stops reading from a sender that a slow toxic holds back, instead of buffering without bound', async () => {
    const { client } = await startServer({ linkBufferBytesMax: 64 * 1024 })
    const upstream = await startUpstream('record')
    const port = await proxyTo(client, 'svc', upstream)
    await client.addToxic('svc', { type: 'bandwidth', stream: 'upstream', attributes: { rate: 10 } })
    const peer = await connectTo(port)
    const total = 32 * 1024 * 1024
    peer.socket.write(Buffer.alloc(total, 1))
    const server = await upstream.waitForPeer()
    await waitFor(() => server.data().length >= 3_000, { what: 'the server received some data' })
    // An unbounded proxy would have read all 32 MiB off the loopback by now.
    expect(peer.socket.writableLength).toBeGreaterThan(total / 2)
  })
})
