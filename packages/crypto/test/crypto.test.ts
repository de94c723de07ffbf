import { describe, expect, it } from 'vitest'
import {
  ClientHandshake, acceptHandshake, decodeTrustAnchor, encodeTrustAnchor, generateSecretKey, generateSigningKeyPair,
  hashPassword, issueCertificate, maskObject, open, readMaskedObjectHeader, seal, unmaskObject, utf8, verifyPassword
} from '@hsmlab/crypto'

function codeOf (fn: () => unknown): string | undefined {
  try { fn() } catch (err) { return (err as { code?: string }).code }
  return undefined
}

describe('seal / open', () => {
  it('round-trips and refuses a changed byte or another key', () => {
    const key = generateSecretKey()
    const sealed = seal(key, utf8('secret'))
    expect(new TextDecoder().decode(open(key, sealed))).toBe('secret')
    const changed = sealed.slice(); changed[30] = (changed[30] ?? 0) ^ 1
    expect(codeOf(() => open(key, changed))).toBe('CRYPTO_ERR_AUTH')
    expect(codeOf(() => open(generateSecretKey(), sealed))).toBe('CRYPTO_ERR_AUTH')
    expect(codeOf(() => open(key, sealed.subarray(0, 10)))).toBe('CRYPTO_ERR_FORMAT')
  })
})

describe('masked objects', () => {
  const maskingKey = generateSecretKey()
  const blob = maskObject(maskingKey, { kind: 'key', name: 'key 6', lineage: 'L1' }, utf8('payload'))

  it('open only in the same lineage', () => {
    expect(readMaskedObjectHeader(blob)).toEqual({ kind: 'key', name: 'key 6', lineage: 'L1' })
    expect(new TextDecoder().decode(unmaskObject(maskingKey, 'L1', blob).payload)).toBe('payload')
    expect(codeOf(() => unmaskObject(maskingKey, 'L2', blob))).toBe('CRYPTO_ERR_LINEAGE')
  })

  it('fail authentication when any byte changes, header included', () => {
    for (let i = 0; i < blob.length; i++) {
      const changed = blob.slice(); changed[i] = (changed[i] ?? 0) ^ 0x01
      const code = codeOf(() => unmaskObject(maskingKey, 'L1', changed))
      expect(['CRYPTO_ERR_AUTH', 'CRYPTO_ERR_FORMAT', 'CRYPTO_ERR_LINEAGE'], `byte ${i}`).toContain(code)
    }
  })

  it('refuse a key from another cluster that claims the same lineage', () => {
    expect(codeOf(() => unmaskObject(generateSecretKey(), 'L1', blob))).toBe('CRYPTO_ERR_AUTH')
  })
})

describe('channel handshake', () => {
  const anchor = generateSigningKeyPair()
  const identity = generateSigningKeyPair()
  const certificate = issueCertificate(anchor.secretKey, { hsmId: 'hsm-a', clusterId: 'cluster-x', publicKey: identity.publicKey })

  it('agrees on keys, and frames cannot be replayed or reordered', () => {
    const client = new ClientHandshake()
    const { welcome, channel: server } = acceptHandshake(client.hello, identity.secretKey, certificate)
    const channel = client.finish(welcome, anchor.publicKey, 'cluster-x')
    expect(channel.peerCertificate?.hsmId).toBe('hsm-a')
    const first = channel.encrypt(utf8('one'))
    const second = channel.encrypt(utf8('two'))
    expect(codeOf(() => server.decrypt(second))).toBe('CRYPTO_ERR_CHANNEL')
    expect(new TextDecoder().decode(server.decrypt(first))).toBe('one')
    expect(codeOf(() => server.decrypt(first))).toBe('CRYPTO_ERR_CHANNEL')
    expect(new TextDecoder().decode(channel.decrypt(server.encrypt(utf8('back'))))).toBe('back')
  })

  it('refuses an HSM whose certificate another anchor signed, or of another cluster', () => {
    const client = new ClientHandshake()
    const { welcome } = acceptHandshake(client.hello, identity.secretKey, certificate)
    expect(codeOf(() => client.finish(welcome, generateSigningKeyPair().publicKey))).toBe('CRYPTO_ERR_UNTRUSTED')
    expect(codeOf(() => new ClientHandshake().finish(welcome, anchor.publicKey, 'cluster-y'))).toBe('CRYPTO_ERR_UNTRUSTED')
  })

  it('refuses an HSM that does not hold the identity key of its certificate', () => {
    const client = new ClientHandshake()
    const { welcome } = acceptHandshake(client.hello, generateSigningKeyPair().secretKey, certificate)
    expect(codeOf(() => client.finish(welcome, anchor.publicKey))).toBe('CRYPTO_ERR_UNTRUSTED')
  })

  it('peer identity proofs are bound to one channel', () => {
    const client = new ClientHandshake()
    const { welcome, channel: server } = acceptHandshake(client.hello, identity.secretKey, certificate)
    const channel = client.finish(welcome, anchor.publicKey)
    const peer = generateSigningKeyPair()
    const peerCert = issueCertificate(anchor.secretKey, { hsmId: 'hsm-b', clusterId: 'cluster-x', publicKey: peer.publicKey })
    const proof = channel.proveIdentity(peer.secretKey, peerCert)
    expect(server.verifyIdentity(anchor.publicKey, proof).hsmId).toBe('hsm-b')
    const other = new ClientHandshake()
    const { channel: otherServer } = acceptHandshake(other.hello, identity.secretKey, certificate)
    expect(codeOf(() => otherServer.verifyIdentity(anchor.publicKey, proof))).toBe('CRYPTO_ERR_UNTRUSTED')
  })
})

describe('trust anchor files and passwords', () => {
  it('round-trips a trust anchor and refuses other text', () => {
    const { publicKey } = generateSigningKeyPair()
    expect(decodeTrustAnchor(encodeTrustAnchor(publicKey))).toEqual(publicKey)
    expect(codeOf(() => decodeTrustAnchor('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----'))).toBe('CRYPTO_ERR_FORMAT')
  })

  it('verifies passwords', async () => {
    const verifier = await hashPassword('Password1', 1024)
    expect(await verifyPassword('Password1', verifier)).toBe(true)
    expect(await verifyPassword('password1', verifier)).toBe(false)
  })
})
