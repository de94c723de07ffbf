/**
 * key_mgmt_util when HSMs are missing.
 *
 * Goal: an unreachable HSM shows as `0x30000085` in the cluster status block without failing the
 * command; `-min_srv` larger than the number of live HSMs fails with the HSM's refusal and leaves
 * no key behind; with no HSM reachable at all KMU says so and exits 1.
 * Method: a real lab of three HSMs; its control plane is killed (so that nobody restarts an HSM),
 * then one HSM is killed with SIGKILL before KMU starts, then the lab is stopped; KMU runs as a
 * process; a library client checks the remaining HSMs.
 */
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ClusterClient, readCmuConfig } from '@hsmlab/client'
import { startLab, tmpDir, waitFor } from '@hsmlab/testing'
import { KmuShell, kmuOnce } from './kmu-driver.js'

const TOPOLOGY = {
  regions: [{
    name: 'us-east-1',
    clusters: [{ name: 'primary', hsms: 3, activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'alice', password: 'Alice1234' }] }]
  }]
}

const UNAVAILABLE = '0x30000085 : HSM CLUSTER ERROR: Server in cluster is unavailable'

describe('key_mgmt_util with HSMs down', () => {
  it('-min_srv above the live HSM count fails and leaves no key; no HSM at all is a startup error', async () => {
    const lab = await startLab({ lean: true, topology: TOPOLOGY })
    const cwd = tmpDir()
    const config = join(lab.dir, 'key_mgmt_util.cfg')
    const victim = lab.status.regions[0]?.clusters[0]?.hsms[2]
    expect(victim?.pid).toBeTypeOf('number')
    // Its control plane would restart it: kill that first (the HSMs run on).
    process.kill(lab.status.regions[0]?.controlPlane?.pid as number, 'SIGKILL')
    process.kill(victim?.pid as number, 'SIGKILL')
    await waitFor(() => { try { process.kill(victim?.pid as number, 0); return false } catch { return true } }, { what: 'HSM 2 to die' })

    const shell = await KmuShell.start(cwd, ['--config', config])
    const login = await shell.run('loginHSM -u CU -s alice -p Alice1234')
    expect(login).toBe('\n\tCfm3LoginHSM returned: 0x00 : HSM Return: SUCCESS\n' +
      '\n\tCluster Error Status\n' +
      '\tNode id 0 and err state 0x00000000 : HSM Return: SUCCESS\n' +
      '\tNode id 1 and err state 0x00000000 : HSM Return: SUCCESS\n' +
      `\tNode id 2 and err state ${UNAVAILABLE}\n`)

    const refused = await shell.run('genSymKey -t 31 -s 16 -l min_srv_key -min_srv 3 -timeout 2')
    expect(refused).toMatch(/^\n\tCfm3GenerateSymmetricKey returned: 0x30000086 : HSM CLUSTER ERROR: [^\n]+\n\n\tCluster Error Status\n/)
    expect(refused).not.toContain('Key Handle')
    expect(refused).toContain(`\tNode id 2 and err state ${UNAVAILABLE}\n`)
    expect(await shell.run('findKey -l min_srv_key')).toMatch(/^\nTotal number of keys present 0\n\n\tCluster Error Status\n/)

    // Within reach, a -min_srv the live HSMs can meet works.
    expect(await shell.run('genSymKey -t 31 -s 16 -l two_key -min_srv 2 -timeout 5')).toContain('Symmetric Key Created.  Key Handle: ')
    expect(await shell.exit()).toBe(0)

    // Neither live HSM kept the refused key.
    const client = await ClusterClient.open((await readCmuConfig(config)).servers)
    try {
      const live = client.connected().map(s => s.id)
      expect(live).toEqual([0, 1])
      for (const outcome of await client.fanOut('login', { userType: 'CU', userName: 'alice', password: 'Alice1234' }, live)) expect(outcome.ok).toBe(true)
      await waitFor(async () => {
        const found = await client.fanOut('findKey', { label: 'min_srv_key' }, live)
        return found.every(f => f.ok && f.result.handles.length === 0)
      }, { what: 'no min_srv_key on the live HSMs' })
    } finally {
      await client.close()
    }

    await lab.down()
    const none = await kmuOnce(cwd, ['--config', config, 'singlecmd', 'findKey'])
    expect(none.code).toBe(1)
    expect(none.err).toContain('Daemon socket connection error')
    expect(none.err).toContain('npx hsmlab status')
  })
})
