/**
 * Goal (issue 15, CMU): the guide's quorum (M of N) and two-factor sessions work on hsmlab as
 * written: keys, registration tokens and approvals made with openssl as the guide makes them,
 * registerQuorumPubKey, setMValue/getMValue, user management refused with RET_MXN_AUTH_FAILED
 * until an approved token is presented, getToken/approveToken/listTokens, the token used up by
 * one operation; and a CO created with -2fa that logs in with a signed challenge.
 *
 * Method: real HSM processes of one cluster (port 0) and the real cloudhsm_mgmt_util bin, typed
 * into line by line; openssl runs between the lines where the guide runs it. The output is
 * compared line for line with the guide's transcripts (quorum-authentication-crypto-officers*.md,
 * cloudhsm_mgmt_util-registerQuorumPubKey.md, manage-2fa.md), the lab's server names in place of
 * the guide's IPs; the token validity, which counts down, is checked apart.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tmpDir } from '@hsmlab/testing'
import { CAUTION_ANSWERED_Y as BANNER, makeOfficerKey, openssl, runCmuBin, startCluster, startCmuBin, startupTrace, usersSection } from './cmu-helpers.js'

const LABELS = ['server 0(hsm0)', 'server 1(hsm1)']
const SETUP = 'loginHSM PRECO admin password\nchangePswd PRECO admin co12345\ny\n' +
  'createUser CO officer1 0fficer1\ny\ncreateUser CO officer2 0fficer2\ny\nquit\n'

const tokenBlock = (node: number): string => `Token:\nId:1\nService:3\nNode:${node}\nKey Handle:0\nUser:officer1\n`
const serverBanner = (i: number): string => `\n=====================\n    Server ${i}(hsm${i})\n=====================\n`
const login = (user: string, password: string): string =>
  `aws-cloudhsm>loginHSM CO ${user} ${password}\n\n` + LABELS.map(l => `loginHSM success on ${l}\n`).join('') + '\n'
const logout = 'aws-cloudhsm>logoutHSM\n\n' + LABELS.map(l => `logoutHSM success on ${l}\n`).join('') + '\n'

describe('issue 15: CMU quorum authentication and 2FA as the guide shows them', () => {
  it('registers quorum keys, refuses user management without a quorum, approves a token signed with openssl and uses it once', async () => {
    const cluster = await startCluster(2)
    const config = await cluster.cmuConfig()
    expect((await runCmuBin([config], SETUP)).code).toBe(0)
    const dir = tmpDir('hsmlab-quorum-')
    makeOfficerKey(dir, 'officer1')
    makeOfficerKey(dir, 'officer2')
    const f = (name: string): string => join(dir, name)

    const cmu = startCmuBin([config])
    const register = (name: string, password: string): string =>
      `loginHSM CO ${name} ${password}\nregisterQuorumPubKey CO ${name} ${f(`${name}.token`)} ${f(`${name}.token.sig`)} ${f(`${name}.pub`)}\ny\nlogoutHSM\n`
    cmu.type(register('officer1', '0fficer1') + register('officer2', '0fficer2') +
      'listUsers\nloginHSM CO officer1 0fficer1\nsetMValue 3 2\ny\ngetMValue 3\ngetMValue 4\n' +
      'createUser CU user1 password\ny\nA\n' + `getToken 3 officer1 ${f('officer1.token')}`)
    const at = await cmu.waitForOutput('getToken success on server 1(hsm1)\n')
    await cmu.waitForOutput('aws-cloudhsm>', at)

    // The approvers sign the token file outside the HSM, as the guide does with openssl.
    openssl(dir, 'dgst', '-sha256', '-sign', 'officer1.key', '-out', 'officer1.token.sig1', 'officer1.token')
    openssl(dir, 'dgst', '-sha256', '-sign', 'officer2.key', '-out', 'officer1.token.sig2', 'officer1.token')
    writeFileSync(f('approval.txt'), [
      '# For "Multi Token File Path", type the path to the file that contains',
      '# the token.',
      'Multi Token File Path = officer1.token;',
      'Token File Path = ;',
      '',
      '# Total number of approvals',
      'Number of Approvals = 2;',
      '',
      '# Approver 1',
      'Approver Type = 2; # 2 for CO, 1 for CU',
      'Approver Name = officer1;',
      'Approval File = officer1.token.sig1;',
      '',
      '# Approver 2',
      'Approver Type = 2; # 2 for CO, 1 for CU',
      'Approver Name = officer2;',
      'Approval File = officer1.token.sig2;',
      ''
    ].join('\n'))
    cmu.type(`approveToken ${f('approval.txt')}\nlistTokens\ncreateUser CU user1 password\ny\nlistUsers\ndeleteUser CU user1\nI\nI\nlistTokens\nquit`)
    expect(await cmu.process.exited).toBe(0)

    const registered = (name: string, password: string): string => login(name, password) +
      `aws-cloudhsm>registerQuorumPubKey CO ${name} ${f(`${name}.token`)} ${f(`${name}.token.sig`)} ${f(`${name}.pub`)}\n\n` + BANNER +
      LABELS.map(l => `registerQuorumPubKey success on ${l}\n`).join('') + logout
    const users = (extra: Array<[number, string, string]>): string => LABELS.map(l => usersSection(l, [
      [1, 'CO', 'admin'], [2, 'AU', 'app_user'], [3, 'CO', 'officer1', 0, true], [4, 'CO', 'officer2', 0, true], ...extra
    ])).join('')
    const approvedToken = (i: number): string => serverBanner(i) + '-------- Token - 0 ----------\n' + tokenBlock(i) +
      'Token Validity: <n> sec\nRequired num of approvers : 2\nCurrent num of approvals : 2\nApprover-0: officer1\nApprover-1: officer2\nNum of tokens = 1\n'
    const expected = startupTrace(cluster.hsms) +
      registered('officer1', '0fficer1') + registered('officer2', '0fficer2') +
      'aws-cloudhsm>listUsers\n' + users([]) +
      login('officer1', '0fficer1') +
      'aws-cloudhsm>setMValue 3 2\n' + BANNER + 'Setting M Value(2) for 3 on 2 nodes\n' +
      'aws-cloudhsm>getMValue 3\nMValue of service 3[USER_MGMT] on server 0 : [2]\nMValue of service 3[USER_MGMT] on server 1 : [2]\n' +
      'aws-cloudhsm>getMValue 4\nMValue of service 4[MISC_CO] on server 0 : [1]\nMValue of service 4[MISC_CO] on server 1 : [1]\n' +
      'aws-cloudhsm>createUser CU user1 password\n\n' + BANNER + 'Creating User user1(CU) on 2 nodes\n' +
      'createUser failed: RET_MXN_AUTH_FAILED\ncreating user on server 0(hsm0) failed\n\nRetry/Ignore/Abort?(R/I/A):A\n' +
      `aws-cloudhsm>getToken 3 officer1 ${f('officer1.token')}\n` +
      `getToken success on server 0(hsm0)\n${tokenBlock(0)}getToken success on server 1(hsm1)\n${tokenBlock(1)}` +
      `aws-cloudhsm>approveToken ${f('approval.txt')}\n` + LABELS.map(l => `approveToken success on ${l}\n`).join('') +
      'aws-cloudhsm>listTokens\n' + approvedToken(0) + approvedToken(1) + '\nlistTokens success\n' +
      'aws-cloudhsm>createUser CU user1 password\n\n' + BANNER + 'Creating User user1(CU) on 2 nodes\n' +
      'aws-cloudhsm>listUsers\n' + users([[5, 'CU', 'user1']]) +
      'aws-cloudhsm>deleteUser CU user1\nDeleting user user1(CU) on 2 nodes\n' +
      'deleteUser failed: RET_MXN_AUTH_FAILED\ndeleteUser failed on server 0(hsm0)\n\nRetry/rollBack/Ignore?(R/B/I):I\n' +
      'deleteUser failed: RET_MXN_AUTH_FAILED\ndeleteUser failed on server 1(hsm1)\n\nRetry/rollBack/Ignore?(R/B/I):I\n' +
      'aws-cloudhsm>listTokens\n' + serverBanner(0) + 'Num of tokens = 0\n' + serverBanner(1) + 'Num of tokens = 0\n\nlistTokens success\n' +
      'aws-cloudhsm>quit\n\ndisconnecting from servers, please wait...\n'
    const out = cmu.process.stdout()
    const validities = [...out.matchAll(/Token Validity: (\d+) sec/g)].map(m => Number(m[1]))
    expect(validities).toHaveLength(2)
    for (const v of validities) expect(v).toBeGreaterThan(500)
    expect(out.replace(/Token Validity: \d+ sec/g, 'Token Validity: <n> sec').split('\n')).toEqual(expected.split('\n'))
  })

  it('creates a CO with -2fa from an authdata file signed with openssl, and that CO logs in only with a signed challenge', async () => {
    const cluster = await startCluster(2)
    const config = await cluster.cmuConfig()
    expect((await runCmuBin([config], SETUP)).code).toBe(0)
    const dir = tmpDir('hsmlab-2fa-')
    openssl(dir, 'genrsa', '-out', 'officer3.key', '2048')
    openssl(dir, 'rsa', '-in', 'officer3.key', '-outform', 'PEM', '-pubout', '-out', 'officer3.pub')
    const authdata = join(dir, 'authdata')
    /** Signs every Digest of the authdata file as manage-2fa.md asks, adding the public key when asked. */
    const signAuthdata = (withPublicKey: boolean): void => {
      const request = JSON.parse(readFileSync(authdata, 'utf8')) as { Version: string, PublicKey: string, Data: Array<{ HsmId: string, Digest: string, Signature: string }> }
      expect(request.Version).toBe('1.0')
      expect(request.Data.map(d => d.HsmId)).toEqual(cluster.hsms.map(h => h.hsmId))
      for (const entry of request.Data) {
        writeFileSync(join(dir, 'digest'), Buffer.from(entry.Digest, 'base64'))
        openssl(dir, 'dgst', '-sha256', '-sign', 'officer3.key', '-out', 'digest.sig', 'digest')
        entry.Signature = readFileSync(join(dir, 'digest.sig')).toString('base64')
      }
      if (withPublicKey) request.PublicKey = readFileSync(join(dir, 'officer3.pub'), 'utf8')
      writeFileSync(authdata, JSON.stringify(request, null, 4))
    }
    const cmu = startCmuBin([config])
    cmu.type(`loginHSM CO admin co12345\ncreateUser CO officer3 0fficer3 -2fa ${authdata}`)
    const at = await cmu.waitForOutput('Press Enter to continue:')
    signAuthdata(true)
    cmu.type('\ny\nlistUsers\nlogoutHSM\nloginHSM CO officer3 0fficer3\n' + `loginHSM CO officer3 0fficer3 -2fa ${authdata}`)
    await cmu.waitForOutput('Press Enter to continue:', at)
    signAuthdata(false)
    cmu.type('\ninfo server 0\nquit')
    expect(await cmu.process.exited).toBe(0)

    const prompt = (withKey: boolean): string => `Sign each Digest in ${authdata} with your 2FA private key (SHA-256, RSA PKCS#1 v1.5) and put the\n` +
      `Base64 signatures in its Signature fields${withKey ? ', and your PEM public key in PublicKey' : ''}.\nPress Enter to continue:\n`
    const expected = startupTrace(cluster.hsms) + login('admin', 'co12345') +
      `aws-cloudhsm>createUser CO officer3 0fficer3 -2fa ${authdata}\n` + prompt(true) + '\n' + BANNER + 'Creating User officer3(CO) on 2 nodes\n' +
      'aws-cloudhsm>listUsers\n' + LABELS.map(l => usersSection(l, [
        [1, 'CO', 'admin'], [2, 'AU', 'app_user'], [3, 'CO', 'officer1'], [4, 'CO', 'officer2'], [5, 'CO', 'officer3', 0, true, true]
      ])).join('') + logout +
      'aws-cloudhsm>loginHSM CO officer3 0fficer3\n\n' +
      LABELS.map(l => `loginHSM failed: HSM Error: This user has two-factor authentication: log in with -2fa\nloginHSM failed on ${l}\n`).join('') + '\n' +
      `aws-cloudhsm>loginHSM CO officer3 0fficer3 -2fa ${authdata}\n` + prompt(false) + '\n' +
      LABELS.map(l => `loginHSM success on ${l}\n`).join('') + '\n' +
      'aws-cloudhsm>info server 0\n' +
      'Id      Name                    Hostname         Port   State           Partition               LoginState\n' +
      `0       hsm0                    127.0.0.1       ${String(cluster.hsms[0]?.port).padEnd(8)}Connected       ${(cluster.hsms[0]?.hsmId ?? '').padEnd(24)}Logged in as 'officer3(CO)'\n` +
      'aws-cloudhsm>quit\n\ndisconnecting from servers, please wait...\n'
    expect(cmu.process.stdout().split('\n')).toEqual(expected.split('\n'))
  })
})
