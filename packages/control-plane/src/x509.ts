/**
 * The X.509 side of cluster initialization (reference F.7): a real PKCS#10 certificate signing
 * request (ClusterCsr) that a customer signs with their own CA (`openssl x509 -req ...`, as in
 * the AWS runbook), and the checks InitializeCluster makes on what comes back: SignedCert must be
 * an X.509 certificate of the CSR's key, signed by TrustAnchor.
 *
 * This X.509 chain is accepted, checked and stored, but it is not what an hsmlab client trusts:
 * HSM identities are Ed25519 certificates issued by the cluster's hsmlab trust anchor, whose
 * secret the control plane holds (see docs/control-plane.md, "Trust").
 */
import { X509Certificate, createPrivateKey, createPublicKey, generateKeyPairSync, sign } from 'node:crypto'
import { invalidRequest } from './errors.js'

function derLength (n: number): Buffer {
  if (n < 0x80) return Buffer.from([n])
  const bytes: number[] = []
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

function tlv (tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content])
}

const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items))
const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items))

function oid (dotted: string): Buffer {
  const parts = dotted.split('.').map(Number)
  const bytes: number[] = [(parts[0] ?? 0) * 40 + (parts[1] ?? 0)]
  for (const part of parts.slice(2)) {
    const chunk: number[] = []
    let v = part
    do { chunk.unshift(v & 0x7f); v = Math.floor(v / 128) } while (v > 0)
    for (let i = 0; i < chunk.length - 1; i++) chunk[i] = (chunk[i] ?? 0) | 0x80
    bytes.push(...chunk)
  }
  return tlv(0x06, Buffer.from(bytes))
}

const rdn = (type: string, value: Buffer): Buffer => set(seq(oid(type), value))
const printable = (text: string): Buffer => tlv(0x13, Buffer.from(text, 'ascii'))
const utf8String = (text: string): Buffer => tlv(0x0c, Buffer.from(text, 'utf8'))

function pem (label: string, der: Buffer): string {
  const body = der.toString('base64').replace(/.{1,64}/g, line => `${line}\n`)
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`
}

/** A fresh EC P-256 key and a PKCS#10 CSR for it, subject `CN=<clusterId>`. */
export function createClusterCsr (clusterId: string): { keyPem: string, csrPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  const subject = seq(
    rdn('2.5.4.6', printable('US')),
    rdn('2.5.4.10', utf8String('hsmlab')),
    rdn('2.5.4.11', utf8String('hsmlab CloudHSM simulator')),
    rdn('2.5.4.3', utf8String(clusterId))
  )
  const spki = publicKey.export({ type: 'spki', format: 'der' })
  const info = seq(Buffer.from([0x02, 0x01, 0x00]), subject, spki, tlv(0xa0, Buffer.alloc(0)))
  const signature = sign('sha256', info, { key: privateKey, dsaEncoding: 'der' })
  const csr = seq(info, seq(oid('1.2.840.10045.4.3.2')), tlv(0x03, Buffer.concat([Buffer.from([0]), signature])))
  return { keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), csrPem: pem('CERTIFICATE REQUEST', csr) }
}

function parseCertificate (text: string, member: string): X509Certificate {
  try {
    return new X509Certificate(text)
  } catch (err) {
    throw invalidRequest(`${member} is not a PEM-encoded X.509 certificate: ${(err as Error).message}`)
  }
}

/**
 * InitializeCluster's checks: both certificates parse, SignedCert certifies the key of the
 * cluster's CSR, and TrustAnchor's key verifies SignedCert's signature.
 */
export function checkSignedCertificate (signedCert: string, trustAnchor: string, csrKeyPem: string): void {
  const signed = parseCertificate(signedCert, 'SignedCert')
  const anchor = parseCertificate(trustAnchor, 'TrustAnchor')
  const csrPublic = createPublicKey(createPrivateKey(csrKeyPem)).export({ type: 'spki', format: 'der' })
  const signedPublic = signed.publicKey.export({ type: 'spki', format: 'der' })
  if (!csrPublic.equals(signedPublic)) {
    throw invalidRequest('The SignedCert does not match the cluster\'s certificate signing request (ClusterCsr): sign the ClusterCsr of this cluster')
  }
  if (!signed.verify(anchor.publicKey)) {
    throw invalidRequest('The SignedCert was not signed by the TrustAnchor: give the certificate of the CA that signed the ClusterCsr')
  }
}
