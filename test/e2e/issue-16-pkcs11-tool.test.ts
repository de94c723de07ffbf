/**
 * Goal (issue 16, the essentials): an application reaches a cluster of `hsmlab up` through the
 * PKCS#11 library and its client daemon exactly as `hsmlab status --json` tells it, and OpenSC's
 * pkcs11-tool (a real client) lists the slot, logs in with "<CU>:<password>", makes keys, signs,
 * verifies, encrypts, decrypts and passes its own `--test`; a token key it made is an HSM token
 * key that KMU findKey finds; a second CU sees none of the first one's private and secret keys; wrong PINs and an
 * unreachable daemon give the documented return values.
 *
 * Method: a lab of one cluster of 2 HSMs with CUs alice and bob (startPkcs11Lab); pkcs11-tool
 * runs with the environment the status gives; signatures are checked again with plain openssl
 * against the public key pkcs11-tool reads out of the HSM.
 */
import { statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tmpDir, waitFor } from '@hsmlab/testing'
import { runCmuBin } from './cmu-helpers.js'
import { kmuOnce } from './kmu-driver.js'
import { ALICE_PIN, BOB_PIN, PKCS11_LIBRARY, clientOf, pkcs11Tool, run, startPkcs11Lab } from './pkcs11-helpers.js'

describe('issue 16: pkcs11-tool against a lab', () => {
  it('finds the daemon from the status, makes and uses keys as alice, keeps them from bob', async () => {
    const { lab, cluster, client, env } = await startPkcs11Lab()

    // Where an application finds it.
    expect(client.pkcs11Module).toBe(PKCS11_LIBRARY)
    expect(client.env).toEqual({ HSMLAB_PKCS11_SOCKET: client.socket })
    expect(client.state).toBe('RUNNING')
    expect(statSync(client.socket).mode & 0o777).toBe(0o600)
    const text = await lab.hsmlab(['status'])
    expect(text.stdout).toContain(`HSMLAB_PKCS11_SOCKET=${client.socket}`)

    const slots = await pkcs11Tool(['--list-slots'], env)
    expect(slots).toMatch(/token label\s+: apps/)

    // A wrong PIN, a PIN without the CU name.
    for (const pin of ['alice:wrong-password', 'Alice1234']) {
      const bad = await run('pkcs11-tool', ['--module', PKCS11_LIBRARY, '--login', '--pin', pin, '--list-objects'], env)
      expect(bad.code).not.toBe(0)
      expect(bad.out + bad.err).toContain('CKR_PIN_INCORRECT')
    }

    const alice = ['--login', '--pin', ALICE_PIN]
    const made = await pkcs11Tool([...alice, '--keypairgen', '--key-type', 'rsa:2048', '--label', 'app-rsa', '--id', '01'], env)
    expect(made).toContain('Public Key Object; RSA 2048 bits')
    await pkcs11Tool([...alice, '--keygen', '--key-type', 'AES:32', '--label', 'app-aes', '--id', '02'], env)

    // Sign and verify, also with plain openssl.
    const work = tmpDir()
    const data = join(work, 'data')
    writeFileSync(data, 'an application message\n')
    await pkcs11Tool([...alice, '--sign', '-m', 'SHA256-RSA-PKCS', '--id', '01', '-i', data, '-o', join(work, 'sig')], env)
    expect(await pkcs11Tool([...alice, '--verify', '-m', 'SHA256-RSA-PKCS', '--id', '01', '-i', data, '--signature-file', join(work, 'sig')], env)).toContain('Signature is valid')
    await pkcs11Tool([...alice, '--read-object', '--type', 'pubkey', '--id', '01', '-o', join(work, 'pub.der')], env)
    const pem = await run('openssl', ['pkey', '-pubin', '-inform', 'DER', '-in', join(work, 'pub.der'), '-out', join(work, 'pub.pem')], env)
    expect(pem.code, pem.err).toBe(0)
    const checked = await run('openssl', ['dgst', '-sha256', '-verify', join(work, 'pub.pem'), '-signature', join(work, 'sig'), data], env)
    expect(checked.out).toContain('Verified OK')

    // Encrypt and decrypt with the AES key.
    const iv = '00112233445566778899aabbccddeeff'
    await pkcs11Tool([...alice, '--encrypt', '-m', 'AES-CBC-PAD', '--iv', iv, '--id', '02', '-i', data, '-o', join(work, 'enc')], env)
    expect(statSync(join(work, 'enc')).size).toBe(32)
    const clear = await pkcs11Tool([...alice, '--decrypt', '-m', 'AES-CBC-PAD', '--iv', iv, '--id', '02', '-i', join(work, 'enc')], env)
    expect(clear).toContain('an application message')

    // pkcs11-tool's own tests (random, digests, signatures, verification, OAEP decryption).
    const tested = await pkcs11Tool([...alice, '--test'], env)
    expect(tested).toContain('No errors')

    // The token key is an HSM token key: KMU finds it by its label, on the cluster's configuration.
    const kmu = await kmuOnce(lab.cwd, ['--config', cluster.cmuConfig, 'singlecmd', 'loginHSM', '-u', 'CU', '-s', 'alice', '-p', 'Alice1234', 'findKey', '-l', 'app-aes'])
    const handle = /number of keys matched from start index 0::0\n(\d+)/.exec(kmu.out)?.[1]
    expect(handle, kmu.out).toBeDefined()
    // CMU findAllKeys lists it as alice's (user 3: admin 1, app_user 2, alice 3, bob 4), on each HSM.
    // (It replicates right after it is acknowledged: wait until the second HSM has it too.)
    await waitFor(async () => {
      const cmu = await runCmuBin([cluster.cmuConfig], 'loginHSM CO admin Admin1234\nfindAllKeys 3 0\nquit\n')
      return cmu.stdout.match(new RegExp(`\\b${handle ?? ''}\\(o\\)`, 'g'))?.length === 2
    }, { timeoutMs: 30_000, what: 'CMU findAllKeys listing the key on both HSMs' })

    // Bob sees none of alice's private and secret keys (every CU sees every public key, as on
    // CloudHSM), and cannot sign with hers.
    const bob = ['--login', '--pin', BOB_PIN]
    const listed = await pkcs11Tool([...bob, '--list-objects'], env)
    expect(listed).toContain('Public Key Object; RSA 2048 bits')
    expect(listed).not.toContain('Private Key Object')
    expect(listed).not.toContain('app-aes')
    const refused = await run('pkcs11-tool', ['--module', PKCS11_LIBRARY, ...bob, '--sign', '-m', 'SHA256-RSA-PKCS', '--id', '01', '-i', data, '-o', join(work, 'bob-sig')], env)
    expect(refused.code).not.toBe(0)
    expect(refused.out + refused.err).toMatch(/not found/i)

    // No daemon behind the socket: CKR_DEVICE_ERROR, not a hang.
    const gone = await run('pkcs11-tool', ['--module', PKCS11_LIBRARY, '--list-token-slots', '--login', '--pin', ALICE_PIN, '--list-objects'], { ...env, HSMLAB_PKCS11_SOCKET: join(work, 'no-daemon.sock') })
    expect(gone.code).not.toBe(0)
    expect(gone.out + gone.err).toContain('CKR_DEVICE_ERROR')

    // `hsmlab down` stops the daemon; the application then gets CKR_DEVICE_ERROR, and `up` brings it back.
    await lab.down()
    expect(clientOf((await lab.statusJson()).regions[0]?.clusters[0]).state).toBe('DOWN')
    const down = await run('pkcs11-tool', ['--module', PKCS11_LIBRARY, '--login', '--pin', ALICE_PIN, '--list-objects'], env)
    expect(down.out + down.err).toContain('CKR_DEVICE_ERROR')
    await lab.up()
    expect(await pkcs11Tool([...alice, '--list-objects', '--type', 'secrkey'], env)).toContain('app-aes')
  })
})
