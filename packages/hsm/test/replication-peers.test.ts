/**
 * The peer handlers and the replicator in one process: peerHello over a real channel handshake,
 * the rules of peerPush / peerDelete / peerInventory / peerFetch, the diagnostics event, and the
 * replicator's push, minServers and anti-entropy logic with in-memory links between two HSMs.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { describe, expect, it, onTestFinished } from 'vitest'
import { ClientHandshake, acceptHandshake, generateSigningKeyPair, issueCertificate } from '@hsmlab/crypto'
import type { SecureChannel } from '@hsmlab/crypto'
import { KeyType, ReturnCode, WireError } from '@hsmlab/protocol'
import { waitFor } from '@hsmlab/testing'
import type { OperationArgs, OperationName, OperationResult } from '@hsmlab/protocol'
import type { Session } from '../src/context.js'
import { peerHandlers } from '../src/handlers/peer-handlers.js'
import { inventorySummary } from '../src/key-digest.js'
import { maskKey } from '../src/masked-objects.js'
import { createReplicator, REPLICATED_CHANNEL } from '../src/replication.js'
import type { ClusterReplicator, PeerConnection, PeerConnector, ReplicatedMessage } from '../src/replication.js'
import { expectCode, storedKey, testCluster, testHsm } from './keys-context.js'
import type { TestCluster, TestHsm } from './keys-context.js'

/** The server side of a handshake between a would-be peer and `hsm`, as the server makes it. */
function channels (hsm: TestHsm): { client: SecureChannel, server: SecureChannel } {
  const handshake = new ClientHandshake()
  const { welcome, channel } = acceptHandshake(handshake.hello, hsm.ctx.identity.identity.secretKey, hsm.ctx.identity.certificate)
  return { client: handshake.finish(welcome, hsm.ctx.identity.anchorPublicKey), server: channel }
}

function peerIdentity (cluster: TestCluster, hsmId = 'hsm-peerpeerpeer', clusterId = cluster.clusterId): { secretKey: Uint8Array, certificate: ReturnType<typeof issueCertificate> } {
  const keys = generateSigningKeyPair()
  return { secretKey: keys.secretKey, certificate: issueCertificate(cluster.anchor.secretKey, { hsmId, clusterId, publicKey: keys.publicKey }) }
}

function peerSession (hsm: TestHsm, hsmId = 'hsm-peerpeerpeer'): Session {
  const s = hsm.session()
  s.peer = { hsmId }
  return s
}

describe('peerHello', () => {
  it('accepts an HSM of this cluster proving its identity over this channel, and nothing else', async () => {
    const cluster = testCluster()
    const hsm = await testHsm({ cluster })
    const { client, server } = channels(hsm)
    const me = peerIdentity(cluster)
    const proof = client.proveIdentity(me.secretKey, me.certificate)
    const session = hsm.session()
    await expectCode(hsm.call(session, 'peerInventory', {}), 'PEER_UNAUTHENTICATED')
    await expectCode(hsm.call(session, 'peerHello', { certificate: { ...proof.certificate }, signature: proof.signature }), 'PEER_UNAUTHENTICATED') // no channel
    session.channel = server
    expect(await hsm.call(session, 'peerHello', { certificate: { ...proof.certificate }, signature: proof.signature })).toEqual({ hsmId: hsm.ctx.identity.hsmId })
    expect(session.peer).toEqual({ hsmId: 'hsm-peerpeerpeer' })
    await hsm.call(session, 'peerInventory', {})

    // A proof made for another channel, a certificate of another anchor or another cluster: refused.
    const other = hsm.session()
    other.channel = channels(hsm).server
    await expectCode(hsm.call(other, 'peerHello', { certificate: { ...proof.certificate }, signature: proof.signature }), 'PEER_UNAUTHENTICATED')
    const stranger = peerIdentity(testCluster())
    const p2 = channels(hsm)
    const s2 = hsm.session()
    s2.channel = p2.server
    const strangerProof = p2.client.proveIdentity(stranger.secretKey, stranger.certificate)
    await expectCode(hsm.call(s2, 'peerHello', { certificate: { ...strangerProof.certificate }, signature: strangerProof.signature }), 'PEER_UNAUTHENTICATED')
    const elsewhere = peerIdentity(cluster, 'hsm-peerpeerpeer', 'cluster-othercluster')
    const p3 = channels(hsm)
    const s3 = hsm.session()
    s3.channel = p3.server
    const elsewhereProof = p3.client.proveIdentity(elsewhere.secretKey, elsewhere.certificate)
    await expectCode(hsm.call(s3, 'peerHello', { certificate: { ...elsewhereProof.certificate }, signature: elsewhereProof.signature }), 'PEER_UNAUTHENTICATED')
    await expectCode(hsm.call(s3, 'peerHello', { certificate: { hsmId: 1 }, signature: new Uint8Array(64) }), 'PEER_UNAUTHENTICATED')
    expect(s3.peer).toBeUndefined()
  })
})

describe('peer operations', () => {
  it('push inserts a new key and publishes it; never overwrites a key or a tombstone', async () => {
    const cluster = testCluster()
    const a = await testHsm({ cluster, slot: 0 })
    const b = await testHsm({ cluster, slot: 1, hsmId: 'hsm-test1bbbbbb' })
    const handle = (await a.call(a.session('alice'), 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 'k' })).handle
    const events: ReplicatedMessage[] = []
    const listener = (m: unknown): void => { events.push(m as ReplicatedMessage) }
    subscribe(REPLICATED_CHANNEL, listener)
    onTestFinished(() => { unsubscribe(REPLICATED_CHANNEL, listener) })

    const peer = peerSession(b, a.ctx.identity.hsmId)
    await b.call(peer, 'peerPush', { blob: maskKey(a.ctx, storedKey(a, handle)!) })
    expect(storedKey(b, handle)?.material).toEqual(storedKey(a, handle)!.material)
    expect(events).toEqual([{ handle, fromHsmId: a.ctx.identity.hsmId, toHsmId: b.ctx.identity.hsmId, atMs: expect.any(Number) }])

    // A changed copy on a does not overwrite b's.
    await a.call(a.session('alice'), 'setAttribute', { handle, attribute: 3, value: 'changed' })
    await b.call(peer, 'peerPush', { blob: maskKey(a.ctx, storedKey(a, handle)!) })
    expect(storedKey(b, handle)!.attributes[3]).toBe('k')
    expect(events).toHaveLength(1)

    // Deleted, then pushed again (a late push): the tombstone wins.
    await b.call(peer, 'peerDelete', { handle })
    await b.call(peer, 'peerPush', { blob: maskKey(a.ctx, storedKey(a, handle)!) })
    expect(b.keys.get(String(handle))).toEqual({ handle, deleted: true })
    await b.call(peer, 'peerDelete', { handle: 424242 }) // unknown: remembered as deleted
    expect(await b.call(peer, 'peerInventory', {})).toEqual({ keys: [], deleted: [handle, 424242] })

    const inventory = await a.call(peerSession(a), 'peerInventory', {})
    expect(inventory.keys).toEqual([[handle, expect.stringMatching(/^[0-9a-f]{64}$/)]])
    await expectCode(a.call(peerSession(a), 'peerFetch', { handle: 99 }), 'INVALID_HANDLE')
    const { blob } = await a.call(peerSession(a), 'peerFetch', { handle })
    const foreign = await testHsm()
    await expectCode(foreign.call(peerSession(foreign), 'peerPush', { blob }), 'MASKED_OBJECT_LINEAGE')
  })

  it('inventory answers `same` to a peer whose summary of its handles is its own', async () => {
    const cluster = testCluster()
    const a = await testHsm({ cluster, slot: 0 })
    const b = await testHsm({ cluster, slot: 1, hsmId: 'hsm-test1bbbbbb' })
    const alice = a.session('alice')
    const one = (await a.call(alice, 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 'one' })).handle
    const two = (await a.call(alice, 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 'two' })).handle
    await a.call(alice, 'deleteKey', { handle: one })
    const peer = peerSession(b, a.ctx.identity.hsmId)
    // b learns of them in the other order: the summary does not depend on it.
    await b.call(peer, 'peerPush', { blob: maskKey(a.ctx, storedKey(a, two)!) })
    await b.call(peer, 'peerDelete', { handle: one })
    const summary = inventorySummary(b.keys.values())
    expect(summary).toBe(inventorySummary(a.keys.values()))
    expect(await a.call(peerSession(a), 'peerInventory', { unlessSummary: summary })).toEqual({ keys: [], deleted: [], same: true })
    // A handle more, or one live on one side and deleted on the other: the whole inventory.
    await b.call(peer, 'peerDelete', { handle: two })
    expect(inventorySummary(b.keys.values())).not.toBe(summary)
    expect(await b.call(peerSession(b), 'peerInventory', { unlessSummary: summary })).toEqual({ keys: [], deleted: [two, one] })
    expect((await a.call(peerSession(a), 'peerInventory', { unlessSummary: inventorySummary(b.keys.values()) })).keys).toEqual([[two, expect.stringMatching(/^[0-9a-f]{64}$/)]])
  })
})

/**
 * In-memory links: a call on a link runs the other HSM's peer handler as a peer session. `calls`
 * lists the operations called, in order.
 */
function memoryNetwork (hsms: Map<string, TestHsm>): { connect: PeerConnector, down: Set<string>, calls: OperationName[] } {
  const down = new Set<string>()
  const calls: OperationName[] = []
  const open = new Map<string, Set<() => void>>()
  const connect: PeerConnector = async (options) => {
    const target = [...hsms.values()].find(h => `mem://${h.ctx.identity.hsmId}` === options.url)
    if (target === undefined || down.has(target.ctx.identity.hsmId)) throw new Error(`cannot connect to ${options.url}`)
    const id = target.ctx.identity.hsmId
    const session = peerSession(target, options.peerIdentity?.certificate.hsmId ?? 'hsm-unknown00000')
    const listeners: Array<(reason: Error) => void> = []
    let closed = false
    const drop = (): void => {
      if (closed) return
      closed = true
      for (const l of listeners) l(new Error('link dropped'))
    }
    if (!open.has(id)) open.set(id, new Set())
    open.get(id)!.add(drop)
    const conn: PeerConnection = {
      call: async <O extends OperationName>(op: O, args: OperationArgs<O>): Promise<OperationResult<O>> => {
        calls.push(op)
        if (closed || down.has(id)) throw new Error('link closed')
        const handler = peerHandlers[op]
        if (handler === undefined) throw new WireError(ReturnCode.UNKNOWN_OPERATION)
        return await handler(target.ctx, session, args)
      },
      onClose: listener => { if (closed) listener(new Error('closed')); else listeners.push(listener) },
      close: async () => { drop() }
    }
    return conn
  }
  const network = { connect, down, calls }
  // Taking an HSM down drops its open links.
  const originalAdd = down.add.bind(down)
  down.add = (id: string) => {
    for (const drop of open.get(id) ?? []) drop()
    open.delete(id)
    return originalAdd(id)
  }
  return network
}

async function replicatedPair (): Promise<{ a: TestHsm, b: TestHsm, net: ReturnType<typeof memoryNetwork>, startA: () => Promise<void> }> {
  const cluster = testCluster()
  const a = await testHsm({ cluster, slot: 0, hsmId: 'hsm-aaaaaaaaaaa' })
  const b = await testHsm({ cluster, slot: 1, hsmId: 'hsm-bbbbbbbbbbb' })
  const net = memoryNetwork(new Map([['a', a], ['b', b]]))
  const peers = [{ hsmId: a.ctx.identity.hsmId, endpoint: 'mem://hsm-aaaaaaaaaaa' }, { hsmId: b.ctx.identity.hsmId, endpoint: 'mem://hsm-bbbbbbbbbbb' }]
  ;(a.ctx as { peers: () => typeof peers }).peers = () => peers
  const replicator = createReplicator(a.ctx, { connect: net.connect, syncIntervalMs: 20, reconnectDelayMinMs: 5, reconnectDelayMaxMs: 20, fetchesPerRoundMax: 3 })
  ;(a.ctx as { replicator: unknown }).replicator = replicator
  onTestFinished(async () => { await replicator.stop() })
  return { a, b, net, startA: async () => { await replicator.start() } }
}

describe('replicator', () => {
  it('pushes new keys, waits for minServers, and rolls back when a peer is unreachable', async () => {
    const { a, b, net, startA } = await replicatedPair()
    await startA()
    const alice = a.session('alice')
    const { handle } = await a.call(alice, 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 'k', minServers: 2, timeoutMs: 2000 })
    expect(storedKey(b, handle)).toBeDefined()
    await expectCode(a.call(alice, 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 'k', minServers: 3, timeoutMs: 2000 }), 'MIN_SERVERS_NOT_MET')
    net.down.add(b.ctx.identity.hsmId)
    const started = Date.now()
    const err = await expectCode(a.call(alice, 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 'k', minServers: 2, timeoutMs: 150 }), 'MIN_SERVERS_NOT_MET')
    expect(Date.now() - started).toBeGreaterThanOrEqual(140)
    expect(err.message).toContain('1 of the 2')
    expect((await a.call(alice, 'findKey', {})).handles).toEqual([handle])
  })

  it('with minServers 1, answers before masking and pushing the key, then pushes it', async () => {
    const { a, b, net, startA } = await replicatedPair()
    await startA()
    await waitFor(() => (a.ctx.replicator as ClusterReplicator).links().every(link => link.connected), { timeoutMs: 2000 })
    const pushes = (): number => net.calls.filter(op => op === 'peerPush').length
    const before = pushes()
    const { handle } = await a.call(a.session('alice'), 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 'k' })
    expect(pushes()).toBe(before)
    await waitFor(() => storedKey(b, handle) !== undefined, { timeoutMs: 2000 })
    expect(pushes()).toBe(before + 1)
  })

  it('catches up by anti-entropy, in bounded rounds, deletes included', async () => {
    const { a, b, startA } = await replicatedPair()
    const bob = b.session('alice')
    const made: number[] = []
    for (let i = 0; i < 10; i++) made.push((await b.call(bob, 'generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: `k${i}` })).handle)
    await b.call(bob, 'deleteKey', { handle: made[2]! })
    await startA() // a dials b, pulls in rounds of 3 until it has everything
    await waitFor(() => made.every(h => a.keys.has(String(h))), { what: 'a caught up' })
    expect(a.keys.get(String(made[2]))).toEqual({ handle: made[2], deleted: true })
    expect(storedKey(a, made[5]!)!.attributes[3]).toBe('k5')
  })
})
