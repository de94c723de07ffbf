/**
 * The five certificates CMU's getCert hands out (reference A.6: 1 Manufacturer Root,
 * 2 Manufacturer Hardware, 4 Customer Root, 8 Cluster certificate signed by the Customer Root,
 * 16 Cluster certificate chained to the Manufacturer Root).
 *
 * Our certificates are Ed25519 statements, not X.509: each is a small JSON document, armoured
 * like PEM but as `-----BEGIN HSMLAB CERTIFICATE-----`, so that no tool mistakes it for an X.509
 * certificate. Type 8 is the certificate the HSM presents in every handshake (signed by the
 * cluster's trust anchor, which stands in for the customer CA); type 4 is the anchor's public key
 * (the HSM does not hold the anchor's secret, so it carries no signature); the manufacturer root
 * is an Ed25519 key derived from the manufacturer key, and signs types 1, 2 and 16.
 */
import { createPrivateKey, createPublicKey, sign as nodeSign } from 'node:crypto'
import { deriveKey, toHex } from '@hsmlab/crypto'
import type { HsmIdentity } from './context.js'

/** getCert's certificate types. */
export const CERTIFICATE_TYPES = {
  1: 'Manufacturer Root',
  2: 'Manufacturer Hardware',
  4: 'Customer Root',
  8: 'Cluster certificate signed by Customer Root',
  16: 'Cluster certificate chained to Manufacturer Root'
} as const

const BEGIN = '-----BEGIN HSMLAB CERTIFICATE-----'
const END = '-----END HSMLAB CERTIFICATE-----'
// DER prefix of a PKCS#8 Ed25519 private key; the 32-byte seed follows.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const MANUFACTURER_ROOT = 'hsmlab manufacturer root'

interface CertificateDocument {
  format: 'hsmlab-certificate/v1'
  certType: number
  name: string
  subject: string
  issuer: string
  hsmId?: string
  clusterId?: string
  /** Ed25519 public key, hex. */
  publicKey: string
  /** Ed25519 signature by the issuer, hex, over `signed`; absent for the customer root. */
  signature?: string
  /** What the signature covers, so that anyone can check it. */
  signed?: string
}

function armour (doc: CertificateDocument): string {
  const body = Buffer.from(JSON.stringify(doc), 'utf8').toString('base64').replace(/.{1,64}/g, line => `${line}\n`)
  return `${BEGIN}\n${body}${END}\n`
}

/** Builds the PEM-armoured text of every certificate type of one HSM. */
export function buildCertificates (identity: HsmIdentity, manufacturerKey: Uint8Array): Map<number, string> {
  const seed = deriveKey(manufacturerKey, 'manufacturer-root')
  const rootPrivate = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' })
  const rootPublic = toHex(createPublicKey(rootPrivate).export({ format: 'der', type: 'spki' }).subarray(-32))
  const byRoot = (doc: Omit<CertificateDocument, 'format' | 'issuer' | 'signature' | 'signed'>): CertificateDocument => {
    const signed = `hsmlab/cert/${doc.certType}/v1\0${doc.subject}\0${doc.clusterId ?? ''}\0${doc.hsmId ?? ''}\0${doc.publicKey}`
    const signature = toHex(nodeSign(null, Buffer.from(signed, 'utf8'), rootPrivate))
    return { format: 'hsmlab-certificate/v1', ...doc, issuer: MANUFACTURER_ROOT, signature, signed }
  }
  const { certificate } = identity
  const hsmKey = toHex(certificate.publicKey)
  const docs: CertificateDocument[] = [
    byRoot({ certType: 1, name: CERTIFICATE_TYPES[1], subject: MANUFACTURER_ROOT, publicKey: rootPublic }),
    byRoot({ certType: 2, name: CERTIFICATE_TYPES[2], subject: `hsm ${identity.hsmId}`, hsmId: identity.hsmId, publicKey: hsmKey }),
    {
      format: 'hsmlab-certificate/v1', certType: 4, name: CERTIFICATE_TYPES[4], subject: `cluster ${identity.clusterId} trust anchor`,
      issuer: `cluster ${identity.clusterId} trust anchor`, clusterId: identity.clusterId, publicKey: toHex(identity.anchorPublicKey)
    },
    {
      format: 'hsmlab-certificate/v1', certType: 8, name: CERTIFICATE_TYPES[8], subject: `hsm ${certificate.hsmId}`,
      issuer: `cluster ${certificate.clusterId} trust anchor`, hsmId: certificate.hsmId, clusterId: certificate.clusterId,
      publicKey: hsmKey, signature: toHex(certificate.signature),
      signed: `hsmlab/cert/v1\0${certificate.clusterId}\0${certificate.hsmId}\0${hsmKey}`
    },
    byRoot({ certType: 16, name: CERTIFICATE_TYPES[16], subject: `hsm ${identity.hsmId}`, hsmId: identity.hsmId, clusterId: identity.clusterId, publicKey: hsmKey })
  ]
  return new Map(docs.map(doc => [doc.certType, armour(doc)]))
}
