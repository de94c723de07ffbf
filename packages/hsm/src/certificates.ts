/**
 * The certificates CMU's getCert hands out (reference A.6: 1 Manufacturer Root, 2 Manufacturer
 * Hardware, 4 Customer Root, 8 Cluster certificate signed by the Customer Root, 16 Cluster
 * certificate chained to the Manufacturer Root), and two the control plane asks for its
 * DescribeClusters `Certificates` (32 AWS hardware certificate, 64 the cluster's CSR).
 *
 * Types 1, 2, 16, 32 and 64 are real X.509 / PKCS#10 (EC P-256), so that the guide's "Verify the
 * identity and authenticity of your cluster's HSM" works with openssl as written: the HSM key
 * (16, whose public key is the CSR's) is certified by the HSM's hardware key, which the
 * manufacturer root (2) and the AWS root (32) both certify. The roots are hsmlab's stand-ins,
 * derived from the manufacturer key (@hsmlab/crypto `standInRoots`); the hardware key is derived
 * from the manufacturer key and the HSM's id, the HSM key from the HSM's own identity secret.
 *
 * Types 4 and 8 are hsmlab's own Ed25519 statements (`-----BEGIN HSMLAB CERTIFICATE-----`, a
 * small JSON document, so that no tool mistakes it for X.509): type 8 is the certificate the HSM
 * presents in every handshake (signed by the cluster's trust anchor, which stands in for the
 * customer CA); type 4 is the anchor's public key. The customer's X.509 TrustAnchor and SignedCert
 * of InitializeCluster stay with the control plane (DescribeClusters' ClusterCertificate).
 */
import { certificationRequest, deriveKey, p256KeyFromSeed, standInRoots, toHex, x509Certificate, x509Name } from '@hsmlab/crypto'
import type { HsmIdentity } from './context.js'

/** getCert's certificate types. */
export const CERTIFICATE_TYPES = {
  1: 'Manufacturer Root',
  2: 'Manufacturer Hardware',
  4: 'Customer Root',
  8: 'Cluster certificate signed by Customer Root',
  16: 'Cluster certificate chained to Manufacturer Root',
  32: 'AWS Hardware',
  64: 'Cluster CSR'
} as const

const BEGIN = '-----BEGIN HSMLAB CERTIFICATE-----'
const END = '-----END HSMLAB CERTIFICATE-----'

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

/** The X.509 certificates and the CSR of one HSM (types 1, 2, 16, 32, 64). */
function x509Certificates (identity: HsmIdentity, manufacturerKey: Uint8Array): Map<number, string> {
  const roots = standInRoots(manufacturerKey)
  const hardwareKey = p256KeyFromSeed(deriveKey(manufacturerKey, `x509/hardware/${identity.hsmId}`))
  const hardware = x509Name(`${identity.hsmId} hardware ${identity.serialNumber}`, 'hsmlab HSM hardware')
  const hsmKey = p256KeyFromSeed(deriveKey(identity.identity.secretKey, 'x509/hsm-key'))
  return new Map([
    [1, roots.manufacturer.certPem],
    [2, x509Certificate({ issuer: roots.manufacturer.name, subject: hardware, publicKey: hardwareKey, signingKey: roots.manufacturer.key, ca: true })],
    [16, x509Certificate({ issuer: hardware, subject: x509Name(identity.hsmId, 'hsmlab HSM'), publicKey: hsmKey, signingKey: hardwareKey, ca: false })],
    [32, x509Certificate({ issuer: roots.aws.name, subject: hardware, publicKey: hardwareKey, signingKey: roots.aws.key, ca: true })],
    [64, certificationRequest(x509Name(identity.clusterId, 'hsmlab CloudHSM simulator'), hsmKey)]
  ])
}

/** Builds the PEM-armoured text of every certificate type of one HSM. */
export function buildCertificates (identity: HsmIdentity, manufacturerKey: Uint8Array): Map<number, string> {
  const { certificate } = identity
  const hsmKey = toHex(certificate.publicKey)
  const docs: CertificateDocument[] = [
    {
      format: 'hsmlab-certificate/v1', certType: 4, name: CERTIFICATE_TYPES[4], subject: `cluster ${identity.clusterId} trust anchor`,
      issuer: `cluster ${identity.clusterId} trust anchor`, clusterId: identity.clusterId, publicKey: toHex(identity.anchorPublicKey)
    },
    {
      format: 'hsmlab-certificate/v1', certType: 8, name: CERTIFICATE_TYPES[8], subject: `hsm ${certificate.hsmId}`,
      issuer: `cluster ${certificate.clusterId} trust anchor`, hsmId: certificate.hsmId, clusterId: certificate.clusterId,
      publicKey: hsmKey, signature: toHex(certificate.signature),
      signed: `hsmlab/cert/v1\0${certificate.clusterId}\0${certificate.hsmId}\0${hsmKey}`
    }
  ]
  return new Map([...x509Certificates(identity, manufacturerKey), ...docs.map(doc => [doc.certType, armour(doc)] as const)])
}
