/**
 * The lab's customer CA (customer-ca.ts): a self-signed issuing certificate, and a ClusterCsr
 * signed into a certificate of the request's subject and key — checked with node:crypto's X.509
 * parser and, where it is installed, with `openssl`, against requests that openssl makes.
 */
import { execFileSync } from 'node:child_process'
import { X509Certificate, createPublicKey } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tmpDir } from '@hsmlab/testing'
import { createCustomerCa, signClusterCsr } from '../src/customer-ca.js'

function hasOpenssl (): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** A PKCS#10 request for an EC P-256 key, made by openssl, and the key's public half. */
function opensslCsr (dir: string, cn: string): { csrPem: string, publicKeyPem: string } {
  const key = join(dir, 'cluster.key')
  const csr = join(dir, 'cluster.csr')
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/C=US/O=hsmlab/CN=${cn}`, '-keyout', key, '-out', csr], { stdio: 'ignore' })
  const publicKeyPem = createPublicKey(readFileSync(key, 'utf8')).export({ type: 'spki', format: 'pem' }).toString()
  return { csrPem: readFileSync(csr, 'utf8'), publicKeyPem }
}

describe('customer CA', () => {
  it('makes a self-signed CA certificate', () => {
    const ca = createCustomerCa()
    const cert = new X509Certificate(ca.certPem)
    expect(cert.ca).toBe(true)
    expect(cert.subject).toContain('CN=hsmlab lab customer CA')
    expect(cert.issuer).toBe(cert.subject)
    expect(cert.verify(cert.publicKey)).toBe(true)
  })

  it.skipIf(!hasOpenssl())('signs a CSR into a certificate of its subject and key, issued by the CA (openssl agrees)', () => {
    const dir = tmpDir()
    const ca = createCustomerCa()
    const { csrPem, publicKeyPem } = opensslCsr(dir, 'cluster-abcdefghijk')
    const signed = new X509Certificate(signClusterCsr(ca, csrPem))
    const issuer = new X509Certificate(ca.certPem)
    expect(signed.subject).toContain('CN=cluster-abcdefghijk')
    expect(signed.ca).toBe(false)
    expect(signed.checkIssued(issuer)).toBe(true)
    expect(signed.verify(issuer.publicKey)).toBe(true)
    expect(signed.publicKey.export({ type: 'spki', format: 'pem' }).toString()).toBe(publicKeyPem)
    writeFileSync(join(dir, 'ca.crt'), ca.certPem)
    writeFileSync(join(dir, 'cluster.crt'), signed.toString())
    expect(execFileSync('openssl', ['verify', '-CAfile', join(dir, 'ca.crt'), join(dir, 'cluster.crt')], { encoding: 'utf8' })).toContain('OK')
  })

  it.skipIf(!hasOpenssl())('refuses a request that is not signed by the key it names', () => {
    const { csrPem } = opensslCsr(tmpDir(), 'cluster-abcdefghijk')
    // Change one letter of the subject inside the signed part of the request.
    const der = Buffer.from(csrPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64')
    const at = der.indexOf(Buffer.from('cluster-abcdefghijk'))
    der[at] = 'k'.charCodeAt(0)
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`
    expect(() => signClusterCsr(createCustomerCa(), tampered)).toThrow('not signed by the key it names')
    expect(() => signClusterCsr(createCustomerCa(), 'not a request')).toThrow("not a PEM 'CERTIFICATE REQUEST' block")
  })
})
