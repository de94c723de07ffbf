/**
 * The lab's customer CA: what a person who follows the AWS runbook makes with `openssl` before
 * InitializeCluster (reference F.7) — a self-signed issuing certificate (the TrustAnchor) and, for
 * each new cluster, its ClusterCsr signed into a certificate (the SignedCert). Plain X.509 in DER,
 * EC P-256 with ECDSA-SHA256, built with node:crypto only, so no `openssl` binary is needed.
 *
 * The control plane checks this chain (the SignedCert certifies the CSR's key and is signed by the
 * TrustAnchor) and stores it; the trust that hsmlab's clients check is the cluster's own anchor
 * (`HsmlabTrustAnchor`), see docs/lab.md.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto'
import { derOid, derPrintableString, derSequence, derSet, derTlv, derUtf8String, toPem } from '@hsmlab/crypto'

/** A CA: its private key (PKCS#8 PEM) and its self-signed certificate (PEM). */
export interface CustomerCa {
  keyPem: string
  certPem: string
}

// ---------------------------------------------------------------- DER writing



const bool = (value: boolean): Buffer => derTlv(0x01, Buffer.from([value ? 0xff : 0]))
const octets = (content: Buffer): Buffer => derTlv(0x04, content)
const bits = (content: Buffer): Buffer => derTlv(0x03, Buffer.concat([Buffer.from([0]), content]))
const explicit = (n: number, content: Buffer): Buffer => derTlv(0xa0 + n, content)


/** A positive INTEGER from unsigned big-endian bytes. */
function unsignedInteger (bytes: Buffer): Buffer {
  let start = 0
  while (start < bytes.length - 1 && bytes[start] === 0) start++
  const trimmed = bytes.subarray(start)
  return derTlv(0x02, (trimmed[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed)
}

/** UTCTime up to 2049, GeneralizedTime after (RFC 5280 4.1.2.5). */
function time (date: Date): Buffer {
  const iso = date.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z'
  return date.getUTCFullYear() < 2050 ? derTlv(0x17, Buffer.from(iso.slice(2), 'ascii')) : derTlv(0x18, Buffer.from(iso, 'ascii'))
}

const ECDSA_WITH_SHA256 = derSequence(derOid('1.2.840.10045.4.3.2'))


function unpem (text: string, label: string): Buffer {
  const match = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(text)
  if (match === null) throw new Error(`not a PEM '${label}' block`)
  return Buffer.from((match[1] ?? '').replace(/\s+/g, ''), 'base64')
}

// ---------------------------------------------------------------- DER reading

interface Element {
  tag: number
  /** The whole element (tag, length and content). */
  raw: Buffer
  content: Buffer
}

function readElement (der: Buffer, offset: number): Element {
  const tag = der[offset]
  let length = der[offset + 1]
  if (tag === undefined || length === undefined) throw new Error('truncated DER')
  let header = 2
  if (length & 0x80) {
    const count = length & 0x7f
    if (count === 0 || count > 4) throw new Error('unsupported DER length')
    length = 0
    for (let i = 0; i < count; i++) length = length * 256 + (der[offset + 2 + i] ?? 0)
    header += count
  }
  const end = offset + header + length
  if (end > der.length) throw new Error('truncated DER')
  return { tag, raw: der.subarray(offset, end), content: der.subarray(offset + header, end) }
}

function children (parent: Element): Element[] {
  const out: Element[] = []
  for (let offset = 0; offset < parent.content.length;) {
    const child = readElement(parent.content, offset)
    out.push(child)
    offset += child.raw.length
  }
  return out
}

/** The subject, key and proof of possession of a PKCS#10 request. */
function parseCsr (csrPem: string): { subject: Buffer, spki: Buffer } {
  const request = readElement(unpem(csrPem, 'CERTIFICATE REQUEST'), 0)
  const [info, , signature] = children(request)
  if (request.tag !== 0x30 || info === undefined || signature === undefined || signature.tag !== 0x03) throw new Error('not a PKCS#10 certificate request')
  const [, subject, spki] = children(info)
  if (subject === undefined || spki === undefined) throw new Error('not a PKCS#10 certificate request')
  // The request must be signed by the key it names (openssl x509 -req checks it too).
  const key = createPublicKey({ key: spki.raw, format: 'der', type: 'spki' })
  if (!verify('sha256', info.raw, { key, dsaEncoding: 'der' }, signature.content.subarray(1))) {
    throw new Error('the certificate request is not signed by the key it names')
  }
  return { subject: subject.raw, spki: spki.raw }
}

function subjectOfCertificate (certPem: string): Buffer {
  const certificate = readElement(unpem(certPem, 'CERTIFICATE'), 0)
  const [tbs] = children(certificate)
  if (tbs === undefined) throw new Error('not an X.509 certificate')
  // TBSCertificate: [0] version, serial, signature algorithm, issuer, validity, subject, ...
  const subject = children(tbs)[5]
  if (subject === undefined) throw new Error('not an X.509 certificate')
  return subject.raw
}

// ---------------------------------------------------------------- certificates

function certificate (options: { issuer: Buffer, subject: Buffer, spki: Buffer, days: number, ca: boolean, signingKeyPem: string }): string {
  const now = new Date()
  // A minute back, so a clock a little behind does not find the certificate not yet valid.
  const notBefore = new Date(now.getTime() - 60_000)
  const notAfter = new Date(now.getTime() + options.days * 86_400_000)
  const serial = randomBytes(16)
  serial[0] = (serial[0] ?? 0) & 0x7f
  const extensions = options.ca
    ? [
        derSequence(derOid('2.5.29.19'), bool(true), octets(derSequence(bool(true)))),
        // keyUsage: keyCertSign, cRLSign.
        derSequence(derOid('2.5.29.15'), bool(true), octets(derTlv(0x03, Buffer.from([0x01, 0x06]))))
      ]
    : [derSequence(derOid('2.5.29.19'), octets(derSequence()))]
  const tbs = derSequence(
    explicit(0, derTlv(0x02, Buffer.from([2]))),
    unsignedInteger(serial),
    ECDSA_WITH_SHA256,
    options.issuer,
    derSequence(time(notBefore), time(notAfter)),
    options.subject,
    options.spki,
    explicit(3, derSequence(...extensions))
  )
  const signature = sign('sha256', tbs, { key: createPrivateKey(options.signingKeyPem), dsaEncoding: 'der' })
  return toPem('CERTIFICATE', derSequence(tbs, ECDSA_WITH_SHA256, bits(signature)))
}

/** A new CA: an EC P-256 key and a self-signed certificate for it, valid `days` days. */
export function createCustomerCa (days = 3650): CustomerCa {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const name = derSequence(
    derSet(derSequence(derOid('2.5.4.6'), derPrintableString('US'))),
    derSet(derSequence(derOid('2.5.4.10'), derUtf8String('hsmlab'))),
    derSet(derSequence(derOid('2.5.4.3'), derUtf8String('hsmlab lab customer CA')))
  )
  const spki = publicKey.export({ type: 'spki', format: 'der' })
  return { keyPem, certPem: certificate({ issuer: name, subject: name, spki, days, ca: true, signingKeyPem: keyPem }) }
}

/**
 * Signs a cluster's ClusterCsr with the CA (`openssl x509 -req -days N -in cluster.csr -CA
 * customerCA.crt -CAkey customerCA.key`): a certificate of the request's subject and key, issued
 * by the CA. Throws when the request cannot be read or is not signed by its own key.
 */
export function signClusterCsr (ca: CustomerCa, csrPem: string, days = 3650): string {
  const { subject, spki } = parseCsr(csrPem)
  return certificate({ issuer: subjectOfCertificate(ca.certPem), subject, spki, days, ca: false, signingKeyPem: ca.keyPem })
}
