/**
 * Goal: syncKey and syncUser work only between a cluster and its clones (reference G.4: "You
 * cannot use syncKey to synchronize keys across arbitrary clusters: one of the clusters must have
 * been created from a backup of the other"): between two unrelated clusters, with the same CO
 * and crypto users on both, each is refused with a failure line naming the lineage problem, and
 * the destination is left unchanged.
 *
 * Method: a lab of two independent clusters in one region (the real `hsmlab` bin), both activated
 * with CO admin / Admin1234 and crypto user alice; a key made by alice with the real KMU bin on
 * the first; a CMU configuration listing one HSM of each (`writeCmuConfig`, each with its own
 * cluster's trust anchor file), and the real CMU bin: `loginHSM CO admin Admin1234`, `server 0`,
 * `syncKey <h> 1`, `syncUser <id> 1`; then findAllKeys, getKeyInfo and listUsers on the
 * destination.
 */
import { describe, expect, it } from 'vitest'
import { startLab } from '@hsmlab/testing'
import { clusterOf, cmu, configFor, hostOf, keyHashes, makeKey, outputOf, userRows } from './regions-helpers.js'

const LOGIN = 'loginHSM CO admin Admin1234'
const LINEAGE_TEXT = 'HSM Error: The masked object comes from a cluster that is neither this cluster nor a clone of it'

describe('syncKey and syncUser between unrelated clusters', () => {
  it('are refused with the lineage problem named, and change nothing on the destination', async () => {
    const cluster = (name: string): object => ({
      name, hsms: 1, activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'alice', password: 'Alice1234' }]
    })
    const lab = await startLab({ lean: true, topology: { regions: [{ name: 'us-east-1', clusters: [cluster('blue'), cluster('green')] }] } })
    const dir = lab.cwd
    const blue = clusterOf(lab.status, 'us-east-1', 'blue')
    const green = clusterOf(lab.status, 'us-east-1', 'green')
    expect([blue.state, green.state]).toEqual(['ACTIVE', 'ACTIVE'])
    expect(green.lineage).not.toBe(blue.lineage)
    expect(lab.status.cmuConfigs).toEqual({})
    const config = await configFor(dir, 'blue-green.cfg', [{ cluster: blue, hsm: blue.hsms[0] as { endpoint: string } }, { cluster: green, hsm: green.hsms[0] as { endpoint: string } }])
    const greenLabel = `server 1(${hostOf(green.hsms[0] as { endpoint: string })})`

    // A key of alice on blue, and a crypto user only blue has.
    const handle = await makeKey(dir, blue.cmuConfig, ['alice', 'Alice1234'], 'blue-key')
    const created = await cmu(blue.cmuConfig, [LOGIN, 'createUser CU dave Dave1234', 'y', 'listUsers', 'quit'])
    const daveId = Number(/^\s+(\d+)\s+CU\s+dave\b/m.exec(created)?.[1])
    expect(daveId).toBeGreaterThan(3)
    const before = await cmu(config, [LOGIN, 'findAllKeys 3 1', 'listUsers', 'quit'])
    expect(keyHashes(before).get(0)).toMatchObject({ count: 1, handles: [handle] })
    expect(keyHashes(before).get(1)).toEqual({ count: 0, handles: [] })
    // Both clusters have the same CO and alice under the same id: only the lineage differs.
    expect(userRows(before).get(1)).toEqual(userRows(before).get(0)?.filter(row => !row.endsWith(' dave')))

    const lineage = `(masked object comes from cluster lineage ${blue.lineage}, not ${green.lineage}: ` +
      'only the cluster it was extracted from and clones of that cluster can insert it)'
    const refused = await cmu(config, [LOGIN, 'server 0', `syncKey ${handle} 1`, `syncUser ${daveId} 1`, 'exit', `getKeyInfo ${handle}`, 'findAllKeys 3 1', 'listUsers', 'quit'])
    expect(outputOf(refused, `syncKey ${handle} 1`)).toBe(`syncKey failed: ${LINEAGE_TEXT} ${lineage}\nsyncKey failed on ${greenLabel}\n`)
    expect(outputOf(refused, `syncUser ${daveId} 1`)).toBe(
      `ExtractMaskedObject: 0x0 !\nInsertMaskedObject: 0x9c !\nsyncUser failed: ${LINEAGE_TEXT} ${lineage}\nsyncUser failed on ${greenLabel}\n`)

    // The destination is as it was: no key, no user more.
    expect(outputOf(refused, `getKeyInfo ${handle}`)).toContain(`getKeyInfo failed on ${greenLabel}`)
    expect(keyHashes(refused).get(1)).toEqual({ count: 0, handles: [] })
    expect(keyHashes(refused).get(0)).toEqual(keyHashes(before).get(0))
    expect(userRows(refused)).toEqual(userRows(before))
  })
})
