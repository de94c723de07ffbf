/**
 * Provisioning and the in-process node (`startHsm`), over real sockets: data directory rules,
 * manufacturer key files, getHsmInfo / getCert, signed peer lists, the handle allocator, the
 * diagnostics channel and `stop()`.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { deriveKey, p256KeyFromSeed, randomBytes, verifyCertificate, x509Certificate, x509Name } from '@hsmlab/crypto'
import { memoryStore } from '@hsmlab/store'
import { tmpDir } from '@hsmlab/testing'
import type { KeyRecord, KeyTombstone } from '../src/context.js'
import { handleAllocator } from '../src/hsm-node.js'
import {
  HSM_ERROR_CODES, REQUEST_CHANNEL, createClusterSecrets, createManufacturerKey, isResourceId, provisionHsm,
  readManufacturerKey, signClusterCertificates, signPeers, startHsm, writeManufacturerKey
} from '../src/index.js'
import type { HsmNode, RequestEvent, StartHsmOptions } from '../src/index.js'
import { connect, expectCode, openSocket, provisionTestHsm, rawConnect } from './helpers.js'

async function startInProcess (options: Partial<StartHsmOptions> = {}): Promise<HsmNode & { cluster: ReturnType<typeof createClusterSecrets>, dataDir: string, manufacturerKey: Uint8Array }> {
  const provisioned = await provisionTestHsm()
  const node = await startHsm({ ...options, dataDir: provisioned.dataDir, manufacturerKey: provisioned.manufacturerKey })
  onTestFinished(async () => { await node.stop() })
  return Object.assign(node, { cluster: provisioned.cluster, dataDir: provisioned.dataDir, manufacturerKey: provisioned.manufacturerKey })
}

describe('provisioning', () => {
  it('makes ids in the AWS style and refuses a directory that holds an HSM', async () => {
    const cluster = createClusterSecrets()
    expect(cluster.clusterId).toMatch(/^cluster-[2-7a-z]{11}$/)
    expect(isResourceId('cluster', cluster.clusterId)).toBe(true)
    const manufacturerKey = createManufacturerKey()
    const dataDir = join(tmpDir(), 'hsm')
    const made = await provisionHsm({ dataDir, manufacturerKey, slot: 1, cluster })
    expect(made.hsmId).toMatch(/^hsm-[2-7a-z]{11}$/)
    expect(made.clusterId).toBe(cluster.clusterId)
    verifyCertificate(cluster.anchor.publicKey, made.certificate)
    expect((await stat(join(dataDir, 'storage.key'))).mode & 0o777).toBe(0o600)
    await expect(provisionHsm({ dataDir, manufacturerKey, slot: 1, cluster })).rejects.toMatchObject({ code: 'HSM_ERR_ALREADY_PROVISIONED' })
    await expect(provisionHsm({ dataDir: join(tmpDir(), 'x'), manufacturerKey, slot: -1, cluster })).rejects.toMatchObject({ code: 'HSM_ERR_INVALID_ARGUMENT' })
    await expect(provisionHsm({ dataDir: join(tmpDir(), 'y'), manufacturerKey, slot: 0, cluster, hsmId: 'not-an-id' })).rejects.toMatchObject({ code: 'HSM_ERR_INVALID_ARGUMENT' })
    expect(() => createClusterSecrets({ clusterId: 'cluster-1' })).toThrow(expect.objectContaining({ code: 'HSM_ERR_INVALID_ARGUMENT' }))
  })

  it('writes manufacturer key files with mode 0600 and reads them back', async () => {
    const file = join(tmpDir(), 'mk')
    const key = createManufacturerKey()
    await writeManufacturerKey(file, key)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect(await readManufacturerKey(file)).toEqual(key)
    await writeFile(file, 'not a key')
    await expect(readManufacturerKey(file)).rejects.toMatchObject({ code: 'HSM_ERR_MANUFACTURER_KEY', message: expect.stringContaining(file) })
    await expect(readManufacturerKey(join(tmpDir(), 'missing'))).rejects.toMatchObject({ code: 'HSM_ERR_MANUFACTURER_KEY' })
  })

  it('lists every error code with the package prefix', () => {
    for (const code of HSM_ERROR_CODES) expect(code).toMatch(/^HSM_ERR_[A-Z_]+$/)
  })
})

describe('the in-process node', () => {
  it('describes itself and hands out its certificates', async () => {
    const node = await startInProcess()
    const conn = await connect(node)
    const info = await conn.call('getHsmInfo', {})
    expect(info).toMatchObject({
      hsmId: node.hsmId, clusterId: node.cluster.clusterId, lineage: node.cluster.lineage, label: 'cavium',
      model: 'NITROX-III CNN35XX-NFBE', fipsState: 2, totalTokenObjects: 3300, freeTokenObjects: 3300, userCount: 2, keyCount: 0
    })
    expect(info.serialNumber).toMatch(/^3\.0A0101-ICM\d{6}$/)
    expect(info.loggedInAs).toBeUndefined()
    // 1, 2, 16, 32: X.509 (the chain openssl verifies); 64: the cluster's CSR; 4, 8: none before the cluster is initialized.
    for (const certType of [1, 2, 16, 32]) expect((await conn.call('getCertificate', { certType })).pem).toMatch(/^-----BEGIN CERTIFICATE-----\n/)
    expect((await conn.call('getCertificate', { certType: 64 })).pem).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----\n/)
    for (const certType of [4, 8]) await expectCode(conn.call('getCertificate', { certType }), 'INVALID_INPUT')
  })

  it('holds the cluster certificate and customer CA it is given, signed by the anchor, once, across restarts (getCert 8 and 4)', async () => {
    const node = await startInProcess()
    const conn = await connect(node)
    const secret = node.cluster.anchor.secretKey
    const ca = (name: string): { key: ReturnType<typeof p256KeyFromSeed>, name: Buffer, pem: string } => {
      const key = p256KeyFromSeed(deriveKey(randomBytes(32), 'test'))
      const dn = x509Name(name, 'test CA')
      return { key, name: dn, pem: x509Certificate({ issuer: dn, subject: dn, publicKey: key, signingKey: key, ca: true }) }
    }
    const customer = ca('customer CA')
    const other = ca('another CA')
    const leafKey = p256KeyFromSeed(deriveKey(randomBytes(32), 'leaf'))
    const signed = x509Certificate({ issuer: customer.name, subject: x509Name(node.cluster.clusterId, 'cluster'), publicKey: leafKey, signingKey: customer.key, ca: false })
    const given = { clusterCertificate: signed, trustAnchor: customer.pem }
    const set = async (certificates: typeof given, signature = signClusterCertificates(secret, node.hsmId, certificates)): Promise<unknown> =>
      await conn.call('setClusterCertificates', { ...certificates, signature })
    await expectCode(set(given, signClusterCertificates(createClusterSecrets().anchor.secretKey, node.hsmId, given)), 'PERMISSION_DENIED')
    await expectCode(set(given, signClusterCertificates(secret, 'hsm-bbbbbbbbbbb', given)), 'PERMISSION_DENIED')
    await expectCode(set({ clusterCertificate: signed, trustAnchor: other.pem }), 'INVALID_INPUT')
    await expectCode(set({ clusterCertificate: 'not a certificate', trustAnchor: customer.pem }), 'INVALID_INPUT')
    await expectCode(conn.call('getCertificate', { certType: 8 }), 'INVALID_INPUT')
    await set(given)
    await set(given)
    await expectCode(set({ clusterCertificate: other.pem, trustAnchor: other.pem }), 'INVALID_INPUT')
    expect((await conn.call('getCertificate', { certType: 8 })).pem).toBe(signed)
    expect((await conn.call('getCertificate', { certType: 4 })).pem).toBe(customer.pem)
    await conn.close()
    await node.stop()

    const again = await startHsm({ dataDir: node.dataDir, manufacturerKey: node.manufacturerKey })
    onTestFinished(async () => { await again.stop() })
    const conn2 = await connect({ url: again.url, cluster: node.cluster })
    expect((await conn2.call('getCertificate', { certType: 8 })).pem).toBe(signed)
    expect((await conn2.call('getCertificate', { certType: 4 })).pem).toBe(customer.pem)
  })

  it('accepts a peer list only when signed by the anchor for this HSM with a newer version, and keeps it across restarts', async () => {
    const node = await startInProcess()
    const conn = await connect(node)
    const peers = [{ hsmId: 'hsm-aaaaaaaaaaa', endpoint: 'ws://127.0.0.1:9' }, { hsmId: node.hsmId, endpoint: node.url }]
    const secret = node.cluster.anchor.secretKey
    await expectCode(conn.call('setPeers', { peers, version: 1, signature: signPeers(createClusterSecrets().anchor.secretKey, node.hsmId, peers, 1) }), 'PERMISSION_DENIED')
    await expectCode(conn.call('setPeers', { peers, version: 1, signature: signPeers(secret, 'hsm-bbbbbbbbbbb', peers, 1) }), 'PERMISSION_DENIED')
    await expectCode(conn.call('setPeers', { peers, version: 2, signature: signPeers(secret, node.hsmId, peers, 1) }), 'PERMISSION_DENIED')
    await expectCode(conn.call('setPeers', { peers: [{ hsmId: 'x', endpoint: 'nowhere' }], version: 1, signature: new Uint8Array(64) }), 'INVALID_INPUT')
    await conn.call('setPeers', { peers, version: 1, signature: signPeers(secret, node.hsmId, peers, 1) })
    await expectCode(conn.call('setPeers', { peers, version: 1, signature: signPeers(secret, node.hsmId, peers, 1) }), 'INVALID_INPUT')
    await expectCode(conn.call('setPeers', { peers: [], version: 0, signature: signPeers(secret, node.hsmId, [], 0) }), 'INVALID_INPUT')
    await conn.call('setPeers', { peers: peers.slice(0, 1), version: 5, signature: signPeers(secret, node.hsmId, peers.slice(0, 1), 5) })
    await conn.close()
    await node.stop()
    await node.stop()

    const again = await startHsm({ dataDir: node.dataDir, manufacturerKey: node.manufacturerKey })
    onTestFinished(async () => { await again.stop() })
    const conn2 = await connect({ url: again.url, cluster: node.cluster })
    await expectCode(conn2.call('setPeers', { peers, version: 5, signature: signPeers(secret, node.hsmId, peers, 5) }), 'INVALID_INPUT')
    await conn2.call('setPeers', { peers, version: 6, signature: signPeers(secret, node.hsmId, peers, 6) })
  })

  it('publishes every answered request on the diagnostics channel', async () => {
    const node = await startInProcess()
    const events: RequestEvent[] = []
    const listener = (message: unknown): void => { events.push(message as RequestEvent) }
    subscribe(REQUEST_CHANNEL, listener)
    onTestFinished(() => { unsubscribe(REQUEST_CHANNEL, listener) })
    const conn = await connect(node)
    await conn.call('listUsers', {})
    await expectCode(conn.call('logout', {}), 'NOT_LOGGED_IN')
    expect(events.filter(e => e.hsmId === node.hsmId).map(e => [e.op, e.status])).toEqual([['listUsers', 0], ['logout', 0x90]])
  })

  it('refuses new connections once stopped, and stop() is idempotent', async () => {
    const node = await startInProcess()
    const conn = await connect(node)
    await Promise.all([node.stop(), node.stop()])
    await expect(conn.call('listUsers', {})).rejects.toMatchObject({ code: 'CLIENT_ERR_CLOSED' })
    await expect(connect(node)).rejects.toMatchObject({ code: 'CLIENT_ERR_CONNECT' })
  })
})

describe('connection limits', () => {
  it('drops a connection that sends no hello in time', async () => {
    const node = await startInProcess({ handshakeTimeoutMs: 100 })
    const silent = await openSocket(node.url)
    expect(await silent.closed).toBe(1006)
    expect((await (await connect(node)).call('listUsers', {})).users).toHaveLength(2)
  })

  it('drops a connection that does not answer heartbeat pings', async () => {
    const node = await startInProcess({ heartbeatIntervalMs: 200 })
    const healthy = await connect(node)
    const deaf = await rawConnect(node.url, node.cluster.anchor.publicKey, { autoPong: false })
    expect(await deaf.closed).toBe(1006)
    expect((await healthy.call('listUsers', {})).users).toHaveLength(2)
  })

  it('answers every pipelined request when only one may be in processing at a time', async () => {
    const node = await startInProcess({ requestsInFlightMax: 1 })
    const conn = await connect(node)
    const ids = await Promise.all(Array.from({ length: 20 }, async () => (await conn.call('getHsmInfo', {})).hsmId))
    expect(new Set(ids)).toEqual(new Set([node.hsmId]))
  })
})

describe('the handle allocator', () => {
  it('starts at slot * 262144 + 6 and never repeats a handle of its slot, tombstones included', async () => {
    const keys = memoryStore<KeyRecord | KeyTombstone>()
    const slot0 = handleAllocator({ keys }, 0)
    expect([slot0(), slot0()]).toEqual([6, 7])
    const slot2 = handleAllocator({ keys }, 2)
    expect(slot2()).toBe(2 * 262144 + 6)
    await keys.apply([
      { op: 'put', id: String(2 * 262144 + 40), value: { handle: 2 * 262144 + 40, deleted: true } },
      { op: 'put', id: String(3 * 262144 + 90), value: { handle: 3 * 262144 + 90, deleted: true } }
    ])
    expect(slot2()).toBe(2 * 262144 + 41)
    expect(handleAllocator({ keys }, 2)()).toBe(2 * 262144 + 41)
    expect(slot0()).toBe(8)
  })
})
