import { sign as signNative, verify as verifyNative } from 'node:crypto'
import { nacl } from './nacl.js'
import { toHex, utf8 } from './bytes.js'
import { CryptoError, CRYPTO_ERR_FORMAT, CRYPTO_ERR_UNTRUSTED } from './errors.js'
import { ed25519PrivateKey, ed25519PublicKey, generateEd25519 } from './key-objects.js'

/** An Ed25519 key pair: an HSM's identity, or a cluster's trust anchor. */
export interface SigningKeyPair {
  publicKey: Uint8Array
  secretKey: Uint8Array
}

/** What a certificate vouches for: this public key belongs to this HSM of this cluster. */
export interface CertificateSubject {
  hsmId: string
  clusterId: string
  publicKey: Uint8Array
}

/** A subject signed by a cluster's trust anchor (standing in for the cluster certificate). */
export interface HsmCertificate extends CertificateSubject {
  signature: Uint8Array
}

/** A fresh Ed25519 key pair. */
export function generateSigningKeyPair (): SigningKeyPair {
  return generateEd25519()
}

/** The Ed25519 key pair whose secret key is `secretKey` (64 bytes). */
export function signingKeyPairFromSecretKey (secretKey: Uint8Array): SigningKeyPair {
  const pair = nacl.sign.keyPair.fromSecretKey(secretKey)
  return { publicKey: pair.publicKey, secretKey: pair.secretKey }
}

/** Detached Ed25519 signature (made by OpenSSL; the bytes tweetnacl would make, see key-objects.ts). */
export function sign (secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  if (secretKey.length !== nacl.sign.secretKeyLength) throw new Error('bad secret key size')
  return new Uint8Array(signNative(null, message, ed25519PrivateKey(secretKey)))
}

/** Checks a detached Ed25519 signature. */
export function verifySignature (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== nacl.sign.publicKeyLength || signature.length !== nacl.sign.signatureLength) return false
  try {
    return verifyNative(null, message, ed25519PublicKey(publicKey), signature)
  } catch {
    // Bytes OpenSSL does not take for a public key verify nothing.
    return false
  }
}

function subjectBytes (subject: CertificateSubject): Uint8Array {
  return utf8(`hsmlab/cert/v1\0${subject.clusterId}\0${subject.hsmId}\0${toHex(subject.publicKey)}`)
}

/** Signs an HSM's identity with the cluster's trust anchor. */
export function issueCertificate (anchorSecretKey: Uint8Array, subject: CertificateSubject): HsmCertificate {
  return { ...subject, signature: sign(anchorSecretKey, subjectBytes(subject)) }
}

/** Throws `CRYPTO_ERR_UNTRUSTED` unless `cert` was issued by the anchor whose public key is given. */
export function verifyCertificate (anchorPublicKey: Uint8Array, cert: HsmCertificate): void {
  if (!verifySignature(anchorPublicKey, subjectBytes(cert), cert.signature)) {
    throw new CryptoError(CRYPTO_ERR_UNTRUSTED, `the certificate of ${cert.hsmId} (cluster ${cert.clusterId}) is not signed by the trust anchor in the configuration: this is not a genuine HSM of that cluster`)
  }
}

const ANCHOR_BEGIN = '-----BEGIN HSMLAB TRUST ANCHOR-----'
const ANCHOR_END = '-----END HSMLAB TRUST ANCHOR-----'

/**
 * A trust anchor's public key as a text file, the file a CMU configuration names as `CAfile`
 * (the real tool's customerCA.crt). Armoured like PEM, but an Ed25519 key, not X.509.
 */
export function encodeTrustAnchor (publicKey: Uint8Array): string {
  return `${ANCHOR_BEGIN}\n${Buffer.from(publicKey).toString('base64')}\n${ANCHOR_END}\n`
}

/** Reads what `encodeTrustAnchor` wrote; throws `CRYPTO_ERR_FORMAT` on anything else. */
export function decodeTrustAnchor (text: string): Uint8Array {
  const body = text.trim()
  if (!body.startsWith(ANCHOR_BEGIN) || !body.endsWith(ANCHOR_END)) {
    throw new CryptoError(CRYPTO_ERR_FORMAT, `not an hsmlab trust anchor file (expected a '${ANCHOR_BEGIN}' block)`)
  }
  const key = new Uint8Array(Buffer.from(body.slice(ANCHOR_BEGIN.length, -ANCHOR_END.length).trim(), 'base64'))
  if (key.length !== 32) throw new CryptoError(CRYPTO_ERR_FORMAT, `a trust anchor is a 32-byte key, this one has ${key.length} bytes`)
  return key
}
