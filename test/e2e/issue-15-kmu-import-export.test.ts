/**
 * Issue 15 item 3 (KMU): the commands of the guide that hsmlab answered "not simulated" —
 * exSymKey, imSymKey, importPrivateKey, importPubKey, findSingleKey — through the real
 * key_mgmt_util bin on a real lab, their pages' example sessions replayed line for line
 * (test/fixtures/kmu-guide/, as issue-15-kmu-guide.test.ts does), and round trips that prove
 * the bytes: an exported key's file holds the key (re-imported, its KCV is the original's; -wk
 * gives the same bytes), a private key made by openssl signs in the HSM and openssl verifies it,
 * a public key imported verifies openssl's signature, imported token keys reach every HSM, and
 * findSingleKey fails while the HSMs' peer links are cut (the key is on node 0 only) and passes
 * once they catch up.
 * Method: one lab per test (three HSMs; CU alice), one interactive session logged in as alice;
 * keys and files the test makes are put in place of the guide's handles and files.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { startLab, tmpDir, waitFor } from '@hsmlab/testing'
import type { StartedLab } from '@hsmlab/testing'
import { KmuShell, numberAfter, replayTranscript } from './kmu-driver.js'

const TOPOLOGY = {
  regions: [{
    name: 'us-east-1',
    clusters: [{
      name: 'primary',
      hsms: 3,
      activate: { admin: 'Admin1234' },
      users: [{ type: 'CU', name: 'alice', password: 'Alice1234' }]
    }]
  }]
}

function fixture (name: string): string {
  return readFileSync(fileURLToPath(new URL(`../fixtures/kmu-guide/${name}`, import.meta.url)), 'utf8')
}

const read = (path: string): string => readFileSync(path, 'utf8')

/** A lab and a KMU session logged in as alice, in a fresh directory. */
async function session (): Promise<{ lab: StartedLab, shell: KmuShell, cwd: string }> {
  const lab = await startLab({ lean: true, topology: TOPOLOGY })
  const cwd = tmpDir()
  const shell = await KmuShell.start(cwd, ['--config', join(lab.dir, 'key_mgmt_util.cfg')])
  expect(await shell.run('loginHSM -u CU -s alice -p Alice1234')).toContain('Cfm3LoginHSM returned: 0x00')
  return { lab, shell, cwd }
}

/** Makes a key with genSymKey; its handle. */
async function genSym (shell: KmuShell, args: string): Promise<number> {
  return numberAfter(await shell.run(`genSymKey ${args}`), 'Key Handle:')
}

/** `{h:name}` placeholders of a transcript replaced by the handles the test made. */
function withHandles (text: string, handles: Record<string, number>): string {
  return Object.entries(handles).reduce((t, [name, h]) => t.replaceAll(`{h:${name}}`, String(h)), text)
}

const openssl = (cwd: string, args: string[]): string => execFileSync('openssl', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })

/** The KCV file getAttribute -a 371 writes for a key. */
async function kcvOf (shell: KmuShell, cwd: string, handle: number): Promise<string> {
  const out = `kcv_${handle}`
  expect(await shell.run(`getAttribute -o ${handle} -a 371 -out ${out}`)).toContain('Cfm3GetAttribute returned: 0x00')
  return read(join(cwd, out))
}

describe('issue 15: KMU exSymKey, imSymKey, importPrivateKey, importPubKey and findSingleKey, as the guide shows them', () => {
  it('exSymKey: the page\'s three examples, and the files hold the keys', async () => {
    const { shell, cwd } = await session()
    mkdirSync(join(cwd, 'attributes'))
    mkdirSync(join(cwd, 'keys'))
    openssl(cwd, ['rand', '-out', 'keys/aes256-forImport.key', '32'])
    const handles = {
      des: await genSym(shell, '-t 21 -s 24 -l 3DES-key'),
      aes: await genSym(shell, '-t 31 -s 32 -l AES-wrapping'),
      aes8: await genSym(shell, '-t 31 -s 32 -l aes256-export'),
      aes192: await genSym(shell, '-t 31 -s 24 -l aes192-export')
    }
    await replayTranscript(shell, cwd, withHandles(fixture('exsymkey.txt'), handles), read)
    // The page's attribute checks: the key to export is a secret, extractable key; the wrapping
    // key is an AES session key that may wrap.
    const exported = read(join(cwd, `attributes/attr_${handles.aes8}`))
    expect(exported).toMatch(/^OBJ_ATTR_CLASS\n0x04\n/)
    expect(exported).toMatch(/\nOBJ_ATTR_EXTRACTABLE\n0x01\n/)
    // The other dump in attributes/ is the session key's.
    const sessionFile = readdirSync(join(cwd, 'attributes')).find(f => f !== `attr_${handles.aes8}`) ?? ''
    const sessionKey = read(join(cwd, 'attributes', sessionFile))
    expect(sessionKey).toMatch(/\nOBJ_ATTR_KEY_TYPE\n0x1f\n/)
    expect(sessionKey).toMatch(/\nOBJ_ATTR_TOKEN\n0x00\n/)
    expect(sessionKey).toMatch(/\nOBJ_ATTR_WRAP\n0x01\n/)

    // The files hold the plaintext keys, readable by their owner only.
    expect(readFileSync(join(cwd, '3DES.key'))).toHaveLength(24)
    expect(readFileSync(join(cwd, 'aes256_H8.key'))).toHaveLength(32)
    expect(statSync(join(cwd, 'aes256_H8.key')).mode & 0o777).toBe(0o600)
    // -wk unwraps on the host with the file's key: the same bytes as the HSM's unwrap.
    const viaHost = readFileSync(join(cwd, 'aes192_H21.key'))
    expect(viaHost).toHaveLength(24)
    expect(await shell.run(`exSymKey -k ${handles.aes192} -w ${handles.aes} -out aes192.key`)).toContain('Wrapped Symmetric Key written to file "aes192.key"')
    expect(readFileSync(join(cwd, 'aes192.key'))).toEqual(viaHost)
    // The exported 3DES key, imported again, has the original's KCV.
    const back = numberAfter(await shell.run(`imSymKey -f 3DES.key -w ${handles.aes} -t 21 -l 3DES-back`), 'Key Handle:')
    expect(await kcvOf(shell, cwd, back)).toBe(await kcvOf(shell, cwd, handles.des))

    // A wrong -wk key file does not unwrap; a private key is not a symmetric key; bad input sends nothing.
    openssl(cwd, ['rand', '-out', 'other.key', '32'])
    expect(await shell.run(`exSymKey -k ${handles.aes192} -w ${handles.aes} -out x.key -wk other.key`)).toContain('does not unwrap')
    const pair = await shell.run('genRSAKeyPair -m 2048 -e 65537 -l rsa')
    const priv = numberAfter(pair, 'private key handle:')
    expect(await shell.run(`exSymKey -k ${priv} -w ${handles.aes} -out priv.key`)).toContain('Cfm3WrapKey returned: 0x0d : HSM Error: Invalid input data/params')
    expect(await shell.run(`exSymKey -k ${handles.des} -w ${handles.aes} -out y.key -m 7`)).toContain('Error: Invalid wrapping mechanism (-m): the only valid value is 4.')
    expect(await shell.run(`exSymKey -k ${handles.des} -out y.key`)).toContain('Error: Handle of wrapping Key (-w) is missing.')
    expect(await shell.exit()).toBe(0)
  })

  it('imSymKey: the page\'s three examples; the moved key keeps its KCV; imported token keys reach every HSM', async () => {
    const { shell, cwd } = await session()
    mkdirSync(join(cwd, 'attributes'))
    openssl(cwd, ['rand', '-out', 'aes256.key', '32'])
    openssl(cwd, ['rand', '-out', '3des192.key', '24'])
    const handles = {
      aes: await genSym(shell, '-t 31 -s 32 -l wrap1'),
      aes2: await genSym(shell, '-t 31 -s 32 -l wrap2'),
      k14: await genSym(shell, '-t 31 -s 32 -l to-move')
    }
    await replayTranscript(shell, cwd, withHandles(fixture('imsymkey.txt'), handles), read)
    // The KCVs of the two keys are the same: the key material moved.
    expect(read(join(cwd, 'attr_21_kcv'))).toBe(read(join(cwd, 'attr_14_kcv')))
    // The key imported from openssl's file is the file's: exported again, the same bytes.
    const imported = numberAfter(await shell.run('findKey -l imported'), '0::0\n')
    expect(await shell.run(`exSymKey -k ${imported} -w ${handles.aes2} -out again.key`)).toContain('Cfm3UnWrapHostKey returned: 0x00')
    expect(readFileSync(join(cwd, 'again.key'))).toEqual(readFileSync(join(cwd, 'aes256.key')))
    // A token key imported is on every HSM, the same on each (findSingleKey, once replicated).
    await waitFor(async () => (await shell.run(`findSingleKey -k ${imported}`)).includes('Cfm3FindKey returned: 0x00'), { what: 'the imported key on every HSM', timeoutMs: 20_000 })
    // -id is unique in the cluster; a file of the wrong size for the type is refused by the HSM.
    expect(await shell.run(`imSymKey -f aes256.key -w ${handles.aes} -t 31 -l dup -id test01`)).toContain('Cfm3UnWrapKey returned: 0x0d')
    expect(await shell.run(`imSymKey -f aes256.key -w ${handles.aes} -t 21 -l wrong-size`)).toContain('Cfm3UnWrapKey returned: 0x0d')
    expect(await shell.run(`imSymKey -f aes256.key -w ${handles.aes} -t 16 -l generic`)).toContain('Error: Invalid key type (-t) 16: 21 (3DES) or 31 (AES).')
    expect(await shell.run(`imSymKey -f missing.key -w ${handles.aes} -t 31 -l nofile`)).toContain('WARNING: Failed to read from the file "missing.key".')
    expect(await shell.exit()).toBe(0)
  })

  it('importPrivateKey and importPubKey: the pages\' examples; the imported keys sign for openssl and verify openssl\'s signature', async () => {
    const { shell, cwd } = await session()
    openssl(cwd, ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'rsa2048.key'])
    openssl(cwd, ['pkey', '-in', 'rsa2048.key', '-pubout', '-out', 'public.pem'])
    writeFileSync(join(cwd, 'messageFile'), 'a message to sign\n')
    openssl(cwd, ['dgst', '-sha256', '-sign', 'rsa2048.key', '-out', 'opensslSignature', 'messageFile'])
    const der = execFileSync('openssl', ['pkcs8', '-topk8', '-nocrypt', '-in', 'rsa2048.key', '-outform', 'DER'], { cwd })
    const aes = await genSym(shell, '-t 31 -s 32 -l wrap')
    const transcript = withHandles(fixture('importkeys.txt'), { aes })
    await replayTranscript(shell, cwd, transcript, read)
    const printed = await shell.run('findKey -l rsa2048-imported')
    expect(printed).toContain('Total number of keys present 1')
    // The BER length printed is that of the key's PKCS#8 DER.
    const replayedAgain = await shell.run(`importPrivateKey -f rsa2048.key -l second -w ${aes} -sess`)
    expect(numberAfter(replayedAgain, 'BER encoded key length is')).toBe(der.length)
    // openssl verifies the signature the imported private key made in the HSM.
    expect(openssl(cwd, ['dgst', '-sha256', '-verify', 'public.pem', '-signature', 'signedFile', 'messageFile']).trim()).toBe('Verified OK')
    // An EC key too (PKCS#8 from openssl), and the public key exported again is the one imported.
    openssl(cwd, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'ec.key'])
    openssl(cwd, ['pkey', '-in', 'ec.key', '-pubout', '-out', 'ec.pem'])
    const ecPriv = numberAfter(await shell.run(`importPrivateKey -f ec.key -l ec-imported -w ${aes}`), 'Key Handle:')
    expect(await shell.run(`sign -f messageFile -k ${ecPriv} -m 17 -out ecSignature`)).toContain('Cfm3Sign returned: 0x00')
    expect(openssl(cwd, ['dgst', '-sha256', '-verify', 'ec.pem', '-signature', 'ecSignature', 'messageFile']).trim()).toBe('Verified OK')
    const ecPub = numberAfter(await shell.run('importPubKey -l ec-public -f ec.pem'), 'Public Key Handle:')
    expect(await shell.run(`exportPubKey -k ${ecPub} -out ec-again.pem`)).toContain('Cfm3ExportPubKey returned: 0x00')
    expect(read(join(cwd, 'ec-again.pem'))).toBe(read(join(cwd, 'ec.pem')))
    // Imported keys are not local; the public key reaches every HSM.
    expect(await shell.run(`getAttribute -o ${ecPub} -a 355 -out local`)).toContain('0x00 : HSM Return: SUCCESS')
    expect(read(join(cwd, 'local'))).toBe('OBJ_ATTR_LOCAL\n0x00000000\n')
    await waitFor(async () => (await shell.run(`findSingleKey -k ${ecPub}`)).includes('Cfm3FindKey returned: 0x00'), { what: 'the public key on every HSM', timeoutMs: 20_000 })
    // Files that are not keys of the kind asked for: nothing is sent.
    expect(await shell.run(`importPrivateKey -f public.pem -l bad -w ${aes}`)).toContain('Error: "public.pem" does not hold an unencrypted RSA or EC private key in PEM format.')
    expect(await shell.run('importPubKey -l bad -f rsa2048.key')).toContain('Error: "rsa2048.key" does not hold an RSA or EC public key in PEM format')
    expect(await shell.run('importPubKey -f public.pem')).toContain('Error: Key label (-l) is missing.')
    expect(await shell.exit()).toBe(0)
  })

  it('findSingleKey: the page\'s example; a key on node 0 only (peer links cut) fails on the others until they catch up', async () => {
    const { lab, shell, cwd } = await session()
    const key = await genSym(shell, '-t 31 -s 32 -l everywhere -min_srv 3 -timeout 30')
    await replayTranscript(shell, cwd, withHandles(fixture('findsinglekey.txt'), { key }), read)

    const cut = await lab.hsmlab(['fault', 'partition', 'peer/us-east-1/primary'])
    expect(cut.code, cut.stderr).toBe(0)
    const lonely = await genSym(shell, '-t 31 -s 32 -l lonely')
    const printed = await shell.run(`findSingleKey -k ${lonely}`)
    expect(printed.trimEnd().split('\n').map(l => l.trim())).toEqual([
      'Cfm3FindKey returned: 0xa8 : HSM Error: Invalid object handle is passed to this operation',
      '',
      'Cluster Error Status',
      'Node id 0 and err state 0x00000000 : HSM Return: SUCCESS',
      'Node id 1 and err state 0x000000a8 : HSM Error: Invalid object handle is passed to this operation',
      'Node id 2 and err state 0x000000a8 : HSM Error: Invalid object handle is passed to this operation'
    ])
    // A session key lives on its node alone, and findSingleKey says so.
    const sess = await genSym(shell, '-t 31 -s 32 -l sess -sess')
    expect(await shell.run(`findSingleKey -k ${sess}`)).toContain('Node id 1 and err state 0x000000a8')
    const healed = await lab.hsmlab(['fault', 'heal'])
    expect(healed.code, healed.stderr).toBe(0)
    await waitFor(async () => (await shell.run(`findSingleKey -k ${lonely}`)).includes('Cfm3FindKey returned: 0x00'), { what: 'the key on every HSM after the heal', timeoutMs: 30_000 })
    expect(await shell.run('findSingleKey -k 999999')).toContain('Cfm3FindKey returned: 0xa8')
    expect(await shell.run('findSingleKey')).toContain('Error: Key handle (-k) is missing.')
    expect(await shell.exit()).toBe(0)
  })
})
