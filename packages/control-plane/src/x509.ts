/**
 * The X.509 side of cluster initialization (reference F.7): a real PKCS#10 certificate signing
 * request (ClusterCsr) that a customer signs with their own CA (`openssl x509 -req ...`, as in
 * the AWS runbook), and the checks InitializeCluster makes on what comes back: SignedCert must be
 * an X.509 certificate of the CSR's key, signed by TrustAnchor.
 *
 * This X.509 chain is accepted, checked and stored, but it is not what an hsmlab client trusts:
 * HSM identities are Ed25519 certificates issued by the cluster's hsmlab trust anchor, whose
 * secret the control plane holds in its keyring (see docs/control-plane.md, "Trust").
 */
import { X509Certificate, createPrivateKey, createPublicKey, generateKeyPairSync, sign } from 'node:crypto'
import { invalidRequest } from './errors.js'
import { derOid, derPrintableString, derSequence, derSet, derTlv, derUtf8String, toPem } from '@hsmlab/crypto'

const rdn = (type: string, value: Buffer): Buffer => derSet(derSequence(derOid(type), value))

/**
 * A PKCS#10 CSR for a fresh EC P-256 key, subject `CN=<clusterId>`, and the key's public half (SPKI
 * PEM). The private key signs the CSR and is then dropped: InitializeCluster needs only the public
 * key, and a private key the control plane does not keep cannot leak from it.
 */
export function createClusterCsr (clusterId: string): { publicKeyPem: string, csrPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  const subject = derSequence(
    rdn('2.5.4.6', derPrintableString('US')),
    rdn('2.5.4.10', derUtf8String('hsmlab')),
    rdn('2.5.4.11', derUtf8String('hsmlab CloudHSM simulator')),
    rdn('2.5.4.3', derUtf8String(clusterId))
  )
  const spki = publicKey.export({ type: 'spki', format: 'der' })
  const info = derSequence(Buffer.from([0x02, 0x01, 0x00]), subject, spki, derTlv(0xa0, Buffer.alloc(0)))
  const signature = sign('sha256', info, { key: privateKey, dsaEncoding: 'der' })
  const csr = derSequence(info, derSequence(derOid('1.2.840.10045.4.3.2')), derTlv(0x03, Buffer.concat([Buffer.from([0]), signature])))
  return { publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), csrPem: toPem('CERTIFICATE REQUEST', csr) }
}

/** The public key (SPKI PEM) of a private key (PKCS#8 PEM): what a state file of the old format kept of a CSR. */
export function publicKeyPemOf (privateKeyPem: string): string {
  return createPublicKey(createPrivateKey(privateKeyPem)).export({ type: 'spki', format: 'pem' }).toString()
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
export function checkSignedCertificate (signedCert: string, trustAnchor: string, csrPublicKeyPem: string): void {
  const signed = parseCertificate(signedCert, 'SignedCert')
  const anchor = parseCertificate(trustAnchor, 'TrustAnchor')
  const csrPublic = createPublicKey(csrPublicKeyPem).export({ type: 'spki', format: 'der' })
  const signedPublic = signed.publicKey.export({ type: 'spki', format: 'der' })
  if (!csrPublic.equals(signedPublic)) {
    throw invalidRequest('The SignedCert does not match the cluster\'s certificate signing request (ClusterCsr): sign the ClusterCsr of this cluster')
  }
  if (!signed.verify(anchor.publicKey)) {
    throw invalidRequest('The SignedCert was not signed by the TrustAnchor: give the certificate of the CA that signed the ClusterCsr')
  }
}
