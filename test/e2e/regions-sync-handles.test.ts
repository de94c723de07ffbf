/**
 * Goal: the handle rules of syncKey between a cluster and its clone (issue "Regions"): a key
 * synced into a clone keeps its handle where that handle is free there, and CMU says what handle
 * it got where it is not; syncKey is idempotent when repeated (no second copy on the clone), in
 * both cases.
 *
 * Method: the default lab (us-east-1/primary and its clone us-west-2/dr, through the real
 * `hsmlab` bin), keys made by crypto user alice with the real KMU bin on chosen HSMs (a
 * configuration naming one HSM), syncKey with the real CMU bin through the lab's cross-cluster
 * configuration (primary's first HSM is server 0, dr's first HSM server 1), and KMU `findKey -l`
 * on dr to count the copies.
 *
 * How a collision arises through user-facing paths: an HSM makes handles `slot * 262144 + n`, and
 * a clone's HSMs take the slots after those its source had when the backup was made. HSMs the
 * source adds later take the same slots, so a key made there and a key made on the clone's HSM of
 * that slot get the same handle. In the default lab this is primary's second HSM and dr's first
 * when dr was made from primary's activation backup; when the lab had to make a later backup,
 * the test adds an HSM to primary through the API until one has dr's slot.
 */
import { describe, expect, it } from 'vitest'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import { startLab, waitFor } from '@hsmlab/testing'
import { clusterOf, cmu, configFor, handlesLabelled, hostOf, makeKey } from './regions-helpers.js'

const HANDLES_PER_SLOT = 262144
const ALICE: [string, string] = ['alice', 'Alice1234']
const LOGIN = 'loginHSM CO admin Admin1234'

/** The handles of each `Key <h> was inserted on server 1(<host>) with handle <h2>` line, then `syncKey success`. */
function insertedAs (stdout: string, handle: number, host: string): number[] {
  const line = new RegExp(`Key ${handle} was inserted on server 1\\(${host.replace(/\./g, '\\.')}\\) with handle (\\d+)\\nsyncKey success\\n`, 'g')
  return [...stdout.matchAll(line)].map(m => Number(m[1]))
}

describe('syncKey into a clone: handles', () => {
  it('keeps a free handle, reports the handle it got when its own is taken, and makes no second copy when repeated', async () => {
    const lab = await startLab({ lean: true })
    const dir = lab.cwd
    const primary = clusterOf(lab.status, 'us-east-1', 'primary')
    const dr = clusterOf(lab.status, 'us-west-2', 'dr')
    const cross = lab.status.cmuConfigs['us-east-1/primary->us-west-2/dr'] as string
    const drHost = hostOf(dr.hsms[0] as { endpoint: string })
    const onPrimary = await Promise.all(primary.hsms.map(async (hsm, i) => await configFor(dir, `primary-${i}.cfg`, [{ cluster: primary, hsm }])))
    const onDr = await Promise.all(dr.hsms.map(async (hsm, i) => await configFor(dir, `dr-${i}.cfg`, [{ cluster: dr, hsm }])))

    // A key made on primary's first HSM after the clone: its handle (slot 0) is free on dr.
    const free = await makeKey(dir, onPrimary[0] as string, ALICE, 'free-handle')
    expect(Math.floor(free / HANDLES_PER_SLOT)).toBe(0)
    expect(await handlesLabelled(dir, onDr[0] as string, ALICE, 'free-handle')).toEqual([])
    const kept = await cmu(cross, [LOGIN, 'server 0', `syncKey ${free} 1`, `syncKey ${free} 1`, 'exit', 'quit'])
    // Both runs print only the success line: the key kept its handle.
    expect(kept.split(`server 0>syncKey ${free} 1\n`).slice(1).map(s => s.split('\n')[0])).toEqual(['syncKey success', 'syncKey success'])
    expect(kept).not.toContain('was inserted')
    expect(await handlesLabelled(dir, onDr[0] as string, ALICE, 'free-handle')).toEqual([free])

    // A key made on dr's first HSM; then a key made on the primary HSM of the same slot gets the same handle.
    const theirs = await makeKey(dir, onDr[0] as string, ALICE, 'made-on-dr')
    const slot = Math.floor(theirs / HANDLES_PER_SLOT)
    let ours: { handle: number, label: string } | undefined
    for (const [i, config] of onPrimary.entries()) {
      const label = `made-on-primary-${i}`
      const handle = await makeKey(dir, config, ALICE, label)
      if (handle === theirs) ours = { handle, label }
    }
    // No primary HSM has dr's slot yet (dr was made from a backup taken after primary's second
    // HSM was added): add HSMs to primary through the API until one has.
    const east = new ControlPlaneClient({ endpoint: lab.status.regions[0]?.controlPlane?.endpoint as string, region: 'us-east-1' })
    for (let added = 0; ours === undefined && added < 2; added++) {
      const created = await east.createHsm({ ClusterId: primary.id, AvailabilityZone: 'us-east-1a' })
      const ready = await east.waitForHsm(primary.id, created.HsmId, 'ACTIVE', { timeoutMs: 30_000 })
      const label = `made-on-added-${added}`
      const handle = await makeKey(dir, await configFor(dir, `primary-added-${added}.cfg`, [{ cluster: primary, hsm: { endpoint: ready.HsmlabEndpoint as string } }]), ALICE, label)
      if (handle === theirs) ours = { handle, label }
    }
    if (ours === undefined) throw new Error(`no HSM of primary made a key with handle ${theirs} (slot ${slot} of dr's first HSM)`)
    const collided = ours
    // It reaches primary's first HSM (server 0 of the cross-cluster configuration) by replication.
    await waitFor(async () => (await handlesLabelled(dir, onPrimary[0] as string, ALICE, collided.label)).includes(collided.handle), {
      timeoutMs: 20_000, what: `key ${collided.handle} on primary's first HSM`
    })

    // syncKey: dr's copy of the handle is dr's own key, so the key gets another one, and CMU says which.
    const moved = await cmu(cross, [LOGIN, 'server 0', `syncKey ${collided.handle} 1`, `syncKey ${collided.handle} 1`, 'exit', 'quit'])
    const got = insertedAs(moved, collided.handle, drHost)
    expect(got, moved).toHaveLength(2)
    expect(got[0]).not.toBe(collided.handle)
    // The repeat finds the copy it made: the same handle, no second copy.
    expect(got[1]).toBe(got[0])
    expect(await handlesLabelled(dir, onDr[0] as string, ALICE, collided.label)).toEqual([got[0]])
    // dr's own key keeps its handle, and the clone's other HSM gets the copy by replication.
    expect(await handlesLabelled(dir, onDr[0] as string, ALICE, 'made-on-dr')).toEqual([theirs])
    await waitFor(async () => {
      const there = await handlesLabelled(dir, onDr[1] as string, ALICE, collided.label)
      return there.length === 1 && there[0] === got[0] ? true : undefined
    }, { timeoutMs: 20_000, what: `key ${got[0] ?? '?'} on dr's second HSM` })
  })
})
