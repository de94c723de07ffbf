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
 * Types 4 and 8 are not made here: they are the customer's TrustAnchor and SignedCert of
 * InitializeCluster, which the control plane hands to the cluster's HSMs (cluster-certificates.ts).
 */
import { certificationRequest, deriveKey, p256KeyFromSeed, standInRoots, x509Certificate, x509Name } from '@hsmlab/crypto'
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

/** Builds the PEM text of every certificate type one HSM makes itself (1, 2, 16, 32, 64). */
export function buildCertificates (identity: HsmIdentity, manufacturerKey: Uint8Array): Map<number, string> {
  return x509Certificates(identity, manufacturerKey)
}
