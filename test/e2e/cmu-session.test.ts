/**
 * Goal: a learner who types the sessions of the AWS documentation into hsmlab's
 * cloudhsm_mgmt_util gets the documented output, line for line, from real HSM processes.
 *
 * Method: provision and start real HSMs of one cluster (`hsmlab-hsm`, port 0), write a CMU
 * configuration naming them, pipe a documented session into the real CMU bin as a child process,
 * and compare everything it printed with the expected transcript. Activation (PRECO → CO),
 * createUser/deleteUser in global mode, a desynchronised user repaired with syncUser, and the
 * lockout after five failed logins.
 */
import { describe, expect, it } from 'vitest'
import { tmpDir } from '@hsmlab/testing'
import { CAUTION_ANSWERED_Y, runCmuBin, startCluster, startupTrace, usersSection } from './cmu-helpers.js'

const QUIT = 'aws-cloudhsm>quit\n\ndisconnecting from servers, please wait...\n'
// The guide's sessions show a blank line before the banner after these commands.
const BANNER = '\n' + CAUTION_ANSWERED_Y
const ACTIVATE = 'loginHSM PRECO admin password\nchangePswd PRECO admin co12345\ny\n'

/** What ACTIVATE prints on servers `labels`. */
function activated (labels: string[]): string {
  return 'aws-cloudhsm>loginHSM PRECO admin password\n\n' + labels.map(l => `loginHSM success on ${l}\n`).join('') + '\n' +
    'aws-cloudhsm>changePswd PRECO admin co12345\n' + BANNER +
    `Changing password for admin(PRECO) on ${labels.length} nodes\n`
}

describe('cloudhsm_mgmt_util against real HSMs', () => {
  it('activates a new cluster: PRECO admin changes its password and becomes CO (activate-cluster)', async () => {
    const cluster = await startCluster(3)
    const config = await cluster.cmuConfig()
    const run = await runCmuBin([config], 'listUsers\n' + ACTIVATE + 'listUsers\nquit\n')
    const labels = ['server 0(hsm0)', 'server 1(hsm1)', 'server 2(hsm2)']
    expect(run.stdout).toBe(startupTrace(cluster.hsms) +
      'aws-cloudhsm>listUsers\n' + labels.map(l => usersSection(l, [[1, 'PRECO', 'admin'], [2, 'AU', 'app_user']])).join('') +
      activated(labels) +
      'aws-cloudhsm>listUsers\n' + labels.map(l => usersSection(l, [[1, 'CO', 'admin'], [2, 'AU', 'app_user']])).join('') +
      QUIT)
    expect(run.code).toBe(0)
    expect(run.stderr).toBe('')
  })

  it('creates and deletes users in global mode; user names are not case-sensitive', async () => {
    const cluster = await startCluster(2)
    const config = await cluster.cmuConfig()
    const labels = ['server 0(hsm0)', 'server 1(hsm1)']
    const run = await runCmuBin([config], ACTIVATE +
      'createUser CU alice p4ssword\ny\ncreateUser CO officer2 0fficer!\ny\nlistUsers\ndeleteUser CU ALICE\nlistU\nquit\n')
    expect(run.stdout).toBe(startupTrace(cluster.hsms) + activated(labels) +
      'aws-cloudhsm>createUser CU alice p4ssword\n' + BANNER + 'Creating User alice(CU) on 2 nodes\n' +
      'aws-cloudhsm>createUser CO officer2 0fficer!\n' + BANNER + 'Creating User officer2(CO) on 2 nodes\n' +
      'aws-cloudhsm>listUsers\n' + labels.map(l => usersSection(l, [[1, 'CO', 'admin'], [2, 'AU', 'app_user'], [3, 'CU', 'alice'], [4, 'CO', 'officer2']])).join('') +
      'aws-cloudhsm>deleteUser CU ALICE\nDeleting user ALICE(CU) on 2 nodes\n' +
      labels.map(l => `deleteUser success on ${l}\n`).join('') +
      'aws-cloudhsm>listU\n' + labels.map(l => usersSection(l, [[1, 'CO', 'admin'], [2, 'AU', 'app_user'], [4, 'CO', 'officer2']])).join('') +
      QUIT)
  })

  it('repairs a user that exists on one HSM only with syncUser in server mode', async () => {
    const cluster = await startCluster(2)
    // Both HSMs activated; then bob is created through a configuration that lists hsm0 only.
    const both = await cluster.cmuConfig([0, 1])
    expect((await runCmuBin([both], ACTIVATE + 'quit\n')).code).toBe(0)
    const onlyFirst = await cluster.cmuConfig([0])
    const created = await runCmuBin([onlyFirst], 'loginHSM CO admin co12345\ncreateUser CU bob b0bpassword\ny\nquit\n')
    expect(created.stdout).toContain('Creating User bob(CU) on 1 nodes\naws-cloudhsm>quit\n')

    const run = await runCmuBin([both], 'listUsers\nloginHSM CO admin co12345\nserver 0\nsyncUser 3 1\nexit\nlistUsers\nlogoutHSM\nloginHSM CU bob b0bpassword\nquit\n')
    const labels = ['server 0(hsm0)', 'server 1(hsm1)']
    const withBob = usersSection(labels[0] as string, [[1, 'CO', 'admin'], [2, 'AU', 'app_user'], [3, 'CU', 'bob']])
    expect(run.stdout).toBe(startupTrace(cluster.hsms) +
      'aws-cloudhsm>listUsers\n' + withBob + usersSection(labels[1] as string, [[1, 'CO', 'admin'], [2, 'AU', 'app_user']]) +
      'aws-cloudhsm>loginHSM CO admin co12345\n\n' + labels.map(l => `loginHSM success on ${l}\n`).join('') + '\n' +
      "aws-cloudhsm>server 0\n\nServer is in 'E2' mode...\n" +
      'server 0>syncUser 3 1\nExtractMaskedObject: 0x0 !\nInsertMaskedObject: 0x0 !\nsyncUser success\n' +
      'server 0>exit\n' +
      'aws-cloudhsm>listUsers\n' + withBob + usersSection(labels[1] as string, [[1, 'CO', 'admin'], [2, 'AU', 'app_user'], [3, 'CU', 'bob']]) +
      'aws-cloudhsm>logoutHSM\n\n' + labels.map(l => `logoutHSM success on ${l}\n`).join('') + '\n' +
      'aws-cloudhsm>loginHSM CU bob b0bpassword\n\n' + labels.map(l => `loginHSM success on ${l}\n`).join('') + '\n' +
      QUIT)
  })

  it('locks a user out after five failed logins and shows LoginFailureCnt; a CO reset unlocks it', async () => {
    const cluster = await startCluster(2)
    const config = await cluster.cmuConfig()
    const labels = ['server 0(hsm0)', 'server 1(hsm1)']
    const wrong = 'loginHSM CU carol wrongpass\n'
    const run = await runCmuBin([config], ACTIVATE + 'createUser CU carol c4rolpass\ny\nlogoutHSM\n' + wrong.repeat(5) +
      'loginHSM CU carol c4rolpass\nloginHSM CO admin co12345\nlistUsers\nchangePswd CU carol n3wpassword\ny\nlogoutHSM\nloginHSM CU carol n3wpassword\nquit\n')
    const failed = (reason: string): string => labels.map(l => `loginHSM failed: ${reason}\nloginHSM failed on ${l}\n`).join('')
    expect(run.stdout).toContain(('aws-cloudhsm>loginHSM CU carol wrongpass\n\n' + failed('HSM Error: RET_USER_LOGIN_FAILURE') + '\n').repeat(5) +
      'aws-cloudhsm>loginHSM CU carol c4rolpass\n\n' +
      failed('HSM Error: The user is locked out after too many failed login attempts; a CO must reset the password'))
    expect(run.stdout).toContain('aws-cloudhsm>listUsers\n' +
      labels.map(l => usersSection(l, [[1, 'CO', 'admin'], [2, 'AU', 'app_user'], [3, 'CU', 'carol', 5]])).join(''))
    expect(run.stdout).toContain('Changing password for carol(CU) on 2 nodes\naws-cloudhsm>logoutHSM')
    expect(run.stdout).toMatch(/aws-cloudhsm>loginHSM CU carol n3wpassword\n\nloginHSM success on server 0\(hsm0\)\nloginHSM success on server 1\(hsm1\)\n\naws-cloudhsm>quit/)
  })

  it('reads a -hpswd password from the next input line without showing it', async () => {
    const cluster = await startCluster(1)
    const config = await cluster.cmuConfig()
    const run = await runCmuBin([config], 'loginHSM PRECO admin -hpswd\npassword\nquit\n')
    expect(run.stdout).toBe(startupTrace(cluster.hsms) +
      'aws-cloudhsm>loginHSM PRECO admin -hpswd\nEnter password:\n\nloginHSM success on server 0(hsm0)\n\n' + QUIT)
  })

  it('exits with code 1 and a reason on stderr when the configuration is missing or unreadable', async () => {
    const missing = await runCmuBin([], '')
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/^cloudhsm_mgmt_util: the configuration file is missing\nUsage: cloudhsm_mgmt_util <configuration file>/)
    const unreadable = await runCmuBin([`${tmpDir()}/none.cfg`], '')
    expect(unreadable.code).toBe(1)
    expect(unreadable.stderr).toMatch(/^cloudhsm_mgmt_util: cannot read the configuration file .*none\.cfg: ENOENT/)
    expect(unreadable.stdout).toBe('')
  })
})
