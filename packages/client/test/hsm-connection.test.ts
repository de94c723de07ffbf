/**
 * `HsmConnection` against real servers on real sockets: a real HSM (connect, checked identity,
 * pipelined calls, the requests of one turn in one write, the HSM's refusals as `WireError`, close), an HSM whose certificate the
 * configured trust anchor did not sign (refused with CLIENT_ERR_UNTRUSTED), and servers that do
 * not answer (the connect timeout, the request timeout, and a late answer after a timeout).
 */
import { describe, expect, it } from 'vitest'
import { ReturnCode } from '@hsmlab/protocol'
import { createClusterSecrets } from '@hsmlab/hsm'
import { waitFor } from '@hsmlab/testing'
import {
  CLIENT_ERR_BUSY, CLIENT_ERR_CLOSED, CLIENT_ERR_CONNECT, CLIENT_ERR_TIMEOUT, CLIENT_ERR_UNTRUSTED, ClientError, HsmConnection, WireError
} from '../src/index.js'
import { closedPort, muteHsm, silentServer, startTestCluster } from './helpers.js'

/** The error a promise rejects with (fails the test when it resolves). */
async function rejection (promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('expected a rejection, but the promise resolved')
}

describe('connecting to a real HSM', () => {
  it('checks its identity, answers pipelined calls by id, and passes the HSM\'s refusals on as WireError', async () => {
    const [hsm] = await startTestCluster(1)
    const conn = await HsmConnection.connect({ url: hsm!.node.url, trustAnchor: hsm!.cluster.anchor.publicKey, expectedClusterId: hsm!.cluster.clusterId })
    try {
      expect(conn.hsmId).toBe(hsm!.node.hsmId)
      expect(conn.clusterId).toBe(hsm!.cluster.clusterId)
      expect(conn.url).toBe(hsm!.node.url)
      expect(conn.closed).toBe(false)

      // Several requests in flight at once: each answer reaches its own call.
      const [info, users, info2] = await Promise.all([
        conn.call('getHsmInfo', {}),
        conn.call('listUsers', {}),
        conn.call('getHsmInfo', {})
      ])
      expect(info.hsmId).toBe(hsm!.node.hsmId)
      expect(info2.clusterId).toBe(hsm!.cluster.clusterId)
      expect(users.users.map(u => u.userName)).toContain('admin')

      // A refusal of the HSM is a WireError with its return code; the connection stays usable.
      const refused = await rejection(conn.call('createUser', { userType: 'CU', userName: 'alice', password: 'Password1' }))
      expect(refused).toBeInstanceOf(WireError)
      expect(refused.code).toBe(ReturnCode.NOT_LOGGED_IN.name)
      expect((await conn.call('getHsmInfo', {})).hsmId).toBe(hsm!.node.hsmId)
    } finally {
      await conn.close()
    }
  })

  it('sends the requests made in one turn of the event loop in one write, masked with a zero key', async () => {
    const [hsm] = await startTestCluster(1)
    const conn = await HsmConnection.connect({ url: hsm!.node.url, trustAnchor: hsm!.cluster.anchor.publicKey })
    try {
      // The TCP handle under the WebSocket (Node's and ws's internals): its write functions are
      // the system calls, counted here.
      const tcp = (conn as unknown as { socket: { _socket: { _handle: Record<string, (...args: unknown[]) => unknown> } } }).socket._socket._handle
      let writes = 0
      const sent: Buffer[] = []
      for (const name of ['writeBuffer', 'writev', 'writeLatin1String', 'writeUtf8String']) {
        const original = tcp[name]
        if (original === undefined) continue
        tcp[name] = function (this: unknown, ...args: unknown[]) {
          writes++
          // writeBuffer(req, buffer); writev(req, chunks, allBuffers)
          const data = args[1]
          if (Buffer.isBuffer(data)) sent.push(data)
          else if (Array.isArray(data)) sent.push(...data.filter((c): c is Buffer => Buffer.isBuffer(c)))
          return original.apply(this, args)
        }
      }
      // Twenty requests from twenty tasks of one turn (timers due together, as a client daemon's
      // reads of its applications' sockets are): ws alone writes each at the end of its task.
      const answers = await new Promise<unknown[]>((resolve, reject) => {
        const calls: Array<Promise<unknown>> = []
        for (let i = 0; i < 20; i++) {
          setTimeout(() => {
            calls.push(conn.call('getHsmInfo', {}))
            if (calls.length === 20) Promise.all(calls).then(resolve, reject)
          }, 0)
        }
      })
      expect(answers).toHaveLength(20)
      expect(writes).toBeLessThanOrEqual(2)
      // Each frame is masked (as RFC 6455 asks of clients) with a zero key: ws neither copies nor
      // XORs the (already encrypted) payload, and the HSM does not XOR it back.
      const bytes = Buffer.concat(sent)
      let at = 0
      let frames = 0
      while (at < bytes.length) {
        expect(bytes[at + 1]! & 0x80).toBe(0x80)
        let length = bytes[at + 1]! & 0x7f
        let header = 2
        if (length === 126) { length = bytes.readUInt16BE(at + 2); header = 4 } else if (length === 127) { length = Number(bytes.readBigUInt64BE(at + 2)); header = 10 }
        expect([...bytes.subarray(at + header, at + header + 4)]).toEqual([0, 0, 0, 0])
        at += header + 4 + length
        frames++
      }
      expect(frames).toBe(20)
    } finally {
      await conn.close()
    }
  })

  it('fails calls in flight and later calls with CLIENT_ERR_CLOSED once closed, tells onClose once, and closes twice safely', async () => {
    const [hsm] = await startTestCluster(1)
    const conn = await HsmConnection.connect({ url: hsm!.node.url, trustAnchor: hsm!.cluster.anchor.publicKey })
    const reasons: Error[] = []
    conn.onClose(reason => { reasons.push(reason) })
    const inFlight = rejection(conn.call('listUsers', {}))
    await conn.close()
    await conn.close()
    expect(conn.closed).toBe(true)
    const late = await rejection(conn.call('getHsmInfo', {}))
    expect(late).toBeInstanceOf(ClientError)
    expect(late.code).toBe(CLIENT_ERR_CLOSED)
    expect(reasons.map(r => (r as ClientError).code)).toEqual([CLIENT_ERR_CLOSED])
    // close() fails what is in flight at once, before the HSM could answer it.
    expect((await inFlight).code).toBe(CLIENT_ERR_CLOSED)
    // A listener added after the close hears the reason at once.
    let heard: Error | undefined
    conn.onClose(reason => { heard = reason })
    expect((heard as ClientError | undefined)?.code).toBe(CLIENT_ERR_CLOSED)
  })

  it('reports an HSM that stops: onClose fires, calls fail with CLIENT_ERR_CLOSED', async () => {
    const [hsm] = await startTestCluster(1)
    const conn = await HsmConnection.connect({ url: hsm!.node.url, trustAnchor: hsm!.cluster.anchor.publicKey })
    const closed = new Promise<Error>(resolve => { conn.onClose(resolve) })
    await hsm!.node.stop()
    expect(((await closed) as ClientError).code).toBe(CLIENT_ERR_CLOSED)
    expect(conn.closed).toBe(true)
    expect((await rejection(conn.call('getHsmInfo', {}))).code).toBe(CLIENT_ERR_CLOSED)
    await conn.close()
  })

  it('fails with CLIENT_ERR_CONNECT where nothing listens', async () => {
    const port = await closedPort()
    const err = await rejection(HsmConnection.connect({ url: `ws://127.0.0.1:${port}`, trustAnchor: createClusterSecrets().anchor.publicKey }))
    expect(err).toBeInstanceOf(ClientError)
    expect(err.code).toBe(CLIENT_ERR_CONNECT)
  })
})

describe('the trust anchor', () => {
  it('refuses an HSM whose certificate another anchor signed, and one of another cluster', async () => {
    const [hsm] = await startTestCluster(1)
    const stranger = createClusterSecrets()
    const untrusted = await rejection(HsmConnection.connect({ url: hsm!.node.url, trustAnchor: stranger.anchor.publicKey }))
    expect(untrusted).toBeInstanceOf(ClientError)
    expect(untrusted.code).toBe(CLIENT_ERR_UNTRUSTED)
    expect(untrusted.message).toContain(hsm!.node.url)

    // Signed by the right anchor, but not an HSM of the cluster the caller expects.
    const elsewhere = await rejection(HsmConnection.connect({
      url: hsm!.node.url, trustAnchor: hsm!.cluster.anchor.publicKey, expectedClusterId: stranger.clusterId
    }))
    expect(elsewhere.code).toBe(CLIENT_ERR_UNTRUSTED)

    // A fake HSM whose certificate a stranger's anchor signed, claiming this cluster's id.
    const fake = await muteHsm({ ...stranger, clusterId: hsm!.cluster.clusterId })
    const forged = await rejection(HsmConnection.connect({ url: `ws://127.0.0.1:${fake.port}`, trustAnchor: hsm!.cluster.anchor.publicKey }))
    expect(forged.code).toBe(CLIENT_ERR_UNTRUSTED)
    expect(fake.held).toEqual([]) // no request was sent to it

    // The HSM still serves a client with the right anchor.
    const conn = await HsmConnection.connect({ url: hsm!.node.url, trustAnchor: hsm!.cluster.anchor.publicKey })
    expect((await conn.call('getHsmInfo', {})).hsmId).toBe(hsm!.node.hsmId)
    await conn.close()
  })
})

describe('timeouts', () => {
  it('gives up on a server that accepts the connection and never answers the handshake, after connectTimeoutMs', async () => {
    const silent = await silentServer()
    const startedMs = Date.now()
    const err = await rejection(HsmConnection.connect({ url: `ws://127.0.0.1:${silent.port}`, trustAnchor: createClusterSecrets().anchor.publicKey, connectTimeoutMs: 300 }))
    expect(err).toBeInstanceOf(ClientError)
    expect(err.code).toBe(CLIENT_ERR_CONNECT)
    expect(err.message).toContain('300 ms')
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(250)
    expect(silent.connections()).toBe(1)
  })

  it('fails a request the HSM does not answer with CLIENT_ERR_TIMEOUT, frees its place, keeps the connection, and ignores the late answer', async () => {
    const cluster = createClusterSecrets()
    const mute = await muteHsm(cluster)
    const conn = await HsmConnection.connect({ url: `ws://127.0.0.1:${mute.port}`, trustAnchor: cluster.anchor.publicKey, requestTimeoutMs: 200, pendingRequestsMax: 1 })
    try {
      expect(conn.hsmId).toBe(mute.hsmId)
      // The connection's requestTimeoutMs; while the request waits, it holds the only place.
      const waiting = rejection(conn.call('getHsmInfo', {}))
      expect((await rejection(conn.call('listUsers', {}))).code).toBe(CLIENT_ERR_BUSY)
      const err = await waiting
      expect(err).toBeInstanceOf(ClientError)
      expect(err.code).toBe(CLIENT_ERR_TIMEOUT)
      expect(err.message).toContain('getHsmInfo')
      expect(err.message).toContain('200 ms')
      // Timed out, it gave its place back: the next call is sent, with a timeout of its own.
      const perCall = await rejection(conn.call('listUsers', {}, { timeoutMs: 50 }))
      expect(perCall.code).toBe(CLIENT_ERR_TIMEOUT)
      expect(perCall.message).toContain('50 ms')
      expect(conn.closed).toBe(false)

      // Late answers to the requests that timed out reach nobody; the next call gets its own.
      expect(mute.held.map(r => r.op)).toEqual(['getHsmInfo', 'listUsers'])
      mute.held[0]!.answer({ hsmId: 'late' })
      mute.held[1]!.answer({ users: [] })
      const next = conn.call('listUsers', {}, { timeoutMs: 5_000 })
      await waitFor(() => mute.held.length === 3, { what: 'the third request to arrive' })
      mute.held[2]!.answer({ users: [{ userId: 1, userType: 'CO', userName: 'admin', mofnPubKey: false, loginFailureCount: 0, twoFactor: false }] })
      expect((await next).users.map(u => u.userName)).toEqual(['admin'])
    } finally {
      await conn.close()
    }
  })
})
