/**
 * KMU exSymKey, imSymKey, importPrivateKey, importPubKey and findSingleKey against a fake
 * cluster (issue 15): what each sends (and that bad input sends nothing), where the plaintext
 * goes, and how findSingleKey reads the digests of the HSMs. Real HSMs: test/e2e/issue-15-kmu-import-export.test.ts.
 */
import { createCipheriv, generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { KeyClass, KeyType, ReturnCode, WireError } from '@hsmlab/protocol'
import { KmuSession } from '../src/kmu/kmu-session.js'
import { captureIo, fakeCluster } from './kmu-fake-cluster.js'
import type { FakeHandler } from './kmu-fake-cluster.js'

let dir: string
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'kmu-import-')) })
afterEach(() => { rmSync(dir, { recursive: true, force: true }) })

async function run (line: string, handler: FakeHandler = () => ({}), count = 3): Promise<{ out: string, calls: Array<{ serverId: number, op: string, args: Record<string, unknown> }>, code: number }> {
  const { cluster, calls } = fakeCluster(handler, { count })
  const io = captureIo()
  const session = new KmuSession(cluster, io, { cwd: dir })
  const outcome = await session.execute(line.split(' ').filter(t => t !== ''))
  return { out: io.text(), calls, code: outcome.code }
}

const KEK = Buffer.alloc(32, 7)
const wrapWith = (kek: Buffer, data: Buffer): Uint8Array => {
  const cipher = createCipheriv('id-aes256-wrap', kek, Buffer.from('a6a6a6a6a6a6a6a6', 'hex'))
  return new Uint8Array(Buffer.concat([cipher.update(data), cipher.final()]))
}

describe('findSingleKey', () => {
  it('passes when every HSM has the key with the same digest', async () => {
    const { out, calls, code } = await run('findSingleKey -k 7', () => ({ hash: 'aa' }))
    expect(code).toBe(0)
    expect(calls.map(c => [c.serverId, c.op, c.args])).toEqual([0, 1, 2].map(id => [id, 'keyDigest', { handle: 7 }]))
    expect(out).toBe('Cfm3FindKey returned: 0x00 : HSM Return: SUCCESS\n\n\tCluster Error Status\n' +
      [0, 1, 2].map(id => `\tNode id ${id} and err state 0x00000000 : HSM Return: SUCCESS\n`).join(''))
  })

  it('names the HSM whose copy differs, and the one without the key', async () => {
    const { out, code } = await run('findSingleKey -k 7', (id) => {
      if (id === 3) throw new WireError(ReturnCode.INVALID_HANDLE, 'no key')
      return { hash: id === 1 ? 'bb' : 'aa' }
    }, 4)
    expect(code).toBe(ReturnCode.KEY_NOT_SYNCHRONIZED.code)
    expect(out).toContain('Cfm3FindKey returned: 0x3000008a : HSM CLUSTER ERROR: The key is not the same on this HSM as on the others of the cluster')
    expect(out).toContain('Node id 0 and err state 0x00000000')
    expect(out).toContain('Node id 1 and err state 0x3000008a')
    expect(out).toContain('Node id 2 and err state 0x00000000')
    expect(out).toContain('Node id 3 and err state 0x000000a8')
  })
})

describe('exSymKey', () => {
  it('has the HSM wrap (no header, secret keys only) and unwrap for the host; only the file gets the plaintext', async () => {
    const plain = Buffer.alloc(24, 3)
    const wrapped = wrapWith(KEK, plain)
    const { out, calls, code } = await run('exSymKey -k 7 -w 6 -out key.bin', (_id, op) => op === 'wrapKey' ? { wrapped } : { data: new Uint8Array(plain) })
    expect(code).toBe(0)
    expect(calls.map(c => [c.op, c.args])).toEqual([
      ['wrapKey', { handle: 7, wrappingHandle: 6, mechanism: 4, noHeader: true, keyClass: KeyClass.SECRET }],
      ['aesWrapData', { wrappingHandle: 6, unwrap: true, data: wrapped, keyWrap: true }]
    ])
    expect(readFileSync(join(dir, 'key.bin'))).toEqual(plain)
    expect(out).not.toContain(plain.toString('hex'))
    expect(out).toBe('\n\tCfm3WrapKey returned: 0x00 : HSM Return: SUCCESS\n\n\tCfm3UnWrapHostKey returned: 0x00 : HSM Return: SUCCESS\n\n\nWrapped Symmetric Key written to file "key.bin"\n')
  })

  it('with -wk unwraps on the host and asks the HSM only to wrap', async () => {
    const plain = Buffer.alloc(32, 9)
    writeFileSync(join(dir, 'kek.bin'), KEK)
    const { out, calls } = await run('exSymKey -k 7 -w 6 -out key.bin -wk kek.bin', () => ({ wrapped: wrapWith(KEK, plain) }))
    expect(calls.map(c => c.op)).toEqual(['wrapKey'])
    expect(readFileSync(join(dir, 'key.bin'))).toEqual(plain)
    expect(out).toBe('\n\tCfm3WrapKey returned: 0x00 : HSM Return: SUCCESS\n\nWrapped Symmetric Key written to file "key.bin"\n')
  })

  it('sends nothing for a -wk file that is not an AES key or a mechanism other than 4', async () => {
    writeFileSync(join(dir, 'short.bin'), Buffer.alloc(10))
    const short = await run('exSymKey -k 7 -w 6 -out key.bin -wk short.bin')
    expect(short.calls).toEqual([])
    expect(short.out).toContain('Error: The wrapping key file (-wk) "short.bin" holds 10 bytes: a plaintext AES key is 16, 24 or 32 bytes.')
    const mechanism = await run('exSymKey -k 7 -w 6 -out key.bin -m 8')
    expect(mechanism.calls).toEqual([])
    expect(mechanism.out).toContain('Error: Invalid wrapping mechanism (-m): the only valid value is 4.')
    const missing = await run('exSymKey -k 7 -w 6 -out key.bin -wk missing.bin')
    expect(missing.calls).toEqual([])
    expect(missing.out).toContain('WARNING: Failed to read from the file "missing.bin".')
  })
})

describe('imSymKey, importPrivateKey, importPubKey', () => {
  it('imSymKey: the HSM wraps the file, then unwraps it as a secret key of -t with the creation flags', async () => {
    writeFileSync(join(dir, 'aes.key'), Buffer.alloc(32, 1))
    const { out, calls } = await run('imSymKey -f aes.key -w 6 -t 31 -l imported -id x1 -min_srv 2 -timeout 5',
      (_id, op) => op === 'aesWrapData' ? { data: new Uint8Array(40) } : { handle: 9 })
    expect(calls.map(c => c.op)).toEqual(['aesWrapData', 'unwrapKey'])
    expect(calls[0]?.args).toMatchObject({ wrappingHandle: 6, unwrap: false, keyWrap: true })
    expect(calls[1]?.args).toMatchObject({ wrappingHandle: 6, mechanism: 4, keyClass: KeyClass.SECRET, keyType: KeyType.AES, label: 'imported', id: 'x1', minServers: 2, timeoutMs: 5000 })
    expect(out).toContain('\tSymmetric Key Unwrapped.  Key Handle: 9\n')
  })

  it('imSymKey -wk wraps on the host with the file\'s key', async () => {
    const plain = Buffer.alloc(24, 5)
    writeFileSync(join(dir, 'des.key'), plain)
    writeFileSync(join(dir, 'kek.bin'), KEK)
    const { calls, out } = await run('imSymKey -f des.key -w 6 -t 21 -l d -wk kek.bin', () => ({ handle: 9 }))
    expect(calls.map(c => c.op)).toEqual(['unwrapKey'])
    expect(calls[0]?.args.wrapped).toEqual(wrapWith(KEK, plain))
    expect(out).not.toContain('Cfm3WrapHostKey')
  })

  it('importPrivateKey sends the PKCS#8 DER of an openssl PEM (PKCS#1 too) to be wrapped, and its length', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
    writeFileSync(join(dir, 'rsa.key'), privateKey.export({ format: 'pem', type: 'pkcs1' }))
    const der = privateKey.export({ format: 'der', type: 'pkcs8' })
    const { calls, out } = await run('importPrivateKey -f rsa.key -l r -w 6', (_id, op) => op === 'aesWrapData' ? { data: new Uint8Array(8) } : { handle: 11 })
    expect(out).toContain(`\nBER encoded key length is ${der.length}\n`)
    expect(Buffer.from(calls[0]?.args.data as Uint8Array)).toEqual(der)
    expect(calls[1]?.args).toMatchObject({ keyClass: KeyClass.PRIVATE, keyType: KeyType.RSA, label: 'r' })
    expect(out).toContain('\tPrivate Key Unwrapped.  Key Handle: 11\n')
  })

  it('importPubKey sends the SPKI; a file that is not a public key sends nothing', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
    writeFileSync(join(dir, 'pub.pem'), publicKey.export({ format: 'pem', type: 'spki' }))
    writeFileSync(join(dir, 'priv.pem'), privateKey.export({ format: 'pem', type: 'pkcs8' }))
    const { calls, out } = await run('importPubKey -l p -f pub.pem -sess', () => ({ handle: 12 }))
    expect(calls.map(c => [c.op, c.args])).toEqual([['importPublicKey', { label: 'p', session: true, spki: new Uint8Array(publicKey.export({ format: 'der', type: 'spki' })) }]])
    expect(out).toBe('\n\tCfm3CreatePublicKey returned: 0x00 : HSM Return: SUCCESS\n\n\tPublic Key Handle: 12\n\n\tCluster Error Status\n\tNode id 0 and err state 0x00000000 : HSM Return: SUCCESS\n')
    expect((await run('importPubKey -l p -f priv.pem')).calls).toEqual([])
    expect((await run('importPrivateKey -l p -f pub.pem -w 6')).calls).toEqual([])
  })
})
