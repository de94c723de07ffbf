/**
 * Goal: syncKey into a clone needs consistent credentials (reference G.4: "both clusters must
 * have consistent CO and CU credentials"): a key whose owner, a crypto user created on the source
 * after the clone, does not exist on the clone is refused with RET_CREDENTIALS_INCONSISTENT's
 * text naming that user, and the clone is left unchanged; once syncUser has copied the user,
 * syncKey succeeds and findAllKeys' key hashes for that user agree on both servers.
 *
 * Method: the default lab (us-east-1/primary and its clone us-west-2/dr, through the real
 * `hsmlab` bin); the user made with the real CMU bin on primary's configuration, its key with the
 * real KMU bin on primary's first HSM; syncKey, syncUser, findAllKeys, getKeyInfo and listUsers
 * with the real CMU bin through the lab's cross-cluster configuration (server 0 primary's first
 * HSM, server 1 dr's first HSM).
 */
import { describe, expect, it } from 'vitest'
import { startLab } from '@hsmlab/testing'
import { clusterOf, cmu, configFor, hostOf, keyHashes, makeKey, outputOf, userRows } from './regions-helpers.js'

const LOGIN = 'loginHSM CO admin Admin1234'

describe('syncKey into a clone: consistent credentials', () => {
  it('refuses a key whose owner is missing on the clone, naming the owner; syncUser first, then it works', async () => {
    const lab = await startLab({ lean: true })
    const dir = lab.cwd
    const primary = clusterOf(lab.status, 'us-east-1', 'primary')
    const dr = clusterOf(lab.status, 'us-west-2', 'dr')
    const cross = lab.status.cmuConfigs['us-east-1/primary->us-west-2/dr'] as string
    const drLabel = `server 1(${hostOf(dr.hsms[0] as { endpoint: string })})`

    // A crypto user created on primary after the clone, and a key it owns.
    const created = await cmu(primary.cmuConfig, [LOGIN, 'createUser CU bob Bob12345', 'y', 'listUsers', 'quit'])
    const bobId = Number(/^\s+(\d+)\s+CU\s+bob\b/m.exec(created)?.[1])
    expect(bobId).toBeGreaterThan(3)
    const handle = await makeKey(dir, await configFor(dir, 'primary-0.cfg', [{ cluster: primary, hsm: primary.hsms[0] as { endpoint: string } }]), ['bob', 'Bob12345'], 'bob-key')
    const usersBefore = userRows(await cmu(cross, ['listUsers', 'quit'])).get(1)
    expect(usersBefore?.some(row => row.endsWith(' bob'))).toBe(false)

    // syncKey is refused by the clone, naming the owner it lacks; the clone is unchanged.
    const refused = await cmu(cross, [LOGIN, 'server 0', `syncKey ${handle} 1`, 'exit', `getKeyInfo ${handle}`, 'listUsers', 'quit'])
    expect(outputOf(refused, `syncKey ${handle} 1`)).toBe(
      'syncKey failed: HSM Error: The owner or shared users of the object are missing or different on this HSM ' +
      `(the owner of key ${handle}, bob (user ${bobId}), does not exist on this HSM; sync the user first (syncUser))\n` +
      `syncKey failed on ${drLabel}\n`)
    const info = outputOf(refused, `getKeyInfo ${handle}`)
    expect(info).toContain(`Owned by user ${bobId}`)
    expect(info).toContain(`getKeyInfo failed on ${drLabel}`)
    expect(userRows(refused).get(1)).toEqual(usersBefore)

    // syncUser copies bob to the clone; then syncKey works, keeping the handle.
    const userSynced = await cmu(cross, [LOGIN, 'server 0', `syncUser ${bobId} 1`, `syncKey ${handle} 1`, 'exit', `findAllKeys ${bobId} 1`, 'listUsers', 'quit'])
    expect(outputOf(userSynced, `syncUser ${bobId} 1`)).toBe('ExtractMaskedObject: 0x0 !\nInsertMaskedObject: 0x0 !\nsyncUser success\n')
    expect(outputOf(userSynced, `syncKey ${handle} 1`)).toBe('syncKey success\n')
    expect(userRows(userSynced).get(1)).toContain(`${bobId} CU bob`)
    const hashes = keyHashes(userSynced)
    expect(hashes.get(0)).toMatchObject({ count: 1, handles: [handle], hash: expect.stringMatching(/^[0-9a-f]{64}$/) })
    expect(hashes.get(1)).toEqual(hashes.get(0))
  })
})
