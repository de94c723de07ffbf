/**
 * Goal (issue 4, "Network-fault testing"): an HSM killed with SIGKILL in the middle of a stream
 * of key creations, while its peer links are slowed by the fault layer, and restarted with
 * `hsmlab up`, rejoins with nothing lost: once the links are healed and the cluster has settled,
 * every acknowledged key is on every HSM under its one handle, no key has a second copy, and the
 * HSMs' findAllKeys hashes agree.
 *
 * Method: a one-region lab of one cluster of 3 HSMs (startLab, fault layer on as by default).
 * `hsmlab fault latency` slows every peer link of hsm-1 (both ways, to hsm-0 and hsm-2), so that
 * the keys it acknowledges reach its peers late. Crypto user alice creates keys through the
 * client library on hsm-0 and hsm-1 (their client links, several requests in flight on each),
 * each with a label of its own. Then the control plane is SIGKILLed (so that nobody restarts
 * hsm-1 before `hsmlab up`), then hsm-1, in the middle of its stream; creations go on on hsm-0
 * while hsm-1 is down. `hsmlab up` starts both again, `hsmlab fault heal` lifts the latency, and
 * the test waits until the three HSMs report the same findAllKeys hash, then checks every label on
 * every HSM. A creation cut by the kill was never acknowledged: its key may exist or not, but the
 * same on every HSM.
 */
import { describe, expect, it } from 'vitest'
import type { HsmConnection } from '@hsmlab/client'
import { startLab, waitFor } from '@hsmlab/testing'
import type { LabStatusCluster, StartedLab } from '@hsmlab/testing'
import { fault, sessionOn } from './regions-helpers.js'

const topology = {
  regions: [{
    name: 'eu-west-1',
    clusters: [{ name: 'main', hsms: 3, activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'alice', password: 'Alice1234' }] }]
  }]
}
const ALICE = { type: 'CU', name: 'alice', password: 'Alice1234' } as const
const ADMIN = { type: 'CO', name: 'admin', password: 'Admin1234' } as const
const AES = 31
const WORKERS_PER_HSM = 4
/** Keys hsm-1 acknowledges before it is killed, and hsm-0 after that. */
const KEYS_BEFORE_KILL = 40
const KEYS_WHILE_DOWN = 30
const PEER_LATENCY_MS = 400

function clusterOf (status: StartedLab['status']): LabStatusCluster {
  const cluster = status.regions[0]?.clusters[0]
  if (cluster?.hsms.length !== 3) throw new Error('a cluster of 3 HSMs expected')
  return cluster
}

/** Key creations on one HSM: each label tried, the handle of each one acknowledged. */
interface Stream {
  tried: string[]
  acknowledged: Map<string, number>
  /** Why the stream stopped before it was asked to, if it did. */
  failure?: Error
  done: Promise<void>
}

/** Creates keys labelled `<name>-<worker>-<n>` on `connection`, `WORKERS_PER_HSM` at a time, until `stop()` is true or a creation fails. */
function streamKeys (connection: HsmConnection, name: string, stop: () => boolean): Stream {
  const stream: Stream = { tried: [], acknowledged: new Map(), done: Promise.resolve() }
  stream.done = Promise.all(Array.from({ length: WORKERS_PER_HSM }, async (_, worker) => {
    for (let n = 0; !stop() && stream.failure === undefined; n++) {
      const label = `${name}-${worker}-${n}`
      stream.tried.push(label)
      try {
        const { handle } = await connection.call('generateSymmetricKey', { label, keyType: AES, sizeBytes: 32 })
        stream.acknowledged.set(label, handle)
      } catch (err) {
        stream.failure ??= err as Error
      }
    }
  })).then(() => undefined)
  return stream
}

describe('an HSM SIGKILLed mid-stream while the fault layer slows its peer links', () => {
  it('rejoins after hsmlab up with every acknowledged key on every HSM, one handle each, and the same findAllKeys hash', async () => {
    const lab = await startLab({ topology })
    const cluster = clusterOf(lab.status)
    const [hsm0, victim] = cluster.hsms
    if (hsm0 === undefined || victim === undefined) throw new Error('3 HSMs expected')
    for (const peer of ['hsm-0', 'hsm-2']) {
      expect(await fault(lab, ['latency', 'eu-west-1/main/hsm-1', `eu-west-1/main/${peer}`, '--ms', String(PEER_LATENCY_MS)]))
        .toMatch(/: 2 links\n/)
    }

    const { connection: onHsm0, userId: alice } = await sessionOn(cluster, hsm0.endpoint, ALICE)
    const { connection: onVictim } = await sessionOn(cluster, victim.endpoint, ALICE)
    const { connection: adminOnHsm0 } = await sessionOn(cluster, hsm0.endpoint, ADMIN)
    let stopped = false
    const survivor = streamKeys(onHsm0, 'hsm0', () => stopped)
    const doomed = streamKeys(onVictim, 'hsm1', () => stopped)
    await waitFor(() => doomed.acknowledged.size >= KEYS_BEFORE_KILL ? true : undefined,
      { timeoutMs: 30_000, what: `${KEYS_BEFORE_KILL} keys acknowledged by hsm-1` })
    // Without its control plane, the killed HSM stays down until `hsmlab up`.
    process.kill(Number(lab.status.regions[0]?.controlPlane?.pid), 'SIGKILL')
    process.kill(Number(victim.pid), 'SIGKILL')
    // The premise: the latency kept some of hsm-1's acknowledged keys from its peers, so only the
    // restarted hsm-1 can give them back.
    const onHsm0AtKill = new Set((await adminOnHsm0.call('findAllKeys', { userId: alice, withHash: false })).keys.map(k => k.handle))
    await doomed.done
    expect(doomed.failure?.message).toMatch(/closed/)
    expect([...doomed.acknowledged.values()].filter(h => !onHsm0AtKill.has(h)).length).toBeGreaterThan(0)
    const beforeDown = survivor.acknowledged.size
    await waitFor(() => survivor.acknowledged.size >= beforeDown + KEYS_WHILE_DOWN ? true : undefined,
      { timeoutMs: 30_000, what: `${KEYS_WHILE_DOWN} keys acknowledged by hsm-0 while hsm-1 is down` })
    stopped = true
    await survivor.done
    expect(survivor.failure).toBeUndefined()

    const status = await lab.up()
    expect(clusterOf(status).hsms.map(h => h.state)).toEqual(['ACTIVE', 'ACTIVE', 'ACTIVE'])
    expect(await fault(lab, ['heal'])).toMatch(/^healed everything/)

    // Settled: the three HSMs hold the same keys of alice (the CO's findAllKeys hash).
    const admins = await Promise.all(clusterOf(status).hsms.map(async hsm => (await sessionOn(cluster, hsm.endpoint, ADMIN)).connection))
    const acknowledged = new Map([...survivor.acknowledged, ...doomed.acknowledged])
    const settled = await waitFor(async () => {
      const found = await Promise.all(admins.map(async admin => await admin.call('findAllKeys', { userId: alice, withHash: true })))
      const missing = found.map(f => {
        const handles = new Set(f.keys.map(k => k.handle))
        return [...acknowledged.values()].filter(h => !handles.has(h)).length
      })
      // Thrown, so that a timeout says how far from settled the cluster was.
      if (missing.some(n => n > 0) || found.some(f => f.hash !== found[0]?.hash)) {
        throw new Error(`acknowledged keys missing per HSM: ${missing.join(', ')}; key counts: ${found.map(f => f.keys.length).join(', ')}`)
      }
      return found[0]
    }, { timeoutMs: 30_000, intervalMs: 200, what: 'the three HSMs to hold every acknowledged key and agree on alice\'s findAllKeys hash' })

    // Every label on every HSM: an acknowledged key under its one handle; a creation cut by the
    // kill, one key or none, the same everywhere; and no key beyond these.
    const sessions = await Promise.all(clusterOf(status).hsms.map(async hsm => (await sessionOn(cluster, hsm.endpoint, ALICE)).connection))
    let keys = 0
    for (const label of [...survivor.tried, ...doomed.tried]) {
      const found = await Promise.all(sessions.map(async s => (await s.call('findKey', { label })).handles))
      const expected = acknowledged.get(label)
      if (expected !== undefined) expect(found, label).toEqual([[expected], [expected], [expected]])
      else expect(found[0]?.length, label).toBeLessThanOrEqual(1)
      expect(found[1], label).toEqual(found[0])
      expect(found[2], label).toEqual(found[0])
      keys += found[0]?.length ?? 0
    }
    expect(settled.keys).toHaveLength(keys)
  })
})
