/**
 * Replication across real `hsmlab-hsm` processes: three HSMs of one cluster (slots 0, 1, 2), each
 * told its peers with a signed setPeers, each with a CU alice (user 3) and the activated CO admin.
 *
 * Goal: a token key made on one HSM reaches the others under the same handle; minServers is
 * honoured (and a key that misses it exists nowhere); a stopped HSM catches up with every key and
 * delete when it comes back; deletes propagate. Method: connect with the client library, wait for
 * conditions with deadlines (never fixed sleeps), and kill every process when the test ends.
 */
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { HsmConnection } from '@hsmlab/client'
import { generateSigningKeyPair, issueCertificate } from '@hsmlab/crypto'
import { KeyType, WireError } from '@hsmlab/protocol'
import { spawnNode, tmpDir, waitFor } from '@hsmlab/testing'
import type { SpawnedProcess } from '@hsmlab/testing'
import { HSM_BIN_PATH, createClusterSecrets, createManufacturerKey, provisionHsm, signPeers, writeManufacturerKey } from '../src/index.js'
import type { ClusterSecrets } from '../src/index.js'
import { readReadyLine } from './helpers.js'

interface ClusterHsm {
  hsmId: string
  dataDir: string
  port: number
  url: string
  proc: SpawnedProcess
}

interface TestCluster {
  cluster: ClusterSecrets
  keyFile: string
  hsms: ClusterHsm[]
}

const ALICE_PASSWORD = 'alice-pass'
const ADMIN_PASSWORD = 'officer1pw'

async function spawn (cluster: TestCluster | { keyFile: string }, dataDir: string, port: number): Promise<{ proc: SpawnedProcess, port: number }> {
  const proc = spawnNode(HSM_BIN_PATH, ['--data-dir', dataDir, '--manufacturer-key-file', cluster.keyFile, '--port', String(port), '--log-level', 'info'], { name: `hsmlab-hsm ${dataDir}` })
  const ready = await readReadyLine(proc)
  return { proc, port: ready.port }
}

async function open (cluster: TestCluster, hsm: ClusterHsm): Promise<HsmConnection> {
  const conn = await HsmConnection.connect({ url: hsm.url, trustAnchor: cluster.cluster.anchor.publicKey, expectedClusterId: cluster.cluster.clusterId })
  onTestFinished(async () => { await conn.close() })
  return conn
}

async function login (cluster: TestCluster, hsm: ClusterHsm, userType: 'CO' | 'CU', userName: string, password: string): Promise<HsmConnection> {
  const conn = await open(cluster, hsm)
  await conn.call('login', { userType, userName, password })
  return conn
}

/** Provisions and starts three HSMs of one cluster, activates them, adds alice, sets the peers. */
async function startCluster (size = 3): Promise<TestCluster> {
  const dir = tmpDir('hsmlab-replication-')
  const manufacturerKey = createManufacturerKey()
  const keyFile = join(dir, 'manufacturer.key')
  await writeManufacturerKey(keyFile, manufacturerKey)
  const cluster = createClusterSecrets()
  const hsms = await Promise.all(Array.from({ length: size }, async (_, slot) => {
    const dataDir = join(dir, `hsm-${slot}`)
    const { hsmId } = await provisionHsm({ dataDir, manufacturerKey, slot, cluster, passwordHashCost: 1024 })
    const { proc, port } = await spawn({ keyFile }, dataDir, 0)
    return { hsmId, dataDir, port, url: `ws://127.0.0.1:${port}`, proc }
  }))
  const tc: TestCluster = { cluster, keyFile, hsms }
  const peers = hsms.map(h => ({ hsmId: h.hsmId, endpoint: h.url }))
  await Promise.all(hsms.map(async hsm => {
    const conn = await open(tc, hsm)
    await conn.call('login', { userType: 'PRECO', userName: 'admin', password: 'password' })
    await conn.call('changePassword', { userType: 'PRECO', userName: 'admin', password: ADMIN_PASSWORD })
    expect(await conn.call('createUser', { userType: 'CU', userName: 'alice', password: ALICE_PASSWORD })).toEqual({ userId: 3 })
    await conn.call('setPeers', { peers, version: 1, signature: signPeers(cluster.anchor.secretKey, hsm.hsmId, peers, 1) })
    await conn.close()
  }))
  return tc
}

/** Kills an HSM (SIGKILL) and waits until it is gone. */
async function kill (hsm: ClusterHsm): Promise<void> {
  await hsm.proc.kill()
}

/** Starts a stopped HSM again on the port it had, so its peers' lists still hold. */
async function restart (cluster: TestCluster, hsm: ClusterHsm): Promise<void> {
  const { proc } = await spawn(cluster, hsm.dataDir, hsm.port)
  hsm.proc = proc
}

/** A connection that proved itself an HSM of the cluster (the test holds the anchor), to read inventories. */
async function observer (cluster: TestCluster, hsm: ClusterHsm): Promise<HsmConnection> {
  const keys = generateSigningKeyPair()
  const certificate = issueCertificate(cluster.cluster.anchor.secretKey, { hsmId: 'hsm-observer2222', clusterId: cluster.cluster.clusterId, publicKey: keys.publicKey })
  const conn = await HsmConnection.connect({
    url: hsm.url,
    trustAnchor: cluster.cluster.anchor.publicKey,
    expectedClusterId: cluster.cluster.clusterId,
    peerIdentity: { secretKey: keys.secretKey, certificate }
  })
  onTestFinished(async () => { await conn.close() })
  return conn
}

async function hasKey (conn: HsmConnection, handle: number): Promise<boolean> {
  try {
    await conn.call('getKeyInfo', { handle })
    return true
  } catch (err) {
    if (err instanceof WireError && err.code === 'RET_INVALID_HANDLE') return false
    throw err
  }
}

async function keyHash (conn: HsmConnection): Promise<string | undefined> {
  return (await conn.call('findAllKeys', { userId: 3, withHash: true })).hash
}

describe('replication across HSM processes', () => {
  it('puts a new key on every HSM under the same handle, honours minServers, and propagates deletes', async () => {
    const tc = await startCluster()
    const [h0, h1, h2] = tc.hsms as [ClusterHsm, ClusterHsm, ClusterHsm]
    const alice0 = await login(tc, h0, 'CU', 'alice', ALICE_PASSWORD)
    const cos = await Promise.all(tc.hsms.map(async h => await login(tc, h, 'CO', 'admin', ADMIN_PASSWORD)))

    const { handle } = await alice0.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label: 'replicated' })
    expect(Math.floor(handle / 262144)).toBe(0)
    for (const co of cos) {
      await waitFor(async () => await hasKey(co, handle), { what: `key ${handle} on every HSM` })
      expect(await co.call('getKeyInfo', { handle })).toMatchObject({ handle, owner: 3, token: true })
    }
    // With every HSM up, minServers 3 succeeds and the call returns once all hold the pair.
    const alice2 = await login(tc, h2, 'CU', 'alice', ALICE_PASSWORD)
    const pair = await alice2.call('generateKeyPair', { algorithm: 'EC', curveId: 2, label: 'pair', minServers: 3, timeoutMs: 10_000 })
    expect(Math.floor(pair.privateHandle / 262144)).toBe(2)
    for (const co of cos) expect(await hasKey(co, pair.privateHandle)).toBe(true)
    // The copies are the same keys: the key hash agrees everywhere.
    const hashes = await Promise.all(cos.map(keyHash))
    expect(new Set(hashes).size).toBe(1)
    // A signature made on one HSM verifies on another with the replicated public key.
    const alice1 = await login(tc, h1, 'CU', 'alice', ALICE_PASSWORD)
    const data = new TextEncoder().encode('across the cluster')
    const { signature } = await alice2.call('sign', { handle: pair.privateHandle, mechanism: 17, data })
    await alice1.call('verify', { handle: pair.publicHandle, mechanism: 17, data, signature })

    // A delete on one HSM reaches the others.
    await alice1.call('deleteKey', { handle })
    for (const co of cos) await waitFor(async () => !(await hasKey(co, handle)), { what: `key ${handle} deleted everywhere` })
  })

  it('fails minServers 3 with one HSM down, leaving the key nowhere; the HSM learns the delete when back', async () => {
    const tc = await startCluster()
    const [h0, h1, h2] = tc.hsms as [ClusterHsm, ClusterHsm, ClusterHsm]
    const alice0 = await login(tc, h0, 'CU', 'alice', ALICE_PASSWORD)
    const co1 = await login(tc, h1, 'CO', 'admin', ADMIN_PASSWORD)
    await kill(h2)
    const failed = alice0.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 'not created', minServers: 3, timeoutMs: 1_500 })
    await expect(failed).rejects.toMatchObject({ code: 'RET_MIN_SERVERS_NOT_MET', status: 0x30000086 })
    const { handles } = await alice0.call('findKey', {})
    expect(handles).toEqual([])
    // Handle 6 of slot 0 was the failed key's: it is deleted on h1 too (it may have got it).
    const watch1 = await observer(tc, h1)
    await waitFor(async () => (await watch1.call('peerInventory', {})).deleted.includes(6), { what: 'the tombstone on h1' })
    expect(await hasKey(co1, 6)).toBe(false)
    // minServers 2 still works with two HSMs up.
    const { handle } = await alice0.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 'two', minServers: 2, timeoutMs: 10_000 })
    expect(await hasKey(co1, handle)).toBe(true)

    await restart(tc, h2)
    const watch2 = await observer(tc, h2)
    await waitFor(async () => {
      const inventory = await watch2.call('peerInventory', {})
      return inventory.deleted.includes(6) && inventory.keys.some(([h]) => h === handle)
    }, { what: 'h2 caught up with the tombstone and the key', timeoutMs: 15_000 })
    const co2 = await login(tc, h2, 'CO', 'admin', ADMIN_PASSWORD)
    expect(await hasKey(co2, 6)).toBe(false)
  })

  it('an HSM stopped while keys are made and deleted catches up on all of it when it restarts', async () => {
    const tc = await startCluster()
    const [h0, h1, h2] = tc.hsms as [ClusterHsm, ClusterHsm, ClusterHsm]
    const alice0 = await login(tc, h0, 'CU', 'alice', ALICE_PASSWORD)
    const alice1 = await login(tc, h1, 'CU', 'alice', ALICE_PASSWORD)
    const early = (await alice0.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: 'early' })).handle
    const co2 = await login(tc, h2, 'CO', 'admin', ADMIN_PASSWORD)
    await waitFor(async () => await hasKey(co2, early), { what: 'the early key on h2' })
    await kill(h2)

    const made: number[] = []
    for (let i = 0; i < 12; i++) {
      const conn = i % 2 === 0 ? alice0 : alice1
      made.push((await conn.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 16, label: `while-down-${i}` })).handle)
    }
    const pair = await alice1.call('generateKeyPair', { algorithm: 'RSA', modulusBits: 2048, label: 'rsa-while-down' })
    made.push(pair.publicHandle, pair.privateHandle)
    const deleted = [early, made[0]!, made[3]!]
    await alice0.call('deleteKey', { handle: early })
    await alice0.call('deleteKey', { handle: made[0]! })
    await alice1.call('deleteKey', { handle: made[3]! })
    const alive = made.filter(h => !deleted.includes(h))

    await restart(tc, h2)
    const coAgain = await login(tc, h2, 'CO', 'admin', ADMIN_PASSWORD)
    await waitFor(async () => {
      for (const h of alive) if (!(await hasKey(coAgain, h))) return false
      for (const h of deleted) if (await hasKey(coAgain, h)) return false
      return true
    }, { what: 'h2 holding every key made while it was down, and none deleted', timeoutMs: 20_000 })

    // Every HSM agrees on the keys, owners and shares.
    const cos = await Promise.all(tc.hsms.map(async h => await login(tc, h, 'CO', 'admin', ADMIN_PASSWORD)))
    await waitFor(async () => new Set(await Promise.all(cos.map(keyHash))).size === 1, { what: 'equal key hashes' })
    const listing = await coAgain.call('findAllKeys', { userId: 3, withHash: false })
    expect(listing.keys.map(k => k.handle).sort((a, b) => a - b)).toEqual([...alive].sort((a, b) => a - b))
  })
})
