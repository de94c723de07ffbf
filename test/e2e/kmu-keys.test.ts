/**
 * key_mgmt_util against a real lab: the real KMU bin, typed into like a learner, talking to real
 * HSM processes started by `hsmlab up`.
 *
 * Goal: what KMU prints is what the AWS pages show, and the keys it makes behave: a new token key
 * reaches every HSM under one handle; an RSA key signs what openssl verifies; wrap/unwrap and
 * masked objects round-trip; ownership and unknown handles give 0xc6 and 0xa8.
 * Method: one lab per test (three HSMs, CUs alice and bob); KMU runs as a process, either one
 * `singlecmd` invocation or an interactive session fed line by line; a second client (the
 * library) checks each HSM directly.
 */
import { execFileSync } from 'node:child_process'
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ClusterClient, readCmuConfig } from '@hsmlab/client'
import { startLab, tmpDir, waitFor } from '@hsmlab/testing'
import type { StartedLab } from '@hsmlab/testing'
import { KmuShell, kmuOnce, numberAfter } from './kmu-driver.js'

const TOPOLOGY = {
  regions: [{
    name: 'us-east-1',
    clusters: [{
      name: 'primary',
      hsms: 3,
      activate: { admin: 'Admin1234' },
      users: [{ type: 'CU', name: 'alice', password: 'Alice1234' }, { type: 'CU', name: 'bob', password: 'Bob12345' }]
    }]
  }]
}

const LOGIN_ALICE = 'loginHSM -u CU -s alice -p Alice1234'
const ALL_NODES_OK = '\n\tCluster Error Status\n' +
  '\tNode id 0 and err state 0x00000000 : HSM Return: SUCCESS\n' +
  '\tNode id 1 and err state 0x00000000 : HSM Return: SUCCESS\n' +
  '\tNode id 2 and err state 0x00000000 : HSM Return: SUCCESS\n'

/** The lab's KMU configuration (its first cluster). */
function kmuConfig (lab: StartedLab): string {
  return join(lab.dir, 'key_mgmt_util.cfg')
}

/** An interactive session in `cwd`, logged in as `user`. */
async function loggedIn (lab: StartedLab, cwd: string, login = LOGIN_ALICE): Promise<KmuShell> {
  const shell = await KmuShell.start(cwd, ['--config', kmuConfig(lab)])
  expect(await shell.run(login)).toBe('\n\tCfm3LoginHSM returned: 0x00 : HSM Return: SUCCESS\n' + ALL_NODES_OK)
  return shell
}

describe('key_mgmt_util on a real cluster', () => {
  it('genSymKey makes a key that every HSM knows under one handle', async () => {
    const lab = await startLab({ lean: true, topology: TOPOLOGY })
    // The lab's default place, as a learner's working directory has it after `npx hsmlab up`.
    const cwd = tmpDir()
    mkdirSync(join(cwd, '.hsmlab'))
    copyFileSync(kmuConfig(lab), join(cwd, '.hsmlab', 'key_mgmt_util.cfg'))
    const run = await kmuOnce(cwd, ['singlecmd', 'loginHSM', '-u', 'CU', '-s', 'alice', '-p', 'Alice1234', 'genSymKey', '-t', '31', '-s', '32', '-l', 'aes256'])
    expect(run.err).toBe('')
    expect(run.code).toBe(0)
    expect(run.out).toMatch(new RegExp(
      '^\\n\\tCfm3LoginHSM returned: 0x00 : HSM Return: SUCCESS\\n\\n\\tCluster Error Status\\n(\\tNode id \\d and err state 0x00000000 : HSM Return: SUCCESS\\n){3}' +
      'Command:  genSymKey -t 31 -s 32 -l aes256\\n' +
      '\\n\\tCfm3GenerateSymmetricKey returned: 0x00 : HSM Return: SUCCESS\\n' +
      '\\n\\tSymmetric Key Created\\.  Key Handle: \\d+\\n' +
      '\\n\\tCluster Error Status\\n(\\tNode id \\d and err state 0x00000000 : HSM Return: SUCCESS\\n){3}$'))
    const handle = numberAfter(run.out, 'Key Handle:')

    const config = await readCmuConfig(kmuConfig(lab))
    const client = await ClusterClient.open(config.servers)
    try {
      expect(client.connected()).toHaveLength(3)
      for (const outcome of await client.fanOut('login', { userType: 'CU', userName: 'alice', password: 'Alice1234' })) expect(outcome.ok).toBe(true)
      const infos = await waitFor(async () => {
        const outcomes = await client.fanOut('getKeyInfo', { handle })
        return outcomes.every(o => o.ok) ? outcomes : undefined
      }, { what: `key ${handle} on every HSM`, timeoutMs: 20_000 })
      for (const info of infos) expect(info.ok && info.result).toMatchObject({ handle, owner: 3, token: true })
    } finally {
      await client.close()
    }
  })

  it('genRSAKeyPair signs a file that openssl verifies with the exported key', async () => {
    const lab = await startLab({ lean: true, topology: TOPOLOGY })
    const cwd = tmpDir()
    writeFileSync(join(cwd, 'messageFile'), 'a message to sign\n')
    const shell = await loggedIn(lab, cwd)
    const pair = await shell.run('genRSAKeyPair -m 2048 -e 65537 -l rsa_test')
    expect(pair).toMatch(/^\n\tCfm3GenerateKeyPair returned: 0x00 : HSM Return: SUCCESS\n\n\tCfm3GenerateKeyPair: {4}public key handle: \d+ {4}private key handle: \d+\n/)
    const publicHandle = numberAfter(pair, 'public key handle:')
    const privateHandle = numberAfter(pair, 'private key handle:')

    expect(await shell.run(`sign -f messageFile -k ${privateHandle} -m 1 -out signedFile`)).toBe(
      '\n\tCfm3Sign returned: 0x00 : HSM Return: SUCCESS\n\n\tsignature is written to file signedFile\n' + ALL_NODES_OK)
    expect(await shell.run(`verify -f messageFile -s signedFile -k ${publicHandle} -m 1`)).toBe(
      '\n\tSignature verification successful\n\n\tCfm3Verify returned: 0x00 : HSM Return: SUCCESS\n')
    expect(await shell.run(`verify -f messageFile -s messageFile -k ${publicHandle} -m 1`)).toBe(
      '\tCfm3Verify returned: 0x1b\n\n\tCSP Error: ERR_BAD_PKCS_DATA\n')

    const wrapping = numberAfter(await shell.run('genSymKey -t 31 -s 32 -l export_wrapper'), 'Key Handle:')
    expect(await shell.run(`exportPrivateKey -k ${privateHandle} -w ${wrapping} -out exportKey.pem`)).toBe(
      '\n\tCfm3WrapKey returned: 0x00 : HSM Return: SUCCESS\n\n\tCfm3UnWrapHostKey returned: 0x00 : HSM Return: SUCCESS\n' +
      '\nPEM formatted private key is written to exportKey.pem\n')
    expect(await shell.exit()).toBe(0)

    execFileSync('openssl', ['pkey', '-in', 'exportKey.pem', '-pubout', '-out', 'public.pem'], { cwd })
    const verified = execFileSync('openssl', ['dgst', '-sha256', '-verify', 'public.pem', '-signature', 'signedFile', 'messageFile'], { cwd, encoding: 'utf8' })
    expect(verified.trim()).toBe('Verified OK')
  })

  it('wrapKey and unWrapKey give back the same key under a new handle', async () => {
    const lab = await startLab({ lean: true, topology: TOPOLOGY })
    const cwd = tmpDir()
    const shell = await loggedIn(lab, cwd)
    const wrapping = numberAfter(await shell.run('genSymKey -t 31 -s 32 -l wrapping_key'), 'Key Handle:')
    const key = numberAfter(await shell.run('genSymKey -t 21 -s 24 -l 3DES_key'), 'Key Handle:')
    const wrapped = await shell.run(`wrapKey -k ${key} -w ${wrapping} -out 3DES-encrypted.key -m 4`)
    expect(wrapped).toMatch(/^\n\tKey Wrapped\.\n\n\tWrapped Key written to file "3DES-encrypted\.key" length \d+\n\n\tCfm2WrapKey returned: 0x00 : HSM Return: SUCCESS\n$/)
    expect(readFileSync(join(cwd, '3DES-encrypted.key')).length).toBe(numberAfter(wrapped, 'length'))

    const unwrapped = await shell.run(`unWrapKey -f 3DES-encrypted.key -w ${wrapping} -m 4`)
    expect(unwrapped).toMatch(/^\n\tCfm3UnWrapKey returned: 0x00 : HSM Return: SUCCESS\n\n\tKey Unwrapped\. {2}Key Handle: \d+\n/)
    const copy = numberAfter(unwrapped, 'Key Handle:')
    expect(copy).not.toBe(key)

    // Same key material: same key check value and type.
    expect(await shell.run(`getAttribute -o ${key} -a 512 -out attr_key`)).toMatch(/Written to: attr_key file\n\n\tCfm3GetAttribute returned: 0x00/)
    await shell.run(`getAttribute -o ${copy} -a 512 -out attr_copy`)
    const attributes = (file: string): Map<string, string> => {
      const lines = readFileSync(join(cwd, file), 'utf8').split('\n')
      return new Map(lines.flatMap((l, i) => l.startsWith('OBJ_ATTR_') ? [[l, lines[i + 1] ?? '']] : []))
    }
    const original = attributes('attr_key')
    const restored = attributes('attr_copy')
    expect(original.get('OBJ_ATTR_KEY_TYPE')).toBe('0x15')
    expect(original.get('OBJ_ATTR_VALUE_LEN')).toBe('0x00000018')
    expect(restored.get('OBJ_ATTR_KCV')).toBe(original.get('OBJ_ATTR_KCV'))
    expect(restored.get('OBJ_ATTR_KEY_TYPE')).toBe('0x15')
    expect(restored.get('OBJ_ATTR_LOCAL')).toBe('0x00')
    expect(await shell.exit()).toBe(0)
  })

  it('extractMaskedObject and insertMaskedObject make a copy with a new handle', async () => {
    const lab = await startLab({ lean: true, topology: TOPOLOGY })
    const cwd = tmpDir()
    const shell = await loggedIn(lab, cwd)
    const key = numberAfter(await shell.run('genSymKey -t 31 -s 16 -l nex_key -nex'), 'Key Handle:')
    expect(await shell.run(`extractMaskedObject -o ${key} -out maskedObj`)).toBe(
      '\n\tObject was masked and written to file "maskedObj"\n\n\tCfm3ExtractMaskedObject returned: 0x00 : HSM Return: SUCCESS\n')
    const inserted = await shell.run('insertMaskedObject -f maskedObj')
    expect(inserted).toMatch(/^\n\tCfm3InsertMaskedObject returned: 0x00 : HSM Return: SUCCESS\n\tNew Key Handle: \d+\n/)
    expect(inserted.endsWith(ALL_NODES_OK)).toBe(true)
    const copy = numberAfter(inserted, 'New Key Handle:')
    expect(copy).not.toBe(key)
    expect(await shell.run(`getKeyInfo -k ${copy}`)).toBe('\n\tCfm3GetKey returned: 0x00 : HSM Return: SUCCESS\n\n\tOwned by user 3\n')
    const found = await shell.run('findKey -l nex_key')
    expect(found).toContain('\nTotal number of keys present 2\n')
    expect(found).toContain(`\n${[key, copy].sort((a, b) => a - b).join(', ')}\n`)
    expect(await shell.exit()).toBe(0)
  })

  it('refuses to delete a key the user does not own (0xc6) and an unknown handle (0xa8)', async () => {
    const lab = await startLab({ lean: true, topology: TOPOLOGY })
    const cwd = tmpDir()
    const alice = await loggedIn(lab, cwd)
    const users = await alice.run('listUsers')
    expect(users).toMatch(/^\n\tNumber Of Users found 4\n\n {8}Index {7}User ID {5}User Type {7}User Name {11}MofnPubKey {4}LoginFailureCnt {9}2FA\n/)
    const bobId = Number(/^ {8}\d+ +(\d+) +CU +bob /m.exec(users)?.[1])
    const shared = numberAfter(await alice.run(`genSymKey -t 31 -s 16 -l shared_key -u ${bobId}`), 'Key Handle:')

    const bob = await loggedIn(lab, cwd, 'loginHSM -u CU -s bob -p Bob12345')
    expect(await bob.run(`getKeyInfo -k ${shared}`)).toBe(
      `\n\tCfm3GetKey returned: 0x00 : HSM Return: SUCCESS\n\n\tOwned by user 3\n\n\talso, shared to following 1 user(s):\n\n\t\t ${bobId}\n`)
    expect(await bob.run(`deleteKey -k ${shared}`)).toBe('\n\tCfm3DeleteKey returned: 0xc6 : HSM Error: Key Access is denied\n' +
      '\n\tCluster Error Status\n' +
      '\tNode id 0 and err state 0x000000c6 : HSM Error: Key Access is denied\n' +
      '\tNode id 1 and err state 0x000000c6 : HSM Error: Key Access is denied\n' +
      '\tNode id 2 and err state 0x000000c6 : HSM Error: Key Access is denied\n')
    expect(await bob.run('Error2String -r 0xc6')).toBe('\n\tError Code c6 maps to HSM Error: Key Access is denied\n')
    expect(await bob.exit()).toBe(0)

    expect(await alice.run('deleteKey -k 252126')).toBe(
      '\n\tCfm3FindKey returned: 0xa8 : HSM Error: Invalid object handle is passed to this operation\n' +
      '\n\tCluster Error Status\n' +
      '\tNode id 0 and err state 0x000000a8 : HSM Error: Invalid object handle is passed to this operation\n' +
      '\tNode id 1 and err state 0x000000a8 : HSM Error: Invalid object handle is passed to this operation\n' +
      '\tNode id 2 and err state 0x000000a8 : HSM Error: Invalid object handle is passed to this operation\n')
    expect(await alice.run(`deleteKey -k ${shared}`)).toBe('\n\tCfm3DeleteKey returned: 0x00 : HSM Return: SUCCESS\n' + ALL_NODES_OK)
    expect(await alice.run(`getKeyInfo -k ${shared}`)).toBe('\n\tCfm3GetKey returned: 0xa8 : HSM Error: Invalid object handle is passed to this operation\n')
    // A missing flag is caught before anything is sent.
    expect(await alice.run('deleteKey')).toMatch(/^\n\tError: Key handle \(-k\) is missing\.\n\n\nDescription\n/)
    expect(await alice.exit()).toBe(0)
  })
})
