/**
 * Goal (issue 15, quorum settings "as the service does"): a crypto officer's quorum public key
 * and the M values travel with the cluster's users. A backup carries them and a cluster made
 * from it has them (listUsers shows `MofnPubKey YES`, getMValue the value set on the source);
 * and syncUser carries a user's key, so that the destination checks that user's approvals.
 *
 * Method: (1) a lab of one cluster (the real `hsmlab` bin); registerQuorumPubKey and setMValue
 * with the real CMU bin, a key and registration token made with openssl as the guide makes them;
 * then a backup, a cluster created from it and its HSM, through the lab's control plane
 * (ControlPlaneClient), and listUsers/getMValue with the real CMU bin on the clone. (2) two real
 * HSM processes of one cluster; a CO registered on the first only, copied to the second with
 * syncUser in server mode, then a token of that CO approved with its openssl signature on both.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import { startLab, tmpDir } from '@hsmlab/testing'
import { makeOfficerKey, openssl, runCmuBin, startCluster, startCmuBin, usersSection } from './cmu-helpers.js'
import { SUBNETS } from './control-plane-helpers.js'
import { clusterOf, cmu, configFor, hostOf, outputOf } from './regions-helpers.js'

/** What registering `name`'s key prints once the banner was answered. */
function register (dir: string, name: string): string {
  const f = (file: string): string => join(dir, file)
  return `registerQuorumPubKey CO ${name} ${f(`${name}.token`)} ${f(`${name}.token.sig`)} ${f(`${name}.pub`)}`
}

describe('issue 15: quorum settings travel with backups, clones and syncUser', () => {
  it('a cluster cloned from a backup has the quorum keys and M values of its source', async () => {
    const lab = await startLab({ lean: true, topology: { regions: [{ name: 'us-east-1', clusters: [{ name: 'primary', hsms: 1, activate: { admin: 'Admin1234' } }] }] } })
    const primary = clusterOf(lab.status, 'us-east-1', 'primary')
    const keys = tmpDir('hsmlab-quorum-clone-')
    makeOfficerKey(keys, 'officer1')
    const set = await cmu(primary.cmuConfig, [
      'loginHSM CO admin Admin1234', 'createUser CO officer1 0fficer1', 'y', 'logoutHSM',
      'loginHSM CO officer1 0fficer1', register(keys, 'officer1'), 'y', 'setMValue 3 2', 'y', 'getMValue 3', 'quit'
    ])
    expect(outputOf(set, 'getMValue 3')).toBe('MValue of service 3[USER_MGMT] on server 0 : [2]\n')

    // Backup → cluster from the backup → its HSM, as the AWS runbook does.
    const api = new ControlPlaneClient({ endpoint: lab.status.regions[0]?.controlPlane?.endpoint as string, region: 'us-east-1' })
    const backup = await api.waitForBackup((await api.createBackup(primary.id)).BackupId, 'READY')
    const cloneId = (await api.createCluster({ HsmType: 'hsm2m.medium', SubnetIds: SUBNETS, SourceBackupId: backup.BackupId })).ClusterId ?? ''
    await api.waitForCluster(cloneId, 'UNINITIALIZED')
    const made = await api.createHsm({ ClusterId: cloneId, AvailabilityZone: 'us-east-1a' })
    await api.waitForCluster(cloneId, 'ACTIVE', { timeoutMs: 30_000 })
    const clone = await api.getCluster(cloneId)
    const endpoint = clone?.Hsms?.find(h => h.HsmId === made.HsmId)?.HsmlabEndpoint as string
    const anchor = join(lab.cwd, 'clone-anchor.crt')
    writeFileSync(anchor, clone?.HsmlabTrustAnchor as string)
    const config = await configFor(lab.cwd, 'clone.cfg', [{ cluster: { ...primary, id: cloneId, trustAnchor: anchor }, hsm: { endpoint } }])

    const seen = await cmu(config, ['listUsers', 'loginHSM CO officer1 0fficer1', 'getMValue 3', 'getMValue 4', 'quit'])
    const label = `server 0(${hostOf({ endpoint })})`
    expect(outputOf(seen, 'listUsers')).toBe(usersSection(label, [[1, 'CO', 'admin'], [2, 'AU', 'app_user'], [3, 'CO', 'officer1', 0, true]]))
    expect(outputOf(seen, 'getMValue 3')).toBe('MValue of service 3[USER_MGMT] on server 0 : [2]\n')
    expect(outputOf(seen, 'getMValue 4')).toBe('MValue of service 4[MISC_CO] on server 0 : [1]\n')
  })

  it('syncUser carries a crypto officer\'s quorum key: the destination checks its approvals', async () => {
    const cluster = await startCluster(2)
    const both = await cluster.cmuConfig()
    const first = await cluster.cmuConfig([0])
    const dir = tmpDir('hsmlab-quorum-sync-')
    makeOfficerKey(dir, 'officer1')
    expect((await runCmuBin([both], 'loginHSM PRECO admin password\nchangePswd PRECO admin co12345\ny\nquit\n')).code).toBe(0)
    // officer1 and its key exist on the first HSM only.
    const registered = await runCmuBin([first], 'loginHSM CO admin co12345\ncreateUser CO officer1 0fficer1\ny\nlogoutHSM\n' +
      `loginHSM CO officer1 0fficer1\n${register(dir, 'officer1')}\ny\nquit\n`)
    expect(registered.stdout).toContain('registerQuorumPubKey success on server 0(hsm0)\n')

    const session = startCmuBin([both])
    session.type('loginHSM CO admin co12345\nserver 0\nsyncUser 3 1\nexit\nlistUsers\nlogoutHSM\n' +
      `loginHSM CO officer1 0fficer1\ngetToken 3 officer1 ${join(dir, 'officer1.token')}`)
    const at = await session.waitForOutput('getToken success on server 1(hsm1)\n')
    await session.waitForOutput('aws-cloudhsm>', at)
    // officer1 approves its own token (M is 1), signing the token file with openssl.
    openssl(dir, 'dgst', '-sha256', '-sign', 'officer1.key', '-out', 'officer1.token.sig1', 'officer1.token')
    writeFileSync(join(dir, 'approval.txt'), [
      'Multi Token File Path = officer1.token;', 'Token File Path = ;', 'Number of Approvals = 1;',
      'Approver Type = 2;', 'Approver Name = officer1;', 'Approval File = officer1.token.sig1;', ''
    ].join('\n'))
    session.type(`approveToken ${join(dir, 'approval.txt')}\nquit`)
    expect(await session.process.exited).toBe(0)
    const out = session.process.stdout()

    expect(outputOf(out, 'syncUser 3 1')).toBe('ExtractMaskedObject: 0x0 !\nInsertMaskedObject: 0x0 !\nsyncUser success\n')
    expect(outputOf(out, 'listUsers')).toBe(['server 0(hsm0)', 'server 1(hsm1)'].map(l =>
      usersSection(l, [[1, 'CO', 'admin'], [2, 'AU', 'app_user'], [3, 'CO', 'officer1', 0, true]])).join(''))
    // Without its key the second HSM would refuse: "approver officer1 has registered no quorum public key".
    expect(outputOf(out, `approveToken ${join(dir, 'approval.txt')}`)).toBe(
      'approveToken success on server 0(hsm0)\napproveToken success on server 1(hsm1)\n')
  })
})
