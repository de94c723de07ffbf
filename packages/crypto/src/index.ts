/**
 * @packageDocumentation
 * The cryptography of hsmlab, on tweetnacl (Ed25519, X25519 and SHA-512 in node:crypto, with the
 * same bytes): sealing stores at rest, masked objects under a cluster's masking key, HSM
 * identities signed by a trust anchor, the encrypted client↔HSM channel, and password verifiers.
 *
 * @example
 * ```ts
 * import { generateSecretKey, maskObject, unmaskObject } from '@hsmlab/crypto'
 * const maskingKey = generateSecretKey()
 * const blob = maskObject(maskingKey, { kind: 'key', name: 'key 6', lineage: 'L1' }, payload)
 * unmaskObject(maskingKey, 'L1', blob).payload // the payload; a changed byte throws CRYPTO_ERR_AUTH
 * ```
 */
export { CryptoError, CRYPTO_ERR_AUTH, CRYPTO_ERR_CHANNEL, CRYPTO_ERR_FORMAT, CRYPTO_ERR_LINEAGE, CRYPTO_ERR_UNTRUSTED } from './errors.js'
export { bytesEqual, concatBytes, deriveKey, randomBytes, sha512, toHex, utf8 } from './bytes.js'
export { SECRET_KEY_BYTES, generateSecretKey, open, seal } from './seal.js'
export { maskObject, readMaskedObjectHeader, unmaskObject } from './masked-object.js'
export type { MaskedObjectHeader } from './masked-object.js'
export { decodeTrustAnchor, encodeTrustAnchor, generateSigningKeyPair, issueCertificate, sign, signingKeyPairFromSecretKey, verifyCertificate, verifySignature } from './identity.js'
export type { CertificateSubject, HsmCertificate, SigningKeyPair } from './identity.js'
export { ClientHandshake, SecureChannel, acceptHandshake } from './channel.js'
export type { ClientHello, IdentityProof, ServerWelcome } from './channel.js'
export { derOid, derPrintableString, derSequence, derSet, derTlv, derUtf8String, toPem } from './der.js'
export { ROOT_FILE_NAMES, certificationRequest, p256KeyFromSeed, standInRoots, x509Certificate, x509Name } from './x509.js'
export type { StandInRoot, X509CertificateSpec } from './x509.js'
export { hashPassword, verifyPassword } from './password.js'
export type { PasswordHash } from './password.js'
