/**
 * Issue 12: a replica of a synchronisation task is read-only through the real shells.
 *
 * Goal: on an HSM whose sync role is 'replica', CMU createUser and KMU genSymKey are refused with
 * RET_SYNC_REPLICA_READ_ONLY, printed the way the real tools print an HSM error, with the HSM's
 * detail naming the primary cluster on its own line after it, while logins and reads still work. Method: one HSM process (cmu-helpers), activated with CMU, given the role
 * with setSyncRole signed by its trust anchor (as the control plane does), then the real CMU and
 * KMU bins run as child processes with their sessions piped in.
 */
import { describe, expect, it } from 'vitest'
import { HsmConnection } from '@hsmlab/client'
import { signSyncRole } from '@hsmlab/hsm'
import { tmpDir } from '@hsmlab/testing'
import { runCmuBin, startCluster } from './cmu-helpers.js'
import { kmuOnce } from './kmu-driver.js'

const PRIMARY = 'cluster-primary2345ab'

describe('a replica-role HSM through CMU and KMU', () => {
  it('refuses createUser and genSymKey with RET_SYNC_REPLICA_READ_ONLY, and still logs in and lists', async () => {
    const cluster = await startCluster(1)
    const config = await cluster.cmuConfig()
    const setup = await runCmuBin([config], 'loginHSM PRECO admin password\nchangePswd PRECO admin co12345\ny\ncreateUser CU alice al1cepass\ny\nquit\n')
    expect(setup.stdout).toContain('Creating User alice(CU) on 1 nodes')

    const hsm = cluster.hsms[0]!
    const conn = await HsmConnection.connect({ url: `ws://127.0.0.1:${hsm.port}`, trustAnchor: cluster.anchor.publicKey })
    const clusterId = conn.clusterId
    await conn.call('setSyncRole', { role: 'replica', primaryClusterId: PRIMARY, version: 1, signature: signSyncRole(cluster.anchor.secretKey, hsm.hsmId, 'replica', PRIMARY, 1) })
    await conn.close()

    const cmu = await runCmuBin([config], 'loginHSM CO admin co12345\ncreateUser CU mallory m4llorypw\ny\nA\nlistUsers\nquit\n')
    expect(cmu.code).toBe(0)
    expect(cmu.stdout).toContain('loginHSM success on server 0')
    expect(cmu.stdout).toContain('Creating User mallory(CU) on 1 nodes\n' +
      'createUser failed: HSM Error: This HSM is a replica of a synchronization task: keys and users can only be created or changed on the primary cluster\n' +
      `creating user mallory is refused: cluster ${clusterId} is a replica of primary cluster ${PRIMARY}: make the change on the primary, the synchronisation task brings it here\n` +
      'creating user on server 0(hsm0) failed\n\nRetry/Ignore/Abort?(R/I/A):')
    const users = cmu.stdout.slice(cmu.stdout.indexOf('aws-cloudhsm>listUsers'))
    expect(users).toContain('alice')
    expect(users).not.toContain('mallory')

    const kmu = await kmuOnce(tmpDir(), ['--config', config, 'singlecmd', 'loginHSM', '-u', 'CU', '-s', 'alice', '-p', 'al1cepass', 'genSymKey', '-t', '31', '-s', '32', '-l', 'refused'])
    expect(kmu.out).toContain('Cfm3LoginHSM returned: 0x00 : HSM Return: SUCCESS')
    expect(kmu.out).toContain('\tCfm3GenerateSymmetricKey returned: 0xa7 : HSM Error: This HSM is a replica of a synchronization task: keys and users can only be created or changed on the primary cluster\n' +
      `\tcreating a token key is refused: cluster ${clusterId} is a replica of primary cluster ${PRIMARY}: make the change on the primary, the synchronisation task brings it here\n`)
  })
})
