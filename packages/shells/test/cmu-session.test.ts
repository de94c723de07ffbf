/**
 * CMU sessions piped into `runCmu` in-process over a fake cluster (test/cmu-fake.ts): the whole
 * output is compared with the transcript a learner would see, and the calls the HSMs received are
 * checked — argument errors must send nothing.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ClientError, CLIENT_ERR_TIMEOUT } from '@hsmlab/client'
import { ReturnCode, WireError } from '@hsmlab/protocol'
import { FakeHsm, connectedTrace, runSession, tmpConfig } from './cmu-fake.js'

const QUIT = 'aws-cloudhsm>quit\n\ndisconnecting from servers, please wait...\n'
const HEADER = '    User Id             User Type       User Name                          MofnPubKey    LoginFailureCnt         2FA'
const BANNER = [
  '*************************CAUTION********************************',
  'This is a CRITICAL operation, should be done on all nodes in the',
  'cluster. AWS does NOT synchronize these changes automatically with the',
  'nodes on which this operation is not executed or failed, please',
  'ensure this operation is executed on all nodes in the cluster.',
  '****************************************************************',
  ''
].join('\n')

function hsms (n: number): FakeHsm[] {
  return Array.from({ length: n }, (_, i) => new FakeHsm(`hsm-abcdefghij${i}`))
}

/** n HSMs on which admin is already a CO with password `co12345`. */
function activated (n: number): FakeHsm[] {
  const list = hsms(n)
  for (const h of list) {
    const admin = h.users[0]
    if (admin !== undefined) { admin.userType = 'CO'; admin.password = 'co12345' }
  }
  return list
}

describe('start-up and the command loop', () => {
  it('prints the trace, the prompt, and leaves at quit with exit code 0', async () => {
    const r = await runSession(hsms(2), 'quit\n')
    expect(r.out).toBe(connectedTrace(2) + QUIT)
    expect(r.code).toBe(0)
  })

  it('behaves like quit at the end of input', async () => {
    const r = await runSession(hsms(1), '')
    expect(r.out).toBe(connectedTrace(1) + 'aws-cloudhsm>\n\ndisconnecting from servers, please wait...\n')
    expect(r.code).toBe(0)
  })

  it('reports a server that could not be connected and keeps its id', async () => {
    const [a, b] = hsms(2)
    const r = await runSession([a ?? null, null, b ?? null], 'listUsers\nquit\n')
    expect(r.out).toContain("Connecting to server '10.0.0.2': hostname '10.0.0.2', port 2225...\n" +
      'Connection to server 10.0.0.2(10.0.0.2) on port 2225 failed:Connection refused\n')
    expect(r.out).toContain('Users on server 0(10.0.0.1):')
    expect(r.out).toContain('Users on server 2(10.0.0.3):')
    expect(r.out).not.toContain('server 1(')
  })

  it('fails with exit code 1 and a reason on stderr when the configuration is missing or unreadable', async () => {
    const missing = await runSession(hsms(1), '', { argv: [] })
    expect(missing.code).toBe(1)
    expect(missing.err).toContain('the configuration file is missing')
    expect(missing.out).toBe('')
    const { dir } = tmpConfig(1)
    const unreadable = await runSession(hsms(1), '', { argv: [join(dir, 'nope.cfg')] })
    expect(unreadable.code).toBe(1)
    expect(unreadable.err).toMatch(/cannot read the configuration file .*nope\.cfg/)
  })

  it('accepts unique prefixes in any case and names unknown and ambiguous commands', async () => {
    const r = await runSession(hsms(1), 'listu\nlist\nfrobnicate\n\nquit\n')
    expect(r.out).toContain('aws-cloudhsm>listu\nUsers on server 0(10.0.0.1):\n')
    expect(r.out).toContain("aws-cloudhsm>list\nAmbiguous command 'list': it could be listUsers, listAttributes, listTokens\n")
    expect(r.out).toContain("aws-cloudhsm>frobnicate\nUnknown command 'frobnicate'. Type 'help' for the list of commands.\n")
    expect(r.out).toContain('aws-cloudhsm>\naws-cloudhsm>quit')
  })

  it('prints help and the syntax of one command', async () => {
    const r = await runSession(hsms(1), 'help\nhelp syncUser\ncreateUser -h\nquit\n')
    expect(r.out).toContain('    listUsers               List the users of each HSM (no login needed)\n')
    expect(r.out).toContain('aws-cloudhsm>help syncUser\nSyntax: syncUser <user ID> <server ID>\n')
    expect(r.out).toContain('Syntax: createUser <user-type> <user-name> <password | -hpswd> [-2fa </path/to/authdata>]\n')
    expect(r.calls).toEqual([])
  })
})

describe('argument errors send nothing to any HSM', () => {
  const cases: Array<[string, string]> = [
    ['loginHSM CO admin', 'loginHSM takes 3 arguments, 2 given'],
    ['loginHSM co admin password', "invalid user type 'co'"],
    ['loginHSM CO admin password -3fa x', "unexpected argument '-3fa'"],
    ['createUser CU bob', 'createUser takes 3 arguments'],
    ['deleteUser CU', 'deleteUser takes 2 arguments'],
    ['changePswd XX bob password1', "invalid user type 'XX'"],
    ['listUsers extra', 'listUsers takes 0 arguments'],
    ['findAllKeys 3', 'findAllKeys takes 2 to 3 arguments'],
    ['findAllKeys x 0', "the user id must be a number, not 'x'"],
    ['findAllKeys 3 2', 'the key hash argument must be 0 or 1'],
    ['getAttribute 6 9999', 'unknown attribute id 9999'],
    ['getAttribute six 0', 'the key handle must be a number'],
    ['setAttribute 6 0 4', 'OBJ_ATTR_CLASS cannot be changed'],
    ['setAttribute 6 261', 'setAttribute takes 3 arguments'],
    ['setAttribute 6 261 yes', 'the value must be a number'],
    ['getKeyInfo -k', 'getKeyInfo takes 1 to 2 arguments'],
    ['shareKey 6 4 2', 'the last argument must be 1 (share) or 0 (unshare)'],
    ['syncUser 3 1', "syncUser runs in server mode on the source HSM: type 'server <source server id>' first"],
    ['syncKey 6 1', 'syncKey runs in server mode'],
    ['server 7', 'there is no server 7: the configuration lists servers 0 to 1'],
    ['server', 'server takes 1 argument, 0 given'],
    ['info client 0', "the first argument must be 'server'"],
    ['getCert /tmp/x 4', 'getCert runs in server mode'],
    ['exit', 'not in server mode (type quit to leave cloudhsm_mgmt_util)']
  ]
  for (const [line, reason] of cases) {
    it(line, async () => {
      const r = await runSession(hsms(2), `${line}\nquit\n`)
      expect(r.out).toContain(`aws-cloudhsm>${line}\nError: ${reason}`)
      expect(r.out).toMatch(/\nUsage: \S+/)
      expect(r.calls).toEqual([])
    })
  }

  it('refuses an unterminated quote', async () => {
    const r = await runSession(hsms(1), 'loginHSM CO admin "pass\nquit\n')
    expect(r.out).toContain('Error: unterminated quote (") in the command line\n')
    expect(r.calls).toEqual([])
  })
})

describe('login and users', () => {
  it('logs in on every server, then reports a wrong password per server (E)', async () => {
    const r = await runSession(hsms(2), 'loginHSM PRECO admin password\nlogoutHSM\nloginHSM PRECO admin nope\nquit\n')
    expect(r.out).toBe(connectedTrace(2) +
      'aws-cloudhsm>loginHSM PRECO admin password\n\n' +
      'loginHSM success on server 0(10.0.0.1)\nloginHSM success on server 1(10.0.0.2)\n\n' +
      'aws-cloudhsm>logoutHSM\n\n' +
      'logoutHSM success on server 0(10.0.0.1)\nlogoutHSM success on server 1(10.0.0.2)\n\n' +
      'aws-cloudhsm>loginHSM PRECO admin nope\n\n' +
      'loginHSM failed: HSM Error: RET_USER_LOGIN_FAILURE\nloginHSM failed on server 0(10.0.0.1)\n' +
      'loginHSM failed: HSM Error: RET_USER_LOGIN_FAILURE\nloginHSM failed on server 1(10.0.0.2)\n\n' +
      QUIT)
  })

  it('reads the -hpswd password from the next line without echoing it', async () => {
    const r = await runSession(hsms(1), 'loginHSM PRECO admin -hpswd\npassword\nquit\n')
    expect(r.out).toContain('aws-cloudhsm>loginHSM PRECO admin -hpswd\nEnter password:\n\nloginHSM success on server 0(10.0.0.1)\n')
    expect(r.out).not.toMatch(/:password/)
    expect(r.calls[0]).toEqual({ serverId: 0, op: 'login', args: { userType: 'PRECO', userName: 'admin', password: 'password' } })
  })

  it('activates the cluster: changePswd PRECO admin, then listUsers shows CO (activate-cluster)', async () => {
    const r = await runSession(hsms(1), 'loginHSM PRECO admin password\nchangePswd PRECO admin co12345\ny\nlistUsers\nquit\n', { names: ['server1'] })
    expect(r.out).toContain('aws-cloudhsm>changePswd PRECO admin co12345\n\n' + BANNER + '\nDo you want to continue(y/n)?y\n' +
      'Changing password for admin(PRECO) on 1 nodes\n' +
      'aws-cloudhsm>listUsers\nUsers on server 0(server1):\nNumber of users found:2\n\n' + HEADER + '\n' +
      '         1              CO              admin                                    NO               0               NO\n' +
      '         2              AU              app_user                                 NO               0               NO\n')
  })

  it('creates a user on every server after y; n sends nothing; other answers ask again', async () => {
    const r = await runSession(activated(2), 'loginHSM CO admin co12345\ncreateUser CU bob p4ssword\nmaybe\nn\ncreateUser CU bob p4ssword\ny\nquit\n')
    expect(r.out).toContain('aws-cloudhsm>createUser CU bob p4ssword\n\n' + BANNER +
      "\nDo you want to continue(y/n)?Invalid option, please type 'y' or 'n'\n\nDo you want to continue(y/n)?n\naws-cloudhsm>createUser")
    expect(r.out).toContain('Do you want to continue(y/n)?y\nCreating User bob(CU) on 2 nodes\naws-cloudhsm>quit')
    expect(r.calls.filter(c => c.op === 'createUser')).toHaveLength(2)
  })

  it('asks Retry/Ignore/Abort after a failed createUser: R retries, I goes on, A stops', async () => {
    const [a, b, c] = activated(3)
    if (a === undefined || b === undefined || c === undefined) throw new Error('three HSMs')
    let failures = 1
    a.override('createUser', () => {
      if (failures-- > 0) throw new WireError(ReturnCode.MXN_AUTH_FAILED)
      return { userId: 3 }
    })
    b.override('createUser', () => { throw new WireError(ReturnCode.USER_ALREADY_EXISTS) })
    const r = await runSession([a, b, c], 'createUser CU bob p4ssword\ny\nR\nx\ni\nquit\n')
    expect(r.out).toContain('Creating User bob(CU) on 3 nodes\n' +
      'createUser failed: RET_MXN_AUTH_FAILED\ncreating user on server 0(10.0.0.1) failed\n\nRetry/Ignore/Abort?(R/I/A):R\n' +
      'createUser failed: HSM Error: This user is already created\ncreating user on server 1(10.0.0.2) failed\n\n' +
      "Retry/Ignore/Abort?(R/I/A):x\nInvalid option, please type 'R', 'I' or 'A'\n\nRetry/Ignore/Abort?(R/I/A):i\n" +
      'aws-cloudhsm>quit')

    const [d, e] = activated(2)
    if (d === undefined || e === undefined) throw new Error('two HSMs')
    d.override('createUser', () => { throw new WireError(ReturnCode.MXN_AUTH_FAILED) })
    const aborted = await runSession([d, e], 'createUser CU bob p4ssword\ny\nA\nquit\n')
    expect(aborted.out).toContain('Retry/Ignore/Abort?(R/I/A):A\naws-cloudhsm>quit')
    expect(aborted.calls.filter(call => call.op === 'createUser').map(call => call.serverId)).toEqual([0])
  })

  it('deletes a user without a banner; rollBack copies it back where it was already deleted', async () => {
    const list = activated(3)
    for (const h of list) h.handle('createUser', { userType: 'CU', userName: 'bob', password: 'p4ssword' })
    for (const h of list) h.loggedIn = h.users[0]
    const plain = await runSession(activated(2).map(h => { h.handle('createUser', { userType: 'CU', userName: 'bob', password: 'p4ssword' }); return h }), 'deleteUser CU bob\nquit\n')
    expect(plain.out).toContain('aws-cloudhsm>deleteUser CU bob\nDeleting user bob(CU) on 2 nodes\n' +
      'deleteUser success on server 0(10.0.0.1)\ndeleteUser success on server 1(10.0.0.2)\naws-cloudhsm>quit')

    list[1]?.override('deleteUser', () => { throw new WireError(ReturnCode.USER_LOGGED_IN) })
    const r = await runSession(list, 'deleteUser CU BOB\nB\nquit\n')
    expect(r.out).toContain('Deleting user BOB(CU) on 3 nodes\ndeleteUser success on server 0(10.0.0.1)\n' +
      'deleteUser failed: HSM Error: The user is currently logged in\ndeleteUser failed on server 1(10.0.0.2)\n\n' +
      'Retry/rollBack/Ignore?(R/B/I):B\nrollBack success on server 0(10.0.0.1)\naws-cloudhsm>quit')
    expect(list[0]?.users.map(u => u.userName)).toContain('bob')
    expect(r.calls.filter(c => c.op === 'deleteUser').map(c => c.serverId)).toEqual([0, 1])
  })
})

describe('server mode and synchronisation (A.4, G.4)', () => {
  it('enters server mode, acts on that server only, and exits', async () => {
    const r = await runSession(hsms(2), 'server 1\nlistUsers\nexit\nquit\n')
    expect(r.out).toBe(connectedTrace(2) +
      "aws-cloudhsm>server 1\n\nServer is in 'E2' mode...\nserver 1>listUsers\nUsers on server 1(10.0.0.2):\nNumber of users found:2\n\n" + HEADER + '\n' +
      '         1              PRECO           admin                                    NO               0               NO\n' +
      '         2              AU              app_user                                 NO               0               NO\n' +
      'server 1>exit\n' + QUIT)
    expect(r.calls.map(c => c.serverId)).toEqual([1])
  })

  it('syncUser copies a user with masked objects and prints both steps', async () => {
    const [a, b] = activated(2)
    if (a === undefined || b === undefined) throw new Error('two HSMs')
    a.handle('createUser', { userType: 'CU', userName: 'alice', password: 'p4ssword' })
    const r = await runSession([a, b], 'loginHSM CO admin co12345\nserver 0\nsyncUser 3 1\nexit\nquit\n')
    expect(r.out).toContain('server 0>syncUser 3 1\nExtractMaskedObject: 0x0 !\nInsertMaskedObject: 0x0 !\nsyncUser success\nserver 0>exit\n')
    expect(b.users.map(u => u.userName)).toContain('alice')
  })

  it('syncUser prints the failing step with its return code', async () => {
    const [a, b] = activated(2)
    if (a === undefined || b === undefined) throw new Error('two HSMs')
    b.override('insertMaskedObject', () => { throw new WireError(ReturnCode.MASKED_OBJECT_LINEAGE) })
    const r = await runSession([a, b], 'loginHSM CO admin co12345\nserver 0\nsyncUser 1 1\nsyncUser 9 1\nsyncUser 1 0\nquit\n')
    expect(r.out).toContain('server 0>syncUser 1 1\nExtractMaskedObject: 0x0 !\nInsertMaskedObject: 0x9c !\n' +
      'syncUser failed: HSM Error: The masked object comes from a cluster that is neither this cluster nor a clone of it\n' +
      'syncUser failed on server 1(10.0.0.2)\n')
    expect(r.out).toContain("server 0>syncUser 9 1\nExtractMaskedObject: 0x9d !\nsyncUser failed: HSM Error: user isn't initialized or user with this name doesn't exist\nsyncUser failed on server 0(10.0.0.1)\n")
    expect(r.out).toContain('server 0>syncUser 1 0\nError: the destination must be another server than the source (server 0)\n')
  })

  it('syncKey and syncUser failures carry what the HSM said about them', async () => {
    const [a, b] = activated(2)
    if (a === undefined || b === undefined) throw new Error('two HSMs')
    a.keys.set(262151, { handle: 262151, token: true, owner: 4, sharedWith: [], mValue: 0, keyClass: 4, attributes: [] })
    const missing = 'the owner of key 262151, bob (user 4), does not exist on this HSM; sync the user first (syncUser)'
    b.override('insertMaskedObject', () => { throw new WireError(ReturnCode.CREDENTIALS_INCONSISTENT, missing) })
    const r = await runSession([a, b], 'loginHSM CO admin co12345\nserver 0\nsyncKey 262151 1\nsyncUser 1 1\nquit\n')
    expect(r.out).toContain('server 0>syncKey 262151 1\n' +
      `syncKey failed: HSM Error: The owner or shared users of the object are missing or different on this HSM (${missing})\n` +
      'syncKey failed on server 1(10.0.0.2)\n')
    expect(r.out).toContain('server 0>syncUser 1 1\nExtractMaskedObject: 0x0 !\nInsertMaskedObject: 0x9f !\n' +
      `syncUser failed: HSM Error: The owner or shared users of the object are missing or different on this HSM (${missing})\n` +
      'syncUser failed on server 1(10.0.0.2)\n')
  })

  it('syncKey keeps the handle, and says so when the destination gave another one', async () => {
    const [a, b] = hsms(2)
    if (a === undefined || b === undefined) throw new Error('two HSMs')
    const key = { handle: 262151, token: true, owner: 3, sharedWith: [], mValue: 0, keyClass: 4, attributes: [] }
    a.keys.set(262151, key)
    a.loggedIn = a.users[0]
    b.loggedIn = b.users[0]
    const first = await runSession([a, b], 'server 0\nsyncKey 262151 1\nquit\n')
    expect(first.out).toContain('server 0>syncKey 262151 1\nsyncKey success\n')
    expect(first.calls.find(c => c.op === 'insertMaskedObject')?.args).toMatchObject({ sameHandle: true })
    const second = await runSession([a, b], 'server 0\nsyncKey 262151 1\nquit\n')
    expect(second.out).toContain('server 0>syncKey 262151 1\nKey 262151 was inserted on server 1(10.0.0.2) with handle 262152\nsyncKey success\n')
  })

  it('info server shows the HSM id and who is logged in', async () => {
    const r = await runSession(hsms(2), 'info server 1\nloginHSM PRECO admin password\ninfo server 1\nquit\n')
    expect(r.out).toContain('aws-cloudhsm>info server 1\nId      Name                    Hostname         Port   State           Partition               LoginState\n' +
      '1       10.0.0.2                10.0.0.2        2225    Connected       hsm-abcdefghij1         Not logged in\n')
    expect(r.out).toContain("1       10.0.0.2                10.0.0.2        2225    Connected       hsm-abcdefghij1         Logged in as 'admin(PRECO)'\n")
  })

  it('getCert writes the certificate in server mode', async () => {
    const { dir } = tmpConfig(1)
    const file = join(dir, 'cert.pem')
    const r = await runSession(hsms(2), `server 1\ngetCert ${file} 4\nquit\n`)
    expect(r.out).toContain(`server 1>getCert ${file} 4\ngetCert Success\n`)
    expect(readFileSync(file, 'utf8')).toContain('hsm-abcdefghij1 4')
  })
})

describe('keys', () => {
  function withKey (list: FakeHsm[]): FakeHsm[] {
    for (const h of list) {
      h.keys.set(262162, { handle: 262162, token: true, owner: 3, sharedWith: [4, 6], mValue: 0, keyClass: 4,
        attributes: [{ id: 0, name: 'OBJ_ATTR_CLASS', value: 4 }, { id: 3, name: 'OBJ_ATTR_LABEL', value: 'aes key' }, { id: 354, name: 'OBJ_ATTR_EXTRACTABLE', value: 1 }] })
      h.keys.set(7, { handle: 7, token: true, owner: 4, sharedWith: [], mValue: 0, keyClass: 2, attributes: [] })
    }
    return list
  }

  it('findAllKeys separates servers with a blank line and prints the hash', async () => {
    const r = await runSession(withKey(hsms(2)), 'findAllKeys 4 1\nquit\n')
    const hash = 'ab'.repeat(32)
    expect(r.out).toContain('aws-cloudhsm>findAllKeys 4 1\n' +
      `Keys on server 0(10.0.0.1):\nNumber of keys found 2\nnumber of keys matched from start index 0::2\n262162(s),7(o)\nKey Hash:\n${hash}\n\nfindAllKeys success on server 0(10.0.0.1)\n\n` +
      `Keys on server 1(10.0.0.2):\nNumber of keys found 2\nnumber of keys matched from start index 0::2\n262162(s),7(o)\nKey Hash:\n${hash}\n\nfindAllKeys success on server 1(10.0.0.2)\naws-cloudhsm>`)
  })

  it('getKeyInfo takes -k or a bare handle', async () => {
    const r = await runSession(withKey(hsms(1)), 'getKeyInfo 262162\ngetKeyInfo -k 262162\nquit\n')
    const section = 'Key Info on server 0(10.0.0.1):\n\n        Token/Flash Key,\n\n        Owned by user 3\n\n' +
      '        also, shared to following 2 user(s):\n\n                 4\n                 6\n'
    expect(r.out).toContain(`aws-cloudhsm>getKeyInfo 262162\n${section}aws-cloudhsm>getKeyInfo -k 262162\n${section}aws-cloudhsm>quit`)
  })

  it('getAttribute prints one attribute or all (512), or writes them to a file', async () => {
    const { dir } = tmpConfig(1)
    const file = join(dir, 'attributes.txt')
    const r = await runSession(withKey(hsms(2)), `getAttribute 262162 354\ngetAttribute 262162 512 ${file}\nquit\n`)
    expect(r.out).toContain('aws-cloudhsm>getAttribute 262162 354\n\nAttribute Value on server 0(10.0.0.1):\nOBJ_ATTR_EXTRACTABLE\n0x00000001\n\n' +
      'Attribute Value on server 1(10.0.0.2):\nOBJ_ATTR_EXTRACTABLE\n0x00000001\n')
    expect(r.out).toContain(`aws-cloudhsm>getAttribute 262162 512 ${file}\ngetAttribute success on server 0(10.0.0.1)\ngetAttribute success on server 1(10.0.0.2)\n`)
    expect(readFileSync(file, 'utf8')).toBe('\nAttribute Value on server 0(10.0.0.1):\nOBJ_ATTR_CLASS\n0x00000004\nOBJ_ATTR_LABEL\naes key\nOBJ_ATTR_EXTRACTABLE\n0x00000001\n' +
      '\nAttribute Value on server 1(10.0.0.2):\nOBJ_ATTR_CLASS\n0x00000004\nOBJ_ATTR_LABEL\naes key\nOBJ_ATTR_EXTRACTABLE\n0x00000001\n')
  })

  it('setAttribute and shareKey ask first (no leading blank) and report per server', async () => {
    const r = await runSession(withKey(hsms(2)), 'setAttribute 262162 3 "new label"\ny\nshareKey 262162 5 1\ny\nshareKey 99 5 0\ny\nquit\n')
    expect(r.out).toContain('aws-cloudhsm>setAttribute 262162 3 "new label"\n' + BANNER + '\nDo you want to continue(y/n)?y\n' +
      'setAttribute success on server 0(10.0.0.1)\nsetAttribute success on server 1(10.0.0.2)\n')
    expect(r.calls.find(c => c.op === 'setAttribute')?.args).toEqual({ handle: 262162, attribute: 3, value: 'new label' })
    expect(r.out).toContain('shareKey success on server 1(10.0.0.2)\n')
    expect(r.out).toContain('shareKey failed: HSM Error: Invalid object handle is passed to this operation\nshareKey failed on server 0(10.0.0.1)\n')
  })
})

describe('servers that fail', () => {
  it('reports a server that went away; the others complete', async () => {
    const [a, b, c] = hsms(3)
    if (b === undefined) throw new Error('three HSMs')
    b.down = true
    const r = await runSession([a ?? null, b, c ?? null], 'listUsers\nquit\n')
    expect(r.out).toContain('listUsers failed: server is not connected\nlistUsers failed on server 1(10.0.0.2)\nUsers on server 2(10.0.0.3):\n')
    expect(r.out).toContain('Users on server 0(10.0.0.1):')
  })

  it('reports a server that stopped answering', async () => {
    const [a, b] = hsms(2)
    b?.override('getHsmInfo', () => { throw new ClientError(CLIENT_ERR_TIMEOUT, 'ws://x did not answer getHsmInfo within 30000 ms') })
    const r = await runSession([a ?? null, b ?? null], 'getHSMInfo\nquit\n')
    expect(r.out).toContain('aws-cloudhsm>getHSMInfo\nGetting HSM Info on 2 nodes\n                *** Server 0 HSM Info ***\n')
    expect(r.out).toContain('        Firmware ID          :hsm-abcdefghij0\n\ngetHSMInfo failed: server did not respond within 30000 ms\ngetHSMInfo failed on server 1(10.0.0.2)\n')
  })
})
