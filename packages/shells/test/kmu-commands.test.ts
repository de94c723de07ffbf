/**
 * KMU commands against a fake cluster: argument errors send nothing and print the tool's error
 * and usage; each command sends the operation the protocol defines and prints what the AWS
 * pages show. Real HSM processes are exercised by test/e2e/kmu-*.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ReturnCode, WireError } from '@hsmlab/protocol'
import { KmuSession } from '../src/kmu/kmu-session.js'
import { captureIo, fakeCluster } from './kmu-fake-cluster.js'
import type { FakeHandler } from './kmu-fake-cluster.js'

let dir: string
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'kmu-unit-')) })
afterEach(() => { rmSync(dir, { recursive: true, force: true }) })

async function run (line: string, handler: FakeHandler = () => ({}), opts: { count?: number, down?: number[], answers?: string[] } = {}) {
  const { cluster, calls } = fakeCluster(handler, opts)
  const io = captureIo(opts.answers)
  const session = new KmuSession(cluster, io, { cwd: dir })
  const outcome = await session.execute(line.split(' ').filter(t => t !== ''))
  return { out: io.text(), calls, outcome, prompts: io.prompts }
}

describe('argument errors', () => {
  it('names a missing required flag, prints the usage and sends nothing', async () => {
    const { out, calls, outcome } = await run('deleteKey')
    expect(out).toMatch(/^\n\tError: Key handle \(-k\) is missing\.\n\n\nDescription\n===========\n/)
    expect(out).toContain('Syntax: deleteKey -h -k <key handle>')
    expect(calls).toEqual([])
    expect(outcome.code).not.toBe(0)
  })

  it('checks required flags in the order of the real tool', async () => {
    expect((await run('genSymKey -l k')).out).toContain('Error: Key type (-t) is missing.')
    expect((await run('genSymKey -t 31 -l k')).out).toContain('Error: Key size (-s) is missing.')
    expect((await run('genSymKey -t 31 -s 16')).out).toContain('Error: Key label (-l) is missing.')
    expect((await run('getKeyInfo')).out).toContain('Error: Key handle (-k) is missing.')
    expect((await run('sign -k 7 -m 1 -out s')).out).toContain('Error: Message file (-f) is missing.')
  })

  it('prints only the usage for -h, an unknown flag or a flag without its value', async () => {
    for (const line of ['genSymKey -h', 'genSymKey -t 31 -s 16 -l k -bogus 1', 'getKeyInfo -k']) {
      const { out, calls } = await run(line)
      expect(out.startsWith('\n\nDescription\n===========\n'), line).toBe(true)
      expect(calls).toEqual([])
    }
  })

  it('refuses a non-numeric value with its name', async () => {
    const { out, calls } = await run('genSymKey -t aes -s 16 -l k')
    expect(out).toContain("Error: Invalid value 'aes' for Key type (-t).")
    expect(calls).toEqual([])
  })

  it('refuses -timeout without -min_srv and shared session keys', async () => {
    expect((await run('genSymKey -t 31 -s 16 -l k -timeout 5')).out).toContain('Error: Minimum servers (-min_srv) option is missing')
    expect((await run('genSymKey -t 31 -s 16 -l k -sess -u 4')).out).toContain('Error: sharing session keys is not allowed')
  })

  it('says which real flags hsmlab does not simulate', async () => {
    const { out, calls } = await run('wrapKey -k 7 -w 6 -out f -noheader')
    expect(out).toBe("\n\tError: -noheader is not supported by hsmlab's key_mgmt_util.\n")
    expect(calls).toEqual([])
  })

  it('answers an unknown command with an error, suggesting the right case', async () => {
    expect((await run('gensymkey -t 31')).out).toBe("\n\tError: Unknown command 'gensymkey'. Did you mean genSymKey? Type help for the list of commands.\n")
    expect((await run('frobnicate')).out).toContain("Unknown command 'frobnicate'.")
    expect((await run('getHSMInfo')).out).toContain('getHSMInfo is not simulated')
  })
})

describe('loginHSM', () => {
  it('logs in on every HSM and prints one node line each', async () => {
    const { out, calls } = await run('loginHSM -u CU -s alice -p password1', () => ({ userId: 3, userType: 'CU' }))
    expect(calls.map(c => [c.serverId, c.op, c.args])).toEqual([
      [0, 'login', { userType: 'CU', userName: 'alice', password: 'password1' }],
      [1, 'login', { userType: 'CU', userName: 'alice', password: 'password1' }]
    ])
    expect(out).toBe('\n\tCfm3LoginHSM returned: 0x00 : HSM Return: SUCCESS\n' +
      '\n\tCluster Error Status\n' +
      '\tNode id 0 and err state 0x00000000 : HSM Return: SUCCESS\n' +
      '\tNode id 1 and err state 0x00000000 : HSM Return: SUCCESS\n')
  })

  it('reports an unreachable HSM as unavailable without failing the login', async () => {
    const { out, outcome } = await run('loginHSM -u CU -s alice -p password1', () => ({ userId: 3, userType: 'CU' }), { count: 3, down: [1] })
    expect(out).toContain('Cfm3LoginHSM returned: 0x00 : HSM Return: SUCCESS')
    expect(out).toContain('\tNode id 1 and err state 0x30000085 : HSM CLUSTER ERROR: Server in cluster is unavailable\n')
    expect(outcome.code).toBe(0)
  })

  it('prints the HSM return code of a failed login', async () => {
    const { out } = await run('loginHSM -u CU -s alice -p wrong', () => { throw new WireError(ReturnCode.USER_LOGIN_FAILURE) })
    expect(out).toContain('Cfm3LoginHSM returned: 0xa3 : HSM Error: RET_USER_LOGIN_FAILURE')
    expect(out).toContain('Node id 0 and err state 0x000000a3 : HSM Error: RET_USER_LOGIN_FAILURE')
  })

  it('refuses every user type but CU with 0xdb, sending nothing', async () => {
    const { out, calls } = await run('loginHSM -u CO -s admin -p password1')
    expect(calls).toEqual([])
    expect(out).toContain('Cfm3LoginHSM returned: 0xdb : HSM Error: Invalid User Type.')
    expect(out).toContain('Node id 0 and err state 0x000000db : HSM Error: Invalid User Type.')
  })

  it('asks for the password with -hpswd', async () => {
    const { calls, prompts } = await run('loginHSM -u CU -s alice -hpswd', () => ({}), { answers: ['secret99'] })
    expect(prompts).toEqual(['Enter password: '])
    expect(calls[0]?.args).toMatchObject({ password: 'secret99' })
  })

  it('validates its flags like the real tool', async () => {
    expect((await run('loginHSM -s alice -p x')).out).toContain('Error: User type (-u) is missing.')
    expect((await run('loginHSM -u CU -s alice')).out).toContain('Error: Password (-p) is missing.')
    expect((await run('loginHSM -u XX -s alice -p x')).out).toContain('Error: Invalid user type specified.')
    expect((await run('loginHSM -u CU -p x')).out).toContain('Error: Username (-s) is missing.')
  })
})

describe('key commands', () => {
  it('genSymKey sends one request to the first reachable HSM and prints the handle', async () => {
    const { out, calls } = await run('genSymKey -t 31 -s 32 -l aes256 -id k1 -nex -u 4,5 -m_value 1 -min_srv 2 -timeout 3',
      () => ({ handle: 262150 }), { count: 3, down: [0] })
    expect(calls).toEqual([{
      serverId: 1,
      op: 'generateSymmetricKey',
      args: { label: 'aes256', id: 'k1', extractable: false, shareWith: [4, 5], mValue: 1, minServers: 2, timeoutMs: 3000, keyType: 31, sizeBytes: 32 },
      options: { timeoutMs: 13000 }
    }])
    expect(out).toBe('\n\tCfm3GenerateSymmetricKey returned: 0x00 : HSM Return: SUCCESS\n' +
      '\n\tSymmetric Key Created.  Key Handle: 262150\n' +
      '\n\tCluster Error Status\n' +
      // The node that made the key answers first, the unreachable one last.
      '\tNode id 1 and err state 0x00000000 : HSM Return: SUCCESS\n' +
      '\tNode id 2 and err state 0x00000000 : HSM Return: SUCCESS\n' +
      '\tNode id 0 and err state 0x30000085 : HSM CLUSTER ERROR: Server in cluster is unavailable\n')
  })

  it('genSymKey passes a refusal through, without a handle', async () => {
    const { out } = await run('genSymKey -t 31 -s 16 -l k -min_srv 3', () => { throw new WireError(ReturnCode.MIN_SERVERS_NOT_MET) })
    expect(out).toContain('Cfm3GenerateSymmetricKey returned: 0x30000086 : HSM CLUSTER ERROR:')
    expect(out).not.toContain('Key Handle')
  })

  it('genRSAKeyPair and genECCKeyPair print both handles', async () => {
    const rsa = await run('genRSAKeyPair -m 2048 -e 65537 -l rsa_test -sess', () => ({ publicHandle: 27, privateHandle: 28 }))
    expect(rsa.calls[0]?.args).toEqual({ label: 'rsa_test', session: true, algorithm: 'RSA', modulusBits: 2048, publicExponent: 65537 })
    expect(rsa.out).toContain('\n\tCfm3GenerateKeyPair:    public key handle: 27    private key handle: 28\n')
    const ec = await run('genECCKeyPair -i 14 -l ecc14', () => ({ publicHandle: 262179, privateHandle: 262177 }))
    expect(ec.calls[0]?.args).toEqual({ label: 'ecc14', algorithm: 'EC', curveId: 14 })
    const bad = await run('genECCKeyPair -i 1 -l ecc1', () => { throw new WireError(ReturnCode.POLICY_VIOLATION) })
    expect(bad.out).toContain('Cfm3GenerateKeyPair returned: 0xb3 : HSM Error: This operation violates the current configured/FIPS policies')
  })

  it('findKey prints the list, the node lines and then the result line', async () => {
    const { out, calls } = await run('findKey -c 4 -t 31 -l aes -sess 0 -kcv 0x59A46E', () => ({ handles: [6, 7], total: 2 }))
    expect(calls[0]?.args).toEqual({ keyClass: 4, keyType: 31, label: 'aes', session: false, kcv: '59a46e' })
    expect(out).toBe('\nTotal number of keys present 2\n\n number of keys matched from start index 0::1\n6, 7\n' +
      '\n\tCluster Error Status\n\tNode id 0 and err state 0x00000000 : HSM Return: SUCCESS\n\tNode id 1 and err state 0x00000000 : HSM Return: SUCCESS\n' +
      '\n\tCfm3FindKey returned: 0x00 : HSM Return: SUCCESS\n')
  })

  it('findKey -u keeps the keys every listed user can use', async () => {
    const infos: Record<number, object> = {
      6: { owner: 3, sharedWith: [4], keyClass: 4 },
      7: { owner: 3, sharedWith: [], keyClass: 4 },
      8: { owner: 5, sharedWith: [], keyClass: 2 }
    }
    const { out } = await run('findKey -u 4', (_id, op, args) => op === 'findKey' ? { handles: [6, 7, 8], total: 3 } : infos[args.handle as number])
    expect(out).toContain('\n6, 8\n')
  })

  it('getKeyInfo prints owner and sharing', async () => {
    const { out } = await run('getKeyInfo -k 9', () => ({ handle: 9, token: true, owner: 3, sharedWith: [4], mValue: 0, keyClass: 4 }))
    expect(out).toBe('\n\tCfm3GetKey returned: 0x00 : HSM Return: SUCCESS\n\n\tOwned by user 3\n\n\talso, shared to following 1 user(s):\n\n\t\t 4\n')
  })

  it('deleteKey reports an unknown handle the way the AWS page shows it', async () => {
    const { out } = await run('deleteKey -k 252126', () => { throw new WireError(ReturnCode.INVALID_HANDLE) })
    expect(out).toBe('\n\tCfm3FindKey returned: 0xa8 : HSM Error: Invalid object handle is passed to this operation\n' +
      '\n\tCluster Error Status\n' +
      '\tNode id 0 and err state 0x000000a8 : HSM Error: Invalid object handle is passed to this operation\n' +
      '\tNode id 1 and err state 0x000000a8 : HSM Error: Invalid object handle is passed to this operation\n')
  })

  it('deleteKey by a user who does not own the key gets 0xc6', async () => {
    const { out, calls } = await run('deleteKey -k 262162', () => { throw new WireError(ReturnCode.KEY_ACCESS_DENIED) })
    expect(calls.map(c => c.args)).toEqual([{ handle: 262162 }])
    expect(out).toContain('\n\tCfm3DeleteKey returned: 0xc6 : HSM Error: Key Access is denied\n')
  })

  it('getAttribute writes the attribute file', async () => {
    const { out } = await run('getAttribute -o 7 -a 512 -out attr_7', () => ({
      attributes: [{ id: 0, name: 'OBJ_ATTR_CLASS', value: 4 }, { id: 3, name: 'OBJ_ATTR_LABEL', value: 'k' }]
    }))
    expect(out).toBe('\nAttribute size: 18, count: 2\nWritten to: attr_7 file\n' +
      '\n\tCfm3GetAttribute returned: 0x00 : HSM Return: SUCCESS\n')
    expect(readFileSync(join(dir, 'attr_7'), 'utf8')).toBe('OBJ_ATTR_CLASS\n0x04\nOBJ_ATTR_LABEL\nk\n')
  })

  it('setAttribute asks for the boolean value of OBJ_ATTR_TOKEN', async () => {
    const { out, calls, prompts } = await run('setAttribute -o 262154 -a 1', () => ({}), { answers: ['1'] })
    expect(prompts).toEqual(['\t\tEnter the boolean attribute value (0 or 1):'])
    expect(calls[0]?.args).toEqual({ handle: 262154, attribute: 1, value: 1 })
    expect(out).toContain('\t\tThis attribute is defined as a boolean value.\n')
    expect(out).toContain('Cfm3SetAttribute returned: 0x00 : HSM Return: SUCCESS')
    const other = await run('setAttribute -o 262154 -a 3')
    expect(other.out).toBe('\n\tThis attribute is either not modifiable or unknown\n')
    expect(other.calls).toEqual([])
  })

  it('wrapKey writes the wrapped key and unWrapKey reads it back', async () => {
    const wrapped = new Uint8Array([1, 2, 3, 4, 5])
    const wrap = await run('wrapKey -k 7 -w 14 -out 3DES-encrypted.key -m 4', () => ({ wrapped }))
    expect(wrap.calls[0]?.args).toEqual({ handle: 7, wrappingHandle: 14, mechanism: 4 })
    expect(wrap.out).toBe('\n\tKey Wrapped.\n\n\tWrapped Key written to file "3DES-encrypted.key" length 5\n' +
      '\n\tCfm2WrapKey returned: 0x00 : HSM Return: SUCCESS\n')
    const unwrap = await run('unWrapKey -f 3DES-encrypted.key -w 14 -sess', () => ({ handle: 29 }))
    expect(unwrap.calls[0]?.args).toEqual({ session: true, wrapped, wrappingHandle: 14, mechanism: 4 })
    expect(unwrap.out).toContain('\n\tKey Unwrapped.  Key Handle: 29\n')
  })

  it('exportPrivateKey writes the PEM', async () => {
    const pem = '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'
    const { out } = await run('exportPrivateKey -k 15 -w 16 -out exportKey.pem', () => ({ pem }))
    expect(out).toBe('\n\tCfm3WrapKey returned: 0x00 : HSM Return: SUCCESS\n\n\tCfm3UnWrapHostKey returned: 0x00 : HSM Return: SUCCESS\n' +
      '\nPEM formatted private key is written to exportKey.pem\n')
    expect(readFileSync(join(dir, 'exportKey.pem'), 'utf8')).toBe(pem)
  })

  it('sign and verify use the files and mechanisms given', async () => {
    writeFileSync(join(dir, 'messageFile'), 'hello')
    const signature = new Uint8Array([9, 9, 9])
    const signed = await run('sign -f messageFile -k 266309 -m 1 -out signedFile', () => ({ signature }))
    expect(signed.calls[0]?.args).toEqual({ handle: 266309, mechanism: 1, data: new Uint8Array(Buffer.from('hello')) })
    expect(signed.out).toContain('\n\tsignature is written to file signedFile\n')
    expect(new Uint8Array(readFileSync(join(dir, 'signedFile')))).toEqual(signature)
    const good = await run('verify -f messageFile -s signedFile -k 262276 -m 1', () => ({}))
    expect(good.out).toBe('\n\tSignature verification successful\n\n\tCfm3Verify returned: 0x00 : HSM Return: SUCCESS\n')
    const bad = await run('verify -f messageFile -s signedFile -k 262276 -m 1', () => { throw new WireError(ReturnCode.BAD_PKCS_DATA) })
    expect(bad.out).toBe('\tCfm3Verify returned: 0x1b\n\n\tCSP Error: ERR_BAD_PKCS_DATA\n')
  })

  it('sign with a missing file warns and sends nothing', async () => {
    const { out, calls } = await run('sign -f nothere -k 1 -m 1 -out s')
    expect(out).toContain('\n\tWARNING: Failed to read from the file "nothere".\n')
    expect(calls).toEqual([])
  })

  it('extractMaskedObject and insertMaskedObject move a key through a file', async () => {
    const blob = new Uint8Array([7, 7, 7])
    const extract = await run('extractMaskedObject -o 524295 -out maskedObj', () => ({ blob }))
    expect(extract.calls[0]?.args).toEqual({ kind: 'key', handle: 524295 })
    expect(extract.out).toBe('\n\tObject was masked and written to file "maskedObj"\n\n\tCfm3ExtractMaskedObject returned: 0x00 : HSM Return: SUCCESS\n')
    const insert = await run('insertMaskedObject -f maskedObj -min_srv 2 -timeout 1', () => ({ kind: 'key', handle: 262433 }))
    expect(insert.calls[0]).toMatchObject({ args: { blob, minServers: 2, timeoutMs: 1000 } })
    expect(insert.out).toContain('\n\tCfm3InsertMaskedObject returned: 0x00 : HSM Return: SUCCESS\n\tNew Key Handle: 262433\n')
  })
})

describe('other commands', () => {
  it('listUsers shows the users of all HSMs as one list', async () => {
    const users = (names: string[]) => ({
      users: names.map((n, i) => ({ userId: i + 1, userType: i === 0 ? 'CO' : 'CU', userName: n, mofnPubKey: false, loginFailureCount: 0, twoFactor: false }))
    })
    const { out } = await run('listUsers', id => id === 0 ? users(['admin', 'alice']) : users(['admin', 'alice', 'bob']))
    expect(out).toContain('\n\tNumber Of Users found 3\n\n')
    expect(out).toContain('        3                3      CU              bob ')
    expect(out.endsWith('\n\tCfm3ListUsers returned: 0x00 : HSM Return: SUCCESS\n')).toBe(true)
  })

  it('Error2String needs the 0x prefix', async () => {
    expect((await run('Error2String -r 0xdb')).out).toBe('\n\tError Code db maps to HSM Error: Invalid User Type.\n')
    const bad = await run('Error2String -r db')
    expect(bad.out).toContain("Error: Invalid response code 'db'")
    expect((await run('Error2String')).out).toContain('Error: Response code (-r) is missing.')
  })

  it('help prints the command list and exit ends the session', async () => {
    expect((await run('help')).out).toContain('\n   genSymKey              Generates a Symmetric keys\n')
    expect((await run('exit')).outcome).toEqual({ exit: true, code: 0 })
  })

  it('reports an HSM that does not answer', async () => {
    const { out } = await run('getKeyInfo -k 6', () => { throw Object.assign(new Error('timeout'), { code: 'CLIENT_ERR_TIMEOUT' }) })
    expect(out).toContain('Cfm3GetKey returned: 0x30000087 : HSM CLUSTER ERROR: The server did not answer')
  })

  it('getCert writes the certificate of the type given (-t, or -s as the page\'s example) and prints the page\'s line', async () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'
    const answer: FakeHandler = (_id, op, args) => op === 'getCertificate' && args.certType === 4 ? { pem } : {}
    for (const line of [`getCert -f ${join(dir, 'userRoot.crt')} -t 4`, `getCert -f ${join(dir, 'userRoot.crt')} -s 4`]) {
      const { out, calls } = await run(line, answer)
      expect(out).toBe('\nCfm3GetCert() returned 0 :HSM Return: SUCCESS\n')
      expect(calls.map(c => [c.op, c.args])).toEqual([['getCertificate', { certType: 4 }]])
      expect(readFileSync(join(dir, 'userRoot.crt'), 'utf8')).toBe(pem)
    }
    const refused = await run(`getCert -f ${join(dir, 'x.crt')} -t 8`, () => { throw new WireError(ReturnCode.INVALID_INPUT, 'not initialized') })
    expect(refused.out).toBe('\nCfm3GetCert() returned 13 :HSM Error: Invalid input data/params\n')
    for (const [line, error] of [['getCert -f c.crt', 'Certificate type (-t) is missing.'], ['getCert -f c.crt -t 3', 'Invalid certificate type 3'], ['getCert -t 4', 'Certificate file (-f) is missing.']]) {
      const { out, calls } = await run(line ?? '')
      expect(out).toContain(`Error: ${error ?? ''}`)
      expect(out).toContain('Syntax: getCert -h -f <file name> -t <certificate type>')
      expect(calls).toEqual([])
    }
  })
})
