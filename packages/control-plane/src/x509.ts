/**
 * The X.509 side of cluster initialization (reference F.7): the checks InitializeCluster makes on
 * what a customer signed (`openssl x509 -req ...`, as in the AWS runbook) from the ClusterCsr that
 * the cluster's first HSM made (hsm certificates.ts, type 64): SignedCert must be an X.509
 * certificate of the CSR's key (the key the HsmCertificate certifies), signed by TrustAnchor.
 *
 * The cluster's HSMs are given both certificates as they are (reconcilers/clusters.ts; CMU and KMU
 * getCert 8 and 4 write them), but this X.509 chain is not what an hsmlab client trusts:
 * HSM identities are Ed25519 certificates issued by the cluster's hsmlab trust anchor, whose
 * secret the control plane holds in its keyring (see docs/control-plane.md, "Trust").
 */
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto'
import { invalidRequest } from './errors.js'

/** The public key (SPKI PEM) of a certificate (PEM): the HsmCertificate's is the ClusterCsr's. */
export function publicKeyPemOfCertificate (certificatePem: string): string {
  return new X509Certificate(certificatePem).publicKey.export({ type: 'spki', format: 'pem' }).toString()
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
 * InitializeCluster's checks: both certificates parse, TrustAnchor is self-signed, SignedCert
 * certifies the key of the cluster's CSR, and TrustAnchor's key verifies SignedCert's signature.
 */
export function checkSignedCertificate (signedCert: string, trustAnchor: string, csrPublicKeyPem: string): void {
  const signed = parseCertificate(signedCert, 'SignedCert')
  const anchor = parseCertificate(trustAnchor, 'TrustAnchor')
  const csrPublic = createPublicKey(csrPublicKeyPem).export({ type: 'spki', format: 'der' })
  const signedPublic = signed.publicKey.export({ type: 'spki', format: 'der' })
  // The API: "You must use a self-signed certificate ... the root certificate."
  if (anchor.issuer !== anchor.subject || !anchor.verify(anchor.publicKey)) {
    throw invalidRequest('The TrustAnchor must be a self-signed certificate: give the root certificate of the CA that signed the ClusterCsr')
  }
  if (!csrPublic.equals(signedPublic)) {
    throw invalidRequest('The SignedCert does not match the cluster\'s certificate signing request (ClusterCsr): sign the ClusterCsr of this cluster')
  }
  if (!signed.verify(anchor.publicKey)) {
    throw invalidRequest('The SignedCert was not signed by the TrustAnchor: give the certificate of the CA that signed the ClusterCsr')
  }
}
