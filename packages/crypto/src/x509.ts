/**
 * X.509 certificates and PKCS#10 requests that openssl checks (`openssl verify`, `openssl x509`,
 * `openssl req`), for the certificates an HSM hands out (getCert, DescribeClusters' Certificates):
 * EC P-256 keys, ECDSA with SHA-256, written with der.ts because node:crypto signs but cannot
 * write a certificate.
 *
 * The roots of the chain are AWS's and the manufacturer's in the real service; hsmlab has stand-ins
 * of its own, derived from the installation's manufacturer key (`standInRoots`), so that every HSM
 * of an installation chains to the same two roots and the lab can write them for its users, as the
 * guide has them downloaded (AWS_CloudHSM_Root-G1.crt, the manufacturer's root).
 */
import { createECDH, createHash, createPrivateKey, createPublicKey, sign } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { deriveKey } from './bytes.js'
import { derOid, derPrintableString, derSequence, derSet, derTlv, derUtf8String, toPem } from './der.js'

const ECDSA_WITH_SHA256 = derSequence(derOid('1.2.840.10045.4.3.2'))
// Fixed validity, so that an HSM's certificates say the same after a restart; UTCTime (before 2050).
const NOT_BEFORE = '200101000000Z'
const NOT_AFTER = '491231235959Z'

const bool = (value: boolean): Buffer => derTlv(0x01, Buffer.from([value ? 0xff : 0]))
const octets = (content: Buffer): Buffer => derTlv(0x04, content)
const bits = (content: Buffer): Buffer => derTlv(0x03, Buffer.concat([Buffer.from([0]), content]))

/** A distinguished name: C=US, O=hsmlab, OU=`unit`, CN=`commonName`. */
export function x509Name (commonName: string, unit: string): Buffer {
  const rdn = (oid: string, value: Buffer): Buffer => derSet(derSequence(derOid(oid), value))
  return derSequence(
    rdn('2.5.4.6', derPrintableString('US')),
    rdn('2.5.4.10', derUtf8String('hsmlab')),
    rdn('2.5.4.11', derUtf8String(unit)),
    rdn('2.5.4.3', derUtf8String(commonName))
  )
}

/** The EC P-256 private key whose scalar is `seed` (32 bytes, from deriveKey): the same key from the same seed. */
export function p256KeyFromSeed (seed: Uint8Array): KeyObject {
  const ecdh = createECDH('prime256v1')
  ecdh.setPrivateKey(Buffer.from(seed))
  const point = ecdh.getPublicKey()
  const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url')
  return createPrivateKey({ key: { kty: 'EC', crv: 'P-256', d: b64(seed), x: b64(point.subarray(1, 33)), y: b64(point.subarray(33)) }, format: 'jwk' })
}

function spkiOf (key: KeyObject): Buffer {
  return (key.type === 'private' ? createPublicKey(key) : key).export({ type: 'spki', format: 'der' })
}

/** SubjectKeyIdentifier: SHA-1 of the key's bits (RFC 5280 4.2.1.2, method 1). */
function keyId (spki: Buffer): Buffer {
  // An EC P-256 SPKI is 26 bytes of algorithm and bit-string header, then the 65-byte point.
  return createHash('sha1').update(spki.subarray(spki.length - 65)).digest()
}

/** What one certificate says. */
export interface X509CertificateSpec {
  issuer: Buffer
  subject: Buffer
  /** The key it certifies (private or public). */
  publicKey: KeyObject
  /** The issuer's private key. */
  signingKey: KeyObject
  /** A CA (basicConstraints CA:TRUE, keyCertSign): it may issue certificates. */
  ca: boolean
}

/** An X.509 v3 certificate (PEM). Its serial number is a digest of what it says, so the same spec gives the same serial. */
export function x509Certificate (spec: X509CertificateSpec): string {
  const spki = spkiOf(spec.publicKey)
  const issuerKeyId = keyId(spkiOf(spec.signingKey))
  const serial = createHash('sha256').update(spec.issuer).update(spec.subject).update(spki).digest().subarray(0, 16)
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x01
  const extensions = [
    derSequence(derOid('2.5.29.19'), bool(true), octets(spec.ca ? derSequence(bool(true)) : derSequence())),
    derSequence(derOid('2.5.29.15'), bool(true), octets(derTlv(0x03, spec.ca ? Buffer.from([0x01, 0x06]) : Buffer.from([0x07, 0x80])))),
    derSequence(derOid('2.5.29.14'), octets(octets(keyId(spki)))),
    derSequence(derOid('2.5.29.35'), octets(derSequence(derTlv(0x80, issuerKeyId))))
  ]
  const tbs = derSequence(
    derTlv(0xa0, derTlv(0x02, Buffer.from([2]))),
    derTlv(0x02, serial),
    ECDSA_WITH_SHA256,
    spec.issuer,
    derSequence(derTlv(0x17, Buffer.from(NOT_BEFORE, 'ascii')), derTlv(0x17, Buffer.from(NOT_AFTER, 'ascii'))),
    spec.subject,
    spki,
    derTlv(0xa3, derSequence(...extensions))
  )
  const signature = sign('sha256', tbs, { key: spec.signingKey, dsaEncoding: 'der' })
  return toPem('CERTIFICATE', derSequence(tbs, ECDSA_WITH_SHA256, bits(signature)))
}

/** A PKCS#10 certificate signing request (PEM) for `key`'s public half, signed by `key`. */
export function certificationRequest (subject: Buffer, key: KeyObject): string {
  const info = derSequence(derTlv(0x02, Buffer.from([0])), subject, spkiOf(key), derTlv(0xa0, Buffer.alloc(0)))
  const signature = sign('sha256', info, { key, dsaEncoding: 'der' })
  return toPem('CERTIFICATE REQUEST', derSequence(info, ECDSA_WITH_SHA256, bits(signature)))
}

/** One stand-in root: its key, name and self-signed certificate. */
export interface StandInRoot {
  key: KeyObject
  name: Buffer
  certPem: string
}

/** File names the guide gives the two roots (verify-hsm-identity), which the lab writes them under. */
export const ROOT_FILE_NAMES = { aws: 'AWS_CloudHSM_Root-G1.crt', manufacturer: 'cavium_cert.crt' } as const

/**
 * hsmlab's stand-ins for AWS CloudHSM's root (which signs AWS hardware certificates) and the HSM
 * manufacturer's root (which signs manufacturer hardware certificates), derived from the
 * installation's manufacturer key: whoever holds the key makes the same two roots.
 */
export function standInRoots (manufacturerKey: Uint8Array): { aws: StandInRoot, manufacturer: StandInRoot } {
  const root = (purpose: string, commonName: string, unit: string): StandInRoot => {
    const key = p256KeyFromSeed(deriveKey(manufacturerKey, purpose))
    const name = x509Name(commonName, unit)
    return { key, name, certPem: x509Certificate({ issuer: name, subject: name, publicKey: key, signingKey: key, ca: true }) }
  }
  return {
    aws: root('x509/aws-root', 'hsmlab stand-in AWS CloudHSM Root G1', 'hsmlab stand-in for AWS CloudHSM'),
    manufacturer: root('x509/manufacturer-root', 'hsmlab stand-in Manufacturer Root', 'hsmlab stand-in for the HSM manufacturer')
  }
}
