/**
 * Issue 15 (KMU): the AWS guide's own example sessions, replayed through the real key_mgmt_util
 * bin against a real lab, compared line for line (test/fixtures/kmu-guide/, each naming its page).
 *
 * Goal: a learner who types what the guide's last SDK 3 revision shows gets what it shows: the
 * `Cluster Error Status` block with the nodes a command went to (a session key's node alone),
 * getKeyInfo's shared users on one line, `Attribute size` / `Written to` and every attribute in a
 * `-a 512` dump, listAttributes' page, verify's failure line, AES and 3DES keys that do not sign,
 * 2048-byte generic secrets, unique key IDs, and the commands aesWrapUnwrap, exportPubKey and
 * unWrapKey -noheader -kc -kt.
 * Method: one lab per test (three HSMs; CUs alice, bob and carol, users 3, 4 and 5); one
 * interactive session logged in as alice; `replayTranscript` feeds each `Command:` line and
 * compares its output (and each `$ cat` file) with the guide's, the lab's values in place of
 * the guide's handles and hashes.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { startLab, tmpDir } from '@hsmlab/testing'
import { KmuShell, numberAfter, replayTranscript } from './kmu-driver.js'

const TOPOLOGY = {
  regions: [{
    name: 'us-east-1',
    clusters: [{
      name: 'primary',
      hsms: 3,
      activate: { admin: 'Admin1234' },
      users: [
        { type: 'CU', name: 'alice', password: 'Alice1234' },
        { type: 'CU', name: 'bob', password: 'Bob12345' },
        { type: 'CU', name: 'carol', password: 'Carol1234' }
      ]
    }]
  }]
}

function fixture (name: string): string {
  return readFileSync(fileURLToPath(new URL(`../fixtures/kmu-guide/${name}`, import.meta.url)), 'utf8')
}

const read = (path: string): string => readFileSync(path, 'utf8')

/** A lab and a KMU session in a fresh directory, logged in as alice unless `login` is false. */
async function session (login = true): Promise<{ shell: KmuShell, cwd: string }> {
  const lab = await startLab({ lean: true, topology: TOPOLOGY })
  const cwd = tmpDir()
  const shell = await KmuShell.start(cwd, ['--config', join(lab.dir, 'key_mgmt_util.cfg')])
  if (login) expect(await shell.run('loginHSM -u CU -s alice -p Alice1234')).toContain('Cfm3LoginHSM returned: 0x00')
  return { shell, cwd }
}

describe('issue 15: the AWS key_mgmt_util examples, replayed', () => {
  it('genSymKey, getKeyInfo and a -a 512 dump of a 3DES key, a 2048-byte generic secret, a duplicate ID', async () => {
    const { shell, cwd } = await session(false)
    await replayTranscript(shell, cwd, fixture('gensymkey.txt'), read)
    expect(await shell.exit()).toBe(0)
  })

  it('genRSAKeyPair, the public key dump, exportPubKey, sign and verify', async () => {
    const { shell, cwd } = await session()
    writeFileSync(join(cwd, 'messageFile'), 'a message to sign\n')
    await replayTranscript(shell, cwd, fixture('rsa.txt'), read)
    // The exported PEM is the key that signed: openssl checks the signature with it.
    const verified = execFileSync('openssl', ['dgst', '-sha256', '-verify', 'public.pem', '-signature', 'signedFile', 'messageFile'], { cwd, encoding: 'utf8' })
    expect(verified.trim()).toBe('Verified OK')
    expect(await shell.exit()).toBe(0)
  })

  it('genECCKeyPair and the -a 512 dump of its private key, with VALUE_LEN, MODULUS and MODULUS_BITS', async () => {
    const { shell, cwd } = await session()
    await replayTranscript(shell, cwd, fixture('ecc.txt'), read)
    // OBJ_ATTR_MODULUS is the public point: the 65 bytes of an uncompressed P-256 point.
    expect(read(join(cwd, 'attr_262177'))).toMatch(/\nOBJ_ATTR_MODULUS\n04[0-9a-f]{128}\n/)
    expect(await shell.exit()).toBe(0)
  })

  it('a session key is listed on its own node only', async () => {
    const { shell, cwd } = await session()
    await replayTranscript(shell, cwd, fixture('session.txt'), read)
    expect(await shell.exit()).toBe(0)
  })

  it('aesWrapUnwrap wraps and unwraps a file, and unWrapKey -noheader -kc -kt imports it', async () => {
    const { shell, cwd } = await session()
    const key = Buffer.from('010203040506070811121314151617182122232425262728', 'hex')
    writeFileSync(join(cwd, '3DES.key'), key)
    const aes = numberAfter(await shell.run('genSymKey -t 31 -s 32 -l aes256'), 'Key Handle:')
    const transcript = fixture('aeswrap.txt').replaceAll('{h:aes}', String(aes))
    await replayTranscript(shell, cwd, transcript, read)
    expect(readFileSync(join(cwd, '3DES.key.unwrapped'))).toEqual(key)
    // The key unWrapKey -noheader made is a 3DES secret key with the label given.
    const found = await shell.run('findKey -l unwrapped3DES -t 21')
    expect(found).toContain('Total number of keys present 1')
    expect(await shell.exit()).toBe(0)
  })

  it('listAttributes prints its page', async () => {
    const { shell, cwd } = await session(false)
    await replayTranscript(shell, cwd, fixture('listattributes.txt'), read)
    expect(await shell.exit()).toBe(0)
  })
})
