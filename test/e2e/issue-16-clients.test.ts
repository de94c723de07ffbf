/**
 * Goal (issue 16): the PKCS#11 library works for the clients applications actually use, judged by
 * those clients: OpenSSL through libp11's engine signs a certificate request with an HSM key (RSA
 * and EC) that plain openssl verifies; Java's SunPKCS11 provider generates, signs and verifies
 * (RSA, ECDSA) and encrypts with AES-GCM, and keytool lists the token's secret key; GnuTLS's
 * p11tool lists every object; a C program that forks finds the library as PKCS#11 says (the child
 * initializes again and logs in on its own, the parent keeps its login).
 *
 * Method: one lab of one cluster (startPkcs11Lab); keys are made with pkcs11-tool; each client
 * runs as its own process with the environment `hsmlab status --json` gives.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { tmpDir } from '@hsmlab/testing'
import { ALICE_PIN, PKCS11_LIBRARY, pkcs11Tool, run, startPkcs11Lab } from './pkcs11-helpers.js'

const FIXTURES = fileURLToPath(new URL('../fixtures/pkcs11/', import.meta.url))
const ENGINE = '/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so'

describe('issue 16: real clients', () => {
  it('signs CSRs through OpenSSL, runs Java and p11tool, survives fork()', async () => {
    const { env } = await startPkcs11Lab()
    const work = tmpDir()
    const alice = ['--login', '--pin', ALICE_PIN]
    await pkcs11Tool([...alice, '--keypairgen', '--key-type', 'rsa:2048', '--label', 'csr-rsa', '--id', '31'], env)
    await pkcs11Tool([...alice, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'csr-ec', '--id', '32'], env)
    await pkcs11Tool([...alice, '--keygen', '--key-type', 'AES:32', '--label', 'java-visible', '--id', '33'], env)

    // OpenSSL with libp11's engine: a CSR signed in the HSM, checked by plain openssl.
    const conf = join(work, 'openssl.cnf')
    writeFileSync(conf, [
      'openssl_conf = openssl_init', '[openssl_init]', 'engines = engine_section', '[engine_section]', 'pkcs11 = pkcs11_section',
      '[pkcs11_section]', 'engine_id = pkcs11', `dynamic_path = ${ENGINE}`, `MODULE_PATH = ${PKCS11_LIBRARY}`, 'init = 0',
      '[req]', 'distinguished_name = dn', '[dn]', ''
    ].join('\n'))
    for (const label of ['csr-rsa', 'csr-ec']) {
      const csr = join(work, `${label}.pem`)
      const made = await run('openssl', ['req', '-new', '-engine', 'pkcs11', '-keyform', 'engine', '-key', `pkcs11:object=${label};type=private;pin-value=${ALICE_PIN}`,
        '-subj', `/CN=${label}`, '-out', csr], { ...env, OPENSSL_CONF: conf })
      expect(made.code, made.err).toBe(0)
      const checked = await run('openssl', ['req', '-in', csr, '-verify', '-noout'], { ...env, OPENSSL_CONF: '/dev/null' })
      expect(checked.out + checked.err).toContain('verify OK')
    }

    // Java's SunPKCS11: generate, sign, verify, AES-GCM; keytool lists the token's secret key.
    const cfg = join(work, 'hsmlab.cfg')
    writeFileSync(cfg, `name = hsmlab\nlibrary = ${PKCS11_LIBRARY}\nslot = 0\n`)
    const java = await run('java', [join(FIXTURES, 'HsmlabJava.java'), cfg, ALICE_PIN], env)
    expect(java.out, java.err).toBe('RSA verify OK\nECDSA verify OK\nAES-GCM OK\n')
    const keytool = await run('keytool', ['-list', '-keystore', 'NONE', '-storetype', 'PKCS11', '-providerClass', 'sun.security.pkcs11.SunPKCS11',
      '-providerArg', cfg, '-storepass', ALICE_PIN], env)
    expect(keytool.code, keytool.err).toBe(0)
    expect(keytool.out).toContain('java-visible, SecretKeyEntry')

    // GnuTLS's p11tool lists every object of alice.
    const p11tool = await run('p11tool', ['--provider', PKCS11_LIBRARY, '--list-all', '--login', `--set-pin=${ALICE_PIN}`], env)
    expect(p11tool.code, p11tool.err).toBe(0)
    for (const label of ['csr-rsa', 'csr-ec', 'java-visible']) expect(p11tool.out).toContain(`Label: ${label}`)
    expect(p11tool.out).toContain('Type: Private key (EC/ECDSA-SECP256R1)')

    // fork(): the child initializes again and logs in for itself; the parent keeps its login.
    const program = join(work, 'fork-check')
    const cflags = await run('pkg-config', ['--cflags', 'p11-kit-1'], env)
    const built = await run('cc', [join(FIXTURES, 'fork-check.c'), '-o', program, ...cflags.out.trim().split(/\s+/), PKCS11_LIBRARY, `-Wl,-rpath,${join(PKCS11_LIBRARY, '..')}`], env)
    expect(built.code, built.err).toBe(0)
    const forked = await run(program, [ALICE_PIN], env)
    expect(forked.out).toBe('child ok\nparent ok\n')
    expect(forked.code).toBe(0)
  })
})
