/**
 * Goal: an HSM cut off from its cluster (`hsmlab fault partition <hsm>`: its client link and its
 * peer links) while keys are created on the others misses them, and once healed catches up on
 * every one of them by the cluster's own replication, with the same key hash everywhere.
 *
 * Method: a one-region lab of one cluster of 3 HSMs (startLab); keys generated through the client
 * library on hsm-0 (through its client link); what the cut HSM holds read on its own endpoint,
 * behind the fault proxy, which only the test uses (`directEndpoint` of the status); the heal with
 * the real `hsmlab fault heal` bin, then a wait until the HSM answers through its client link
 * with every key.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it, onTestFinished } from 'vitest'
import { HsmConnection } from '@hsmlab/client'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import { startLab, waitFor } from '@hsmlab/testing'
import type { LabStatusCluster } from '@hsmlab/testing'

const topology = {
  regions: [{
    name: 'eu-west-1',
    clusters: [{ name: 'main', hsms: 3, activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'alice', password: 'Alice1234' }] }]
  }]
}
const AES = 31
const KEYS = 6

/** A session logged in on one HSM (alice, or the CO); closed when the test ends. */
async function sessionOn (cluster: LabStatusCluster, url: string, as: 'alice' | 'admin' = 'alice'): Promise<{ connection: HsmConnection, userId: number }> {
  const anchor = decodeTrustAnchor(readFileSync(cluster.trustAnchor as string, 'utf8'))
  const connection = await HsmConnection.connect({ url, trustAnchor: anchor, expectedClusterId: cluster.id, connectTimeoutMs: 2_000 })
  onTestFinished(async () => { await connection.close() })
  const { userId } = as === 'alice'
    ? await connection.call('login', { userType: 'CU', userName: 'alice', password: 'Alice1234' })
    : await connection.call('login', { userType: 'CO', userName: 'admin', password: 'Admin1234' })
  return { connection, userId }
}

/** alice's keys on one HSM, as the CO lists them (CMU's findAllKeys <alice> 1): how many, and their hash. */
async function keysOn (cluster: LabStatusCluster, url: string, alice: number): Promise<{ count: number, hash?: string }> {
  const { connection } = await sessionOn(cluster, url, 'admin')
  try {
    const found = await connection.call('findAllKeys', { userId: alice, withHash: true })
    return found.hash === undefined ? { count: found.keys.length } : { count: found.keys.length, hash: found.hash }
  } finally {
    await connection.close()
  }
}

describe('an HSM partitioned from its cluster', () => {
  it('misses the keys made meanwhile and catches up on every one after the heal', async () => {
    const lab = await startLab({ lean: true, topology })
    const cluster = lab.status.regions[0]?.clusters[0] as LabStatusCluster
    const [hsm0, , cut] = cluster.hsms
    if (hsm0 === undefined || cut === undefined) throw new Error('3 HSMs expected')

    const partition = await lab.hsmlab(['fault', 'partition', 'eu-west-1/main/hsm-2'])
    expect(partition.code, partition.stderr).toBe(0)
    expect(partition.stdout).toBe('partitioned eu-west-1/main/hsm-2: 5 links\n  eu-west-1/main/hsm-2\n' +
      '  peer/eu-west-1/main/hsm-0->hsm-2\n  peer/eu-west-1/main/hsm-1->hsm-2\n  peer/eu-west-1/main/hsm-2->hsm-0\n  peer/eu-west-1/main/hsm-2->hsm-1\n')
    // Its clients cannot reach it any more.
    await expect(sessionOn(cluster, cut.endpoint)).rejects.toThrow()

    const { connection, userId: alice } = await sessionOn(cluster, hsm0.endpoint)
    for (let i = 0; i < KEYS; i++) {
      await connection.call('generateSymmetricKey', { label: `while-cut-${i}`, keyType: AES, sizeBytes: 32 })
    }
    // Every key reaches hsm-1 (the cluster replicates), none reaches the cut HSM.
    const expected = await keysOn(cluster, hsm0.endpoint, alice)
    expect(expected.count).toBe(KEYS)
    await waitFor(async () => (await keysOn(cluster, cluster.hsms[1]?.endpoint as string, alice)).hash === expected.hash ? true : undefined,
      { timeoutMs: 20_000, what: 'the keys on hsm-1' })
    expect((await keysOn(cluster, cut.directEndpoint as string, alice)).count).toBe(0)

    const heal = await lab.hsmlab(['fault', 'heal'])
    expect(heal.code, heal.stderr).toBe(0)
    await waitFor(async () => {
      const seen = await keysOn(cluster, cut.endpoint, alice).catch(() => undefined)
      return seen?.count === KEYS && seen.hash === expected.hash ? true : undefined
    }, { timeoutMs: 30_000, what: 'the healed HSM to hold every key, through its client link' })
  })
})
